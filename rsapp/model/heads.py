"""Task heads reading the tower's pyramid directly: dense classes ([SEG]), instance cores (counting, [VG]), change
(Siamese, [SEG]/[CCD] with two dates), scene class (the tag token the language model reads, and [CLS]'s
candidates), and SSE-U."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsapp.model.efficientnet import PYRAMID

PYRAMID_CHANNELS = [ch for _, ch, _ in PYRAMID]
# SSE-U's log σ² is kept where σ is between ~0.01 and ~3 decades: finite, positive variance always.
LOGVAR_RANGE = (-9.0, 2.0)
# Block sizes (pixels) of the contrast signature: how much the image varies from one k × k block to the next.
SIGNATURE_BLOCKS = (1, 2, 4, 8, 16)


def contrast_signature(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) in [0, 1] → (B, len(SIGNATURE_BLOCKS)): log mean neighbour difference of its k × k block
    means. Parts of a fixed size in metres (roofs, crowns, strips of crop) show as contrast at the scales they
    span in pixels and are averaged away below them, so the profile follows GSD."""
    grey = image.float().mean(1, keepdim=True)
    levels = []
    for k in SIGNATURE_BLOCKS:
        x = F.avg_pool2d(grey, k) if k > 1 else grey
        step = (x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3)) + (x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3))
        levels.append(torch.log(step + 1e-3))
    return torch.stack(levels, 1)


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(8, cout), nn.ReLU(inplace=True))


class FPNDecoder(nn.Module):
    """Top-down feature pyramid (Lin et al. 2017): lateral 1×1, upsample-and-add, 3×3 smoothing; stride 4 out."""

    def __init__(self, in_channels: list[int], dim: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in in_channels)
        self.smooth = _conv(dim, dim)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](levels[-1])
        for conv, feat in zip(reversed(self.lateral[:-1]), reversed(levels[:-1])):
            x = F.interpolate(x, size=feat.shape[-2:], mode="bilinear", align_corners=False) + conv(feat)
        return self.smooth(x)


class DenseHead(nn.Module):
    """Per-pixel multi-label logits of the dense classes at stride 4 (upsampled to the chip by the caller)."""

    def __init__(self, classes: int, dim: int = 96):
        super().__init__()
        self.decoder = FPNDecoder(PYRAMID_CHANNELS, dim)
        self.out = nn.Conv2d(dim, classes, 1)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        return self.out(self.decoder(levels))


class InstanceHead(nn.Module):
    """Instance cores at stride 4, one map per instance class: how deep inside its own instance a pixel lies (its
    distance to the instance's edge over the instance's largest such distance). Thresholded, the cores of two
    touching buildings are apart and a speck of mask has none, so instances are counted as cores, not as
    connected regions of the class mask (which merge a row of houses and count every speck)."""

    def __init__(self, classes: int, dim: int = 64):
        super().__init__()
        self.decoder = FPNDecoder(PYRAMID_CHANNELS, dim)
        self.refine = _conv(dim, dim)
        self.out = nn.Conv2d(dim, classes, 1)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        return self.out(self.refine(self.decoder(levels)))


class ChangeHead(nn.Module):
    """Siamese change detection: both dates through the same tower; per level the features of both dates and
    their absolute difference are fused (1×1 then 3×3), decoded top-down, refined and read out as a change
    logit at stride 4."""

    WIDTHS = (32, 48, 96, 128)  # fused channels per pyramid level

    def __init__(self, dim: int = 64):
        super().__init__()
        self.fuse = nn.ModuleList(
            nn.Sequential(nn.Conv2d(3 * c, w, 1, bias=False), nn.GroupNorm(8, w), nn.ReLU(inplace=True), _conv(w, w))
            for c, w in zip(PYRAMID_CHANNELS, self.WIDTHS))
        self.decoder = FPNDecoder(list(self.WIDTHS), dim)
        self.refine = _conv(dim, dim)
        self.out = nn.Conv2d(dim, 1, 1)

    def forward(self, before: list[torch.Tensor], after: list[torch.Tensor]) -> torch.Tensor:
        fused = [f(torch.cat([a, b, (a - b).abs()], 1)) for f, a, b in zip(self.fuse, before, after)]
        return self.out(self.refine(self.decoder(fused)))[:, 0]


class SceneHead(nn.Module):
    """Scene-class logits from the pooled features."""

    def __init__(self, in_dim: int, classes: int):
        super().__init__()
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(in_dim, classes)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(pooled))


class SSEU(nn.Module):
    """SSE-U (ScaleEarth): mean and log-variance of s = log10 GSD from the pooled features and the image's
    contrast signature (how much it varies between blocks of 1–16 px: parts of a fixed size in metres show at
    the scales they span in pixels)."""

    def __init__(self, in_dim: int, hidden: int = 128, prior: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.hidden = nn.Linear(in_dim + len(SIGNATURE_BLOCKS), hidden)
        self.out = nn.Linear(hidden, 2)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.copy_(torch.tensor([prior, 0.0]))

    def forward(self, pooled: torch.Tensor, rgb01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.from_features(pooled, contrast_signature(rgb01))

    def from_features(self, pooled: torch.Tensor, signature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([self.norm(pooled), signature], -1)
        mu, logvar = self.out(F.gelu(self.hidden(h))).unbind(-1)
        return mu, logvar.clamp(*LOGVAR_RANGE)
