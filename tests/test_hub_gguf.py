from __future__ import annotations

from pathlib import Path

import pytest

from gpuplan.errors import ConfigError
from gpuplan.hub import load_reference, map_checkpoint, tensor_nbytes

gguf = pytest.importorskip("gguf")

FIX = Path(__file__).parent / "fixtures" / "hub" / "gguf"
SINGLE = FIX / "tiny-llama-q8_0.gguf"
SPLIT = sorted((FIX / "split").glob("*.gguf"))


def test_single_gguf_config_and_tensors() -> None:
    info = load_reference(str(SINGLE))
    assert info.source == "gguf" and info.gguf_arch == "llama"
    c = info.config
    assert (c["model_type"], c["architectures"]) == ("llama", ["LlamaForCausalLM"])
    assert (c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]) == (32, 1, 64)
    assert (c["num_attention_heads"], c["num_key_value_heads"]) == (4, 2)
    assert c["max_position_embeddings"] == 256 and c["vocab_size"] == 64  # from the token list
    assert c["rms_norm_eps"] == 1e-5 and c["tie_word_embeddings"] is True
    assert info.quantization_config is not None and info.quantization_config["quant_method"] == "gguf"
    assert info.tensors is not None
    by = {t.name: t for t in info.tensors}
    emb = by["token_embd.weight"]
    assert (emb.dtype, emb.shape, emb.nbytes) == ("Q8_0", (64, 32), 64 * 34)  # 34 bytes per 32 values
    k = by["blk.0.attn_k.weight"]
    assert (k.dtype, k.shape, k.nbytes) == ("F16", (16, 32), 16 * 32 * 2)
    assert by["blk.0.ffn_down.weight"].shape == (32, 64)  # logical [out, in], not GGUF's ne order
    assert by["output_norm.weight"].dtype == "F32"


def test_nbytes_match_gguf_reader_and_file() -> None:
    info = load_reference(str(SINGLE))
    reader = gguf.GGUFReader(str(SINGLE))
    assert info.tensors is not None
    assert {t.name: t.nbytes for t in info.tensors} == {t.name: int(t.n_bytes) for t in reader.tensors}
    mapped = map_checkpoint(info)
    assert sum(tensor_nbytes(t) for t in mapped.tensors) == info.total_bytes
    assert any("tied" in n for n in mapped.notes)


def test_split_gguf_reads_every_part() -> None:
    assert len(SPLIT) == 3
    single = load_reference(str(SINGLE))
    for part in SPLIT:  # any part names the whole set
        info = load_reference(str(part))
        assert info.tensors is not None and single.tensors is not None
        assert [(t.name, t.dtype, t.shape, t.nbytes) for t in info.tensors] == \
            [(t.name, t.dtype, t.shape, t.nbytes) for t in single.tensors]
        assert info.config == single.config
    # A directory holding one split set is read like its first part.
    assert load_reference(str(FIX / "split")).total_bytes == single.total_bytes


def test_incomplete_split_is_refused(tmp_path: Path) -> None:
    (tmp_path / SPLIT[0].name).write_bytes(SPLIT[0].read_bytes())
    with pytest.raises(ConfigError, match="incomplete"):
        load_reference(str(tmp_path / SPLIT[0].name))


def test_unknown_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.gguf"
    w = gguf.GGUFWriter(str(path), "someodd")
    w.add_block_count(1)
    import numpy as np

    w.add_tensor("blk.0.x.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ConfigError) as e:
        load_reference(str(path))
    assert e.value.accepted and "llama" in e.value.accepted
