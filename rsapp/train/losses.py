"""Losses shared by the trainers: masked BCE + Dice for pixel heads, and the change loss built on it."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rsapp.data.real_sets import IGNORE


def dice(prob: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Soft Dice over the labelled pixels of the maps whose target is present."""
    inter = (prob * target * weight).sum((-1, -2))
    total = ((prob + target) * weight).sum((-1, -2))
    present = (target * weight).sum((-1, -2)) > 0
    d = 1 - (2 * inter + 1) / (total + 1)
    return d[present].mean() if present.any() else prob.sum() * 0


def pixel_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """BCE averaged over the labelled pixels (weight > 0) plus Dice; logits and targets (B, K, H, W)."""
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight).sum()
    return bce / weight.sum().clamp(min=1) + dice(torch.sigmoid(logits), target, weight)


def present_loss(logits: torch.Tensor, classes: list[tuple[int, ...]], top_share: float) -> torch.Tensor:
    """Multiple-instance BCE for chips known to hold classes somewhere: for chip i and each class of classes[i], its
    top_share most likely pixels are pushed to that class (logits (B, K, H, W)); the rest are left alone."""
    k = max(1, int(top_share * logits.shape[-2] * logits.shape[-1]))
    tops = [logits[i, c].flatten().topk(k).values for i, cs in enumerate(classes) for c in cs]
    top = torch.cat(tops)
    return F.binary_cross_entropy_with_logits(top, torch.ones_like(top))


def change_loss(logits: torch.Tensor, targets: list[np.ndarray]) -> torch.Tensor:
    """Change logits (B, h, w) at any stride against (H, W) targets: 1 changed, 0 not, IGNORE unlabelled."""
    t = torch.from_numpy(np.stack(targets)).long()
    up = F.interpolate(logits[:, None], size=t.shape[-2:], mode="bilinear", align_corners=False)
    return pixel_loss(up, (t == 1).float()[:, None], (t != IGNORE).float()[:, None])
