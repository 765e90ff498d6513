"""The REST API: seed 002's routes to the letter, a /v1 that speaks vLLM's option names, the web page.

Serve it with `gpuplan serve` (uvicorn). Every number comes from the core (see `service.py`); this
module parses, maps errors to 400 answers that name the field, and renders JSON.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import GpuplanError
from . import service
from .schemas import (
    GIB_NOTE,
    MAX_CURVE_POINTS,
    SEED_EXAMPLE,
    ErrorResponse,
    SeedEstimateRequest,
    SeedEstimateResponse,
    V1CurveRequest,
    V1CurveResponse,
    V1EstimateRequest,
    V1EstimateResponse,
    V1PlanRequest,
)

log = logging.getLogger("gpuplan.api")

# A config.json for the largest models is ~20 KB; 256 KiB leaves room without inviting abuse.
MAX_BODY_BYTES = 256 * 1024
STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"

DESCRIPTION = f"""
How much GPU memory an LLM needs when served by **vLLM**, per GPU, computed the way vLLM accounts for it
at start-up ("Model loading took", "Available KV cache memory", "GPU KV cache size: N tokens",
"Maximum concurrency").

**Units.** Every `*_gb` and `*_gib` field is **GiB** (2^30 bytes, the unit vLLM logs), {GIB_NOTE}. The seed
routes keep the field names `*_gb` for compatibility and say `"unit": "GiB"` in the response.

**CUDA overhead** (`cuda_overhead_gb`) is vLLM's non-torch memory (the CUDA context, NCCL buffers,
cuBLAS/cuDNN workspaces) plus the memory CUDA graph capture takes.

**Errors.** Bad input is answered with HTTP 400 `{{"detail", "field", "accepted"}}`; `field` names the
offending input and `accepted` lists valid values when there is a list.

Seed routes: `POST /estimate-gpu-memory`, `GET /known-architectures`, `GET /`.
vLLM-named routes: `/v1/...`. Web page: `/ui/`.
"""

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "invalid input; `field` names it"},
    413: {"model": ErrorResponse, "description": "request body too large"},
}


def _error(status: int, detail: str, field: str | None = None, accepted: list[str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, "field": field, "accepted": accepted})


def _field_of(err: dict[str, Any]) -> str:
    """`body.architecture.hidden_size` -> `architecture.hidden_size`; union tags like `str` dropped."""
    ctx = err.get("ctx") or {}
    if isinstance(ctx.get("field"), str):
        return ctx["field"]
    parts: list[str] = []
    for p in err.get("loc", ()):
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in ("body", "query", "path") and not parts:
            continue
        elif service.is_union_tag(p):
            continue
        else:
            parts.append(p)
    return ".".join(parts).replace(".[", "[") or "body"


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if not errors:
        return _error(400, "body: invalid request", "body")
    first = errors[0]
    field = _field_of(first)
    ctx = first.get("ctx") or {}
    # Literal fields name their choices in pydantic's "expected" ("'warm' or 'cold'").
    accepted = ctx.get("accepted") or re.findall(r"'([^']*)'", str(ctx.get("expected") or "")) or None
    msg = str(first.get("msg", "invalid value"))
    if first.get("type") == "json_invalid":
        field, msg = "body", "not valid JSON"
    elif first.get("type") == "missing":
        msg = "is required"
    same = [e for e in errors if _field_of(e) == field]
    if len(same) > 1 and len(same) == len(errors):
        # A union (e.g. model: name or config object) fails once per alternative; say all of them.
        msg = " or ".join(dict.fromkeys(str(e.get("msg", "")) for e in same))
        errors = same[:1]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return _error(400, f"{field}: {msg}{more}", field, [str(a) for a in accepted] if accepted else None)


async def _on_gpuplan_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GpuplanError)
    return _error(400, str(exc), exc.field, exc.accepted)


async def _on_planner_missing(request: Request, exc: Exception) -> JSONResponse:
    return _error(501, str(exc), None)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        status_code=exc.status_code,
        content={"detail": str(exc.detail), "field": None, "accepted": None},
        headers=getattr(exc, "headers", None),
    )


async def _on_bug(request: Request, exc: Exception) -> JSONResponse:
    # Only genuine bugs reach here (bad input is a GpuplanError or a validation error): log the
    # traceback for us, give the caller a clean JSON body without internals.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error(500, "internal error: this is a bug in gpuplan, please report it with the request body")


class BodyLimit:
    """Refuses request bodies above `max_bytes`, declared (Content-Length) or streamed (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = _error(413, f"body: larger than {self.max_bytes} bytes", "body")
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Raised inside the route's body read, so the exception handlers answer it.
                    raise StarletteHTTPException(413, f"body: larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


class _UiFiles(StaticFiles):
    """The web page's files; a clean 404 (not a 500) while the page is not installed."""

    async def check_config(self) -> None:
        if self.directory is None or not Path(self.directory).is_dir():
            raise StarletteHTTPException(404, "the web page is not installed in this build")
        await super().check_config()


def create_app(*, allow_network: bool | None = None, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The ASGI app. `allow_network=False` keeps model lookups to the catalog (no Hugging Face Hub)."""
    network = service.network_allowed_by_env() if allow_network is None else allow_network
    app = FastAPI(
        title="gpuplan: vLLM GPU memory calculator",
        version=__version__,
        description=DESCRIPTION,
        responses=ERROR_RESPONSES,
    )
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(GpuplanError, _on_gpuplan_error)
    app.add_exception_handler(service.PlannerMissing, _on_planner_missing)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_bug)

    @app.get("/", summary="What this API is, its endpoints and an example request")
    def root() -> dict[str, Any]:
        return {
            "name": "gpuplan",
            "version": __version__,
            "description": "Per-GPU memory needed to serve an LLM with vLLM, matching vLLM's own start-up log.",
            "unit": "GiB",
            "endpoints": {
                "POST /estimate-gpu-memory": "memory breakdown for a model, sequence length and batch (seed 002 API)",
                "GET /known-architectures": "every model in the catalog with its architecture, exact or estimated",
                "POST /v1/estimate": "the full per-GPU report with vLLM's option names",
                "POST /v1/curve": "memory, KV cache and concurrency as max_model_len grows",
                "POST /v1/plan": "which GPUs, how many, which quantization fit, and what they cost",
                "GET /v1/models": "the model catalog",
                "GET /v1/gpus": "the GPU catalog (CUDA-visible memory, prices)",
            },
            "example_requests": {"POST /estimate-gpu-memory": SEED_EXAMPLE},
            "web_page": "/ui/",
            "docs": "/docs",
            "openapi": "/openapi.json",
        }

    @app.post(
        "/estimate-gpu-memory",
        response_model=SeedEstimateResponse,
        summary="GPU memory needed for a model (seed 002)",
        description="Weights, activation, min/max KV cache and CUDA overhead per GPU, in GiB.",
    )
    async def estimate_gpu_memory(req: SeedEstimateRequest) -> dict[str, Any]:
        return await _call(req.model_name, service.seed_estimate, req, network)

    @app.get("/known-architectures", summary="Models in the catalog and their architectures")
    def known_architectures() -> dict[str, Any]:
        return service.known_architectures()

    @app.post("/v1/estimate", response_model=V1EstimateResponse, summary="Per-GPU memory report (vLLM options)")
    async def v1_estimate(req: V1EstimateRequest) -> dict[str, Any]:
        return await _call(req.model, service.v1_estimate, req, req.model, network)

    @app.post(
        "/v1/curve",
        response_model=V1CurveResponse,
        summary=f"Memory and concurrency for up to {MAX_CURVE_POINTS} max_model_len values",
    )
    async def v1_curve(req: V1CurveRequest) -> dict[str, Any]:
        return await _call(req.model, service.v1_curve, req, network)

    @app.post(
        "/v1/plan",
        summary="Deployments that fit, cheapest first",
        responses={501: {"model": ErrorResponse, "description": "the planner is not in this build"}},
    )
    def v1_plan(req: V1PlanRequest) -> Any:
        return service.v1_plan(req, network)

    @app.get("/v1/models", summary="The model catalog")
    def v1_models(filter: Annotated[str | None, Query(max_length=100)] = None) -> dict[str, Any]:  # noqa: A002
        items = service.models_listing(filter)
        return {"count": len(items), "models": items}

    @app.get("/v1/gpus", summary="The GPU catalog; memory_gib is CUDA-visible GiB")
    def v1_gpus() -> dict[str, Any]:
        items = service.gpus_listing()
        return {"count": len(items), "unit": "GiB", "gpus": items}

    @app.get("/ui", include_in_schema=False)
    def ui_redirect() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    app.mount("/ui", _UiFiles(directory=STATIC_DIR, html=True, check_dir=False), name="ui")
    return app


async def _call(model: Any, fn: Any, *args: Any) -> Any:
    """Run a CPU-only estimate on the event loop (it takes well under a millisecond); hand it to the
    threadpool only when resolving the model may read the Hub or the disk."""
    if service.resolves_offline(model):
        return fn(*args)
    return await run_in_threadpool(fn, *args)


app = create_app()
