"""Parameter counts per part of the network, for `python -m rsapp model-info`."""

from __future__ import annotations

from rsapp.model.modeling import RsappVLM


def part_of(name: str, num_experts: int) -> str:
    if "lora_" in name or name.startswith("scale_gate"):
        return "cs_hlora"
    if name.startswith("sse_u"):
        return "sse_u"
    if name.startswith("vision.projector"):
        return "projector"
    if name.startswith("vision"):
        return "vision"
    if ".attn." in name:
        return "lm_attention"
    if ".reinject." in name:
        return "visual_reinjection"
    for e in range(num_experts):
        if f".ffn.experts.{e}." in name:
            return f"expert_{e}"
    return "lm_other"  # embeddings, norms, image-index embedding, LM head


def parameter_counts(model: RsappVLM) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, p in model.named_parameters():
        key = part_of(name, model.config.num_experts)
        counts[key] = counts.get(key, 0) + p.numel()
    counts["total"] = sum(counts.values())
    return counts


def describe(model: RsappVLM) -> dict:
    cfg = model.config
    return {
        "params": parameter_counts(model),
        "experts": cfg.num_experts,
        "hlora_rank": cfg.hlora_rank,
        "hlora_tiers": {name: list(rng) for name, rng in zip(("object", "structure", "semantic"), cfg.hlora_tiers)},
        "hlora_a": cfg.hlora_a,
        "hlora_tau": [round(float(t), 4) for t in model.scale_gate.tau.detach()],
        "hlora_tau_gsd_m": [round(10 ** float(t), 3) for t in model.scale_gate.tau.detach()],
        "image_size": cfg.image_size,
        "chip_size": cfg.chip_size,
        "local_token_budget": cfg.local_token_budget,
        "inject_layers": list(cfg.inject_layers),
        "seg_grid": cfg.seg_grid,
        "vocab_size": cfg.vocab_size,
    }
