"""RsappVLM: vision tower + SSE-U + G-MoE/CS-HLoRA language model, with save/load from transformers.

Sequence layout: [visual tokens of image 1 (, image 2)] + text tokens of "{task} {question}<ans>{answer}<eos>".
The prompt's `<image>` tokens mark where each image's visual tokens go (always the start of the sequence).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from transformers import PreTrainedModel

from rsapp.model.boxes import (BoxHead, BoxSelector, choose, class_mass, level_proposals, proposal_features,
                               selection_candidates, snap_to_region)
from rsapp.model.config import RsappConfig
from rsapp.model.cs_hlora import ScaleGate
from rsapp.model.lm import DecoderLayer, KVCache, RMSNorm, zero_linear
from rsapp.model.sse_u import SSEU
from rsapp.model.vision import VisionTower, VisualTokens, fourier_positions

NO_CURSOR = -1  # cursor value of tokens that are not inside a descriptor answer


@dataclass
class Encoded:
    """Visual tokens of one request (one or two images), ready for the LM."""

    tokens: torch.Tensor  # (B, n_images · N, hidden)
    s_mu: torch.Tensor  # (B,) SSE-U mean of log10 GSD (first image)
    s_logvar: torch.Tensor  # (B,)
    tokens_total: int
    tokens_kept: int
    views: list[VisualTokens] | None = None  # per image, for the training-only dense loss
    cells: torch.Tensor | None = None  # (B, 2, K, n, n) DenseHead class probabilities per image (2nd zero if one)
    change: torch.Tensor | None = None  # (B, n, n) largest class-probability difference between the dates (pairs)


class DenseHead(nn.Module):
    """Training aid: from the fused global tokens and from every local token, predict which classes cover each
    descriptor cell. The LM's loss alone teaches a from-scratch vision tower where things are far too slowly;
    this exact, dense signal (free in a generated corpus) does it directly."""

    def __init__(self, cfg: RsappConfig):
        super().__init__()
        self.n, self.k = cfg.seg_grid, cfg.dense_classes
        self.ratio = max(1, cfg.seg_grid // cfg.grid)
        self.glob = nn.Linear(cfg.vision_dim, self.ratio**2 * self.k)
        self.local = nn.Linear(cfg.vision_dim, self.k)

    def cell_logits(self, fused: torch.Tensor) -> torch.Tensor:
        """(B, g², vision_dim) fused global tokens → (B, K, n, n) class logits per descriptor cell."""
        b, r, g = fused.shape[0], self.ratio, self.n // self.ratio
        logits = self.glob(fused).view(b, g, g, r, r, self.k).permute(0, 5, 1, 3, 2, 4)
        return logits.reshape(b, self.k, self.n, self.n)

    def loss(self, vt: VisualTokens, target: torch.Tensor) -> torch.Tensor:
        """target (B, K, n, n): 0/1, or anything else where the labels do not say → mean binary cross-entropy
        of both heads over the known entries."""
        cell = (vt.local_xy[0].clamp(0, 1 - 1e-6) * self.n).long()
        local_target = target.flatten(2)[:, :, cell[:, 1] * self.n + cell[:, 0]]
        return (self._bce(self.cell_logits(vt.fused), target)
                + self._bce(self.local(vt.local).transpose(1, 2), local_target))

    @staticmethod
    def _bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        known = (target <= 1).float()
        loss = F.binary_cross_entropy_with_logits(logits, target.clamp(max=1), weight=known, reduction="sum")
        return loss / known.sum().clamp(min=1)


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
        dense = bool(config.dense_classes)  # the aids below read the DenseHead's maps
        # Descriptor cursor: while a [SEG] answer is written, each token also carries the cell (row, col) the
        # next run starts at, in the same Fourier basis as the visual tokens' positions (zero at start).
        self.cursor_pos = zero_linear(32, d, bias=True)
        # ... and the DenseHead's class probabilities of its row from that cell on, for both dates: what the next
        # run is (its class, where it ends, whether the dates differ) is then read off directly.
        self.cursor_cells = zero_linear(2 * config.dense_classes * config.seg_grid, d) if dense else None
        # ... and, in the same way, the row ahead of the class the question asks for (seg_class) and of the change
        # between the dates: the two maps a binary descriptor copies.
        self.cursor_target = zero_linear(2 * config.seg_grid, d) if dense else None
        # ... and how long a run of each kind (cells above / below one half) would be from the cursor on, for both
        # maps, one-hot: a run's count is then a lookup, not a search along the row.
        self.cursor_runs = zero_linear(4 * (config.seg_grid + 1), d) if dense else None
        # Where the asked class is (seg_class: [SEG] and [VG] questions), on every text token: its cell map and its
        # row and column profiles with their running maxima from either side, so a box's edges (the first and
        # last rows and columns the class reaches) are a linear read-out.
        self.class_hint = zero_linear(config.seg_grid * (config.seg_grid + 6), d) if dense else None
        self.dense_head = DenseHead(config) if dense else None
        # Instances for [VG]: proposals from the box head, picked by the LM's state at <ans> (rsapp.model.boxes).
        self.box_head = BoxHead(config) if dense else None
        self.box_select = BoxSelector(d) if dense else None
        # Coordinates: a token that spells an integer 0–100 (box corners) also carries that value in the visual
        # tokens' Fourier basis, on the way in and on the way out, so reading a place off the image and writing
        # it as a number is a near-linear map (zero at start; which tokens are numbers: set_number_tokens).
        self.register_buffer("number_value", torch.full((config.vocab_size,), -1, dtype=torch.long))
        self.number_in = zero_linear(16, d, bias=True)
        self.number_out = zero_linear(16, d)
        self.post_init()

    def _init_weights(self, module):
        """Every block initialises itself in its constructor (zero-initialised gates and LoRA B included)."""

    @classmethod
    def load(cls, folder) -> "RsappVLM":
        """A saved model (fp32). Modules newer than the checkpoint keep their constructor initialisation (zero where
        they add to the residual stream, so an older checkpoint behaves as it did); from_pretrained would leave
        them uninitialised."""
        folder = Path(folder)
        model = cls(RsappConfig.from_pretrained(folder))
        state = load_file(str(folder / "model.safetensors"))
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected:
            raise ValueError(f"{folder} has weights this architecture does not know: {unexpected[:5]}")
        model.missing_modules = sorted({k.split(".")[0] for k in missing})
        return model

    def set_number_tokens(self, tokenizer) -> None:
        """Mark the vocabulary entries that spell an integer 0–100 (with or without the leading-space marker)."""
        values = torch.full((self.config.vocab_size,), -1, dtype=torch.long)
        for text, i in tokenizer.get_vocab().items():
            digits = text.lstrip("\u0120")
            if digits.isascii() and digits.isdigit() and int(digits) <= 100 and i < len(values):
                values[i] = int(digits)
        self.number_value.copy_(values)

    def _number_features(self, values: torch.Tensor) -> torch.Tensor:
        return fourier_positions(torch.stack([values, values], -1).float() / 100)[..., :16]  # x half: sin, cos

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Final norm + LM head; number tokens also score h against their value's features."""
        h = self.norm(h)
        logits = self.lm_head(h)
        ids = (self.number_value >= 0).nonzero().squeeze(1)
        if len(ids):
            out_emb = self.number_out(self._number_features(self.number_value[ids]))  # (n_numbers, d)
            logits = logits.index_add(-1, ids, h @ out_emb.T)
        return logits

    # --- vision ---------------------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> Encoded:
        """(B, n, 3, S, S) chips → visual tokens of the n images side by side, and SSE-U on the first one."""
        return self._join([self.vision(images[:, i]) for i in range(images.shape[1])])

    def encode_stream(self, views: list[tuple[torch.Tensor, torch.Tensor, object, int]]) -> Encoded:
        """UHR path, batch of one: per image (global view (1, 3, I, I), the image at chip size (1, 3, C, C), iterable
        of tile batches, tiles per side)."""
        return self._join([self.vision.forward_stream(*view) for view in views])

    def _join(self, views: list[VisualTokens]) -> Encoded:
        tokens = torch.cat([vt.tokens + self.image_index.weight[i] for i, vt in enumerate(views)], 1)
        mu, logvar = self.sse_u(views[0].pooled, views[0].box_view)
        cells = change = None
        if self.dense_head is not None:
            # Detached: the LM and the box head read these maps as inputs (cursor, class hint, extents), and their
            # losses must not pull the head off calibrated probabilities (runs are cut at 0.5); the head learns
            # from DenseHead.loss alone.
            probs = [torch.sigmoid(self.dense_head.cell_logits(vt.fused)).detach() for vt in views]
            cells = torch.stack(probs + [torch.zeros_like(probs[0])] * (2 - len(probs)), 1)
            change = (probs[1] - probs[0]).abs().amax(1) if len(probs) == 2 else torch.zeros_like(probs[0][:, 0])
        return Encoded(tokens, mu, logvar, sum(v.tokens_total for v in views), sum(v.tokens_kept for v in views),
                       views, cells, change)

    def box_maps(self, enc: Encoded, image: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """BoxHead's (centre logits, geometry) per level of one image of the request: only [VG] and training need
        them."""
        vt = enc.views[image]
        return self.box_head(vt.fused, vt.local_grid, enc.cells[:, image], vt.box_view)

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
        return self.head(h)

    def embed_text(self, ids: torch.Tensor, cursor: torch.Tensor | None = None, encoded: Encoded | None = None,
                   seg_class: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings; with seg_class (B,) (the class the question asks for, an index into
        config.dense_class_names, -1 none) the class hint on every token; and where the descriptor cursor
        (B, T, 2) (row, col) is not NO_CURSOR, its place and the cursor's row from its column on of: the class
        probabilities (Encoded.cells), the probability of the asked class and the change map."""
        h = self.embed(ids)
        value = self.number_value[ids]
        h = h + self.number_in(self._number_features(value.clamp(min=0))) * (value >= 0)[..., None]
        has_cells = encoded is not None and encoded.cells is not None and self.cursor_cells is not None
        asked = None
        if has_cells:
            cells = encoded.cells
            if seg_class is None:
                seg_class = torch.full((cells.shape[0],), -1, device=cells.device)
            asked = cells[torch.arange(cells.shape[0], device=cells.device), 0, seg_class.clamp(min=0)] * (seg_class >= 0)[:, None, None]
            h = h + self.class_hint(self._class_profiles(asked))[:, None]
        if cursor is None:
            return h
        n = self.config.seg_grid
        valid = cursor[..., :1] != NO_CURSOR
        h = h + self.cursor_pos(fourier_positions((cursor.flip(-1).float() + 0.5) / n)) * valid
        if has_cells:
            h = h + self.cursor_cells(self._row_ahead(encoded.cells, cursor)) * valid
            maps = torch.stack([asked, encoded.change], 1)[:, :, None]  # (B, 2, 1, n, n)
            ahead = self._row_ahead(maps, cursor)
            h = h + (self.cursor_target(ahead) + self.cursor_runs(self._run_lengths(ahead, cursor, n))) * valid
        return h

    @staticmethod
    def _class_profiles(asked: torch.Tensor) -> torch.Tensor:
        """(B, n, n) probabilities of the asked class → (B, n·(n + 6)): the map, its column and row profiles
        (max over the other axis) and each profile's running maximum from the start and from the end, scaled by
        1/√(number of features)."""
        feats = [asked.flatten(1)]
        for profile in (asked.amax(1), asked.amax(2)):  # columns, rows
            feats += [profile, profile.cummax(1).values, profile.flip(1).cummax(1).values.flip(1)]
        feats = torch.cat(feats, 1)
        # Hundreds of inputs near 1 at once: unscaled, Adam's first steps on class_hint swamped the embeddings.
        return feats / feats.shape[1] ** 0.5

    @staticmethod
    def _run_lengths(ahead: torch.Tensor, cursor: torch.Tensor, n: int) -> torch.Tensor:
        """(B, T, n·2) rows ahead of two maps → (B, T, 4·(n + 1)): one-hot lengths of the runs of cells > 0.5 and
        ≤ 0.5 that start at the cursor, per map (0 where the row is over)."""
        rows = ahead.view(*ahead.shape[:2], n, 2)
        inside = ((cursor[..., 1:2] + torch.arange(n, device=cursor.device)) < n) & (cursor[..., :1] >= 0) & (cursor[..., :1] < n)
        on = (rows > 0.5) & inside[..., None]
        off = (rows <= 0.5) & inside[..., None]
        lengths = torch.cat([on.long().cumprod(2).sum(2), off.long().cumprod(2).sum(2)], -1)  # (B, T, 4)
        return F.one_hot(lengths, n + 1).flatten(2).float()

    @staticmethod
    def _row_ahead(cells: torch.Tensor, cursor: torch.Tensor) -> torch.Tensor:
        """(B, I, K, n, n) cell maps, (B, T, 2) cursor → (B, T, n·I·K): cells (row, col + i), i < n,
        zero past the row's end or when the cursor is outside the grid."""
        n = cells.shape[-1]
        rows = cursor[..., 0]
        cols = cursor[..., 1:2] + torch.arange(n, device=cursor.device)
        inside = (cols < n) & ((rows >= 0) & (rows < n))[..., None] & (cursor[..., 1:2] >= 0)
        grid = cells.permute(0, 3, 4, 1, 2)  # (B, row, col, image, class)
        batch = torch.arange(cells.shape[0], device=cells.device)[:, None, None]
        ahead = grid[batch, rows.clamp(0, n - 1)[..., None], cols.clamp(0, n - 1)]  # (B, T, n, 2, K)
        return (ahead * inside[..., None, None]).flatten(2)

    def text_embeddings(self, encoded: Encoded, input_ids: torch.Tensor, n_images: int,
                        cursor: torch.Tensor | None = None, seg_class: torch.Tensor | None = None) -> torch.Tensor:
        """Visual tokens in place of the leading `<image>` tokens, then the text (cursor aligned with the text)."""
        if n_images and not bool((input_ids[:, :n_images] == self.config.image_token_id).all()):
            raise ValueError("prompts must start with one <image> token per image")
        return torch.cat([encoded.tokens, self.embed_text(input_ids[:, n_images:], cursor, encoded, seg_class)], 1)

    def forward(self, images, input_ids, attention_mask, labels=None, g=None, s=None, s_target=None,
                sse_weight: float = 1.0, use_predicted_s=None, cursor=None, dense=None, dense_weight: float = 1.0,
                seg_class=None, soft_numbers=None, number_weight: float = 0.5, boxes=None, box_weight: float = 1.0,
                select=None, select_weight: float = 0.5, select_missed: bool = True):
        """Training forward: LM cross-entropy on answer tokens (+ SSE-U Gaussian NLL where s_target is known).

        use_predicted_s (B,) bool: rows whose CS-HLoRA gate takes SSE-U's own (detached) prediction instead of
        s, so the model also learns to work when metadata is missing.
        cursor (B, T - n, 2): descriptor cursor of the text tokens. dense (B, n, K, grid, grid): the dense
        auxiliary target of each image (DenseHead). soft_numbers (B,) bool: rows whose number answer tokens (box
        corners) also pay soft_number_loss, so a corner one off costs less than one far off. boxes: BoxHead
        targets per level (rsapp.model.boxes.level_targets, each stacked (B, n_images, ...)). select (B,) of None or
        (instances of the asked class, answer boxes), chip fractions: rows whose <ans> state learns to pick the
        answer among the proposals (BoxSelector); with select_missed the instances the head missed join them.
        """
        n = images.shape[1]
        enc = self.encode(images)
        if s is not None and use_predicted_s is not None:
            s = torch.where(use_predicted_s, enc.s_mu.detach(), s)
        h = self.text_embeddings(enc, input_ids, n, cursor, seg_class)
        b, t_vis = h.shape[0], enc.tokens.shape[1]
        dev = h.device
        valid = torch.cat([torch.ones(b, t_vis, dtype=torch.bool, device=dev), attention_mask[:, n:].bool()], 1)
        total = valid.shape[1]
        causal = torch.ones(total, total, dtype=torch.bool, device=dev).tril()
        mask = (causal[None] & valid[:, None, :])[:, None]
        # Only text positions are scored: the head runs from the last visual token on.
        hidden = self._run_layers(h, g, s, torch.arange(total, device=dev), mask, None, enc.tokens, head_from=t_vis - 1)
        logits = self.head(hidden)  # (B, text + 1, V): position p predicts text token p + 1
        out = {"logits": logits, "s_mu": enc.s_mu, "s_logvar": enc.s_logvar}
        if labels is not None:
            text_logits = logits[:, :-1]
            lm_loss = F.cross_entropy(text_logits.reshape(-1, text_logits.shape[-1]),
                                      labels[:, n:].reshape(-1), ignore_index=-100)
            loss = lm_loss
            out["lm_loss"] = lm_loss
            if soft_numbers is not None and bool(soft_numbers.any()):
                soft = self.soft_number_loss(text_logits[soft_numbers], labels[soft_numbers, n:])
                out["number_loss"] = soft
                loss = loss + number_weight * soft
            if s_target is not None:
                known = torch.isfinite(s_target)
                if known.any():
                    sse = SSEU.nll(enc.s_mu[known], enc.s_logvar[known], s_target[known])
                    out["sse_loss"] = sse
                    loss = loss + sse_weight * sse
            if dense is not None and self.dense_head is not None:
                aux = sum(self.dense_head.loss(vt, dense[:, i].float()) for i, vt in enumerate(enc.views)) / n
                out["dense_loss"] = aux
                loss = loss + dense_weight * aux
            maps = [self.box_maps(enc, i) for i in range(n)] if boxes is not None and self.box_head is not None else None
            if maps is not None:
                aux = sum(BoxHead.loss(*level, {k: v[:, i] for k, v in target.items()})
                          for i in range(n) for level, target in zip(maps[i], boxes)) / n
                out["box_loss"] = aux
                loss = loss + box_weight * aux
            if maps is not None and select is not None and select_weight and any(x is not None for x in select):
                sel = self._selection_loss(maps[0], enc.cells[:, 0], hidden, input_ids[:, n:], seg_class, select,
                                           select_missed)
                if sel is not None:
                    out["select_loss"] = sel
                    loss = loss + select_weight * sel
            out["loss"] = loss
        return out

    def _selection_loss(self, maps, cells: torch.Tensor, hidden: torch.Tensor, text_ids: torch.Tensor, seg_class,
                        select, add_missed: bool = True):
        """BCE + listwise cross-entropy of BoxSelector over each row's candidates (its proposals + the instances they
        missed); maps: the first image's BoxHead levels (box_maps), cells its DenseHead probabilities (B, K, n, n)."""
        rng = np.random.default_rng(int(torch.randint(1 << 30, ())))
        ans = (text_ids == self.config.answer_token_id).int().argmax(1)
        losses = []
        for row, item in enumerate(select):
            if item is None or int(seg_class[row]) < 0:
                continue
            boxes, scores = level_proposals(maps, int(seg_class[row]), row)
            boxes, scores, labels = selection_candidates(boxes.cpu(), scores.cpu(), *item, rng, add_missed)
            if not len(boxes) or not labels.any():
                continue
            mass = class_mass(boxes, cells[row, int(seg_class[row])].cpu())
            feats = proposal_features(boxes, scores, mass).to(hidden.device)
            logits = self.box_select(self.norm(hidden[row, 1: ans[row] + 2]), feats)  # text tokens to <ans>
            labels = labels.to(hidden.device)
            # BCE says which to pick (several for "all ..."); the listwise term (the softmax mass on the answers)
            # says which one *rather than the others*, a signal the many easy negatives no longer drown.
            listwise = torch.logsumexp(logits, 0) - torch.logsumexp(logits.masked_fill(labels == 0, -1e9), 0)
            losses.append(F.binary_cross_entropy_with_logits(logits, labels) + listwise)
        return torch.stack(losses).mean() if losses else None

    @torch.no_grad()
    def select_boxes(self, encoded: Encoded, prompt_ids: torch.Tensor, n_images: int, g: int, s: float | None,
                     seg_class: int) -> list[tuple[float, float, float, float]] | None:
        """[VG] from instances, batch of one: the box head's proposals of the asked class that the selector picks
        from the LM's reading of the question, extended objects snapped to the dense head's region of the class, as
        chip fractions sorted left to right. None when there is no box head, no class asked or no proposal (the LM
        then writes the boxes)."""
        if self.box_head is None or seg_class < 0:
            return None
        boxes, scores = level_proposals(self.box_maps(encoded), seg_class)
        if not len(boxes):
            return None
        h = self.text_embeddings(encoded, prompt_ids, n_images, None, torch.tensor([seg_class]))
        st = None if s is None else torch.tensor([float(s)])
        words = self._run_layers(h, torch.tensor([g]), st, torch.arange(h.shape[1]), None, None, encoded.tokens,
                                 head_from=encoded.tokens.shape[1])[0]  # the prompt's text tokens, to <ans>
        probs = encoded.cells[0, 0, seg_class]
        picked = choose(self.box_select(self.norm(words), proposal_features(boxes, scores, class_mass(boxes, probs))))
        return sorted(snap_to_region(tuple(float(v) for v in boxes[i]), probs.numpy()) for i in picked)

    def soft_number_loss(self, logits: torch.Tensor, labels: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
        """Cross-entropy against a Gaussian (sigma, in units of 0–100) over the number tokens around each number
        label: coordinates are ordinal, the hard label alone treats 41 and 90 as equally wrong for 40."""
        values = self.number_value[labels.clamp(min=0)]
        where = (labels >= 0) & (values >= 0)
        if not bool(where.any()):
            return logits.sum() * 0
        ids = (self.number_value >= 0).nonzero().squeeze(1)
        dist = (self.number_value[ids][None].float() - values[where][:, None].float()) / sigma
        target = torch.softmax(-0.5 * dist**2, -1)  # (M, n_numbers)
        logp = torch.log_softmax(logits[where], -1)[:, ids]
        return -(target * logp).sum(-1).mean()

    @torch.no_grad()
    def generate_answer(self, encoded: Encoded, prompt_ids: torch.Tensor, n_images: int, g: int, s: float | None,
                        max_new_tokens: int = 64, allowed=None, cursor=None, seg_class: int = -1) -> list[int]:
        """Greedy decoding with a KV cache for a batch of one. `allowed(generated) -> bool mask | None` may
        restrict the next token (structured outputs); `cursor(generated) -> (row, col)` is given for descriptor
        answers (the prompt's last token then starts at cell (0, 0))."""
        prompt_cursor = None
        if cursor is not None:
            prompt_cursor = torch.full((1, prompt_ids.shape[1] - n_images, 2), NO_CURSOR)
            prompt_cursor[0, -1] = 0
        asked = torch.tensor([seg_class])
        h = self.text_embeddings(encoded, prompt_ids, n_images, prompt_cursor, asked)
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
            step_cursor = None if cursor is None else torch.tensor([[cursor(out)]])
            logits = self._run_layers(self.embed_text(torch.tensor([[nxt]]), step_cursor, encoded, asked), gt, st,
                                      pos, None, cache, encoded.tokens)[:, -1]
        return out
