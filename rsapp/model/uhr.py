"""GeoLLaVA-8K token budget: background token pruning, then anchored token selection, training-free and streamable.

1. Background pruning: the global view's tokens are clustered (cosine k-means); a cluster covering more than
   `background_share` of the scene (sea, forest, fields) is background, and local tokens closer than
   `background_cos` to its centroid are dropped: the fused global tokens already summarise them.
2. Anchored selection: global tokens outside the background clusters are the anchors (object-centric); each
   local token scores its best cosine agreement with an anchor, and the `local_token_budget` best are kept.
   Scores do not depend on the other candidates, so tiles can be streamed and a running top-k kept.
If too few non-background tokens remain, the best background ones fill the budget, so the count is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rsapp.model.config import RsappConfig

KMEANS_STEPS = 6
BACKGROUND_PENALTY = 10.0  # background tokens are ranked after every other token, not removed outright


@dataclass
class BudgetState:
    anchors: torch.Tensor  # (B, A, dv) unit vectors
    anchor_mask: torch.Tensor  # (B, A) bool
    prototypes: torch.Tensor  # (B, K, dv) unit vectors
    prototype_is_background: torch.Tensor  # (B, K) bool
    kept: torch.Tensor | None = None  # (B, ≤budget, dv)
    kept_xy: torch.Tensor | None = None  # (B, ≤budget, 2)
    kept_score: torch.Tensor | None = None  # (B, ≤budget)
    seen: int = 0


def cosine_kmeans(x: torch.Tensor, k: int, steps: int = KMEANS_STEPS) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, d) unit vectors → centroids (B, k, d), assignment (B, N). Deterministic (evenly spaced init)."""
    b, n, _ = x.shape
    k = min(k, n)
    centroids = x[:, torch.linspace(0, n - 1, k).long()]
    for _ in range(steps):
        assign = (x @ centroids.transpose(1, 2)).argmax(-1)
        one_hot = F.one_hot(assign, k).to(x.dtype)  # (B, N, k)
        sums = one_hot.transpose(1, 2) @ x
        centroids = torch.where(one_hot.sum(1)[..., None] > 0, F.normalize(sums, dim=-1), centroids)
    return centroids, (x @ centroids.transpose(1, 2)).argmax(-1)


class TokenBudget(nn.Module):
    def __init__(self, cfg: RsappConfig):
        super().__init__()
        self.budget = cfg.local_token_budget
        self.k = cfg.background_clusters
        self.share = cfg.background_share
        self.cos = cfg.background_cos

    @torch.no_grad()
    def start(self, glob: torch.Tensor) -> BudgetState:
        """Prototypes and anchors from the global view's tokens (B, g², dv)."""
        unit = F.normalize(glob.float(), dim=-1)
        centroids, assign = cosine_kmeans(unit, self.k)
        share = F.one_hot(assign, centroids.shape[1]).float().mean(1)  # (B, k)
        is_bg = share > self.share
        anchor_mask = ~torch.gather(is_bg, 1, assign)
        anchor_mask |= ~anchor_mask.any(1, keepdim=True)  # a uniform scene: every token anchors
        return BudgetState(anchors=unit, anchor_mask=anchor_mask, prototypes=centroids, prototype_is_background=is_bg)

    def scores(self, state: BudgetState, local: torch.Tensor) -> torch.Tensor:
        """(B, N, dv) candidates → (B, N) scores: anchor agreement, background ranked last."""
        with torch.no_grad():
            unit = F.normalize(local.float(), dim=-1)
            anchor_sim = unit @ state.anchors.transpose(1, 2)
            anchor_sim = anchor_sim.masked_fill(~state.anchor_mask[:, None, :], -2.0).amax(-1)
            proto_sim = (unit @ state.prototypes.transpose(1, 2)).masked_fill(
                ~state.prototype_is_background[:, None, :], -2.0).amax(-1)
            return anchor_sim - BACKGROUND_PENALTY * (proto_sim > self.cos).float()

    def update(self, state: BudgetState, local: torch.Tensor, xy: torch.Tensor) -> None:
        """Fold a batch of candidates (B, N, dv) at positions (B or 1, N, 2) into the running top-budget."""
        b = local.shape[0]
        xy = xy.expand(b, -1, -1)
        score = self.scores(state, local)
        state.seen += local.shape[1]
        if state.kept is not None:
            local = torch.cat([state.kept, local], 1)
            xy = torch.cat([state.kept_xy, xy], 1)
            score = torch.cat([state.kept_score, score], 1)
        keep = min(self.budget, local.shape[1])
        idx = score.topk(keep, dim=1).indices
        state.kept = torch.gather(local, 1, idx[..., None].expand(-1, -1, local.shape[-1]))
        state.kept_xy = torch.gather(xy, 1, idx[..., None].expand(-1, -1, 2))
        state.kept_score = torch.gather(score, 1, idx)

    def result(self, state: BudgetState) -> tuple[torch.Tensor, torch.Tensor]:
        """Kept tokens in raster order (row, then column) with their positions."""
        order = (state.kept_xy[..., 1] * 1e4 + state.kept_xy[..., 0]).argsort(1)
        kept = torch.gather(state.kept, 1, order[..., None].expand(-1, -1, state.kept.shape[-1]))
        return kept, torch.gather(state.kept_xy, 1, order[..., None].expand(-1, -1, 2))
