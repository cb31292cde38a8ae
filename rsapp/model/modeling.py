"""RsappVLM: vision tower + SSE-U + G-MoE/CS-HLoRA language model, with save/load from transformers.

Sequence layout: [visual tokens of image 1 (, image 2)] + text tokens of "{task} {question}<ans>{answer}<eos>".
The prompt's `<image>` tokens mark where each image's visual tokens go (always the start of the sequence).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from rsapp.model.config import RsappConfig
from rsapp.model.cs_hlora import ScaleGate
from rsapp.model.lm import DecoderLayer, KVCache, RMSNorm
from rsapp.model.sse_u import SSEU
from rsapp.model.vision import VisionTower, VisualTokens


@dataclass
class Encoded:
    """Visual tokens of one request (one or two images), ready for the LM."""

    tokens: torch.Tensor  # (B, n_images · N, hidden)
    s_mu: torch.Tensor  # (B,) SSE-U mean of log10 GSD (first image)
    s_logvar: torch.Tensor  # (B,)
    tokens_total: int
    tokens_kept: int


class RsappVLM(PreTrainedModel):
    config_class = RsappConfig
    base_model_prefix = "rsapp"
    main_input_name = "input_ids"

    def __init__(self, config: RsappConfig):
        super().__init__(config)
        d = config.hidden_size
        self.vision = VisionTower(config)
        self.sse_u = SSEU(config.vision_dim, config.sse_hidden)
        self.embed = nn.Embedding(config.vocab_size, d)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.image_index = nn.Embedding(2, d)  # first / second date
        nn.init.normal_(self.image_index.weight, std=0.02)
        self.scale_gate = ScaleGate(config.hlora_tiers, config.hlora_tau, config.hlora_a, config.hlora_learn_tau)
        self.layers = nn.ModuleList(DecoderLayer(config, i in config.inject_layers) for i in range(config.num_layers))
        self.norm = RMSNorm(d)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.post_init()

    def _init_weights(self, module):
        """Every block initialises itself in its constructor (zero-initialised gates and LoRA B included)."""

    # --- vision ---------------------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> Encoded:
        """(B, n, 3, S, S) chips → visual tokens of the n images side by side, and SSE-U on the first one."""
        return self._join([self.vision(images[:, i]) for i in range(images.shape[1])])

    def encode_stream(self, views: list[tuple[torch.Tensor, object, int]]) -> Encoded:
        """UHR path, batch of one: per image (global view (1, 3, I, I), iterable of tile batches, tiles per side)."""
        return self._join([self.vision.forward_stream(glob, tiles, per_side) for glob, tiles, per_side in views])

    def _join(self, views: list[VisualTokens]) -> Encoded:
        tokens = torch.cat([vt.tokens + self.image_index.weight[i] for i, vt in enumerate(views)], 1)
        mu, logvar = self.sse_u(views[0].pooled)
        return Encoded(tokens, mu, logvar, sum(v.tokens_total for v in views), sum(v.tokens_kept for v in views))

    # --- language model -------------------------------------------------------------------------------------
    def _run_layers(self, h, g, s, positions, mask, cache, visual, head_from: int | None = None):
        """Decoder stack; returns logits, or (head_from given) the final hidden states from that position on."""
        gate = self.scale_gate(s) if s is not None else None
        for i, layer in enumerate(self.layers):
            kv = None
            if layer.reinject is not None:
                if cache is not None and i in cache.cross:
                    kv = cache.cross[i]
                else:
                    kv = layer.reinject.visual_kv(visual)
                    if cache is not None:
                        cache.cross[i] = kv
            h = layer(h, g, gate, positions, mask, cache, i, kv, None)
        if head_from is not None:
            return h[:, head_from:]
        return self.lm_head(self.norm(h))

    def text_embeddings(self, encoded: Encoded, input_ids: torch.Tensor, n_images: int) -> torch.Tensor:
        """Visual tokens in place of the leading `<image>` tokens, then the text."""
        if n_images and not bool((input_ids[:, :n_images] == self.config.image_token_id).all()):
            raise ValueError("prompts must start with one <image> token per image")
        return torch.cat([encoded.tokens, self.embed(input_ids[:, n_images:])], 1)

    def forward(self, images, input_ids, attention_mask, labels=None, g=None, s=None, s_target=None,
                sse_weight: float = 1.0, use_predicted_s=None):
        """Training forward: LM cross-entropy on answer tokens (+ SSE-U Gaussian NLL where s_target is known).

        use_predicted_s (B,) bool: rows whose CS-HLoRA gate takes SSE-U's own (detached) prediction instead of
        s, so the model also learns to work when metadata is missing.
        """
        n = images.shape[1]
        enc = self.encode(images)
        if s is not None and use_predicted_s is not None:
            s = torch.where(use_predicted_s, enc.s_mu.detach(), s)
        h = self.text_embeddings(enc, input_ids, n)
        b, t_vis = h.shape[0], enc.tokens.shape[1]
        valid = torch.cat([torch.ones(b, t_vis, dtype=torch.bool), attention_mask[:, n:].bool()], 1)
        total = valid.shape[1]
        causal = torch.ones(total, total, dtype=torch.bool).tril()
        mask = (causal[None] & valid[:, None, :])[:, None]
        # Only text positions are scored: the head runs from the last visual token on.
        hidden = self._run_layers(h, g, s, torch.arange(total), mask, None, enc.tokens, head_from=t_vis - 1)
        logits = self.lm_head(self.norm(hidden))  # (B, text + 1, V): position p predicts text token p + 1
        out = {"logits": logits, "s_mu": enc.s_mu, "s_logvar": enc.s_logvar}
        if labels is not None:
            text_logits = logits[:, :-1]
            lm_loss = F.cross_entropy(text_logits.reshape(-1, text_logits.shape[-1]),
                                      labels[:, n:].reshape(-1), ignore_index=-100)
            loss = lm_loss
            out["lm_loss"] = lm_loss
            if s_target is not None:
                known = torch.isfinite(s_target)
                if known.any():
                    sse = SSEU.nll(enc.s_mu[known], enc.s_logvar[known], s_target[known])
                    out["sse_loss"] = sse
                    loss = loss + sse_weight * sse
            out["loss"] = loss
        return out

    @torch.no_grad()
    def generate_answer(self, encoded: Encoded, prompt_ids: torch.Tensor, n_images: int, g: int, s: float | None,
                        max_new_tokens: int = 64, allowed=None) -> list[int]:
        """Greedy decoding with a KV cache for a batch of one. `allowed(generated) -> bool mask | None` may
        restrict the next token (structured outputs)."""
        h = self.text_embeddings(encoded, prompt_ids, n_images)
        cache = KVCache(len(self.layers))
        gt = torch.tensor([g])
        st = None if s is None else torch.tensor([float(s)])
        logits = self._run_layers(h, gt, st, torch.arange(h.shape[1]), None, cache, encoded.tokens)[:, -1]
        out: list[int] = []
        for _ in range(max_new_tokens):
            if allowed is not None:
                m = allowed(out)
                if m is not None:
                    logits = logits.masked_fill(~m, float("-inf"))
            nxt = int(logits.argmax(-1))
            if nxt == self.config.eos_token_id:
                break
            out.append(nxt)
            pos = torch.tensor([cache.length])
            logits = self._run_layers(self.embed(torch.tensor([[nxt]])), gt, st, pos, None, cache,
                                      encoded.tokens)[:, -1]
        return out
