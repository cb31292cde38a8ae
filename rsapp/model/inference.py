"""Runtime for v2: load a checkpoint on its pretrained bases, quantize, answer one request.

Knows nothing about maps, files or task codecs: images come in as uint8 arrays, the request as plain fields the
analyst filled from the task registry. Pixel answers ([SEG], the [CCD] change map) come straight from the
dense and change heads at chip resolution; text answers are written by the language model, greedily with a KV
cache; [CLS] and [CCD] answers are the label / sentence of their set the LM scores highest (for [CLS], with the
scene head's probability: both scores summed).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from rsapp.model.quant import choose_path, linear_bytes, quantize
from rsapp.model.vlm import IM_END, RsappVLM, chat_prompt, load_tokenizer
from rsapp.model.tower import VisualTokens, grid_positions, prune
from rsapp.model.vision_model import VisionOutput

MAX_NEW_TOKENS = 48
# Smallest region of a class counted as an instance (m²): a car is ~9 m², a small shed ~10 m².
MIN_INSTANCE_M2 = 8.0


@dataclass(frozen=True)
class Request:
    token: str  # task token, e.g. "[VQA]"
    question: str
    expert: int  # G-MoE expert the router chose
    output: str  # "text", "mask", "boxes" (the task's codec), "count" (instances of dense_class) or "region"
    # ([REF]: say what is in box_px)
    dense_class: str | None = None  # the class the question names, if any
    log10_gsd: float | None = None  # None: SSE-U's prediction gates CS-HLoRA
    labels: tuple[str, ...] = ()  # answer with one of these ([CLS] labels, [CCD] sentences; empty: free text)
    select: str = "all"  # [VG]: which instances (all, largest, smallest, leftmost, rightmost, topmost, …)
    box_px: tuple[float, float, float, float] | None = None  # [REF]: the box asked about, chip pixels


@dataclass
class Generation:
    text: str
    s_mu: float
    s_sigma: float
    s_used: float
    tokens_total: int
    tokens_kept: int
    mask: np.ndarray | None = None  # (H, W) uint8 label index, 0 = background
    mask_labels: list[str] = field(default_factory=lambda: ["others"])
    boxes_px: list[tuple[float, float, float, float]] = field(default_factory=list)
    box_scores: list[float] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0


class Runtime:
    def __init__(self, model: RsappVLM, tokenizer, quant: str, name: str, bytes_fp32: int, bytes_quantized: int):
        self.model = model
        self.tokenizer = tokenizer
        self.quant = quant
        self.name = name
        self.bytes_fp32 = bytes_fp32
        self.bytes_quantized = bytes_quantized
        self.end_id = tokenizer.token_to_id(IM_END)

    @classmethod
    def load(cls, folder: str | Path, quant: str = "auto") -> "Runtime":
        folder = Path(folder)
        model = RsappVLM.load(folder).eval()
        path = choose_path(quant)
        fp32 = linear_bytes(model, "fp32")
        quantized = linear_bytes(model, path)
        return cls(quantize(model, path), load_tokenizer(folder), path, folder.name, fp32, quantized)

    @property
    def config(self):
        return self.model.cfg

    @property
    def image_size(self) -> int:
        return self.config.chip_size

    # --- the request ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, images: list[np.ndarray], req: Request) -> Generation:
        t0 = time.perf_counter()
        if len(images) == 1 and max(images[0].shape[:2]) > self.image_size:
            enc = self.encode_large(images[0])
        else:
            enc = self.model.vision.encode([to_tensor(im) for im in images])
        t1 = time.perf_counter()
        mu = float(enc.s_mu[0])
        sigma = float(torch.exp(0.5 * enc.s_logvar[0]))
        s = mu if req.log10_gsd is None else float(req.log10_gsd)
        gen = Generation(text="", s_mu=mu, s_sigma=sigma, s_used=s, tokens_total=enc.tokens.total,
                         tokens_kept=enc.tokens.tokens.shape[1] * len(images))
        n_new = 0
        if req.output == "mask":
            gen.mask, gen.mask_labels = self.mask(enc, req.dense_class, len(images), images[0].shape[:2])
        elif req.output == "boxes":
            gen.boxes_px, gen.box_scores = self.boxes(enc, req.dense_class, req.select, s, images[0].shape[0])
        elif req.output == "count":
            n = len(self.instances(enc, req.dense_class, s, images[0].shape[0]))
            gen.text = str(n)
        elif req.output == "region":
            gen.text = self.describe_region(enc, req.box_px)
        else:
            ids = self.decode(enc, req, s)
            n_new = len(ids)
            gen.text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
            if len(images) == 2:  # a change question also gets its change map
                gen.mask, gen.mask_labels = self.mask(enc, None, 2)
        gen.timings_s = {"encode": t1 - t0, "decode": time.perf_counter() - t1, "new_tokens": n_new}
        return gen

    def encode_large(self, rgb: np.ndarray) -> VisionOutput:
        """A chip larger than the model's input (the --detail path, up to 8192 px), GeoLLaVA-8K style: scene,
        GSD and tag from the global view; every tile at native resolution through the tower, its tokens pooled
        into one set cut to the budget, its class probabilities stitched at the heads' stride 4. Memory stays
        bounded by the tile, the tokens and a quarter-resolution probability map."""
        vision, size = self.model.vision, self.image_size
        enc = vision.encode([area_resize(rgb, size)])
        h, w = rgb.shape[:2]
        dense = np.zeros((len(self.config.vision.dense_classes), -(-h // 4), -(-w // 4)), np.float16)
        tokens, positions = [], []
        for y in range(0, h, size):
            for x in range(0, w, size):
                tile = np.zeros((size, size, 3), np.uint8)
                part = rgb[y:y + size, x:x + size]
                tile[:part.shape[0], :part.shape[1]] = part
                levels = vision.tower.pyramid(to_tensor(tile))
                probs = torch.sigmoid(vision.dense_head(levels))[0].numpy()  # stride 4
                ph, pw = -(-part.shape[0] // 4), -(-part.shape[1] // 4)
                dense[:, y // 4:y // 4 + ph, x // 4:x // 4 + pw] = probs[:, :ph, :pw]
                grid = vision.tower.fusion(levels)[0]  # (D, g, g)
                g = grid.shape[-1]
                tokens.append(grid.flatten(1).t())
                pos = grid_positions(g, g) * (size * (g - 1) / g) + 0.5 * size / g
                positions.append((pos + torch.tensor([y, x])) / torch.tensor([h, w]))
        cfg = self.config.vision
        kept, kept_pos = prune(torch.cat(tokens), torch.cat(positions), cfg.token_budget, cfg.background_clusters,
                               cfg.background_share)
        enc.tokens = VisualTokens(kept[None], kept_pos[None], sum(t.shape[0] for t in tokens))
        enc.dense = torch.from_numpy(dense)[None]  # quarter resolution: mask() scales it to the chip
        return enc

    def mask(self, enc: VisionOutput, name: str | None, n_images: int, chip_shape: tuple[int, int] | None = None
             ) -> tuple[np.ndarray, list[str]]:
        """The pixel answer: the named class (one image), every class where it wins (none named), or the
        change (two dates; of the named class when one is named)."""
        classes = list(self.config.vision.dense_classes)
        t = self.config.mask_threshold
        dense = enc.dense[0].numpy()
        if chip_shape is not None and dense.shape[1:] != chip_shape:  # the quarter-resolution map of a large chip
            rows = np.minimum(np.arange(chip_shape[0]) // 4, dense.shape[1] - 1)
            cols = np.minimum(np.arange(chip_shape[1]) // 4, dense.shape[2] - 1)
            dense = dense[:, rows[:, None], cols[None, :]]
        if n_images == 2:
            change = enc.change[0].numpy() > t
            if name in classes:
                k = classes.index(name)
                either = (dense[k] > t) | (enc.dense_after[0, k].numpy() > t)
                return (change & either).astype(np.uint8), ["others", name]
            return change.astype(np.uint8), ["others", "change"]
        if name in classes:
            return (dense[classes.index(name)] > t).astype(np.uint8), ["others", name]
        best = dense.argmax(0)
        labels = np.where(dense.max(0) > t, best + 1, 0).astype(np.uint8)
        return labels, ["others"] + classes

    def instances(self, enc: VisionOutput, name: str | None, log10_gsd: float, chip_px: int) -> list:
        """Instances of a dense class: connected regions of its pixel mask of at least MIN_INSTANCE_M2, as
        (box in chip px, area in px of the map, mean probability)."""
        classes = list(self.config.vision.dense_classes)
        if name not in classes:
            return []
        prob = enc.dense[0, classes.index(name)].numpy().astype(np.float32)
        scale = chip_px / prob.shape[0]  # a large chip's map is at quarter resolution
        min_px = max(4.0, MIN_INSTANCE_M2 / (10 ** log10_gsd * scale) ** 2)
        regions, _ = ndimage.label(prob > self.config.mask_threshold)
        found = []
        for i, sl in enumerate(ndimage.find_objects(regions), start=1):
            if sl is None:
                continue
            area = int((regions[sl] == i).sum())
            if area < min_px:
                continue
            box = tuple(scale * float(v) for v in (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop))
            found.append((box, area, float(prob[sl][regions[sl] == i].mean())))
        return found

    def boxes(self, enc: VisionOutput, name: str | None, select: str, log10_gsd: float, chip_px: int
              ) -> tuple[list, list]:
        """[VG]: the instances of the named class, then the selection the phrase asks for (largest, …)."""
        picked = select_instances(self.instances(enc, name, log10_gsd, chip_px), select)
        return [b for b, _, _ in picked], [round(sc, 3) for _, _, sc in picked]

    def describe_region(self, enc: VisionOutput, box) -> str:
        """[REF]: the dense class covering most of the box, with how much of it."""
        if box is None:
            return "no box given"
        dense = enc.dense[0].numpy() > self.config.mask_threshold
        h, w = dense.shape[1:]
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        x0, x1 = max(0, min(x0, w - 1)), max(1, min(x1, w))
        y0, y1 = max(0, min(y0, h - 1)), max(1, min(y1, h))
        share = dense[:, y0:y1, x0:x1].mean((1, 2))
        if share.max() < 0.1:
            return "nothing the model recognises"
        k = int(share.argmax())
        return f"{self.config.vision.dense_classes[k]} ({share[k]:.0%} of the box)"

    # --- text -----------------------------------------------------------------------------------------------
    def prefill(self, enc: VisionOutput, req: Request, s: float):
        """The prompt through the LM: (last hidden state, KV cache, gate s, visual tokens for re-injection)."""
        model = self.model
        n_images = 2 if enc.tokens_after is not None else 1
        blocks = model.visual_embeds(enc)
        prompt = self.tokenizer.encode(chat_prompt(f"{req.token} {req.question}".strip(), n_images)).ids
        visual = torch.cat(blocks)[None]
        cache = model.lm.new_cache()
        gate_s = torch.tensor([s])
        hidden = model.lm(model.embed_prompt(prompt, blocks), gate_s, req.expert, cache, visual)
        return hidden[0, -1], cache, gate_s, visual

    def decode(self, enc: VisionOutput, req: Request, s: float) -> list[int]:
        """Greedy answer with the KV cache; with req.labels, the label the LM and the scene head agree on."""
        if req.labels:
            return self.tokenizer.encode(self.choose_label(enc, req, s)).ids
        model = self.model
        last, cache, gate_s, visual = self.prefill(enc, req, s)
        out: list[int] = []
        for _ in range(MAX_NEW_TOKENS):
            nxt = int(model.lm.logits(last).argmax())
            if nxt == self.end_id:
                break
            out.append(nxt)
            last = model.lm(model.lm.embed(torch.tensor([[nxt]])), gate_s, req.expert, cache, visual)[0, -1]
        return out

    def choose_label(self, enc: VisionOutput, req: Request, s: float) -> str:
        """Every label scored as the LM's log-likelihood of writing it (and ending the turn), plus the scene head's
        log-probability for a scene label (a product of the two experts); one batched pass over the labels."""
        model = self.model
        last, cache, gate_s, visual = self.prefill(enc, req, s)
        seqs = [self.tokenizer.encode(label + IM_END).ids for label in req.labels]
        width = max(len(q) for q in seqs)
        ids = torch.tensor([q + [self.end_id] * (width - len(q)) for q in seqs])
        n = len(seqs)
        cache.keys = [k.expand(n, -1, -1, -1) for k in cache.keys]
        cache.values = [v.expand(n, -1, -1, -1) for v in cache.values]
        hidden = model.lm(model.lm.embed(ids), gate_s.expand(n), req.expert, cache, visual.expand(n, -1, -1))
        logp = torch.cat([model.lm.logits(last).log_softmax(-1).expand(n, -1)[:, None],
                          model.lm.logits(hidden[:, :-1]).log_softmax(-1)], 1)  # (n, width, vocab)
        picked = logp.gather(2, ids[..., None])[..., 0]
        lengths = torch.tensor([len(q) for q in seqs])
        score = (picked * (torch.arange(width)[None] < lengths[:, None])).sum(1)
        scenes = list(self.config.vision.scene_classes)
        head = enc.scene[0].log()
        score = score + torch.tensor([float(head[scenes.index(lb)]) if lb in scenes else 0.0 for lb in req.labels])
        return req.labels[int(score.argmax())]


SELECTORS = {
    "largest": lambda f: max(f, key=lambda x: x[1]),
    "smallest": lambda f: min(f, key=lambda x: x[1]),
    "leftmost": lambda f: min(f, key=lambda x: x[0][0] + x[0][2]),
    "rightmost": lambda f: max(f, key=lambda x: x[0][0] + x[0][2]),
    "topmost": lambda f: min(f, key=lambda x: x[0][1] + x[0][3]),
    "bottommost": lambda f: max(f, key=lambda x: x[0][1] + x[0][3]),
}


def select_instances(found: list, select: str) -> list:
    if not found:
        return []
    if select in SELECTORS:
        return [SELECTORS[select](found)]
    return sorted(found, key=lambda x: (x[0][1], x[0][0]))


def area_resize(rgb: np.ndarray, size: int) -> torch.Tensor:
    """Area-average a big (H, W, 3) uint8 chip to (1, 3, size, size) in [0, 1], a band of rows at a time."""
    rows = np.linspace(0, rgb.shape[0], size + 1).round().astype(int)
    cols = np.linspace(0, rgb.shape[1], size + 1).round().astype(int)
    out = np.zeros((size, size, 3), np.float32)
    for i in range(size):
        band = rgb[rows[i]:rows[i + 1]].astype(np.float32).mean(0)
        out[i] = np.add.reduceat(band, cols[:-1], axis=0) / np.diff(cols)[:, None]
    return torch.from_numpy(out).permute(2, 0, 1)[None] / 255.0
