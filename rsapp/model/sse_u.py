"""SSE-U (ScaleEarth): a heteroscedastic head predicting s = log10(GSD) and its uncertainty from visual features."""

from __future__ import annotations

import torch
from torch import nn

# log σ² is kept in a range that means σ between ~0.01 and ~3 decades: finite, positive variance always.
LOGVAR_RANGE = (-9.0, 2.0)
# Centre of the GSD range the corpus spans (0.1–30 m) in log10, so the untrained head starts there.
S_PRIOR = 0.24


class SSEU(nn.Module):
    def __init__(self, vision_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(vision_dim), nn.Linear(vision_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, 2))
        nn.init.zeros_(self.net[-1].weight)
        with torch.no_grad():
            self.net[-1].bias.copy_(torch.tensor([S_PRIOR, 0.0]))

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, dv) → mean (B,), log-variance (B,) of log10 GSD."""
        mu, logvar = self.net(pooled).unbind(-1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    @staticmethod
    def nll(mu: torch.Tensor, logvar: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Gaussian negative log-likelihood (constant dropped): ½(log σ² + (s − μ)² / σ²)."""
        return 0.5 * (logvar + (s - mu) ** 2 * torch.exp(-logvar)).mean()
