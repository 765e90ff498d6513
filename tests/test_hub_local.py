from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from gpuplan.errors import ConfigError, GpuplanError, ModelNotFound
from gpuplan.hub import ConfigMissing, checkpoint_tensors, load_reference, tensor_nbytes
from gpuplan.hub.local import MAX_SAFETENSORS_HEADER, read_safetensors_header

FIX = Path(__file__).parent / "fixtures" / "hub"


def test_tiny_llama_directory_matches_safetensors_package() -> None:
    safetensors = pytest.importorskip("safetensors")
    info = load_reference(str(FIX / "tiny-llama"))
    assert info.source == "local" and info.config["num_hidden_layers"] == 2
    assert info.config["generation_config"]["eos_token_id"] == 2
    assert info.tensors is not None
    with safetensors.safe_open(str(FIX / "tiny-llama" / "model.safetensors"), "np") as f:
        names = set(f.keys())
        for t in info.tensors:
            arr = f.get_tensor(t.name)
            assert arr.shape == t.shape and arr.nbytes == t.nbytes
    assert names == {t.name for t in info.tensors}
    assert info.total_bytes == (FIX / "tiny-llama" / "model.safetensors").stat().st_size - \
        8 - struct.unpack("<Q", (FIX / "tiny-llama" / "model.safetensors").read_bytes()[:8])[0]


def test_awq_sharded_with_side_quant_config() -> None:
    info = load_reference(str(FIX / "tiny-awq"))
    assert info.quantization_config == {"quant_method": "awq", "w_bit": 4, "q_group_size": 32,
                                        "zero_point": True, "version": "gemm"}
    assert info.config["quantization_config"] is not None
    assert info.tensors is not None
    by = {t.name: t for t in info.tensors}
    q = by["model.layers.0.self_attn.q_proj.qweight"]
    assert (q.dtype, q.shape, q.nbytes) == ("int32", (64, 8), 64 * 8 * 4)  # packed: 8 nibbles per int32
    assert by["model.layers.0.mlp.down_proj.qzeros"].shape == (128 // 32, 64 // 8)
    assert by["model.layers.0.mlp.down_proj.scales"].dtype == "float16"
    index = json.loads((FIX / "tiny-awq" / "model.safetensors.index.json").read_text())
    assert info.total_bytes == index["metadata"]["total_size"]
    assert set(by) == set(index["weight_map"])


def test_llama31_8b_header_only_shards_sum_exactly() -> None:
    info = load_reference(str(FIX / "llama31-8b-headers"))
    assert info.tensors is not None and len(info.tensors) == 291
    assert info.total_bytes == 16_060_522_496
    assert {t.dtype for t in info.tensors} == {"bfloat16"}
    assert sum(tensor_nbytes(t) for t in checkpoint_tensors(info)) == 16_060_522_496
    # Header-only: the files are a few KB although they describe 16 GB.
    assert sum(p.stat().st_size for p in (FIX / "llama31-8b-headers").glob("*.safetensors")) < 50_000


def test_config_json_alone() -> None:
    info = load_reference(str(FIX / "llama31-8b-headers" / "config.json"))
    assert info.source == "config" and info.tensors is None
    assert info.config["vocab_size"] == 128256


def _write_header(path: Path, header: bytes, declared: int | None = None) -> None:
    path.write_bytes(struct.pack("<Q", len(header) if declared is None else declared) + header)


def test_header_size_cap(tmp_path: Path) -> None:
    p = tmp_path / "model.safetensors"
    _write_header(p, b"{}", declared=MAX_SAFETENSORS_HEADER + 1)
    with pytest.raises(ConfigError, match="limit"):
        read_safetensors_header(p)


@pytest.mark.parametrize("content", [b"", b"\x01\x02", struct.pack("<Q", 100) + b"{}", struct.pack("<Q", 3) + b"abc"])
def test_corrupt_headers(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "x.safetensors"
    p.write_bytes(content)
    with pytest.raises(ConfigError):
        read_safetensors_header(p)


def test_span_must_match_dtype(tmp_path: Path) -> None:
    p = tmp_path / "x.safetensors"
    header = {"w": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [0, 16]}}
    _write_header(p, json.dumps(header).encode())
    with pytest.raises(ConfigError, match="expected"):
        read_safetensors_header(p)


def test_dtype_normalisation(tmp_path: Path) -> None:
    p = tmp_path / "x.safetensors"
    header = {
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "F8_E4M3", "shape": [2, 3], "data_offsets": [0, 6]},
        "b": {"dtype": "U8", "shape": [4], "data_offsets": [6, 10]},
        "c": {"dtype": "I32", "shape": [1], "data_offsets": [10, 14]},
        "d": {"dtype": "F4", "shape": [8], "data_offsets": [14, 18]},
        "e": {"dtype": "F8_E8M0", "shape": [2], "data_offsets": [18, 20]},
    }
    _write_header(p, json.dumps(header).encode())
    got = {t.name: (t.dtype, t.nbytes) for t in read_safetensors_header(p)}
    assert got == {"a": ("fp8", 6), "b": ("uint8", 4), "c": ("int32", 4), "d": ("float4_e2m1", 4),
                   "e": ("float8_e8m0fnu", 2)}


def test_missing_shard_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "model-00001-of-00002.safetensors"}}))
    with pytest.raises(ConfigError, match="missing"):
        load_reference(str(tmp_path))


def test_index_cannot_escape_directory(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "../x.safetensors"}}))
    with pytest.raises(ConfigError, match="invalid shard"):
        load_reference(str(tmp_path))


def test_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigMissing) as e:
        load_reference(str(tmp_path))
    assert e.value.field == "model"


def test_pickled_weights_are_not_read(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"not unpickled")
    info = load_reference(str(tmp_path))
    assert info.tensors is None and any("pickled" in n for n in info.notes)


def test_missing_paths() -> None:
    with pytest.raises(ModelNotFound):
        load_reference("./no/such/dir")
    with pytest.raises(ModelNotFound):
        load_reference("/no/such/model.gguf")
    with pytest.raises(GpuplanError):
        load_reference("")
