"""The language model: SmolLM2-135M-Instruct (a Llama decoder) with G-MoE FFNs, CS-HLoRA on every linear layer
and gated visual re-injection (FUSE-RSVLM), in plain torch so the adapters, the expert routing and the KV cache
are ours.

Layer = x + Attn(RMSNorm(x)) [+ tanh(g)·CrossAttn(x, visual) in re-injection layers] + GMoE_e(RMSNorm(x)).
Parameter names of the frozen base match the GGUF tensors mapped by rsapp.model.pretrained; the input
embedding grows by the project's own tokens (task tokens, <image>), the output head stays tied to the base
vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from rsapp.model.adapters import AdaptedLinear
from rsapp.model.cs_hlora import ScaleGate


@dataclass
class LMConfig:
    vocab_size: int = 49152
    hidden_size: int = 576
    ffn_size: int = 1536
    layers: int = 30
    heads: int = 9
    kv_heads: int = 3
    rope_theta: float = 100000.0
    rms_eps: float = 1e-5
    extra_tokens: int = 16  # rows of the project's own tokens appended to the embedding
    experts: int = 3  # G-MoE: image, region, pixel
    expert_rank: int = 8
    hlora_rank: int = 16
    hlora_alpha: float = 16.0
    # Rank tiers object / structure / semantic as shares of the rank (DESIGN.md: 0–10, 11–31, 32–63 of 64).
    hlora_tier_bounds: tuple[float, ...] = (11 / 64, 32 / 64, 1.0)
    hlora_tau: tuple[float, ...] = (0.0, 0.7, 1.7)  # 1 m, 5 m, 50 m (see cs_hlora.py for why)
    hlora_a: float = 4.0
    inject_layers: tuple[int, ...] = (8, 20)
    visual_dim: int = 576  # width of the projected visual tokens the re-injection reads

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.heads

    def tiers(self) -> list[tuple[int, int]]:
        ends = [round(b * self.hlora_rank) for b in self.hlora_tier_bounds]
        return list(zip([0] + ends[:-1], ends))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding, rotate-half layout (as transformers' Llama)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), -1)
    return x * cos + rotated * sin


@dataclass
class Cache:
    """Keys and values per layer, (B, kv_heads, T, head_dim); grows as tokens are decoded."""

    keys: list[torch.Tensor | None] = field(default_factory=list)
    values: list[torch.Tensor | None] = field(default_factory=list)

    @property
    def length(self) -> int:
        return 0 if not self.keys or self.keys[0] is None else self.keys[0].shape[2]

    def expand(self, n: int) -> "Cache":
        """The same prefix for n sequences (label scoring)."""
        return Cache([k.expand(n, -1, -1, -1) for k in self.keys], [v.expand(n, -1, -1, -1) for v in self.values])


class Attention(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        d, kv = cfg.hidden_size, cfg.kv_heads * cfg.head_dim
        lin = lambda i, o: AdaptedLinear(i, o, cfg.hlora_rank, cfg.hlora_alpha)  # noqa: E731
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = lin(d, d), lin(d, kv), lin(d, kv), lin(d, d)
        self.heads, self.kv_heads, self.head_dim = cfg.heads, cfg.kv_heads, cfg.head_dim

    def forward(self, x, gate, cos, sin, cache: Cache | None, index: int):
        b, t, _ = x.shape
        q = self.q_proj(x, gate).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x, gate).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x, gate).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if cache is not None:
            if cache.keys[index] is not None:
                k = torch.cat([cache.keys[index], k], 2)
                v = torch.cat([cache.values[index], v], 2)
            cache.keys[index], cache.values[index] = k, v
        out = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1 and k.shape[2] == t,
                                             attn_mask=_prefix_mask(t, k.shape[2], x.device),
                                             enable_gqa=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1), gate)


def _prefix_mask(t: int, total: int, device) -> torch.Tensor | None:
    """Causal mask for t new tokens after total − t cached ones (None when plain causal or one token)."""
    if t == 1 or total == t:
        return None
    return torch.ones(t, total, dtype=torch.bool, device=device).tril(total - t)


class GMoE(nn.Module):
    """SwiGLU FFN with three experts: the shared pretrained FFN plus each expert's low-rank difference."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        lin = lambda i, o: AdaptedLinear(i, o, cfg.hlora_rank, cfg.hlora_alpha, cfg.experts, cfg.expert_rank)  # noqa: E731
        self.gate_proj = lin(cfg.hidden_size, cfg.ffn_size)
        self.up_proj = lin(cfg.hidden_size, cfg.ffn_size)
        self.down_proj = lin(cfg.ffn_size, cfg.hidden_size)

    def forward(self, x, gate, expert: int):
        h = F.silu(self.gate_proj(x, gate, expert)) * self.up_proj(x, gate, expert)
        return self.down_proj(h, gate, expert)


class CrossAttention(nn.Module):
    """Visual re-injection (FUSE-RSVLM): text states attend to the visual tokens again, gated from zero."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        d = cfg.hidden_size
        self.norm = RMSNorm(d, cfg.rms_eps)
        self.attn = nn.MultiheadAttention(d, cfg.heads, kdim=cfg.visual_dim, vdim=cfg.visual_dim, batch_first=True)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, x, visual):
        out, _ = self.attn(self.norm(x), visual, visual, need_weights=False)
        return torch.tanh(self.gate) * out


class DecoderLayer(nn.Module):
    def __init__(self, cfg: LMConfig, reinject: bool):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_eps)
        self.mlp = GMoE(cfg)
        self.reinject = CrossAttention(cfg) if reinject else None

    def forward(self, x, gate, expert, cos, sin, cache, index, visual):
        x = x + self.self_attn(self.input_layernorm(x), gate, cos, sin, cache, index)
        if self.reinject is not None and visual is not None:
            x = x + self.reinject(x, visual)
        return x + self.mlp(self.post_attention_layernorm(x), gate, expert)


class SmolLM(nn.Module):
    """Decoder returning hidden states; `logits` applies the tied head."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.embed_tokens.weight.requires_grad_(False)
        self.extra_embed = nn.Parameter(torch.randn(cfg.extra_tokens, cfg.hidden_size) * 0.02)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i in cfg.inject_layers) for i in range(cfg.layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_eps)
        self.scale_gate = ScaleGate(cfg.tiers(), list(cfg.hlora_tau), cfg.hlora_a, learn_tau=True)
        inv = 1.0 / cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2).float() / cfg.head_dim)
        self.register_buffer("inv_freq", inv, persistent=False)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (base vocabulary, then the project's own tokens above it) → embeddings."""
        base = ids.clamp(max=self.cfg.vocab_size - 1)
        out = self.embed_tokens(base)
        extra = ids >= self.cfg.vocab_size
        if extra.any():
            out = torch.where(extra[..., None], self.extra_embed[(ids - self.cfg.vocab_size).clamp(min=0)], out)
        return out

    def new_cache(self) -> Cache:
        return Cache([None] * self.cfg.layers, [None] * self.cfg.layers)

    def forward(self, embeds: torch.Tensor, s: torch.Tensor | None, expert: int, cache: Cache | None = None,
                visual: torch.Tensor | None = None) -> torch.Tensor:
        """embeds (B, T, d); s (B,) log10 GSD gating CS-HLoRA (None: no adapter); expert the G-MoE index;
        visual (B, V, d) tokens for re-injection. Returns the final hidden states (B, T, d)."""
        start = cache.length if cache is not None else 0
        pos = torch.arange(start, start + embeds.shape[1], device=embeds.device).float()
        angles = torch.outer(pos, self.inv_freq)
        cos = torch.cat([angles.cos()] * 2, -1)
        sin = torch.cat([angles.sin()] * 2, -1)
        gate = self.scale_gate(s) if s is not None else None
        x = embeds
        for i, layer in enumerate(self.layers):
            x = layer(x, gate, expert, cos, sin, cache, i, visual)
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.embed_tokens.weight.t()

    def greedy(self, hidden: torch.Tensor) -> int:
        """The most likely next token for one final hidden state (d,)."""
        return int(self.logits(hidden).argmax())
