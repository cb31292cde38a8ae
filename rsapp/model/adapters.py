"""The trained parts on a frozen pretrained linear layer: CS-HLoRA (ScaleEarth) and G-MoE expert deltas
(RSUniVLM).

y = W x                                   frozen base weight (from the installed SmolLM2 package)
  + D_e x                                 expert e's difference from the shared FFN (G-MoE by upcycling: every
                                          expert starts as a copy of the pretrained FFN, i.e. D_e = 0; the
                                          difference is kept low-rank so weights/ ships deltas, not copies)
  + (α/r)·B·(h(s) ⊙ A x)                  CS-HLoRA, rank tiers gated by s = log10 GSD (rsapp.model.cs_hlora)

Only the chosen expert's delta runs; the CS-HLoRA update depends on s, so nothing is ever merged into W.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class AdaptedLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float, experts: int = 0,
                 expert_rank: int = 0):
        super().__init__()
        self.base = nn.Linear(in_features, out_features, bias=False)
        self.base.weight.requires_grad_(False)
        self.scaling = alpha / rank if rank else 0.0
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))  # ΔW = 0 at the start
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.experts = experts
        if experts:
            self.expert_A = nn.Parameter(torch.randn(experts, expert_rank, in_features) / math.sqrt(in_features))
            self.expert_B = nn.Parameter(torch.zeros(experts, out_features, expert_rank))

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None, expert: int | None = None) -> torch.Tensor:
        """x (B, T, in); gate (B, r) from ScaleGate (None: no CS-HLoRA); expert the G-MoE expert index."""
        y = self.base(x)
        if gate is not None:
            y = y + self.scaling * ((x @ self.lora_A.t()) * gate[:, None, :]) @ self.lora_B.t()
        if self.experts and expert is not None:
            y = y + (x @ self.expert_A[expert].t()) @ self.expert_B[expert].t()
        return y
