"""Vision tower v2: the pretrained EfficientNet-Lite0 as a feature pyramid, FUSE-RSVLM multi-scale fusion onto
the token grid, and the GeoLLaVA-8K token budget.

Pyramid (strides 4, 8, 16, 32) → the dense, box and change heads read it directly.
Tokens: the stride-16 and stride-8 levels are pooled onto the stride-32 grid and fused with it (FUSE-RSVLM:
detail of the finer scales in every coarse token), then cut to a fixed budget: background-token pruning
(cosine k-means of the tokens; a cluster covering more than `background_share` of the grid is background) and
anchored selection (the kept background tokens are the ones most like the foreground anchors) — GeoLLaVA-8K.
Each kept token carries its grid position, so the language model knows where it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rsapp.model.efficientnet import HEAD, PYRAMID, EfficientNetLite


@dataclass
class VisualTokens:
    tokens: torch.Tensor  # (B, K, D) fused features of the kept grid cells
    positions: torch.Tensor  # (B, K, 2) row, col of each kept cell in [0, 1]
    total: int  # grid cells before the budget


class MultiScaleFusion(nn.Module):
    """FUSE-RSVLM: project C3, C4, C5 to one width, pool the finer ones onto the C5 grid, sum, norm."""

    def __init__(self, dim: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(ch, dim, 1) for _, ch, _ in PYRAMID[1:])
        self.norm = nn.LayerNorm(dim)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """[C2, C3, C4, C5] → (B, dim, h, w) on the C5 grid."""
        grid = levels[-1].shape[-2:]
        fused = sum(F.adaptive_avg_pool2d(conv(x), grid) for conv, x in zip(self.lateral, levels[1:]))
        return self.norm(fused.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def grid_positions(h: int, w: int, device=None) -> torch.Tensor:
    """(h·w, 2) row, col of each cell of an h × w grid in [0, 1], row-major."""
    rows = torch.arange(h, dtype=torch.float32, device=device).repeat_interleave(w) / max(h - 1, 1)
    cols = torch.arange(w, dtype=torch.float32, device=device).repeat(h) / max(w - 1, 1)
    return torch.stack([rows, cols], -1)


def token_budget(grid: torch.Tensor, budget: int, clusters: int, background_share: float) -> VisualTokens:
    """GeoLLaVA-8K pruning of a (B, D, h, w) token grid down to `budget` tokens per image."""
    b, _, h, w = grid.shape
    tokens = grid.flatten(2).transpose(1, 2)  # (B, N, D)
    pos = grid_positions(h, w, grid.device)
    kept = [prune(tokens[i], pos, budget, clusters, background_share) for i in range(b)]
    return VisualTokens(torch.stack([k[0] for k in kept]), torch.stack([k[1] for k in kept]), h * w)


def prune(tokens: torch.Tensor, positions: torch.Tensor, budget: int, clusters: int, background_share: float,
          iters: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) tokens with (N, 2) positions → at most `budget` of them, in their original order.

    Background-token pruning: cosine k-means; a cluster covering more than `background_share` of the tokens is
    background. Anchored selection: foreground first, then the background tokens most like a foreground anchor.
    """
    n = tokens.shape[0]
    if n <= budget:
        return tokens, positions
    t = F.normalize(tokens, dim=-1)
    centres = t[torch.linspace(0, n - 1, clusters).long()].clone()
    for _ in range(iters):
        assign = (t @ centres.t()).argmax(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, t)
        filled = torch.bincount(assign, minlength=clusters) > 0  # an empty cluster keeps its centre
        centres[filled] = F.normalize(sums[filled], dim=-1)
    share = torch.bincount(assign, minlength=clusters).float() / n
    background = share[assign] > background_share
    score = torch.full((n,), 2.0, device=tokens.device)
    anchors = t[~background]
    if anchors.shape[0] >= budget:  # the foreground alone fills the budget: no background token is kept
        score[background] = 0.0
    elif anchors.shape[0]:
        # in blocks of both: a streamed UHR scene has tens of thousands of tokens (a 60k × 4k block is 1 GB)
        rest = t[background]
        best = torch.full((rest.shape[0],), -1.0, device=tokens.device)
        for i in range(0, rest.shape[0], 8192):
            for a in anchors.split(2048):
                best[i:i + 8192] = torch.maximum(best[i:i + 8192], (rest[i:i + 8192] @ a.t()).max(1).values)
        score[background] = best
    else:
        score[background] = 0.0
    keep = score.topk(budget).indices.sort().values
    return tokens[keep], positions[keep]


def position_features(positions: torch.Tensor, bands: int) -> torch.Tensor:
    """(…, 2) row/col in [0, 1] → (…, 4·bands) Fourier features."""
    freqs = (2.0 ** torch.arange(bands, dtype=torch.float32, device=positions.device)) * math.pi
    angles = positions[..., None] * freqs  # (…, 2, bands)
    return torch.cat([angles.sin(), angles.cos()], -1).flatten(-2)


class VisionTower(nn.Module):
    def __init__(self, token_dim: int):
        super().__init__()
        self.backbone = EfficientNetLite()
        self.fusion = MultiScaleFusion(token_dim)

    def pyramid(self, rgb01: torch.Tensor) -> list[torch.Tensor]:
        return self.backbone.pyramid(rgb01)

    def pooled(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """(B, 1280) global features (the pretrained head conv, averaged)."""
        return self.backbone.head(levels[-1]).mean((2, 3))

    @property
    def pooled_dim(self) -> int:
        return HEAD
