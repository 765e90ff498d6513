"""End to end: the web page at /ui/ in Debian's Chromium, driven by Playwright, against the real app.

No browser is downloaded: the test uses /usr/bin/chromium (apt-get install -y chromium) and skips without it.
It also writes the screenshot the README shows, docs/img/ui.png.
"""

from __future__ import annotations

import socket
import threading
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "img" / "ui.png"
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian's Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium); "
           "this test never downloads a browser",
)


@pytest.fixture(scope="module")
def base_url():
    import uvicorn

    from gpuplan.api.app import app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def api(base_url):
    import httpx

    with httpx.Client(base_url=base_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _items(data, key):
    return data if isinstance(data, list) else data[key]


@pytest.fixture(scope="module")
def llama_h100(api):
    """The catalog's Llama-3.1-8B and H100 names, as the page lists them."""
    models = _items(api.get("/v1/models").json(), "models")
    gpus = _items(api.get("/v1/gpus").json(), "gpus")

    def is_llama(m):
        names = [m["id"], *m.get("aliases", [])]
        return any(n.lower().split("/")[-1] == "llama-3.1-8b" for n in names)

    model = next(m["id"] for m in models if is_llama(m))
    h100s = [g["name"] for g in gpus if "h100" in g["name"].lower()]
    assert h100s, "no H100 in /v1/gpus"
    gpu = next((n for n in h100s if "80" in n or "sxm" in n.lower()), h100s[0])
    return model, gpu


def fmt2(x: float) -> str:
    """Number.prototype.toFixed(2) for x >= 0: the exact binary value, halves rounded up."""
    return str(Decimal(x).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def settle(page, want="ready"):
    """Wait until the page has answered every change (debounce, estimate, curve and planner)."""
    page.wait_for_function("['ready', 'error', 'invalid'].includes(document.querySelector('#results').dataset.state)",
                           timeout=TIMEOUT_MS)
    state = page.get_attribute("#results", "data-state")
    problems = page.evaluate("[...document.querySelectorAll('.field-error:not([hidden]), #error:not([hidden])')]"
                             ".map(e => e.id + ': ' + e.textContent)")
    assert state == want, f"page is {state!r}, not {want!r}: {problems}"


def watch_console(page):
    errors = []

    def on_console(msg):
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "")
        # a planner not written yet answers 501, and Chromium logs that failed fetch: allowed, nothing else is
        if url.endswith("/v1/plan") and "501" in msg.text:
            return
        errors.append(f"{msg.text} ({url})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    return errors


def shown(page, key):
    loc = page.locator(f'#numbers [data-key="{key}"]')
    return loc.get_attribute("data-value"), " ".join(loc.inner_text().split())


def test_page_matches_api(base_url, api, browser, llama_h100):
    model, gpu = llama_h100
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = watch_console(page)
    sent = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/v1/estimate") else None)

    page.goto(f"{base_url}/ui/")
    page.wait_for_function("performance.getEntriesByType('navigation')[0].loadEventEnd > 0")
    nav = page.evaluate("performance.getEntriesByType('navigation')[0].toJSON()")
    assert nav["loadEventEnd"] - nav["startTime"] < 1000, nav
    settle(page)

    # every control has a label
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('#form input, #form select, #form textarea')]"
        ".filter(e => !e.labels || !e.labels.length).map(e => e.id)")
    assert unlabelled == []

    page.fill("#model", model)
    page.select_option("#gpu", gpu)
    page.fill("#max_model_len", "8192")
    settle(page)

    body = sent[-1]
    assert body["model"] == model and body["gpu"] == gpu
    assert body["max_model_len"] == 8192
    assert body["tensor_parallel_size"] == 1 and body["pipeline_parallel_size"] == 1
    own = {"model": model, "gpu": gpu, "tensor_parallel_size": 1, "pipeline_parallel_size": 1,
           "max_model_len": 8192, "gpu_memory_utilization": 0.9, "vllm_version": body["vllm_version"]}
    res = api.post("/v1/estimate", json=own)
    assert res.status_code == 200, res.text
    exp = res.json()
    pg = exp["per_gpu"]

    value, text = shown(page, "weights_gib")
    assert float(value) == pg["weights_gib"]
    assert f"Model loading took {fmt2(pg['weights_gib'])} GiB" in text
    value, text = shown(page, "available_kv_cache_gib")
    assert float(value) == pg["available_kv_cache_gib"]
    assert f"Available KV cache memory: {fmt2(pg['available_kv_cache_gib'])} GiB" in text
    value, text = shown(page, "kv_cache_tokens")
    assert int(value) == exp["kv_cache_tokens"]
    assert f"GPU KV cache size: {exp['kv_cache_tokens']:,} tokens" in text
    value, text = shown(page, "max_concurrency")
    assert float(value) == exp["max_concurrency"]
    assert f"Maximum concurrency for 8,192 tokens per request: {fmt2(exp['max_concurrency'])}x" in text
    log = exp["vllm_log"]
    value, text = shown(page, "cudagraph_memory_gib")
    assert float(value) == log["cudagraph_memory_gib"]
    assert f"Graph capturing finished, took {fmt2(log['cudagraph_memory_gib'])} GiB" in text
    value, text = shown(page, "ledger_line")
    assert value == log["ledger_line"] and log["ledger_line"] in text
    assert page.locator('#status [data-key="fits"]').get_attribute("data-value") == str(exp["fits"]).lower()

    # the bar: every part from per_gpu, each marked exact or estimated
    for key in ("weights_gib", "activation_peak_gib", "non_torch_gib", "cudagraph_gib", "available_kv_cache_gib"):
        item = page.locator(f'#legend [data-key="{key}"]')
        assert float(item.get_attribute("data-value")) == pg[key]
        assert item.locator(".badge").count() == 1
    # every number carries a badge; the components table mirrors components[]
    lines = page.locator("#numbers li")
    assert lines.count() >= 4
    for i in range(lines.count()):
        assert lines.nth(i).locator(".badge").count() == 1
    rows = page.locator("#components tbody tr")
    assert rows.count() == len(exp["components"])
    for i, comp in enumerate(exp["components"]):
        badge = rows.nth(i).locator(".badge")
        assert badge.text_content() == ("exact" if comp["exact"] else "est.")
        if comp["note"]:
            assert badge.get_attribute("title") == comp["note"]

    # the planner table, or its note when the server has no planner yet
    if page.locator("#plan").is_visible():
        assert page.locator("#plan tbody tr").count() >= 1
    else:
        assert page.locator("#plan-note").inner_text().strip()

    # the URL carries the inputs
    assert "max_model_len=8192" in page.url and "gpu=" in page.url

    # a longer context: the curve is asked again and the charts change
    before = page.evaluate("JSON.stringify(Chart.getChart('chart-mem').data.datasets)")
    assert page.locator("#fig-mem").get_attribute("data-marker") == "8192"
    with page.expect_request(lambda r: r.url.endswith("/v1/curve")) as curve_req:
        page.fill("#max_model_len", "32768")
    assert 32768 in curve_req.value.post_data_json["lengths"]
    settle(page)
    assert page.locator("#fig-mem").get_attribute("data-marker") == "32768"
    after = page.evaluate("JSON.stringify(Chart.getChart('chart-mem').data.datasets)")
    assert after != before
    assert "32768" in page.locator("#fig-conc").get_attribute("data-lengths").split(",")
    _, text = shown(page, "max_concurrency")
    assert "Maximum concurrency for 32,768 tokens per request" in text
    assert "max_model_len=32768" in page.url

    # a shared link restores the inputs
    page2 = browser.new_page(viewport={"width": 1280, "height": 900})
    errors2 = watch_console(page2)
    page2.goto(page.url)
    settle(page2)
    assert page2.input_value("#max_model_len") == "32768"
    assert page2.input_value("#gpu") == gpu
    assert page2.input_value("#model") == model
    page2.close()

    # copying a launch command (clipboard, or the textarea fallback) reports back without errors
    if page.locator("#commands button").count():
        page.locator("#commands button").first.click()
        page.wait_for_function("document.querySelector('#commands [role=status]').textContent === 'Copied.'")

    page.fill("#max_model_len", "8192")
    settle(page)
    page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert errors == [] and errors2 == []
    page.close()


def test_errors_inline_and_phone_layout(base_url, browser, llama_h100):
    model, _ = llama_h100
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page_errors = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    # an unknown GPU: the API answers 400 {"detail", "field": "gpu"}, shown next to the GPU field
    page.goto(f"{base_url}/ui/?" + urlencode({"model": model, "gpu": "NoSuchGPU-123"}))
    settle(page, "error")
    err = page.locator("#err-gpu")
    assert err.is_visible() and err.inner_text().strip()
    assert page.get_attribute("#gpu", "aria-invalid") == "true"
    # a bad value caught before any request, next to its field
    page.fill("#gpu_memory_utilization", "1.5")
    settle(page, "invalid")
    assert page.locator("#err-gpu_memory_utilization").is_visible()
    # no horizontal scrolling on a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page_errors == []
    page.close()


def test_a_vision_model_shows_the_encoder_line_and_takes_the_multimodal_options(base_url, api, browser, llama_h100):
    """Qwen3-VL-8B: the page prints the encoder line vLLM will log, and a smaller max_pixels or no video changes
    what the profile run pushes through the tower, as the API says."""
    _, gpu = llama_h100
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = watch_console(page)
    sent = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/v1/estimate") else None)
    page.goto(f"{base_url}/ui/?" + urlencode({"model": "Qwen/Qwen3-VL-8B-Instruct", "gpu": gpu,
                                              "max_model_len": "8192", "vllm_version": "0.19.0"}))
    settle(page)
    value, text = shown(page, "encoder_profile")
    assert value == "16384" and "profiled with 1 image items" in text
    page.fill("#max_pixels", "1003520")
    page.fill("#limit_video", "0")
    settle(page)
    body = sent[-1]
    assert body["mm_processor_kwargs"] == {"max_pixels": 1003520} and body["limit_mm_per_prompt"] == {"video": 0}
    want = api.post("/v1/estimate", json=body).json()["encoder_profile"]
    value, text = shown(page, "encoder_profile")
    assert value == str(want["budget_tokens"]) and f"profiled with {want['items']} image items" in text
    assert want["items"] > 1  # the budget now holds several 980-token images
    page.select_option("#skip_mm_profiling", "yes")
    settle(page)
    assert sent[-1]["skip_mm_profiling"] is True
    assert "Skipping memory profiling" in shown(page, "encoder_profile")[1]
    # a negative count is caught next to its field, before any request
    page.fill("#limit_image", "-1")
    settle(page, "invalid")
    assert page.locator("#err-limit_image").is_visible()
    assert errors == []
    page.close()


def test_a_small_card_shows_the_first_start_and_the_cold_cache_option(base_url, api, browser):
    """Qwen3-8B on an L4 (vLLM 0.30): a first start on an empty torch.compile cache gets less KV cache than a
    restart; the page says how much, and choosing the empty cache makes that the headline, as the API says."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = watch_console(page)
    sent, planned = [], []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/v1/estimate") else None)
    page.on("request", lambda r: planned.append(r.post_data_json) if r.url.endswith("/v1/plan") else None)
    page.goto(f"{base_url}/ui/?" + urlencode({"model": "Qwen/Qwen3-8B", "gpu": "L4", "max_model_len": "4096",
                                              "vllm_version": "0.30.0"}))
    settle(page)
    want = api.post("/v1/estimate", json=sent[-1]).json()
    value, text = shown(page, "first_start_tokens")
    assert value == str(want["first_start"]["kv_cache_tokens"]) and "First start on an empty compile cache" in text
    assert int(value) < want["kv_cache_tokens"]
    # the options table gives a restart's longest context and, where shorter, a first start's
    options = api.post("/v1/plan", json=planned[-1]).json()["options"]
    cold = [o for o in options if o["first_start_max_model_len"] is not None]
    assert cold
    cells = page.locator("#plan tbody tr td.num").all_inner_texts()
    o = cold[0]
    assert f"{o['max_model_len']:,} ({o['first_start_max_model_len']:,} cold)" in cells
    page.select_option("#compile_cache", "cold")
    settle(page)
    assert sent[-1]["compile_cache"] == "cold"
    assert shown(page, "kv_cache_tokens")[0] == value
    assert page.locator('#numbers [data-key="first_start_tokens"]').count() == 0
    # the GPU links the catalog cannot know (a pod without peer access) go to the API as they are
    page.select_option("#interconnect", "pcie_no_p2p")
    settle(page)
    assert sent[-1]["interconnect"] == "pcie_no_p2p"
    page.select_option("#platform", "wsl")
    settle(page)
    assert sent[-1]["platform"] == "wsl" and planned[-1]["platform"] == "wsl"
    assert shown(page, "kv_cache_tokens")[0] == str(api.post("/v1/estimate", json=sent[-1]).json()["kv_cache_tokens"])
    assert errors == []
    page.close()


def test_mtp_speculative_decoding_goes_to_the_api_and_a_model_without_mtp_says_so_at_the_field(
        base_url, api, browser):
    """DeepSeek-V3 on eight H200s with two MTP draft tokens: the page sends vLLM's speculative_config and shows the
    API's token count; Qwen3-8B has no MTP modules, and the error sits under the select."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = watch_console(page)
    sent = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/v1/estimate") else None)
    page.goto(f"{base_url}/ui/?" + urlencode({"model": "deepseek-ai/DeepSeek-V3", "gpu": "H200", "num_gpus": "8",
                                              "tensor_parallel_size": "8", "max_model_len": "32768"}))
    settle(page)
    page.select_option("#speculative", "mtp:2")
    settle(page)
    assert sent[-1]["speculative_config"] == {"method": "mtp", "num_speculative_tokens": 2}
    want = api.post("/v1/estimate", json=sent[-1]).json()
    assert want["deployment"]["speculative_config"] == {"method": "mtp", "num_speculative_tokens": 2}
    assert shown(page, "kv_cache_tokens")[0] == str(want["kv_cache_tokens"])
    page.fill("#model", "Qwen/Qwen3-8B")
    page.fill("#num_gpus", "1")
    page.fill("#tensor_parallel_size", "1")
    page.locator("#model").press("Enter")
    settle(page, "error")  # the API's 400 names speculative_config.method; the page puts it under the select
    assert page.locator("#err-speculative").is_visible()
    assert "MTP" in page.locator("#err-speculative").inner_text()
    assert page.get_attribute("#speculative", "aria-invalid") == "true"
    assert all("status of 400" in e for e in errors)  # Chromium logs the refused request itself, nothing else
    page.close()


def test_lora_adapters_go_to_the_api_and_a_model_vllm_serves_without_lora_says_so_at_the_field(base_url, api,
                                                                                             browser):
    """Llama-3.1-8B on an H100 with four rank-64 adapter slots: the page sends vLLM's LoRA options and shows the
    API's loading line, the slots included; Falcon-7B has no LoRA in vLLM 0.33, and the error sits under the select."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = watch_console(page)
    sent = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/v1/estimate") else None)
    page.goto(f"{base_url}/ui/?" + urlencode({"model": "meta-llama/Llama-3.1-8B", "gpu": "H100"}))
    settle(page)
    page.select_option("#lora", "4:64")
    settle(page)
    assert {k: sent[-1][k] for k in ("enable_lora", "max_loras", "max_lora_rank")} == {
        "enable_lora": True, "max_loras": 4, "max_lora_rank": 64}
    want = api.post("/v1/estimate", json=sent[-1]).json()
    assert want["per_gpu"]["weights_gib"] > api.post("/v1/estimate", json={
        "model": "meta-llama/Llama-3.1-8B", "gpu": "H100"}).json()["per_gpu"]["weights_gib"] + 1
    assert float(shown(page, "weights_gib")[0]) == pytest.approx(want["per_gpu"]["weights_gib"], abs=0.01)
    assert "--enable-lora --max-loras 4 --max-lora-rank 64" in want["commands"]["vllm"]
    page.fill("#model", "tiiuae/falcon-7b")
    page.locator("#model").press("Enter")
    settle(page, "error")
    assert page.locator("#err-lora").is_visible()
    assert "LoRA" in page.locator("#err-lora").inner_text()
    assert all("status of 400" in e for e in errors)
    page.close()


def test_assets_are_local(base_url, api):
    html = api.get("/ui/").text
    assert "http://" not in html and "https://" not in html
    assert api.get("/ui/vendor/chart.umd.js").status_code == 200
    assert api.get("/ui/app.js").status_code == 200 and api.get("/ui/app.css").status_code == 200
