"""CS-HLoRA (ScaleEarth): LoRA whose rank tiers are gated by the continuous scale s = log10(GSD).

ΔW(s)x = (α/r)·B·(h(s) ⊙ A x),   h_k(s) = σ(a(τ_k − s)) for rank tier k (object, structure, semantic).

Choice of a and τ (the paper publishes neither): τ starts at 1 m, 5 m and 50 m (log10: 0, 0.7, 1.7) and is
learnable, so training can move the tier boundaries to where the corpus says objects, structures and
semantics separate; a is fixed at 4 (the gate goes from 0.12 to 0.88 over one decade of GSD), so the gates
stay smooth: a learnable a tends to collapse them into steps, which makes answers jump between two nearby GSDs
and starves τ of gradient. Each h_k is monotone decreasing in s: a finer image opens more tiers.
"""

from __future__ import annotations

import torch
from torch import nn


class ScaleGate(nn.Module):
    """h(s): one sigmoid per rank tier, expanded to the r rank dimensions. Shared by every CS-HLoRA layer."""

    def __init__(self, tiers: list[tuple[int, int]], tau: list[float], a: float, learn_tau: bool):
        super().__init__()
        self.tiers = tiers
        self.a = a
        self.tau = nn.Parameter(torch.tensor(tau, dtype=torch.float32), requires_grad=learn_tau)
        # A plain list, not a buffer: from_pretrained leaves non-persistent buffers uninitialised.
        self.tier_of_rank = [k for k, (start, end) in enumerate(tiers) for _ in range(start, end)]

    def tier_gates(self, s: torch.Tensor) -> torch.Tensor:
        """(B,) log10 GSD → (B, tiers)."""
        return torch.sigmoid(self.a * (self.tau[None, :] - s[:, None]))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """(B,) → (B, r)."""
        return self.tier_gates(s)[:, self.tier_of_rank]
