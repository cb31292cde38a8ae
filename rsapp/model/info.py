"""What `python -m rsapp model-info` reports: parts, their pretrained sources and parameter counts."""

from __future__ import annotations

from rsapp.model.pretrained import LM_BASE, VISION_BASE
from rsapp.model.vlm import RsappVLM

# Parameter-name prefix → part (first match wins; order matters).
PARTS = (
    ("vision.tower.backbone.", "vision"), ("vision.tower.fusion.", "fusion"), ("vision.dense_head.", "dense_head"),
    ("vision.mask_head.", "mask_head"), ("vision.mask_tail.", "mask_tail"), ("vision.scene_tail.", "scene_tail"),
    ("vision.change_head.", "change_head"), ("vision.second_change_head.", "change_head"),
    ("vision.instance_head.", "instance_head"), ("vision.scene_head.", "scene_head"), ("vision.sse_u.", "sse_u"),
    ("projector.", "projector"),
)


def part_of(name: str) -> str:
    for prefix, part in PARTS:
        if name.startswith(prefix):
            return part
    if "lora_" in name or name.startswith("lm.scale_gate"):
        return "cs_hlora"
    if "expert_" in name:
        return "expert_deltas"
    if ".reinject." in name:
        return "visual_reinjection"
    if name == "lm.extra_embed":
        return "added_token_embeddings"
    return "lm_base"


def describe(model: RsappVLM) -> dict:
    counts: dict[str, int] = {}
    for name, p in model.named_parameters():
        counts[part_of(name)] = counts.get(part_of(name), 0) + p.numel()
    trained = sum(v.numel() for v in model.trained_state().values())
    cfg = model.cfg
    tiers = cfg.lm.tiers()
    return {
        "name": cfg.name,
        "vision": {"pretrained": VISION_BASE.name, "package": VISION_BASE.package, "params": counts["vision"],
                   "pyramid_strides": [4, 8, 16, 32]},
        "lm": {"pretrained": LM_BASE.name, "package": LM_BASE.package, "params": counts["lm_base"],
               "layers": cfg.lm.layers, "hidden": cfg.lm.hidden_size},
        "experts": cfg.lm.experts,
        "expert_rank": cfg.lm.expert_rank,
        "cs_hlora": {"rank": cfg.lm.hlora_rank, "tiers": {n: list(t) for n, t in zip(("object", "structure",
                                                                                        "semantic"), tiers)},
                     "tau_log10_m": [round(float(t), 3) for t in model.lm.scale_gate.tau.detach()],
                     "a": cfg.lm.hlora_a},
        "token_budget": cfg.vision.token_budget,
        "chip_size": cfg.chip_size,
        "params": counts,
        "params_total": sum(counts.values()),
        "params_trained_shipped": trained,
        "dense_classes": list(cfg.vision.dense_classes),
        "scene_classes": list(cfg.vision.scene_classes),
        "cls_labels": list(cfg.vision.scene_labels),  # what [CLS] answers with: the classes, then land-cover words
        "instance_classes": list(cfg.vision.instance_classes),
    }
