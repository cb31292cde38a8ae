"""The visual half of v2: the tower with the heads that read its pyramid, and SSE-U.

`VisionModel.encode` runs one chip (or a two-date pair) once and returns everything the language model and
the answer need: the kept visual tokens, per-pixel class probabilities, the change probability, scene-class
probabilities and the GSD estimate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from rsapp.model.heads import ChangeHead, DenseHead, SceneHead, SSEU
from rsapp.model.tower import VisionTower, VisualTokens, token_budget

# The class lists are data of the checkpoint (config.json); these are what v2 was built with (rsapp.tasks
# .vocabulary defines them; the model package does not import tasks).
DEFAULT_DENSE = ("building", "road", "water", "vegetation", "bare land", "car", "ship")
DEFAULT_SCENES = (
    "agricultural", "airplane", "baseball diamond", "beach", "buildings", "chaparral", "dense residential",
    "forest", "freeway", "golf course", "harbor", "intersection", "medium residential", "mobile home park",
    "overpass", "parking lot", "river", "runway", "sparse residential", "storage tanks", "tennis court",
)


@dataclass
class VisionConfig:
    token_dim: int = 256
    token_budget: int = 32
    background_clusters: int = 4
    background_share: float = 0.25
    dense_classes: tuple[str, ...] = DEFAULT_DENSE
    scene_classes: tuple[str, ...] = DEFAULT_SCENES
    s_prior: float = 0.0  # SSE-U's starting mean of log10 GSD (1 m)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VisionConfig":
        d = dict(d)
        for k in ("dense_classes", "scene_classes"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass
class VisionOutput:
    tokens: VisualTokens  # of the first date (the second date's are in tokens_after)
    dense: torch.Tensor  # (B, K, H, W) class probabilities at chip resolution (first date)
    scene: torch.Tensor  # (B, S) scene-class probabilities
    s_mu: torch.Tensor  # (B,) SSE-U mean of log10 GSD
    s_logvar: torch.Tensor  # (B,)
    change: torch.Tensor | None = None  # (B, H, W) change probability, two dates only
    dense_after: torch.Tensor | None = None
    tokens_after: VisualTokens | None = None

    def tag(self, after: bool = False) -> torch.Tensor:
        """(1, S + 2K + 2) what the heads already know, for the LM's tag token: scene probabilities, the share of
        the chip each dense class covers, log(1 + its instance count), and for the second date the changed share
        and log(1 + changed regions)."""
        dense = self.dense_after if after else self.dense
        masks = (dense[0] > 0.5).numpy()
        counts = torch.tensor([[instance_count(m) for m in masks]], dtype=torch.float32)
        change = torch.zeros(1, 2)
        if after and self.change is not None:
            cm = (self.change[0] > 0.5).numpy()
            change = torch.tensor([[float(cm.mean()), math.log1p(instance_count(cm))]])
        return torch.cat([self.scene, (dense > 0.5).float().mean((2, 3)), torch.log1p(counts), change], -1)


# Regions smaller than this share of the chip are not counted as instances (speckle of the pixel head).
MIN_INSTANCE_SHARE = 2e-4


def instance_count(mask) -> int:
    """Connected regions of a boolean (H, W) mask, ignoring speckle."""
    labels, n = ndimage.label(mask)
    if not n:
        return 0
    sizes = np.bincount(labels.ravel())[1:]
    return int((sizes >= MIN_INSTANCE_SHARE * mask.size).sum())


def tag_dim(cfg: "VisionConfig") -> int:
    return len(cfg.scene_classes) + 2 * len(cfg.dense_classes) + 2


class VisionModel(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.cfg = cfg
        self.tower = VisionTower(cfg.token_dim)
        self.dense_head = DenseHead(len(cfg.dense_classes))
        self.change_head = ChangeHead()
        self.scene_head = SceneHead(self.tower.pooled_dim, len(cfg.scene_classes))
        self.sse_u = SSEU(self.tower.pooled_dim, prior=cfg.s_prior)

    def freeze_backbone_stats(self) -> None:
        for m in self.tower.backbone.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()

    @torch.no_grad()
    def encode(self, images: list[torch.Tensor]) -> VisionOutput:
        """images: one or two (1, 3, H, W) tensors in [0, 1] of the same size."""
        x = torch.cat(images)
        levels = self.tower.pyramid(x)
        size = x.shape[-2:]
        pooled = self.tower.pooled(levels)
        grid = self.tower.fusion(levels)
        budget = lambda g: token_budget(g, self.cfg.token_budget, self.cfg.background_clusters,  # noqa: E731
                                        self.cfg.background_share)
        dense = torch.sigmoid(F.interpolate(self.dense_head(levels), size=size, mode="bilinear",
                                            align_corners=False))
        mu, logvar = self.sse_u(pooled[:1], x[:1])
        out = VisionOutput(tokens=budget(grid[:1]), dense=dense[:1],
                           scene=self.scene_head(pooled[:1]).softmax(-1), s_mu=mu, s_logvar=logvar)
        if len(images) == 2:
            before = [lv[:1] for lv in levels]
            after = [lv[1:] for lv in levels]
            out.change = torch.sigmoid(F.interpolate(self.change_head(before, after)[:, None], size=size,
                                                     mode="bilinear", align_corners=False))[:, 0]
            out.dense_after = dense[1:]
            out.tokens_after = budget(grid[1:])
        return out
