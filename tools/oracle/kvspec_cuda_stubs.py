"""Run ../shared/tools/vllm-oracle/vllm_kvspec.py on models whose vLLM 0.32 code is CUDA-only at build time.

vLLM 0.32 serves Kimi-Linear from vllm/models/kimi_k3/nvidia, which creates CUDA streams and events while the
model is built, and the CPU MLA backend accepts only 16-token blocks, so the hybrid MLA + KDA alignment (1,920
tokens, as on a GPU) is refused before planning. Streams and events are only used when kernels run, and the
block-size check only guards the CPU kernels; the meta-device build and the KV planning are unchanged.

    VLLM_KIMI_K3_GEMM_AR=0 VLLM_ENABLE_GEMM_RS=0 /work/oracle-venv-vllm/bin/python \
        tools/oracle/kvspec_cuda_stubs.py DIR --kv-bytes 40e9 --block-size 16 --max-model-len 8192 \
        --extra '{"enable_prefix_caching": false}' --json OUT.json

(The two environment variables keep vLLM from importing the CUTLASS GEMM + all-reduce kernels; the CPU MLA
backend turns prefix caching off, which an explicit `enable_prefix_caching: false` makes consistent.)
"""

from __future__ import annotations

import os
import runpy
import sys

import torch
from vllm.platforms import interface


class _NoStream:
    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def wait_stream(self, *args: object, **kwargs: object) -> None:
        pass


torch.cuda.Stream = _NoStream  # type: ignore[misc,assignment]
torch.cuda.Event = _NoStream  # type: ignore[misc,assignment]
interface.Platform._check_aligned_block_size = classmethod(lambda cls, *args, **kwargs: None)  # type: ignore[method-assign]
ORACLE = os.environ.get("VLLM_KVSPEC", "/work/shared/tools/vllm-oracle/vllm_kvspec.py")
sys.argv = [ORACLE, *sys.argv[1:]]
runpy.run_path(ORACLE, run_name="__main__")
