/* gpuplan web page: a form, the /v1 API, and a few charts. No build step; the API does all arithmetic. */
"use strict";
(() => {
  const API = new URL("../v1/", document.baseURI).href; // the page lives at /ui/
  const $ = (id) => document.getElementById(id);
  const form = $("form");
  const FIELDS = ["model", "config", "gpu", "num_gpus", "tensor_parallel_size", "pipeline_parallel_size", "dtype",
    "quantization", "kv_cache_dtype", "max_model_len", "max_num_seqs", "gpu_memory_utilization", "vllm_version",
    "limit_image", "limit_video", "max_pixels", "skip_mm_profiling", "language_model_only",
    "mm_encoder_tp_mode", "compile_cache", "interconnect", "platform", "speculative", "lora"];
  const INT_FIELDS = ["num_gpus", "tensor_parallel_size", "pipeline_parallel_size", "max_model_len", "max_num_seqs"];
  const DEFAULTS = {}; // field -> value as shipped in the HTML, to keep shared URLs short
  const state = { models: [], gpus: [], report: null, options: null, chosen: null, modelMax: {}, planKey: "",
    curveKey: "", seq: 0, aborts: {}, charts: {} };

  // ---------- formatting (display only) ----------
  const int = (n) => Number(n).toLocaleString("en-US");
  const gib = (x) => (x == null ? "–" : Number(x).toFixed(2));
  const conc = (x) => Number(x).toFixed(2) + "x";
  const GIB = 2 ** 30;
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  };
  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  // ---------- API ----------
  async function api(key, path, body) {
    if (state.aborts[key]) state.aborts[key].abort();
    const ctrl = new AbortController();
    state.aborts[key] = ctrl;
    const init = body === undefined ? { signal: ctrl.signal }
      : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal: ctrl.signal };
    const res = await fetch(API + path, init);
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    return { ok: res.ok, status: res.status, data };
  }
  const aborted = (e) => e && e.name === "AbortError";

  // ---------- inline field errors ----------
  function clearErrors() {
    for (const p of form.querySelectorAll(".field-error")) { p.hidden = true; p.textContent = ""; }
    for (const i of form.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
    $("error").hidden = true;
  }
  function fieldError(field, msg) {
    let name = String(field || "").split(/[.\[]/).filter(Boolean).pop() || "";
    if (name === "model" && $("config").value.trim()) name = "config";
    if (name === "gpu_memory_bytes" || name === "gpu_memory_gib") name = "gpu";
    if (String(field || "").startsWith("speculative_config")) name = "speculative";
    if (["enable_lora", "max_loras", "max_lora_rank", "lora_dtype", "fully_sharded_loras"].includes(name)) name = "lora";
    const p = $("err-" + name);
    if (!p) { generalError(msg); return; }
    p.textContent = msg; p.hidden = false;
    const input = $(name);
    if (input) input.setAttribute("aria-invalid", "true");
    if (name === "config") $("config-box").open = true;
  }
  function generalError(msg) { const b = $("error"); b.textContent = msg; b.hidden = false; }
  function apiError(res) {
    const d = res.data || {};
    if (Array.isArray(d.detail)) { // FastAPI request validation (422)
      for (const e of d.detail) fieldError((e.loc || []).filter((x) => x !== "body").join("."), e.msg || "invalid");
    } else {
      let msg = d.detail || d.message || `The server answered HTTP ${res.status}.`;
      if (d.accepted && d.accepted.length) msg += ` Accepted: ${d.accepted.slice(0, 12).join(", ")}${d.accepted.length > 12 ? ", …" : ""}`;
      if (d.field) fieldError(d.field, msg); else generalError(msg);
    }
  }

  // ---------- the form ----------
  function values() {
    const v = {};
    for (const f of FIELDS) v[f] = $(f).value.trim();
    return v;
  }
  /** The /v1/estimate body, or null after marking the fields that are wrong. */
  function requestBody(v) {
    let ok = true;
    const bad = (f, m) => { fieldError(f, m); ok = false; };
    const body = {};
    if (v.config) {
      try {
        body.model = JSON.parse(v.config);
        if (typeof body.model !== "object" || Array.isArray(body.model) || body.model === null) bad("config", "config.json must be a JSON object.");
      } catch (e) { bad("config", "Not valid JSON: " + e.message); }
    } else if (v.model) body.model = v.model;
    else bad("model", "Enter a model name or Hugging Face id.");
    if (!v.gpu) bad("gpu", "Pick a GPU."); else body.gpu = v.gpu;
    for (const f of INT_FIELDS) {
      if (v[f] === "") { if (f !== "max_model_len" && f !== "max_num_seqs") bad(f, "Required."); continue; }
      const n = Number(v[f]);
      if (!Number.isInteger(n) || n < 1) bad(f, "A whole number ≥ 1.");
      else if (f !== "num_gpus") body[f] = n;
    }
    const tp = Number(v.tensor_parallel_size), pp = Number(v.pipeline_parallel_size), n = Number(v.num_gpus);
    if (ok && n % pp !== 0) bad("num_gpus", `A multiple of pipeline parallel (${pp}).`);
    else if (ok && n !== tp * pp) bad("num_gpus", `Must equal tensor parallel × pipeline parallel (${tp * pp}).`);
    const u = Number(v.gpu_memory_utilization);
    if (v.gpu_memory_utilization === "" || !(u > 0 && u <= 1)) bad("gpu_memory_utilization", "A fraction in (0, 1], e.g. 0.9.");
    else body.gpu_memory_utilization = u;
    body.dtype = v.dtype;
    if (v.quantization) body.quantization = v.quantization;
    body.kv_cache_dtype = v.kv_cache_dtype;
    body.vllm_version = v.vllm_version;
    // Multimodal options, sent only when set (vLLM's defaults otherwise).
    const limits = {};
    for (const [f, modality] of [["limit_image", "image"], ["limit_video", "video"]]) {
      if (v[f] === "") continue;
      const n = Number(v[f]);
      if (!Number.isInteger(n) || n < 0) bad(f, "A whole number ≥ 0 (0 turns the modality off).");
      else limits[modality] = n;
    }
    if (Object.keys(limits).length) body.limit_mm_per_prompt = limits;
    if (v.max_pixels !== "") {
      const n = Number(v.max_pixels);
      if (!Number.isInteger(n) || n < 1) bad("max_pixels", "A whole number of pixels ≥ 1, e.g. 1003520.");
      else body.mm_processor_kwargs = { max_pixels: n };
    }
    if (v.skip_mm_profiling === "yes") body.skip_mm_profiling = true;
    if (v.language_model_only === "yes") body.language_model_only = true;
    if (v.mm_encoder_tp_mode) body.mm_encoder_tp_mode = v.mm_encoder_tp_mode;
    if (v.compile_cache) body.compile_cache = v.compile_cache;
    if (v.interconnect) body.interconnect = v.interconnect;
    if (v.platform) body.platform = v.platform;
    if (v.speculative) { // "mtp:2" -> vLLM's --speculative-config
      const [method, n] = v.speculative.split(":");
      body.speculative_config = { method, num_speculative_tokens: Number(n) };
    }
    if (v.lora) { // "4:64" -> --enable-lora --max-loras 4 --max-lora-rank 64
      const [slots, rank] = v.lora.split(":").map(Number);
      Object.assign(body, { enable_lora: true, max_loras: slots, max_lora_rank: rank });
    }
    return ok ? body : null;
  }

  // keep num_gpus = tp × pp
  function syncGpus(e) {
    const id = e.target.id;
    const tp = $("tensor_parallel_size"), pp = $("pipeline_parallel_size"), n = $("num_gpus");
    if (id === "tensor_parallel_size" || id === "pipeline_parallel_size") {
      const t = Number(tp.value), p = Number(pp.value);
      if (t >= 1 && p >= 1) n.value = String(t * p);
    } else if (id === "num_gpus") {
      const g = Number(n.value), p = Number(pp.value) || 1;
      if (Number.isInteger(g) && g >= 1 && g % p === 0) tp.value = String(g / p);
    }
  }

  // ---------- shareable URL ----------
  function writeUrl() {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(values())) if (v !== "" && v !== DEFAULTS[k]) q.set(k, v);
    const url = location.pathname + (q.toString() ? "?" + q : "");
    history.replaceState(null, "", url);
  }
  function readUrl() {
    const q = new URLSearchParams(location.search);
    for (const f of FIELDS) {
      if (!q.has(f)) continue;
      const input = $(f), val = q.get(f);
      if (input.tagName === "SELECT" && ![...input.options].some((o) => o.value === val)) {
        input.append(el("option", { value: val, text: val })); // e.g. a version or GPU this page does not list
      }
      input.value = val;
    }
    if (q.get("config")) $("config-box").open = true;
  }

  // ---------- catalog ----------
  function catalogEntry(name) {
    const n = (name || "").toLowerCase();
    return state.models.find((m) => m.id.toLowerCase() === n || (m.aliases || []).some((a) => a.toLowerCase() === n));
  }
  function configMax(cfg) {
    if (!cfg || typeof cfg !== "object") return null;
    const c = cfg.text_config || cfg;
    return c.max_position_embeddings || cfg.max_position_embeddings || c.max_seq_len || null;
  }
  function showModelInfo() {
    const v = $("model").value.trim(), info = $("model-info");
    if ($("config").value.trim()) { info.textContent = "Using the pasted config.json."; return; }
    if (!v) { info.textContent = ""; return; }
    const m = catalogEntry(v);
    if (m) {
      const parts = [m.family, m.total_params ? (m.total_params / 1e9).toFixed(2) + " B params" : null,
        m.exact ? "config known exactly" : "config estimated"];
      info.textContent = "Catalog: " + parts.filter(Boolean).join(" · ") + (m.note ? ` (${m.note})` : "");
    } else {
      info.textContent = v.includes("/") ? "Not in the catalog: the server reads it from the Hugging Face Hub." : "Not in the catalog.";
    }
  }
  async function loadLists() {
    const [models, gpus] = await Promise.all([api("models", "models"), api("gpus", "gpus")]);
    state.models = models.ok ? (Array.isArray(models.data) ? models.data : models.data.models || []) : [];
    state.gpus = gpus.ok ? (Array.isArray(gpus.data) ? gpus.data : gpus.data.gpus || []) : [];
    const dl = $("model-list");
    for (const m of state.models) {
      dl.append(el("option", { value: m.id, label: [...(m.aliases || []), m.family].filter(Boolean).join(", ") }));
    }
    const sel = $("gpu");
    for (const g of state.gpus) {
      const mem = g.memory_bytes ? ` · ${gib(g.memory_bytes / GIB)} GiB` : "";
      const price = g.price_usd_per_hour != null ? ` · $${Number(g.price_usd_per_hour).toFixed(2)}/h` : "";
      sel.append(el("option", { value: g.name, text: g.name + mem + price }));
    }
    if (!gpus.ok) generalError("Could not load the GPU list from the API.");
    // defaults: Llama-3.1-8B on an H100 when the catalog has them
    const llama = state.models.find((m) => /llama-3\.1-8b$/i.test(m.id)) || state.models[0];
    if (llama) $("model").value = llama.id;
    const h100 = state.gpus.find((g) => /h100/i.test(g.name));
    if (h100) sel.value = h100.name;
  }

  // ---------- rendering: memory bar ----------
  const SEGMENTS = [
    { key: "weights", label: "Weights", field: "weights_gib", color: "--c-weights", re: /weight/i },
    { key: "activation", label: "Activation peak", field: "activation_peak_gib", color: "--c-act", re: /activ/i },
    { key: "non_torch", label: "Non-torch", field: "non_torch_gib", color: "--c-nontorch", re: /non.?torch/i },
    { key: "cudagraph", label: "CUDA graphs", field: "cudagraph_gib", color: "--c-graph", re: /graph/i },
    { key: "kv", label: "KV cache", field: "available_kv_cache_gib", color: "--c-kv", re: /kv/i },
  ];
  function component(r, seg) { return (r.components || []).find((c) => seg.re.test(c.name)); }
  /** Is a number exact? From its component, or for derived numbers: every component exact. */
  function exactness(r, key) {
    const seg = SEGMENTS.find((s) => s.key === key);
    const c = seg && component(r, seg);
    if (c) return { exact: !!c.exact, note: c.note || "" };
    const comps = r.components || [];
    const all = comps.length > 0 && comps.every((x) => x.exact);
    const est = comps.filter((x) => !x.exact).map((x) => x.name);
    return { exact: all, note: all ? "derived from exact components" : "depends on estimated: " + est.join(", ") };
  }
  function badge(x) {
    return el("span", { class: "badge " + (x.exact ? "exact" : "est"), title: x.note || (x.exact ? "exact" : "estimated"),
      tabindex: "0", "aria-label": (x.exact ? "exact" : "estimated") + (x.note ? ": " + x.note : ""), text: x.exact ? "exact" : "est." });
  }

  function renderBar(r) {
    const pg = r.per_gpu, cap = r.gpu.memory_gib, budget = pg.budget_gib;
    const parts = SEGMENTS.map((s) => ({ ...s, gib: Math.max(0, Number(pg[s.field]) || 0) }));
    if (!pg.cudagraph_in_budget) parts.push(parts.splice(3, 1)[0]); // graphs sit outside the budget: after KV
    const used = parts.reduce((a, p) => a + p.gib, 0);
    const scale = Math.max(cap || 0, used, budget || 0) || 1;
    const bar = $("bar"); bar.replaceChildren();
    const legend = $("legend"); legend.replaceChildren();
    for (const p of parts) {
      const x = exactness(r, p.key);
      const pct = (100 * p.gib) / scale;
      const seg = el("div", { class: "seg", style: `width:${pct}%;background:var(${p.color})`,
        title: `${p.label}: ${gib(p.gib)} GiB (${x.exact ? "exact" : "estimated"}${x.note ? ": " + x.note : ""})` });
      if (pct > 7) seg.textContent = gib(p.gib);
      bar.append(seg);
      legend.append(el("li", { "data-key": p.field, "data-value": pg[p.field] },
        el("i", { style: `background:var(${p.color})` }), `${p.label} ${gib(pg[p.field])} GiB `, badge(x)));
    }
    const free = (cap || 0) - used;
    if (free > 0) {
      bar.append(el("div", { class: "seg free", style: `width:${(100 * free) / scale}%`, title: `Free: ${gib(free)} GiB`,
        text: (100 * free) / scale > 7 ? gib(free) : "" }));
      legend.append(el("li", {}, el("i", { style: "background:var(--c-free);border:1px solid var(--line)" }), `Free ${gib(free)} GiB`));
    }
    const mark = (at, text, below) => {
      const pct = (100 * at) / scale;
      bar.append(el("div", { class: "marker" + (pct > 70 ? " right" : "") + (below ? " below" : ""), style: `left:${pct}%` },
        el("span", { text })));
    };
    if (budget != null) mark(budget, `budget ${gib(budget)} GiB (${Math.round(r.deployment.gpu_memory_utilization * 100)}%)`);
    bar.classList.toggle("over", cap != null && used > cap);
    if (cap != null && used > cap) mark(cap, `GPU ${gib(cap)} GiB`, true);
    bar.setAttribute("aria-label", `Per-GPU memory on ${r.gpu.name}: ` +
      parts.map((p) => `${p.label} ${gib(p.gib)} GiB`).join(", ") + `; budget ${gib(budget)} of ${gib(cap)} GiB.`);
    $("mem-gpu").textContent = `${r.gpu.name || "GPU"} · ${gib(cap)} GiB · ${r.deployment.num_gpus} GPU${r.deployment.num_gpus > 1 ? "s" : ""}`;
  }

  // ---------- rendering: vLLM's numbers ----------
  function renderNumbers(r) {
    const ul = $("numbers"); ul.replaceChildren();
    const kvx = exactness(r, "kv");
    const line = (key, value, pre, shown, post, x) => ul.append(el("li", { "data-key": key, "data-value": value },
      el("span", {}, pre, el("span", { class: "v", text: shown }), post || ""), badge(x)));
    line("weights_gib", r.per_gpu.weights_gib, "Model loading took ", gib(r.per_gpu.weights_gib), " GiB", exactness(r, "weights"));
    const enc = r.encoder_profile;
    if (enc && enc.modality === "none") {
      ul.append(el("li", { "data-key": "encoder_profile", "data-value": "none",
        text: "Skipping memory profiling for multimodal encoder and encoder cache." }));
    } else if (enc) {
      line("encoder_profile", enc.budget_tokens, "Encoder cache will be initialized with a budget of ",
        String(enc.budget_tokens), ` tokens, and profiled with ${enc.items} ${enc.modality} items of the maximum feature size.`,
        { exact: true, note: "vLLM's encoder-budget rule applied to the processor's pixel limits" });
    }
    line("available_kv_cache_gib", r.per_gpu.available_kv_cache_gib, "Available KV cache memory: ",
      gib(r.per_gpu.available_kv_cache_gib), " GiB", kvx);
    line("kv_cache_tokens", r.kv_cache_tokens, "GPU KV cache size: ", int(r.kv_cache_tokens), " tokens", kvx);
    line("max_concurrency", r.max_concurrency, `Maximum concurrency for ${int(r.deployment.max_model_len)} tokens per request: `,
      conc(r.max_concurrency), "", kvx);
    const graphs = r.vllm_log && r.vllm_log.cudagraph_memory_gib;
    if (graphs) {
      line("cudagraph_memory_gib", graphs, "Graph capturing finished, took ", gib(graphs), " GiB",
        { exact: false, note: "the pool the CUDA-graph capture takes; calibrated" });
    }
    if (r.vllm_log && r.vllm_log.ledger_line) {
      ul.append(el("li", { "data-key": "ledger_line", "data-value": r.vllm_log.ledger_line },
        el("span", { text: r.vllm_log.ledger_line }),
        badge({ exact: false, note: "the usage line vLLM prints after graph capture, in this version's wording" })));
    }
    if (r.per_gpu.peak_process_gib) {
      line("peak_process_gib", r.per_gpu.peak_process_gib, "Memory used per GPU (nvidia-smi): ", gib(r.per_gpu.peak_process_gib),
        " GiB", exactness(r, "all"));
    }
    const first = r.first_start; // shown where it differs from the restart's figures
    if (first && (first.kv_cache_tokens !== r.kv_cache_tokens || first.fits !== r.fits)) {
      line("first_start_tokens", first.kv_cache_tokens, "First start on an empty compile cache: ",
        int(first.kv_cache_tokens), ` tokens, ${conc(first.max_concurrency)}` + (first.fits ? "" : " (would not start)"),
        { exact: false, note: `${gib(first.cold_compile_gib)} GiB per GPU of torch.compile scratch counted as activation; calibrated` });
    }
    line("max_model_len_fit", r.max_model_len_fit ?? "", "Longest max_model_len that fits: ",
      r.max_model_len_fit ? int(r.max_model_len_fit) : "none", "", kvx);

    const w = $("warnings"); w.replaceChildren();
    for (const t of r.warnings || []) w.append(el("li", { text: t }));

    const tb = $("components").tBodies[0]; tb.replaceChildren();
    for (const c of r.components || []) {
      tb.append(el("tr", {}, el("td", { text: c.name }), el("td", { class: "num", text: gib(c.gib) }),
        el("td", {}, badge(c)), el("td", { text: c.note || "" })));
    }

    const st = $("status");
    st.className = "status " + (r.fits ? "ok" : "bad");
    const d = r.deployment;
    const where = `${r.model} on ${d.num_gpus} × ${r.gpu.name} (TP ${d.tensor_parallel_size}, PP ${d.pipeline_parallel_size}), vLLM ${r.engine_version}`;
    st.replaceChildren(
      el("span", { "data-key": "fits", "data-value": String(r.fits),
        text: r.fits ? `Fits: ${int(r.kv_cache_tokens)} KV tokens, ${conc(r.max_concurrency)} concurrency at ${int(d.max_model_len)} tokens.`
          : `Does not fit: ${r.reason || "not enough memory"}.` }),
      el("span", { class: "small", text: where }));
  }

  // ---------- rendering: curves ----------
  function curveLengths(hi, chosen) {
    const lo = 1024, top = Math.max(hi, 2048), out = new Set();
    for (let i = 0; i < 8; i++) out.add(Math.max(lo, Math.round((lo * (top / lo) ** (i / 7)) / 1024) * 1024));
    out.delete(Math.max(...out)); out.add(top);
    state.xticks = [...out].sort((a, b) => a - b); // axis ticks: the log-spaced lengths, not the chosen one
    if (chosen) out.add(chosen);
    return [...out].sort((a, b) => a - b);
  }
  function modelMaxLen(r, body) {
    const key = JSON.stringify(body.model);
    if (!$("max_model_len").value.trim()) state.modelMax[key] = r.deployment.max_model_len; // vLLM's default = model's max
    const m = catalogEntry(typeof body.model === "string" ? body.model : "");
    return state.modelMax[key] || configMax(m && m.hf_config) || configMax(typeof body.model === "object" ? body.model : null)
      || Math.max(r.deployment.max_model_len, r.max_model_len_fit || 0);
  }
  function chartOptions(yTitle, yLog) {
    const text = cssVar("--muted"), grid = cssVar("--line");
    return {
      responsive: true, maintainAspectRatio: false, animation: { duration: 200 },
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { type: "logarithmic", title: { display: true, text: "max_model_len (tokens)", color: text },
          afterBuildTicks: (axis) => { const xs = state.xticks; if (xs) axis.ticks = xs.map((value) => ({ value })); },
          ticks: { color: text, autoSkip: true, maxRotation: 0, callback: (v) => (v % 1024 === 0 ? v / 1024 + "k" : int(v)) },
          grid: { color: grid } },
        y: { type: yLog ? "logarithmic" : "linear", beginAtZero: !yLog, title: { display: true, text: yTitle, color: text },
          ticks: { color: text }, grid: { color: grid } },
      },
      plugins: { legend: { labels: { color: text, boxWidth: 12 } },
        tooltip: { callbacks: { title: (items) => int(items[0].parsed.x) + " tokens" } } },
    };
  }
  function upsertChart(id, datasets, yTitle, yLog) {
    if (!window.Chart) return;
    let c = state.charts[id];
    if (!c) {
      c = new window.Chart($(id), { type: "line", data: { datasets }, options: chartOptions(yTitle, yLog) });
      state.charts[id] = c;
    } else { c.data.datasets = datasets; c.update(); }
  }
  function renderCurve(points, r, concurrency) {
    const ok = cssVar("--ok"), bad = cssVar("--bad"), accent = cssVar("--accent"), text = cssVar("--text");
    const xs = points.map((p) => p.max_model_len);
    const line = (y, label, color, dash) => ({ label, data: [{ x: xs[0], y }, { x: xs[xs.length - 1], y }],
      borderColor: color, borderDash: dash, pointRadius: 0, borderWidth: 1.5, fill: false });
    const chosen = r.deployment.max_model_len;
    const at = points.find((p) => p.max_model_len === chosen);
    const memPts = points.map((p) => ({ x: p.max_model_len, y: +(p.per_gpu_required_bytes / GIB).toFixed(2) }));
    const mem = [
      { label: "Needed per GPU (GiB)", data: memPts, borderColor: accent, backgroundColor: points.map((p) => (p.fits ? ok : bad)),
        pointRadius: 4, borderWidth: 2, tension: 0.2 },
      line(r.gpu.memory_gib, `GPU ${gib(r.gpu.memory_gib)} GiB`, text, []),
      line(r.per_gpu.budget_gib, `Budget ${gib(r.per_gpu.budget_gib)} GiB`, text, [6, 4]),
    ];
    if (at) mem.push({ label: `Your max_model_len (${int(chosen)})`, data: [{ x: chosen, y: +(at.per_gpu_required_bytes / GIB).toFixed(2) }],
      showLine: false, pointRadius: 8, pointStyle: "rectRot", borderColor: text, backgroundColor: text });
    const concPts = points.map((p) => ({ x: p.max_model_len, y: p.max_concurrency }));
    const cc = [{ label: "Max concurrency (x)", data: concPts, borderColor: accent, backgroundColor: points.map((p) => (p.fits ? ok : bad)),
      pointRadius: 4, borderWidth: 2, tension: 0.2 }];
    if (concurrency > 1) cc.push(line(concurrency, `Wanted: ${concurrency}`, text, [6, 4]));
    if (at) cc.push({ label: `Your max_model_len (${int(chosen)})`, data: [{ x: chosen, y: at.max_concurrency }],
      showLine: false, pointRadius: 8, pointStyle: "rectRot", borderColor: text, backgroundColor: text });
    upsertChart("chart-mem", mem, "GiB per GPU", false);
    upsertChart("chart-conc", cc, "concurrent requests", concPts.every((p) => p.y > 0));
    for (const f of ["fig-mem", "fig-conc"]) {
      $(f).dataset.lengths = xs.join(",");
      $(f).dataset.marker = String(chosen);
    }
    for (const s of document.querySelectorAll(".conc-label")) s.textContent = concurrency > 1 ? `${concurrency} requests` : "1 request";
    $("chart-mem").setAttribute("aria-label", "Per-GPU memory needed vs context: " +
      memPts.map((p, i) => `${int(p.x)} tokens ${gib(p.y)} GiB${points[i].fits ? "" : " (does not fit)"}`).join("; "));
    $("chart-conc").setAttribute("aria-label", "Maximum concurrency vs context: " +
      concPts.map((p) => `${int(p.x)} tokens ${conc(p.y)}`).join("; "));
    const fitting = points.filter((p) => p.fits);
    $("curve-note").textContent = fitting.length === points.length ? "Every length shown fits."
      : fitting.length ? `Fits up to about ${int(fitting[fitting.length - 1].max_model_len)} tokens among the lengths shown (red points do not fit).`
        : "None of the lengths shown fits.";
  }

  // ---------- rendering: planner and commands ----------
  function optionMatches(o, body) {
    return o.gpu === body.gpu && o.tensor_parallel_size === body.tensor_parallel_size &&
      (o.pipeline_parallel_size || 1) === body.pipeline_parallel_size && (o.quantization || "") === (body.quantization || "");
  }
  const PLAN_ROWS = 15;
  function renderPlan(body) {
    const table = $("plan"), note = $("plan-note"), tb = table.tBodies[0];
    tb.replaceChildren();
    if (!state.options) return;
    if (!state.options.length) { table.hidden = true; note.textContent = "The planner found no option."; return; }
    table.hidden = false;
    note.textContent = "Cheapest options the planner found for this model, context and concurrency. “Use” copies one into the form.";
    state.chosen = state.options.find((o) => optionMatches(o, body)) || state.options.find((o) => o.fits) || null;
    // The planner ranks every combination; the first rows are the answer, the rest stay one click away.
    const shown = state.showAllOptions ? state.options : state.options.slice(0, PLAN_ROWS);
    if (state.options.length > PLAN_ROWS) {
      const more = el("button", { type: "button", class: "btn", id: "plan-more",
        text: state.showAllOptions ? "Show the first " + PLAN_ROWS : `Show all ${state.options.length} options` });
      more.addEventListener("click", () => { state.showAllOptions = !state.showAllOptions; renderPlan(body); });
      note.append(" ", more);
    }
    shown.forEach((o, i) => {
      const use = el("button", { type: "button", class: "btn", "data-option": i,
        "aria-label": `Use ${o.num_gpus} × ${o.gpu}${o.quantization ? " with " + o.quantization : ""}`, text: "Use" });
      use.addEventListener("click", () => applyOption(o));
      tb.append(el("tr", { class: o === state.chosen ? "selected" : null, "aria-current": o === state.chosen ? "true" : null },
        el("td", { class: o.fits ? "yes" : "no", text: o.fits ? "✓ fits" : "✗ no" }),
        el("td", { text: o.gpu }),
        el("td", { class: "num", text: (o.pipeline_parallel_size || 1) > 1 ? `${o.num_gpus} (TP ${o.tensor_parallel_size} × PP ${o.pipeline_parallel_size})` : String(o.num_gpus) }),
        el("td", { text: `${o.quantization || "–"} / ${o.kv_cache_dtype || "auto"}` }),
        el("td", { class: "num", text: maxCtx(o),
          title: o.first_start_max_model_len != null ? "restarts fit the first figure; a first start on an empty torch.compile cache, the second" : null }),
        el("td", { class: "num", text: o.max_concurrency != null ? conc(o.max_concurrency) : "–" }),
        el("td", { class: "num", text: o.cost_per_hour_usd != null ? "$" + Number(o.cost_per_hour_usd).toFixed(2) : "–" }),
        el("td", {}, use)));
    });
  }
  function maxCtx(o) {
    if (!o.max_model_len) return "–";
    return o.first_start_max_model_len != null ? `${int(o.max_model_len)} (${int(o.first_start_max_model_len)} cold)` : int(o.max_model_len);
  }
  function applyOption(o) {
    const set = (id, v) => {
      const input = $(id);
      if (input.tagName === "SELECT" && ![...input.options].some((x) => x.value === String(v))) input.append(el("option", { value: v, text: v }));
      input.value = String(v);
    };
    set("gpu", o.gpu);
    set("tensor_parallel_size", o.tensor_parallel_size || o.num_gpus);
    set("pipeline_parallel_size", o.pipeline_parallel_size || 1);
    set("num_gpus", o.num_gpus);
    set("quantization", o.quantization || "");
    set("kv_cache_dtype", o.kv_cache_dtype || "auto");
    if (o.max_model_len && !$("max_model_len").value) set("max_model_len", o.max_model_len);
    schedule(0);
  }
  async function copy(text, status) {
    try { await navigator.clipboard.writeText(text); }
    catch (_) {
      const t = el("textarea", { readonly: "", style: "position:fixed;left:-9999px" }); t.value = text;
      document.body.append(t); t.select();
      try { document.execCommand("copy"); } catch (_) { /* nothing else to try */ }
      t.remove();
    }
    status.textContent = "Copied.";
    setTimeout(() => { status.textContent = ""; }, 2000);
  }
  function renderCommands() {
    const box = $("commands"); box.replaceChildren();
    const r = state.report;
    let list = [];
    if (r && r.commands && typeof r.commands === "object") {
      const names = { vllm: "vllm serve", python: "Python (vllm.LLM)", sglang: "SGLang", docker: "Docker" };
      // env holds variables to export before the commands (already in them), not a command of its own
      list = Object.entries(r.commands).filter(([k, v]) => k !== "env" && v && (!Array.isArray(v) || v.length))
        .map(([k, v]) => [names[k] || k, v, k]);
    } else if (state.chosen && state.chosen.vllm_command) {
      const o = state.chosen;
      list = [[`vllm serve (planner option: ${o.num_gpus} × ${o.gpu})`, o.vllm_command, "vllm"]];
    }
    if (!list.length) { box.append(el("p", { class: "hint", text: "The API returned no launch command for these settings." })); return; }
    for (const [label, cmd, key] of list) {
      const st = el("span", { class: "hint", role: "status" });
      const b = el("button", { type: "button", class: "btn", "aria-label": "Copy " + label, text: "Copy" });
      b.addEventListener("click", () => copy(cmd, st));
      box.append(el("div", { class: "cmd", "data-command": key },
        el("div", { class: "cmd-head" }, el("span", { text: label }), el("span", {}, st, " ", b)),
        el("pre", {}, el("code", { text: cmd }))));
    }
  }

  // ---------- the update loop ----------
  let timer = null;
  function schedule(ms = 250) {
    clearTimeout(timer);
    $("results").dataset.state = "pending"; // "ready" again once every request of this change is answered
    timer = setTimeout(update, ms);
  }

  async function update() {
    clearErrors();
    showModelInfo();
    writeUrl();
    const body = requestBody(values());
    const results = $("results");
    if (!body) { results.dataset.state = "invalid"; return; }
    const seq = ++state.seq;
    results.dataset.state = "loading";
    results.setAttribute("aria-busy", "true");
    let res;
    try { res = await api("estimate", "estimate", body); } catch (e) {
      if (aborted(e)) return;
      generalError("Cannot reach the gpuplan API."); results.dataset.state = "error"; results.removeAttribute("aria-busy"); return;
    }
    if (seq !== state.seq) return;
    if (!res.ok) { apiError(res); results.dataset.state = "error"; results.removeAttribute("aria-busy"); return; }
    const r = state.report = res.data;
    renderBar(r);
    renderNumbers(r);
    renderPlan(body);
    renderCommands();
    const concurrency = body.max_num_seqs || 1;
    const lengths = curveLengths(modelMaxLen(r, body), r.deployment.max_model_len);
    const curveBody = { ...body, lengths, concurrency };
    const planBody = { model: body.model, gpus: planGpus(body.gpu), concurrency,
      gpu_memory_utilization: body.gpu_memory_utilization, vllm_version: body.vllm_version };
    if (body.max_model_len) planBody.max_model_len = body.max_model_len;
    // the planner stays on one node of 8 unless the form already asks for more GPUs
    if (r.deployment.num_gpus > 8) planBody.max_gpus = r.deployment.num_gpus;
    if (body.quantization) planBody.quantization = body.quantization;
    if (body.platform) planBody.platform = body.platform;
    if (body.kv_cache_dtype !== "auto") planBody.kv_cache_dtype = body.kv_cache_dtype;
    if (body.enable_lora) Object.assign(planBody, { enable_lora: true, max_loras: body.max_loras,
      max_lora_rank: body.max_lora_rank });
    if (body.speculative_config) planBody.speculative_config = body.speculative_config;
    await Promise.all([updateCurve(curveBody, r, concurrency, seq), updatePlan(planBody, body, seq)]);
    if (seq !== state.seq) return;
    results.dataset.seq = String(seq);
    results.dataset.state = "ready";
    results.removeAttribute("aria-busy");
  }
  async function updateCurve(body, r, concurrency, seq) {
    try {
      const res = await api("curve", "curve", body);
      if (seq !== state.seq) return;
      if (res.ok && res.data && Array.isArray(res.data.points)) renderCurve(res.data.points, r, concurrency);
      else $("curve-note").textContent = `The curve is not available (HTTP ${res.status}${res.data && res.data.detail ? ": " + res.data.detail : ""}).`;
    } catch (e) { if (!aborted(e)) $("curve-note").textContent = "The curve is not available."; }
  }
  // The planner's common GPUs plus the one chosen in the form (a full-catalog search lists 1000+ rows).
  const PLAN_GPUS = ["H100", "H200", "A100-80GB", "A100-40GB", "L40S", "L4", "RTX 4090", "RTX 3090", "B200"];
  function planGpus(chosen) {
    const list = PLAN_GPUS.slice();
    if (chosen && !list.includes(chosen)) list.push(chosen);
    return list;
  }
  async function updatePlan(planBody, body, seq) {
    const key = JSON.stringify(planBody);
    if (key === state.planKey) return;
    const note = $("plan-note");
    try {
      const res = await api("plan", "plan", planBody);
      if (seq !== state.seq) return;
      state.planKey = key;
      if (res.ok && res.data && Array.isArray(res.data.options)) {
        state.options = res.data.options;
      } else {
        state.options = null;
        $("plan").hidden = true;
        note.textContent = res.status === 501 || res.status === 404 ? "The planner is not available on this server yet."
          : `The planner could not answer: ${(res.data && res.data.detail) || "HTTP " + res.status}.`;
      }
      renderPlan(body);
      renderCommands();
    } catch (e) { if (!aborted(e)) note.textContent = "The planner could not be reached."; }
  }

  // ---------- start ----------
  async function start() {
    for (const f of FIELDS) DEFAULTS[f] = $(f).value;
    try { await loadLists(); } catch (_) { generalError("Cannot reach the gpuplan API."); }
    delete DEFAULTS.model; delete DEFAULTS.gpu; // always in a shared link
    readUrl();
    form.addEventListener("input", (e) => { syncGpus(e); schedule(); });
    form.addEventListener("change", () => schedule());
    form.addEventListener("submit", (e) => { e.preventDefault(); schedule(0); });
    $("share").addEventListener("click", () => { writeUrl(); copy(location.href, $("share-status")); });
    update();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
