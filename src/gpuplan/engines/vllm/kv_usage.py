"""Blocks one request holds in one layer's cache: vLLM's KV spec max_memory_usage_bytes over its page
(v1/kv_cache_interface.py), shared by the layer-outermost, DeepSeek-V4 and packed planners."""

from __future__ import annotations

from ...units import cdiv


def window_blocks(window: int, in_flight: int, seq_len: int, block_size: int) -> int:
    """SlidingWindowSpec (and SlidingWindowMLASpec): window - 1 + the tokens in flight, plus one block for a window
    astride two blocks."""
    return cdiv(min(window - 1 + in_flight, seq_len), block_size) + 1


def chunk_blocks(chunk: int, in_flight: int, seq_len: int, block_size: int) -> int:
    """ChunkedLocalAttentionSpec: one chunk plus the tokens in flight."""
    return cdiv(min(chunk + in_flight, seq_len), block_size)
