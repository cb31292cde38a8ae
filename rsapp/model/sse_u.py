"""SSE-U (ScaleEarth): a heteroscedastic head predicting s = log10(GSD) and its uncertainty from visual features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# log σ² is kept in a range that means σ between ~0.01 and ~3 decades: finite, positive variance always.
LOGVAR_RANGE = (-9.0, 2.0)
# Centre of the GSD range the corpus spans (0.1–30 m) in log10, so the untrained head starts there.
S_PRIOR = 0.24
# Block sizes (pixels) of the contrast signature: how much the image varies from one k × k block to the next.
SIGNATURE_BLOCKS = (1, 2, 4, 8, 16)


def contrast_signature(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) the image at chip size → (B, len(SIGNATURE_BLOCKS)): log mean neighbour difference of its
    k × k block means. Parts of a fixed size in metres (roofs, crowns, strips of crop) show as contrast at the
    scales they span in pixels and are averaged away below them, so the profile follows GSD; the pooled ViT
    features, which see the chip halved, lose the finest scales."""
    grey = image.float().mean(1, keepdim=True)
    levels = []
    for k in SIGNATURE_BLOCKS:
        x = F.avg_pool2d(grey, k) if k > 1 else grey
        step = (x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3)) + (x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3))
        levels.append(torch.log(step + 1e-3))
    return torch.stack(levels, 1)


class SSEU(nn.Module):
    def __init__(self, vision_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(vision_dim), nn.Linear(vision_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, 2))
        # Added after SSE-U was first trained: starts at zero, so weights trained without it behave as they did.
        self.signature = nn.Linear(len(SIGNATURE_BLOCKS), hidden)
        nn.init.zeros_(self.signature.weight)
        nn.init.zeros_(self.signature.bias)
        nn.init.zeros_(self.net[-1].weight)
        with torch.no_grad():
            self.net[-1].bias.copy_(torch.tensor([S_PRIOR, 0.0]))

    def forward(self, pooled: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, dv) pooled features, (B, 3, S, S) the image at chip size → mean (B,), log-variance (B,) of
        log10 GSD."""
        norm, hidden, act, out = self.net
        h = hidden(norm(pooled)) + self.signature(contrast_signature(image))
        mu, logvar = out(act(h)).unbind(-1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    @staticmethod
    def nll(mu: torch.Tensor, logvar: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Gaussian negative log-likelihood (constant dropped): ½(log σ² + (s − μ)² / σ²)."""
        return 0.5 * (logvar + (s - mu) ** 2 * torch.exp(-logvar)).mean()
