"""The language model: decoder-only, shared attention, G-MoE FFNs (RSUniVLM), CS-HLoRA on every linear
(ScaleEarth), and FUSE-RSVLM's visual re-injection (gated cross-attention to the visual tokens) in chosen layers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsapp.model.config import RsappConfig
from rsapp.model.cs_hlora import CSHLoRALinear


def zero_linear(n_in: int, n_out: int, bias: bool = False) -> nn.Linear:
    """A linear layer that starts at exactly zero: a module added to trained weights (to the residual stream, to
    a selector's query) leaves their outputs unchanged until it learns something."""
    layer = nn.Linear(n_in, n_out, bias=bias)
    nn.init.zeros_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotary position embedding of (B, H, T, Dh) at integer positions (T,)."""
    half = x.shape[-1] // 2
    freqs = theta ** (-torch.arange(half, dtype=torch.float32, device=x.device) / half)
    ang = positions.float()[:, None] * freqs[None, :]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class KVCache:
    """Per-layer keys and values of everything decoded so far, plus the visual K/V of the injection layers."""

    def __init__(self, n_layers: int):
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers
        self.cross: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def length(self) -> int:
        return 0 if self.k[0] is None else self.k[0].shape[2]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], dim=2)
            v = torch.cat([self.v[layer], v], dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v


class Attention(nn.Module):
    """Causal self-attention shared by all experts; q, k, v, o carry CS-HLoRA."""

    def __init__(self, cfg: RsappConfig):
        super().__init__()
        d, r, a = cfg.hidden_size, cfg.hlora_rank, cfg.hlora_alpha
        self.heads = cfg.num_heads
        self.theta = cfg.rope_theta
        self.q, self.k, self.v, self.o = (CSHLoRALinear(d, d, r, a) for _ in range(4))

    def forward(self, x, gate, positions, mask, cache: KVCache | None, layer: int):
        b, t, d = x.shape
        h = self.heads

        def split(y):
            return y.view(b, t, h, d // h).transpose(1, 2)

        q = rope(split(self.q(x, gate)), positions, self.theta)
        k = rope(split(self.k(x, gate)), positions, self.theta)
        v = split(self.v(x, gate))
        if cache is not None:
            k, v = cache.append(layer, k, v)
        if mask is None:  # decoding one token at a time with a cache: it may see everything before it
            y = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1 and k.shape[2] == t)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o(y.transpose(1, 2).reshape(b, t, d), gate)


class VisualReinjection(nn.Module):
    """FUSE-RSVLM: text positions cross-attend to the visual tokens again; tanh gate starts closed (0)."""

    def __init__(self, cfg: RsappConfig):
        super().__init__()
        d = cfg.hidden_size
        self.heads = cfg.num_heads
        self.norm = RMSNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.gate = nn.Parameter(torch.zeros(1))

    def visual_kv(self, visual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = visual.shape
        k = self.k(visual).view(b, n, self.heads, d // self.heads).transpose(1, 2)
        v = self.v(visual).view(b, n, self.heads, d // self.heads).transpose(1, 2)
        return k, v

    def forward(self, x, kv, visual_mask):
        b, t, d = x.shape
        q = self.q(self.norm(x)).view(b, t, self.heads, d // self.heads).transpose(1, 2)
        k, v = kv
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=visual_mask)
        return torch.tanh(self.gate) * self.o(y.transpose(1, 2).reshape(b, t, d))


class Expert(nn.Module):
    """One FFN (SwiGLU) of the G-MoE; its linears carry CS-HLoRA of their own."""

    def __init__(self, cfg: RsappConfig):
        super().__init__()
        d, f, r, a = cfg.hidden_size, cfg.ffn_size, cfg.hlora_rank, cfg.hlora_alpha
        self.up = CSHLoRALinear(d, f, r, a)
        self.gate_proj = CSHLoRALinear(d, f, r, a)
        self.down = CSHLoRALinear(f, d, r, a)

    def forward(self, x, gate):
        return self.down(F.silu(self.gate_proj(x, gate)) * self.up(x, gate), gate)


class GMoE(nn.Module):
    """RSUniVLM's granularity-oriented MoE: three experts; the task token's granularity g picks one per request.

    The router is training-free (it reads g), and only the chosen expert runs for each row of the batch.
    """

    def __init__(self, cfg: RsappConfig):
        super().__init__()
        self.experts = nn.ModuleList(Expert(cfg) for _ in range(cfg.num_experts))

    def forward(self, x: torch.Tensor, g: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
        if bool((g == g[0]).all()):
            return self.experts[int(g[0])](x, gate)
        out = torch.empty_like(x)
        for e in g.unique().tolist():
            rows = (g == e).nonzero(as_tuple=True)[0]
            out[rows] = self.experts[e](x[rows], None if gate is None else gate[rows])
        return out


class DecoderLayer(nn.Module):
    def __init__(self, cfg: RsappConfig, inject: bool):
        super().__init__()
        self.norm1 = RMSNorm(cfg.hidden_size)
        self.attn = Attention(cfg)
        self.reinject = VisualReinjection(cfg) if inject else None
        self.norm2 = RMSNorm(cfg.hidden_size)
        self.ffn = GMoE(cfg)

    def forward(self, h, g, gate, positions, mask, cache, layer, visual_kv, visual_mask):
        h = h + self.attn(self.norm1(h), gate, positions, mask, cache, layer)
        if self.reinject is not None:
            h = h + self.reinject(h, visual_kv, visual_mask)
        return h + self.ffn(self.norm2(h), g, gate)  # h = h + ffn[g](norm(h))
