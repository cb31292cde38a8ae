"""Vision side: a ViT built from the config, FUSE-style global + local fusion, the UHR token budget, the projector.

A chip of side S is seen twice: a global view (the chip resized to one ViT view) and local views (the chip cut
into (S / image_size)² tiles at full resolution). Local tokens are pooled onto the global grid and fused into
the global tokens (FUSE-RSVLM multi-scale fusion), then cut to a fixed budget by background pruning and anchored
selection (GeoLLaVA-8K) so any chip, up to 8192 px, costs the language model the same number of tokens. Tiles
can be streamed in batches, so memory stays bounded however large the chip is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rsapp.model.config import RsappConfig
from rsapp.model.uhr import TokenBudget

# Chips are normalised with these (ImageNet-like) statistics before the ViT.
PIXEL_MEAN = (0.45, 0.45, 0.42)
PIXEL_STD = (0.22, 0.21, 0.21)


class Block(nn.Module):
    """Pre-norm transformer block (attention + MLP)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(a)
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Patch embedding + learned positions + blocks; (N, 3, I, I) → (N, g·g, dim)."""

    def __init__(self, cfg: RsappConfig):
        super().__init__()
        self.patch = nn.Conv2d(3, cfg.vision_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.pos = nn.Parameter(torch.zeros(1, cfg.grid * cfg.grid, cfg.vision_dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(Block(cfg.vision_dim, cfg.vision_heads) for _ in range(cfg.vision_layers))
        self.norm = nn.LayerNorm(cfg.vision_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


def fourier_positions(xy: torch.Tensor, n_freq: int = 8) -> torch.Tensor:
    """(..., 2) positions in [0, 1] → (..., 4·n_freq) sin/cos features, so selected tokens keep their place."""
    freqs = (2.0 ** torch.arange(n_freq, dtype=xy.dtype, device=xy.device)) * math.pi
    ang = xy[..., None] * freqs  # (..., 2, F)
    return torch.cat([ang.sin(), ang.cos()], dim=-1).flatten(-2)


@dataclass
class VisualTokens:
    """What the vision side hands the LM for one batch of images."""

    tokens: torch.Tensor  # (B, N, hidden) projected visual tokens
    pooled: torch.Tensor  # (B, vision_dim) pooled global features (SSE-U input)
    tokens_total: int  # global + candidate local tokens before the budget (per image)
    tokens_kept: int  # visual tokens the LM sees (per image)
    fused: torch.Tensor | None = None  # (B, g², vision_dim) fused global tokens (DenseHead)
    local: torch.Tensor | None = None  # (B, n, vision_dim) every local token before the budget (training)
    local_xy: torch.Tensor | None = None  # (1, n, 2) their centres in [0, 1]
    local_grid: torch.Tensor | None = None  # (B, seg_grid², vision_dim) local tokens pooled per descriptor cell (BoxHead)
    box_view: torch.Tensor | None = None  # (B, 3, chip_size, chip_size) the image at chip size, normalised (BoxHead's PixelStem)


class VisionTower(nn.Module):
    def __init__(self, cfg: RsappConfig):
        super().__init__()
        self.cfg = cfg
        dv, d = cfg.vision_dim, cfg.hidden_size
        self.vit = ViT(cfg)
        self.fuse = nn.Sequential(nn.Linear(2 * dv, dv), nn.GELU(), nn.Linear(dv, dv))  # FUSE global ⊕ local
        nn.init.zeros_(self.fuse[-1].weight)
        nn.init.zeros_(self.fuse[-1].bias)
        self.budget = TokenBudget(cfg)
        self.projector = nn.Sequential(nn.Linear(dv, d), nn.GELU(), nn.Linear(d, d))  # 2-layer MLP into the LM
        self.position = nn.Linear(32, d)
        self.view = nn.Embedding(2, d)  # 0 global, 1 local

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8-range or [0, 1] floats → normalised floats."""
        x = x.float()
        if x.max() > 1.5:
            x = x / 255.0
        mean = torch.tensor(PIXEL_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(PIXEL_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def global_view(self, chips: torch.Tensor) -> torch.Tensor:
        size = self.cfg.image_size
        if chips.shape[-1] == size:
            return chips
        return F.interpolate(chips, size=(size, size), mode="area")

    def box_view(self, chips: torch.Tensor) -> torch.Tensor:
        """The chips at chip_size (the box head's pixels: 16 px per descriptor cell at the default sizes)."""
        size = self.cfg.chip_size
        if chips.shape[-1] != size:
            chips = F.interpolate(chips, size=(size, size), mode="area" if chips.shape[-1] > size else "bilinear")
        return self.normalise(chips)

    @staticmethod
    def tiles(chips: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(B, 3, S, S) → tiles (B, n, 3, size, size), their (col, row) in tile units (n, 2), tiles per side."""
        b, c, s, _ = chips.shape
        per_side = max(1, s // size)
        t = chips[:, :, : per_side * size, : per_side * size]
        t = t.reshape(b, c, per_side, size, per_side, size).permute(0, 2, 4, 1, 3, 5)
        rows, cols = torch.meshgrid(*[torch.arange(per_side, device=chips.device)] * 2, indexing="ij")
        return t.reshape(b, per_side * per_side, c, size, size), torch.stack([cols, rows], -1).view(-1, 2), per_side

    def forward(self, chips: torch.Tensor) -> VisualTokens:
        """(B, 3, S, S) chips, S a multiple of image_size (the training and normal path)."""
        tiles, tile_xy, per_side = self.tiles(chips, self.cfg.image_size)
        b, n = tiles.shape[:2]
        local = self.vit(self.normalise(tiles.flatten(0, 1))).view(b, n * self.cfg.grid**2, -1)
        out = self._finish(self.vit(self.normalise(self.global_view(chips))), local,
                           self._token_xy(tile_xy, per_side).expand(b, -1, -1), per_side)
        out.box_view = self.box_view(chips)
        return out

    @torch.no_grad()
    def forward_stream(self, global_view: torch.Tensor, box_view: torch.Tensor,
                       tile_batches: Iterable[tuple[torch.Tensor, torch.Tensor]], per_side: int) -> VisualTokens:
        """UHR path for one image: the global view (1, 3, I, I), the image at chip size (1, 3, C, C), and tiles
        streamed in batches of ((n, 3, I, I), (n, 2) tile col/row); only the running top-budget local tokens are
        kept."""
        glob = self.vit(self.normalise(global_view))
        state = self.budget.start(glob)
        cell_sum = torch.zeros(1, self.cfg.grid**2, self.cfg.vision_dim)
        cell_count = torch.zeros(1, self.cfg.grid**2, 1)
        n = self.cfg.seg_grid
        fine_sum, fine_count = torch.zeros(1, n * n, self.cfg.vision_dim), torch.zeros(1, n * n, 1)
        for tiles, tile_xy in tile_batches:
            local = self.vit(self.normalise(tiles)).reshape(1, -1, self.cfg.vision_dim)
            xy = self._token_xy(tile_xy, per_side)
            self._pool_onto_grid(local, xy, cell_sum, cell_count, self.cfg.grid)
            self._pool_onto_grid(local, xy, fine_sum, fine_count, n)
            self.budget.update(state, local, xy)
        fused = self._fuse(glob, cell_sum, cell_count)
        kept, kept_xy = self.budget.result(state)
        out = self._project(fused, kept, kept_xy, glob, state.seen)
        out.local_grid = fine_sum / fine_count.clamp(min=1)
        out.box_view = self.box_view(box_view)
        return out

    def _finish(self, glob, local, local_xy, per_side) -> VisualTokens:
        b = glob.shape[0]
        cell_sum = glob.new_zeros(b, self.cfg.grid**2, self.cfg.vision_dim)
        cell_count = glob.new_zeros(b, self.cfg.grid**2, 1)
        self._pool_onto_grid(local, local_xy, cell_sum, cell_count, self.cfg.grid)
        fused = self._fuse(glob, cell_sum, cell_count)
        state = self.budget.start(glob)
        self.budget.update(state, local, local_xy)
        kept, kept_xy = self.budget.result(state)
        out = self._project(fused, kept, kept_xy, glob, local.shape[1])
        out.local, out.local_xy = local, local_xy[:1]
        n = self.cfg.seg_grid
        fine_sum, fine_count = glob.new_zeros(b, n * n, self.cfg.vision_dim), glob.new_zeros(b, n * n, 1)
        self._pool_onto_grid(local, local_xy, fine_sum, fine_count, n)
        out.local_grid = fine_sum / fine_count.clamp(min=1)
        return out

    def _fuse(self, glob, cell_sum, cell_count) -> torch.Tensor:
        """FUSE: each global token takes in the mean of the local tokens that fall in its cell."""
        return glob + self.fuse(torch.cat([glob, cell_sum / cell_count.clamp(min=1)], -1))

    def _token_xy(self, tile_xy: torch.Tensor, per_side: int) -> torch.Tensor:
        """Centres of every token of the given tiles, in [0, 1] chip coordinates: (1, n·g², 2)."""
        g = self.cfg.grid
        r, c = torch.meshgrid(*[torch.arange(g, device=tile_xy.device)] * 2, indexing="ij")
        inner = torch.stack([c, r], -1).view(1, g * g, 2).float() + 0.5
        xy = (tile_xy.float()[:, None, :] * g + inner) / (per_side * g)
        return xy.reshape(1, -1, 2)

    @staticmethod
    def _pool_onto_grid(local, xy, cell_sum, cell_count, g: int) -> None:
        """Add each token to the g × g cell its centre falls in (sums and counts, for a mean)."""
        cell = (xy.clamp(0, 1 - 1e-6) * g).long()
        index = (cell[..., 1] * g + cell[..., 0]).expand(local.shape[0], -1)
        cell_sum.scatter_add_(1, index[..., None].expand(-1, -1, local.shape[-1]), local)
        cell_count.scatter_add_(1, index[..., None], torch.ones_like(local[..., :1]))

    def _project(self, fused, kept, kept_xy, glob, seen) -> VisualTokens:
        b, g = fused.shape[0], self.cfg.grid
        r, c = torch.meshgrid(*[torch.arange(g, device=fused.device)] * 2, indexing="ij")
        glob_xy = ((torch.stack([c, r], -1).view(1, g * g, 2).float() + 0.5) / g).expand(b, -1, -1)
        tokens = torch.cat([
            self.projector(fused) + self.position(fourier_positions(glob_xy)) + self.view.weight[0],
            self.projector(kept) + self.position(fourier_positions(kept_xy)) + self.view.weight[1],
        ], dim=1)
        return VisualTokens(tokens=tokens, pooled=glob.mean(1), tokens_total=g * g + int(seen),
                            tokens_kept=int(tokens.shape[1]), fused=fused)
