"""SmolLM packed for answering: the same arithmetic as rsapp.model.smollm in fewer, larger calls.

Packed once when the runtime loads (PackedLM(lm, base_bits, bits)):
- SmolLM2's base matrices, q|k|v and gate|up fused, at base_bits: 4 re-encodes the GGUF's own Q4_1 blocks for
  torch's int4 kernel (no loss), 8 is int8 per row, 32 fp32. Activations are never quantized: they enter the kernels
  in bf16, the format SmolLM2 was trained in (torch's dynamic int8, which quantizes them per tensor, lost captions
  to SmolLM2's outlier features).
- Query and key rows reordered so that RoPE is one complex multiplication, queries pre-scaled by 1/√head_dim.
- The trained factors (CS-HLoRA's A and B, every expert's A and B, the re-injection) at `bits` (8: int8 per row).
Per request (one GSD, one expert) every fused matrix gets the rows of its A that reach the output (CS-HLoRA's and the
chosen expert's) widened, and one Bᵀ with CS-HLoRA's gates h(s) and α/r folded in: the other experts are not read
at all (keeping them in with zero columns cost 4 ms a token in memory traffic); the visual keys and values of the
re-injection layers are computed once. A decoding step is 4 base calls and 8 small
ones per layer, where the training module runs 7 and 26, and writes one position of a cache grown ahead.

Used for inference only (no gradients); tests compare it with SmolLM (fp32: the same logits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsapp.model.smollm import SmolLM, _prefix_mask

# Rows up to which the int8 kernel reads its matrix directly (decoding, short label scoring); above it the matrix is
# widened to fp32 for one BLAS call, faster for a prompt of dozens of tokens.
KERNEL_MAX_ROWS = 16
GROUP = 32  # int4: one scale and zero per 32 weights along a row, as the GGUF's Q4_1 blocks
SCREEN_TOP = 16  # vocabulary entries the int4 screen of the output head passes to exact scoring


class PackedMatrix:
    """A frozen (N, K) weight for y = x Wᵀ (+ bias), stored at `bits`:

    - 4: asymmetric int4 in groups of 32 along each row (torch's int4 kernel, activations in bf16). SmolLM2's linear
      weights come as Q4_1 (16 levels between each block's min and max, blocks of 32), so this re-encodes them
      without loss but for bf16 rounding of the scales; N must be a multiple of 16.
    - 8: int8 with one scale per row (torch's int8 kernel, activations in bf16).
    - 32: fp32.
    A shape the kernels cannot take (K not a multiple of 64, N of 16 for int4) falls back to the next wider format.
    """

    def __init__(self, w: torch.Tensor, bits: int, bias: torch.Tensor | None = None):
        w = w.detach().float().contiguous()
        n, k = w.shape
        if bits == 4 and (n % 16 or k % 64 or not hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu")):
            bits = 8
        if bits == 8 and (k % 64 or not hasattr(torch.ops.aten, "_weight_int8pack_mm")):
            bits = 32
        self.bits, self.shape = bits, (n, k)
        self.bias = None if bias is None else bias.detach().float()
        if bits == 4:
            groups = w.view(n, k // GROUP, GROUP)
            low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
            scale = ((high - low) / 15).clamp(min=1e-12)
            q = torch.round((groups - low) / scale).clamp(0, 15).to(torch.int32).view(n, k)
            self.q = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 2)
            # the kernel computes (q − 8)·scale + zero, per group: (K / 32, N, 2)
            self.scale_zero = torch.stack([scale[..., 0], (low + 8 * scale)[..., 0]], -1).transpose(0, 1) \
                .contiguous().to(torch.bfloat16)
        elif bits == 8:
            scale = w.abs().amax(1).clamp(min=1e-12) / 127.0
            self.q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
            self.scale = scale
            self.scale_bf16 = scale.to(torch.bfloat16)
        else:
            self.w = w

    def mm(self, flat: torch.Tensor, widen: bool = True) -> torch.Tensor:
        """flat (M, K) fp32 → (M, N) fp32, for the int4 kernel without the shape handling of __call__ (a decoding
        step makes 120 of these calls); widen=False leaves the int4 kernel's output in bf16."""
        if self.bits == 4 and self.bias is None:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat.to(torch.bfloat16), self.q, GROUP, self.scale_zero)
            return y.float() if widen else y
        return self(flat)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if self.bits == 32:
            y = F.linear(flat, self.w, self.bias)
        else:
            if self.bits == 4:
                y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat.to(torch.bfloat16), self.q, GROUP,
                                                               self.scale_zero).float()
            elif flat.shape[0] <= KERNEL_MAX_ROWS:
                y = torch.ops.aten._weight_int8pack_mm(flat.to(torch.bfloat16), self.q, self.scale_bf16).float()
            else:
                y = (flat @ self.q.t().float()) * self.scale
            if self.bias is not None:
                y = y + self.bias
        return y.view(*x.shape[:-1], self.shape[0])

    def select(self, index: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        """flat (M ≤ KERNEL_MAX_ROWS, K) → (M, len(index)): the outputs `index` of __call__, in the same arithmetic
        (8 or 32 bits, no bias)."""
        if self.bits == 8:
            return torch.ops.aten._weight_int8pack_mm(flat.to(torch.bfloat16), self.q[index],
                                                      self.scale_bf16[index]).float()
        return F.linear(flat, self.w[index])

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Rows of W (as an embedding table; 8 or 32 bits)."""
        if self.bits == 32:
            return self.w[index]
        return self.q[index].float() * self.scale[index][..., None]

    @property
    def nbytes(self) -> int:
        extra = 0 if self.bias is None else self.bias.numel() * 4
        if self.bits == 4:
            return self.q.numel() * self.q.element_size() + self.scale_zero.numel() * 2 + extra
        if self.bits == 8:
            return self.q.numel() + self.scale.numel() * 6 + extra  # fp32 + bf16 copies of the scales
        return self.w.numel() * 4 + extra


class RowInt8:
    """A small trained factor kept int8 with one scale per row (per last-but-one index), widened on request."""

    def __init__(self, t: torch.Tensor, bits: int):
        t = t.detach().float()
        self.int8 = bits < 32
        if self.int8:
            self.scale = t.abs().amax(-1, keepdim=True).clamp(min=1e-12) / 127.0
            self.q = torch.round(t / self.scale).clamp(-127, 127).to(torch.int8)
        else:
            self.t = t

    def float(self) -> torch.Tensor:
        return self.q.float() * self.scale if self.int8 else self.t

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Some rows (of a 2-D factor), widened."""
        return self.q[index].float() * self.scale[index] if self.int8 else self.t[index]

    @property
    def nbytes(self) -> int:
        return self.q.numel() + self.scale.numel() * 4 if self.int8 else self.t.numel() * 4


class AdaptedMatrix:
    """One or more AdaptedLinear layers reading the same input, fused: their base rows stacked in one matrix; the A
    factors of their adapters (CS-HLoRA's, every expert's) stacked in another. Per request the A matrix is widened
    to fp32 and the B factors are folded into one Bᵀ, so y = base(x) + (x Aᵀ) Bᵀ is three calls."""

    def __init__(self, layers: list, base_bits: int, bits: int, row_maps: list[torch.Tensor | None] | None = None,
                 row_scales: list[float] | None = None):
        """row_maps / row_scales: per layer, a permutation and a factor applied to its output rows (the packed
        attention's interleaved RoPE layout and its pre-scaled queries)."""
        row_maps = row_maps or [None] * len(layers)
        row_scales = row_scales or [1.0] * len(layers)
        self.n_out = sum(lin.base.weight.shape[0] for lin in layers)
        # per layer: output rows, CS-HLoRA's A-row offset, α/r, its B, each expert's A-row offset, the experts' B
        self.blocks = []
        bases, a_rows, row, out = [], [], 0, 0
        for lin, rows, factor in zip(layers, row_maps, row_scales):
            perm = (lambda t: t) if rows is None else (lambda t, r=rows: t[..., r, :])  # noqa: E731
            n = lin.base.weight.shape[0]
            bases.append(perm(lin.base.weight.detach()) * factor)
            a_rows.append(lin.lora_A.detach())
            cs = row
            row += lin.lora_A.shape[0]
            experts = []
            for e in range(lin.experts):
                a_rows.append(lin.expert_A[e].detach())
                experts.append(row)
                row += lin.expert_A.shape[1]
            expert_B = RowInt8(perm(lin.expert_B.detach()) * factor, bits) if lin.experts else None
            lora_B = RowInt8(perm(lin.lora_B.detach()) * factor, bits)
            self.blocks.append((slice(out, out + n), cs, lin.scaling, lora_B, experts, expert_B))
            out += n
        self.rank_rows = row
        self.base = PackedMatrix(torch.cat(bases), base_bits)
        self.A = RowInt8(torch.cat(a_rows), bits)

    def request(self, gate: torch.Tensor, expert: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, Bᵀ) for one request: the rows of A that reach the output (CS-HLoRA's, the chosen expert's) widened;
        Bᵀ (those rows, n_out) = CS-HLoRA's B with its gates h(s) and α/r, and the chosen expert's B. The other
        experts are not read at all."""
        keep, parts = [], []
        for out, cs, scaling, lora_B, experts, expert_B in self.blocks:
            b = lora_B.float()
            parts.append((out, len(keep), b * (scaling * gate)))
            keep.extend(range(cs, cs + b.shape[1]))
            if experts:
                eb = expert_B.float()[expert]
                parts.append((out, len(keep), eb))
                keep.extend(range(experts[expert], experts[expert] + eb.shape[1]))
        B = torch.zeros(self.n_out, len(keep))
        for out, col, b in parts:
            B[out, col:col + b.shape[1]] = b
        return self.A.rows(torch.tensor(keep)), B.t().contiguous()

    def __call__(self, x: torch.Tensor, adapter: tuple[torch.Tensor, torch.Tensor],
                 residual: torch.Tensor | None = None) -> torch.Tensor:
        """x (M, K) → (M, n_out); with `residual` (M, n_out), added to it in place instead (one call fewer: the
        int4 kernel's bf16 output is added without widening it first)."""
        A, Bt = adapter
        if residual is None:
            return torch.addmm(self.base.mm(x), F.linear(x, A), Bt)
        return residual.addmm_(F.linear(x, A), Bt).add_(self.base.mm(x, widen=False))

    @property
    def nbytes(self) -> int:
        return self.base.nbytes + self.A.nbytes + sum(b[3].nbytes + (b[5].nbytes if b[5] is not None else 0)
                                                      for b in self.blocks)


class PackedCrossAttention:
    """FUSE-RSVLM's re-injection (nn.MultiheadAttention) as packed matrices; the visual keys and values are
    computed once per request."""

    def __init__(self, module, bits: int):
        attn = module.attn
        d = attn.embed_dim
        w, b = attn.in_proj_weight, attn.in_proj_bias
        self.q = PackedMatrix(w[:d], bits, b[:d])
        self.kv = PackedMatrix(w[d:], bits, b[d:])
        self.out = PackedMatrix(attn.out_proj.weight, bits, attn.out_proj.bias)
        self.norm_weight = module.norm.weight.detach()
        self.eps = module.norm.eps
        self.heads = attn.num_heads
        self.gate = float(torch.tanh(module.gate.detach()))

    def keys_values(self, visual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """visual (1, V, d) → keys and values (1, heads, V, head_dim)."""
        _, v, _ = visual.shape
        k, val = self.kv(visual[0]).view(v, 2, self.heads, -1).permute(1, 2, 0, 3)
        return k[None], val[None]

    def __call__(self, x: torch.Tensor, b: int, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """x (b·t, d) → (b·t, d)."""
        d = x.shape[-1]
        q = self.q(F.rms_norm(x, (d,), self.norm_weight, self.eps)).view(b, -1, self.heads, d // self.heads)
        k, v = kv
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1))
        return self.gate * self.out(out.transpose(1, 2).reshape(-1, d))

    @property
    def nbytes(self) -> int:
        return self.q.nbytes + self.kv.nbytes + self.out.nbytes + self.norm_weight.numel() * 4


def interleave_rows(heads: int, head_dim: int) -> torch.Tensor:
    """Row order that turns each head's rotate-half layout (x_i, x_{i+d/2}) into adjacent pairs, so RoPE is one
    complex multiplication. Queries and keys are reordered alike, so their dot products do not change."""
    half = head_dim // 2
    within = torch.stack([torch.arange(half), torch.arange(half) + half], 1).reshape(-1)
    return (torch.arange(heads)[:, None] * head_dim + within[None]).reshape(-1)


class PackedLayer:
    def __init__(self, layer, cfg, base_bits: int, bits: int):
        attn, mlp = layer.self_attn, layer.mlp
        hd = cfg.head_dim
        # queries pre-scaled by 1/√head_dim (a power of two for SmolLM2's 64: exact at any bit width)
        self.qkv = AdaptedMatrix([attn.q_proj, attn.k_proj, attn.v_proj], base_bits, bits,
                                 row_maps=[interleave_rows(cfg.heads, hd), interleave_rows(cfg.kv_heads, hd), None],
                                 row_scales=[hd ** -0.5, 1.0, 1.0])
        self.o = AdaptedMatrix([attn.o_proj], base_bits, bits)
        self.gate_up = AdaptedMatrix([mlp.gate_proj, mlp.up_proj], base_bits, bits)
        self.down = AdaptedMatrix([mlp.down_proj], base_bits, bits)
        self.norm1 = layer.input_layernorm.weight.detach()
        self.norm2 = layer.post_attention_layernorm.weight.detach()
        self.reinject = PackedCrossAttention(layer.reinject, bits) if layer.reinject is not None else None
        self.ffn = mlp.gate_proj.base.weight.shape[0]

    def matrices(self) -> tuple[AdaptedMatrix, ...]:
        return self.qkv, self.o, self.gate_up, self.down


class PackedCache:
    """Keys and values per layer in one buffer grown ahead, (B, capacity, 2·kv_heads, head_dim), keys then values as
    the fused q|k|v matrix writes them: a decoding step copies one position in one call, and attention reads the
    keys and values as strided views."""

    GROW = 64

    def __init__(self, layers: int):
        self.buffers: list[torch.Tensor | None] = [None] * layers
        self.length = 0

    def append(self, i: int, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """kv (B, t, 2·kv_heads, head_dim) at positions length … length + t − 1 → all keys and values so far, each
        (B, kv_heads, length + t, head_dim)."""
        end = self.length + kv.shape[1]
        buf = self.buffers[i]
        if buf is None or buf.shape[1] < end or buf.shape[0] != kv.shape[0] or buf.stride(0) == 0:
            new = kv.new_empty(kv.shape[0], end + self.GROW, *kv.shape[2:])
            if buf is not None:
                new[:, :self.length] = buf[:, :self.length]
            self.buffers[i] = buf = new
        buf[:, self.length:end] = kv
        heads = kv.shape[2] // 2
        return buf[:, :end, :heads].transpose(1, 2), buf[:, :end, heads:].transpose(1, 2)

    def expand(self, n: int) -> "PackedCache":
        """The same prefix for n sequences (label scoring); copied into n buffers only when written."""
        out = PackedCache(len(self.buffers))
        out.buffers = [buf[:, :self.length].expand(n, -1, -1, -1) for buf in self.buffers]
        out.length = self.length
        return out


class PackedLM(nn.Module):
    """The inference twin of SmolLM: same calls (embed, new_cache, forward, logits), packed weights. SmolLM's own
    base tensors are not kept (the runtime drops the SmolLM once packed), so memory holds one copy of the base."""

    def __init__(self, lm: SmolLM, base_bits: int, bits: int):
        """base_bits: SmolLM2's linear weights (4, 8 or 32); bits: everything else (8 or 32; the embedding table,
        which doubles as the output head, is Q8_0 in the GGUF: at most 8)."""
        super().__init__()
        self.cfg = lm.cfg
        self.base_bits, self.bits = base_bits, bits
        with torch.no_grad():
            self.layers = [PackedLayer(layer, lm.cfg, base_bits, bits) for layer in lm.layers]
            self.embedding = PackedMatrix(lm.embed_tokens.weight, max(base_bits, 8))
            # greedy decoding screens the vocabulary with an int4 copy of the output head (its int8 weights
            # regrouped), then scores the best SCREEN_TOP tokens in the int8 head's arithmetic: on the int4 path
            # only, and kept only where the int4 kernel takes the head's shape
            screen = PackedMatrix(self.embedding.rows(torch.arange(lm.cfg.vocab_size)), 4) if base_bits == 4 else None
            self.screen = screen if screen is not None and screen.bits == 4 else None
        self.extra_embed = lm.extra_embed.detach()
        self.norm_weight = lm.norm.weight.detach()
        self.scale_gate = lm.scale_gate
        self.register_buffer("inv_freq", lm.inv_freq.clone(), persistent=False)
        # the request being answered: its (s, expert) and adapters, its visual tokens and their keys/values
        self._adapter_key, self._adapters = None, None
        self._visual_key, self._visual_kv = None, None

    # --- SmolLM's interface -----------------------------------------------------------------------------------
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        base = ids.clamp(max=self.cfg.vocab_size - 1)
        out = self.embedding.rows(base)
        extra = ids >= self.cfg.vocab_size
        if extra.any():
            out = torch.where(extra[..., None], self.extra_embed[(ids - self.cfg.vocab_size).clamp(min=0)], out)
        return out

    def new_cache(self) -> PackedCache:
        return PackedCache(self.cfg.layers)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.embedding(hidden)

    def greedy(self, hidden: torch.Tensor) -> int:
        """The most likely next token for one final hidden state (d,): the int4 screen's SCREEN_TOP candidates
        scored by the int8 head in its own arithmetic (its best token ranked at most 3rd in the screen over 100
        decoding steps), in 60 % of the head's time; the full logits elsewhere."""
        if self.screen is None:
            return int(self.logits(hidden).argmax())
        candidates = self.screen.mm(hidden[None])[0].topk(SCREEN_TOP).indices
        scores = self.embedding.select(candidates, hidden[None])[0]
        return int(candidates[scores == scores.max()].min())  # the head's logits are bf16: ties go to the first

    @torch.no_grad()
    def forward(self, embeds: torch.Tensor, s: torch.Tensor | None, expert: int, cache: PackedCache | None = None,
                visual: torch.Tensor | None = None) -> torch.Tensor:
        """As SmolLM.forward: embeds (B, T, d), s (B,) one GSD for all, → final hidden states (B, T, d)."""
        if s is not None and s.numel() > 1 and not bool((s == s[0]).all()):
            raise ValueError("a packed LM answers one request (one GSD) at a time")
        adapters, visual_kv = self._bind(None if s is None else float(s.reshape(-1)[0]), expert, visual)
        cfg = self.cfg
        b, t, d = embeds.shape
        cache = cache if cache is not None else self.new_cache()
        start = cache.length
        angles = torch.outer(torch.arange(start, start + t, dtype=torch.float32), self.inv_freq)
        rotation = torch.polar(torch.ones_like(angles), angles).repeat(b, 1)[:, None]  # (b·t, 1, head_dim / 2)
        mask = _prefix_mask(t, start + t, embeds.device)
        nq, nk, hd = cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim, cfg.head_dim
        x = embeds.reshape(b * t, d).clone()  # the residual stream, added to in place
        for i, (layer, (a_qkv, a_o, a_gu, a_down), kv_visual) in enumerate(zip(self.layers, adapters, visual_kv)):
            qkv = layer.qkv(F.rms_norm(x, (d,), layer.norm1, cfg.rms_eps), a_qkv)
            # RoPE on the queries and keys, in place: one complex multiplication
            torch.view_as_complex(qkv[:, :nq + nk].view(b * t, -1, hd // 2, 2)).mul_(rotation)
            k, v = cache.append(i, qkv[:, nq:].view(b, t, 2 * cfg.kv_heads, hd))
            q = qkv[:, :nq].view(b, t, cfg.heads, hd).transpose(1, 2)
            att = F.scaled_dot_product_attention(q, k, v, is_causal=mask is None and t > 1, attn_mask=mask,
                                                 scale=1.0, enable_gqa=True)
            layer.o(att.transpose(1, 2).reshape(b * t, d), a_o, residual=x)
            if kv_visual is not None:
                x = x + layer.reinject(x, b, kv_visual)
            gu = layer.gate_up(F.rms_norm(x, (d,), layer.norm2, cfg.rms_eps), a_gu)
            layer.down(F.silu(gu[:, :layer.ffn]) * gu[:, layer.ffn:], a_down, residual=x)
        cache.length = start + t
        return F.rms_norm(x, (d,), self.norm_weight, cfg.rms_eps).view(b, t, d)

    # --- one request's adapters ---------------------------------------------------------------------------------
    def _bind(self, s: float | None, expert: int, visual: torch.Tensor | None):
        """(per-layer adapters, per-layer visual keys/values), kept while the same request decodes."""
        if self._adapter_key != (s, expert):
            gate = (torch.zeros(self.cfg.hlora_rank) if s is None
                    else self.scale_gate(torch.tensor([s]))[0].detach())
            self._adapters = [tuple(m.request(gate, expert) for m in layer.matrices()) for layer in self.layers]
            self._adapter_key = (s, expert)
        first = None if visual is None else visual[:1]
        if self._visual_kv is None or not _same(first, self._visual_key):
            self._visual_kv = [layer.reinject.keys_values(first) if layer.reinject is not None and first is not None
                               else None for layer in self.layers]
            self._visual_key = first
        return self._adapters, self._visual_kv

    @property
    def nbytes(self) -> int:
        """Bytes of every tensor the packed LM holds between requests."""
        total = self.embedding.nbytes + (self.extra_embed.numel() + self.norm_weight.numel()) * 4
        total += self.screen.nbytes if self.screen is not None else 0
        for layer in self.layers:
            total += sum(m.nbytes for m in layer.matrices()) + (layer.norm1.numel() + layer.norm2.numel()) * 4
            total += layer.reinject.nbytes if layer.reinject is not None else 0
        return total


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.shape == b.shape and torch.equal(a, b)
