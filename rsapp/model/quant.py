"""Inference paths. On CUDA, bitsandbytes NF4. On CPU, int8 weight-only by default, or fp32.

int8 (CPU): every weight matrix is stored int8 with one scale per output row (per output channel for convolutions);
activations are never quantized. The language model is packed (rsapp.model.packed_lm): its matrices are read by
torch's int8 kernel (activations in bf16), with the request's adapters folded into one low-rank pair per matrix.
The vision side and the projector keep their modules and widen their int8 weights when they run (once per request:
rsapp.model.vision_model caches them while it reads a tiled area). On both CPU paths the backbone's batch norms are
folded and its pyramid runs as a frozen oneDNN graph (EfficientNetLite.freeze_for_inference: about twice as fast;
its weights, int8-rounded on the int8 path, are held there in fp32).

torch's dynamic int8 (activations quantized per tensor, the previous int8 path) is gone: SmolLM2's outlier features
did not survive it (held-out UC Merced captions BLEU-4 0.42 → 0.10, VQA 0.82 → 0.62) and it decoded no faster.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from rsapp.errors import RsappError
from rsapp.model.packed_lm import PackedLM

PATHS = ("fp32", "int8", "nf4")
BASE_BITS = 4


def choose_path(requested: str = "auto") -> str:
    """auto → nf4 on CUDA, int8 on CPU."""
    requested = (requested or "auto").lower()
    if requested == "auto":
        return "nf4" if torch.cuda.is_available() else "int8"
    if requested not in PATHS:  # a user's word (--quant, RSAPP_QUANT): said in one line, as any bad input is
        raise RsappError(f"unknown quantization {requested!r}; use auto, {', '.join(PATHS)}")
    return requested


def quantize(model: nn.Module, path: str) -> nn.Module:
    """Apply the path to an RsappVLM in place; returns it. fp32 and int8 pack the language model (the SmolLM
    module and its fp32 base are dropped), int8 also stores the visual half's weights int8."""
    if path == "nf4":
        return _to_nf4(model)
    if path not in ("fp32", "int8"):
        raise ValueError(path)
    model.lm = PackedLM(model.lm, *((BASE_BITS, 8) if path == "int8" else (32, 32)))
    backbone = model.vision.tower.backbone
    backbone.fold_batchnorm()
    for name in ("mask_tail", "scene_tail"):
        if (tail := getattr(model.vision, name, None)) is not None:
            tail.fold_batchnorm()
    if path == "int8":
        for part in (model.vision, model.projector):
            for module in part.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)) and module.weight.dim() >= 2:
                    _store_int8(module)
    # the backbone's pyramid as a oneDNN graph: its (int8-rounded on the int8 path) weights held again in fp32
    model.frozen_bytes = backbone.freeze_for_inference()
    return model


class _WidenInt8(nn.Module):
    """Parametrization: the stored int8 weight times its per-output-channel scale."""

    def __init__(self, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return q.float() * self.scale


def _store_int8(module: nn.Module) -> None:
    w = module.weight.detach()
    scale = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True).clamp(min=1e-12) / 127.0
    q = torch.round(w / scale).clamp(-127, 127).to(torch.int8)
    parametrize.register_parametrization(module, "weight", _WidenInt8(scale), unsafe=True)
    module.parametrizations.weight.original = nn.Parameter(q, requires_grad=False)


def _to_nf4(model: nn.Module) -> nn.Module:
    """Every nn.Linear → bitsandbytes Linear4bit (NF4, fp32 compute); quantized when moved to the device."""
    import bitsandbytes as bnb

    device = "cuda" if torch.cuda.is_available() else "cpu"
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                      compute_dtype=torch.float32, quant_type="nf4")
                q.weight = bnb.nn.Params4bit(child.weight.data.clone(), requires_grad=False, quant_type="nf4")
                if child.bias is not None:
                    q.bias = nn.Parameter(child.bias.data.clone(), requires_grad=False)
                setattr(parent, name, q)
    return model.to(device)


def held_bytes(model: nn.Module) -> int:
    """Bytes of every tensor the model holds: parameters and buffers (int8 ones at 1 byte) and a packed LM's."""
    total = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    total += getattr(model, "frozen_bytes", 0)  # the backbone's frozen inference graph (quantize)
    return total + sum(m.nbytes for m in model.modules() if isinstance(m, PackedLM))


def nf4_bytes(model: nn.Module) -> int:
    """Bytes under NF4 (computed before quantizing: linear weights at ½ byte plus a scale per 64)."""
    total = 0
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            n = p.numel()
            linear = isinstance(module, nn.Linear) and pname == "weight"
            total += n // 2 + 4 * (n // 64) if linear else 4 * n
        total += sum(b.numel() * b.element_size() for b in module.buffers(recurse=False))
    return total


def shipped_bytes(model: nn.Module, path: str) -> int:
    """Bytes, under a path, of the tensors weights/ ships (model.trained_state(): the fine-tuned tower, heads,
    projector, adapters, expert differences, re-injection). Computed on the unquantized model with the rule each
    path applies: int8 stores every matrix and convolution kernel at one byte plus a 4-byte scale per output row
    (norms, biases, gates and the added tokens' embeddings stay fp32); nf4 stores linear weights at ½ byte plus a
    scale per 64."""
    linear = {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    total = 0
    for name, t in model.trained_state().items():
        n = t.numel()
        if path == "int8" and t.dim() >= 2 and name != "lm.extra_embed":  # the added tokens' rows stay fp32
            total += n + 4 * (n // t.shape[-1] if t.dim() == 2 or name.endswith(("lora_B", "expert_B", "expert_A"))
                              else t.shape[0])
        elif path == "nf4" and name in linear:
            total += n // 2 + 4 * (n // 64)
        else:
            total += 4 * n
    return total
