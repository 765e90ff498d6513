"""Vision towers as vLLM 0.33 builds them, one tensor per Linear, for the families whose tower Linears take the
model's quant_config (Tensor.tower_quant; see engines/vllm/weights.py _quant_for / _tower_ignored).

A tower Linear is named by vLLM's module prefix for it ("vision_tower.vision_model.encoder.layers.3.self_attn.q_proj"),
so a checkpoint's ignore list matches it as vLLM matches it. Fused q/k/v and gate/up Linears are listed as the
checkpoint stores them (q_proj, k_proj, v_proj), like the text model's. Biases and norms carry no quantization: the
biases of all blocks go into one column-parallel lump (column-parallel biases) and one whole lump with the norms,
layer scales and row-parallel biases (RowParallelLinear adds its bias after the all-reduce, so every rank holds it
whole), which keeps the tensor count (and each estimate's cost) down to the Linear weights.

The quantization methods: a compressed-tensors, FP8 (checkpoint, ModelOpt or online --quantization fp8) or NVFP4
config quantizes every tower Linear built with it that its ignore list does not name. AWQ / GPTQ are left out as for
Qwen2.5-VL (vLLM derives their skipped layers from the checkpoint's bf16 tensors, and the published AWQ / GPTQ
checkpoints keep their towers in bf16); bitsandbytes and other methods have not been read for towers.
"""

from __future__ import annotations

from .spec import Tensor

TOWER_QUANT = ("fp8", "compressed-tensors", "nvfp4")


def linear(name: str, out_f: int, in_f: int, parallel: str = "column", *, kind: str = "vision",
           quant: tuple[str, ...] = TOWER_QUANT, split_if: int = 0) -> Tensor:
    """One Linear weight [out_f, in_f]; `parallel` "column", "row" or "replicated" (plain nn.Linear /
    ReplicatedLinear, or a Linear built without TP). `split_if`: vLLM turns this Linear's TP off unless TP divides
    this head count (Tensor.split_if_tp_divides). `quant` (): built without the quant_config."""
    return Tensor(name + ".weight", kind, (out_f, in_f), parallel, linear=True, tower_quant=quant,
                  split_if_tp_divides=split_if)


class Tower:
    """Collects a tower's Linears and its other parameters (biases, norms, embeddings) in three lumps; a Linear built
    without the quant_config joins the lump of its split, since no method or ignore list changes its bytes."""

    def __init__(self, prefix: str, kind: str = "vision", whole_name: str = "") -> None:
        self.prefix, self.kind = prefix, kind
        self.whole_name = whole_name or prefix + ".norms_biases_embeddings"
        self.linears: list[Tensor] = []
        self.column = 0  # column-parallel biases (split like their Linear), never-quantized column Linears
        self.row = 0  # never-quantized row-parallel Linear weights
        self.whole = 0  # on every rank: norms, row-parallel biases, embeddings, positions, layer scales
        self.column_if: dict[int, int] = {}  # column-parallel biases split only when TP divides the key

    def add(self, name: str, out_f: int, in_f: int, parallel: str = "column", *, bias: bool = False,
            quant: tuple[str, ...] = TOWER_QUANT, split_if: int = 0) -> None:
        if quant or split_if:
            self.linears.append(linear(name, out_f, in_f, parallel, kind=self.kind, quant=quant, split_if=split_if))
        elif parallel == "column":  # never quantized: its bytes are the lump's, and its name matches nothing
            self.column += out_f * in_f
        elif parallel == "row":
            self.row += out_f * in_f
        else:
            self.whole += out_f * in_f
        if not bias:
            return
        if parallel == "column" and split_if:
            self.column_if[split_if] = self.column_if.get(split_if, 0) + out_f
        elif parallel == "column":
            self.column += out_f
        else:
            self.whole += out_f

    def tensors(self) -> tuple[Tensor, ...]:
        out = list(self.linears) + [Tensor(f"{self.prefix}.column_biases_if_{k}", self.kind, (n,), "column",
                                           split_if_tp_divides=k) for k, n in self.column_if.items()]
        if self.column:
            out.append(Tensor(self.prefix + ".column_biases", self.kind, (self.column,), "column"))
        if self.row:
            out.append(Tensor(self.prefix + ".row_unquantized", self.kind, (self.row,), "row"))
        if self.whole:
            out.append(Tensor(self.whole_name, self.kind, (self.whole,)))
        return tuple(out)


def vit_layers(t: Tower, prefix: str, n: int, h: int, inter: int, *, attn: str = "self_attn", out: str = "out_proj",
               mlp_quant: tuple[str, ...] = TOWER_QUANT, qkv: tuple[str, ...] = ("q_proj", "k_proj", "v_proj"),
               norms: int = 2) -> None:
    """n pre-norm ViT encoder layers as vLLM's SigLIP / CLIP / Idefics2 encoders build them ("{prefix}.{j}."):
    q/k/v (one QKVParallelLinear, listed as the checkpoint's three projections) and the output projection, fc1
    column- and fc2 row-parallel, all biased; `norms` LayerNorms (weight and bias) a layer."""
    for j in range(n):
        pre = f"{prefix}.{j}."
        for name in qkv:
            t.add(pre + f"{attn}.{name}", h, h, bias=True)
        t.add(pre + f"{attn}.{out}", h, h, "row", bias=True)
        t.add(pre + "mlp.fc1", inter, h, bias=True, quant=mlp_quant)
        t.add(pre + "mlp.fc2", h, inter, "row", bias=True, quant=mlp_quant)
        t.whole += norms * 2 * h


def siglip_tower(vis: dict, prefix: str, layers: int, post_norm: bool, *, positions: int | None = None) -> Tower:
    """vLLM's SiglipVisionModel under `prefix` ("vision_tower" -> "vision_tower.vision_model.encoder.layers.{j}"):
    patch conv with bias, a learned position table, `layers` encoder layers, the post LayerNorm when built.
    siglip.py SiglipMLP passes the quant_config to fc1 / fc2 only when hidden_size and intermediate_size are both
    multiples of 64 (or under bitsandbytes / torchao): SigLIP-so400m's 4304 is not, so its MLP stays unquantized."""
    h = int(vis.get("hidden_size") or 1152)
    inter = int(vis.get("intermediate_size") or 4304)
    patch, img, ch = int(vis.get("patch_size") or 14), int(vis.get("image_size") or 896), int(
        vis.get("num_channels") or 3)
    t = Tower(prefix + ".vision_model")
    t.whole += ch * patch * patch * h + h + (positions if positions is not None else (img // patch) ** 2) * h
    mlp_quant = TOWER_QUANT if h % 64 == 0 and inter % 64 == 0 else ()
    vit_layers(t, prefix + ".vision_model.encoder.layers", layers, h, inter, mlp_quant=mlp_quant)
    t.whole += 2 * h if post_norm else 0
    return t


def clip_tower(vis: dict, prefix: str, layers: int) -> Tower:
    """vLLM's CLIPVisionModel as the LLaVA wrappers build it (require_post_norm False): class embedding, bias-free
    patch conv over 3 channels, positions for every patch and the class token, pre-LayerNorm, `layers` encoder
    layers whose q/k/v, out_proj, fc1 and fc2 all take the quant_config."""
    h = int(vis.get("hidden_size") or 1024)
    inter = int(vis.get("intermediate_size") or 4 * h)
    patch, img = int(vis.get("patch_size") or 14), int(vis.get("image_size") or 336)
    t = Tower(prefix + ".vision_model")
    t.whole += h + 3 * patch * patch * h + ((img // patch) ** 2 + 1) * h + 2 * h
    vit_layers(t, prefix + ".vision_model.encoder.layers", layers, h, inter)
    return t
