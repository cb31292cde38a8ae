"""Load a checkpoint (any size of this architecture), quantize it, and turn pictures + a prompt into text.

Knows nothing about maps or files beyond its own weights folder: images come in as uint8 arrays.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers.utils import logging as hf_logging

from rsapp.model.config import RsappConfig
from rsapp.model.modeling import Encoded, RsappVLM
from rsapp.model.quant import choose_path, linear_bytes, quantize
from rsapp.model.tokenizer import load_tokenizer
from rsapp.tasks.boxes import boxes_to_text
from rsapp.tasks.descriptors import BACKGROUND, descriptor_cursor, mask_to_text, seg_class
from rsapp.tasks.prompts import prompt_question, prompt_task
from rsapp.tasks.tokens import ASKS_CLASS

# Longest answer: a 16×16 descriptor with many runs, or a handful of boxes.
MAX_NEW_TOKENS = 320
TILE_BATCH = 64  # UHR tiles encoded at once: bounds memory whatever the chip size
# Who writes a [SEG] descriptor: "head" reads it off the pixel head's cell map (the asked class, or the change
# between two dates), "lm" has the language model write it token by token with its cursor. Same Text4Seg text.
MASK_SOURCES = ("head", "lm")
# Who writes [VG] boxes: "head" picks among the box head's instance proposals, "lm" writes the numbers.
BOX_SOURCES = ("head", "lm")


@dataclass
class Generation:
    text: str
    s_mu: float  # SSE-U mean of log10 GSD
    s_sigma: float  # SSE-U standard deviation of log10 GSD
    s_used: float  # the log10 GSD that gated CS-HLoRA
    tokens_total: int
    tokens_kept: int
    timings_s: dict[str, float] = field(default_factory=dict)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 → (3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255.0


class Runtime:
    def __init__(self, model: RsappVLM, tokenizer, quant: str, name: str, bytes_fp32: int, bytes_quantized: int):
        self.model = model
        self.mask_source = model.config.mask_source
        self.box_source = model.config.box_source
        self.tokenizer = tokenizer
        self.quant = quant
        self.name = name
        self.bytes_fp32 = bytes_fp32
        self.bytes_quantized = bytes_quantized

    @classmethod
    def load(cls, folder: str | Path, quant: str = "auto") -> "Runtime":
        folder = Path(folder)
        hf_logging.disable_progress_bar()  # a local load of a few MB needs no progress bar on stderr
        model = RsappVLM.load(folder).eval()
        return cls.from_model(model, load_tokenizer(folder), quant, folder.name)

    @classmethod
    def from_model(cls, model: RsappVLM, tokenizer, quant: str = "auto", name: str = "in-memory") -> "Runtime":
        path = choose_path(quant)
        fp32 = linear_bytes(model, "fp32")
        quantized = linear_bytes(model, path)
        return cls(quantize(model.eval(), path), tokenizer, path, name, fp32, quantized)

    @property
    def config(self) -> RsappConfig:
        return self.model.config

    @property
    def image_size(self) -> int:
        """The chip side the analyst should cut."""
        return self.config.chip_size

    def seg_class_index(self, question: str) -> int:
        """Index of the class a [SEG] or [VG] question asks for among the model's dense classes, -1 if none."""
        names = self.config.dense_class_names
        name = seg_class(question)
        return names.index(name) if name in names else -1

    def head_descriptor(self, enc: Encoded, asked: int, n_images: int) -> str | None:
        """The pixel head's 16 × 16 map as a Text4Seg descriptor: cells where the asked class is more likely than
        not (one image), or where it changed between the dates (the largest change of any class when none is
        named). None when one image and no class named (the language model answers then)."""
        names = self.config.dense_class_names
        if enc.cells is None or (n_images == 1 and asked < 0):
            return None
        cells = enc.cells[0]  # (2, K, n, n); the second date is zeros for one image
        if n_images == 1:
            grid, label = cells[0, asked] > 0.5, names[asked]
        elif asked >= 0:
            grid, label = (cells[1, asked] - cells[0, asked]).abs() > 0.5, names[asked]
        else:
            grid = enc.change[0] > 0.5
            diff = (cells[1, 1:] - cells[0, 1:]).abs()  # which class changed most where the change is
            label = names[1 + int((diff * grid).flatten(1).sum(1).argmax())]
        return mask_to_text(grid.numpy().astype(np.uint8), [BACKGROUND, label])

    def prompt_ids(self, prompt: str) -> torch.Tensor:
        return torch.tensor([self.tokenizer.encode(prompt).ids])

    @torch.no_grad()
    def encode(self, images: list[np.ndarray]) -> Encoded:
        """Chips of the model's size in one batch; bigger chips (UHR) are streamed tile by tile."""
        side = images[0].shape[0]
        if side <= self.config.chip_size:
            return self.model.encode(torch.stack([to_tensor(im) for im in images])[None])
        return self.model.encode_stream([self._stream_views(im) for im in images])

    def _stream_views(self, rgb: np.ndarray):
        size = self.config.image_size
        per_side = math.ceil(rgb.shape[0] / size)
        return global_view(rgb, size), global_view(rgb, self.config.chip_size), iter_tiles(rgb, size, per_side), per_side

    @torch.no_grad()
    def generate(self, images: list[np.ndarray], prompt: str, expert: int, log10_gsd: float | None,
                 max_new_tokens: int = MAX_NEW_TOKENS, allowed: Callable | None = None,
                 mask_source: str | None = None, box_source: str | None = None) -> Generation:
        """Greedy answer. With log10_gsd None, SSE-U's prediction gates CS-HLoRA. mask_source (MASK_SOURCES) and
        box_source (BOX_SOURCES) override the weights' choice of who writes [SEG] descriptors and [VG] boxes."""
        t0 = time.perf_counter()
        enc = self.encode(images)
        t1 = time.perf_counter()
        mu = float(enc.s_mu[0])
        sigma = float(torch.exp(0.5 * enc.s_logvar[0]))
        s = mu if log10_gsd is None else float(log10_gsd)
        task = prompt_task(prompt)
        # The class the question names (RsappVLM.class_hint), -1 for none.
        asked = self.seg_class_index(prompt_question(prompt)) if task in ASKS_CLASS else -1
        text = None
        if task == "[SEG]" and (mask_source or self.mask_source) == "head":
            text = self.head_descriptor(enc, asked, len(images))
        if task == "[VG]" and (box_source or self.box_source) == "head":
            boxes = self.model.select_boxes(enc, self.prompt_ids(prompt), len(images), expert, s, asked)
            text = None if boxes is None else boxes_to_text(boxes, 1.0)
        ids = []
        if text is None:
            cursor = None
            if task == "[SEG]":  # descriptor answers are written with their cursor (see RsappVLM)
                n = self.config.seg_grid
                cursor = lambda out: descriptor_cursor(self.tokenizer.decode(out, skip_special_tokens=True), n)  # noqa: E731
            ids = self.model.generate_answer(enc, self.prompt_ids(prompt), len(images), expert, s, max_new_tokens,
                                             allowed, cursor, asked)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
        t2 = time.perf_counter()
        return Generation(text=text.strip(), s_mu=mu, s_sigma=sigma, s_used=s, tokens_total=enc.tokens_total,
                          tokens_kept=enc.tokens_kept,
                          timings_s={"encode": t1 - t0, "decode": t2 - t1, "new_tokens": len(ids)})


def global_view(rgb: np.ndarray, size: int) -> torch.Tensor:
    """Area-average a big (H, W, 3) uint8 chip down to (1, 3, size, size), a band of rows at a time."""
    edges = np.linspace(0, rgb.shape[0], size + 1).round().astype(int)
    cols = np.linspace(0, rgb.shape[1], size + 1).round().astype(int)
    out = np.zeros((size, size, 3), np.float32)
    for i in range(size):
        band = rgb[edges[i]:edges[i + 1]].astype(np.float32).mean(0)  # (W, 3)
        out[i] = np.add.reduceat(band, cols[:-1], axis=0) / np.diff(cols)[:, None]
    return torch.from_numpy(out).permute(2, 0, 1)[None] / 255.0


def iter_tiles(rgb: np.ndarray, size: int, per_side: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Tiles of a big (H, W, 3) chip in batches of TILE_BATCH, zero-padded at the edges, with their col/row."""
    coords = [(c, r) for r in range(per_side) for c in range(per_side)]
    for i in range(0, len(coords), TILE_BATCH):
        batch, xy = [], []
        for c, r in coords[i:i + TILE_BATCH]:
            tile = np.zeros((size, size, 3), np.uint8)
            part = rgb[r * size:(r + 1) * size, c * size:(c + 1) * size]
            tile[: part.shape[0], : part.shape[1]] = part
            batch.append(to_tensor(tile))
            xy.append((c, r))
        yield torch.stack(batch), torch.tensor(xy)
