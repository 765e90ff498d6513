"""gpuplan: how much GPU memory an LLM needs on vLLM, per GPU, matching vLLM's own start-up log.

Python API (the CLI, the REST API and the web page call exactly these):

    >>> import gpuplan
    >>> r = gpuplan.estimate("meta-llama/Llama-3.1-8B", gpu="H100", max_model_len=8192)
    >>> r.weights_bytes, r.kv_cache_tokens, r.max_concurrency, r.fits
"""

from __future__ import annotations

from .api_python import estimate, load_model
from .deployment import Deployment
from .errors import GpuplanError
from .report import MemoryReport

__all__ = ["estimate", "load_model", "Deployment", "MemoryReport", "GpuplanError"]
__version__ = "0.1.0"
