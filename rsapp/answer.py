"""One Answer carries everything a request produced; the UI, the CLI and the exporters read it, nobody re-derives it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
from affine import Affine

EXPERT_NAMES = {0: "image", 1: "region", 2: "pixel"}


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class Answer:
    task: str  # the task token used, e.g. "[VG]"
    expert: int  # G-MoE granularity: 0 image, 1 region, 2 pixel
    text: str  # the answer for a person (for [SEG], a summary of the mask)
    prompt: str
    model: str  # weights name
    sources: list[str]  # image file name(s), first date first
    # The grid the model saw: chip pixel → scene CRS (scene pixels when crs is None).
    transform: Affine
    crs: object | None
    chip_size: int
    gsd_m: float | None  # ground size of one pixel of the image as stored (given, from metadata, or predicted)
    gsd_source: str  # user | metadata | predicted
    gsd_sigma_log10: float | None = None  # SSE-U's standard deviation of log10(GSD), when predicted
    chip_gsd_m: float | None = None  # ground size of one pixel the model saw (coarser when the area was resampled)
    boxes_px: list[tuple[float, float, float, float]] = field(default_factory=list)  # chip pixels x1, y1, x2, y2
    box_labels: list[str] = field(default_factory=list)
    box_scores: list[float | None] = field(default_factory=list)
    mask: np.ndarray | None = None  # (chip_size, chip_size) uint8 class index on the chip grid; 0 is "others"
    mask_labels: list[str] = field(default_factory=lambda: ["others"])  # index → label
    is_change: bool = False  # the mask is a two-date change map
    tokens_total: int = 0  # visual tokens before pruning
    tokens_kept: int = 0  # visual tokens the language model saw
    language_model: bool = False  # the language model wrote or chose the text (else the vision heads answered)
    quant: str = "fp32"  # the inference path that ran
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    created: str = field(default_factory=utc_now_iso)
    raw_text: str = ""  # what the model generated, verbatim
    aoi_box_px: tuple[float, float, float, float] | None = None  # the [REF] box, chip pixels
    counts: dict[str, int] = field(default_factory=dict)  # instances the model counted per mask label ([SEG] of a
    # class it counts by instance cores): the layer's count, not its polygons (a row of houses is one polygon)

    @property
    def expert_name(self) -> str:
        return EXPERT_NAMES[self.expert]

    @property
    def n_boxes(self) -> int:
        return len(self.boxes_px)

    @property
    def n_mask_pixels(self) -> int:
        return 0 if self.mask is None else int((self.mask > 0).sum())

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None

    def summary(self) -> dict:
        """The JSON the CLI prints: everything but arrays."""
        return {
            "task": self.task,
            "expert": self.expert,
            "expert_name": self.expert_name,
            "text": self.text,
            "raw_text": self.raw_text,
            "prompt": self.prompt,
            "model": self.model,
            "sources": self.sources,
            "gsd_m": self.gsd_m,
            "gsd_source": self.gsd_source,
            "gsd_sigma_log10": self.gsd_sigma_log10,
            "chip_gsd_m": self.chip_gsd_m,
            "n_boxes": self.n_boxes,
            "n_mask_pixels": self.n_mask_pixels,
            "is_change": self.is_change,
            "tokens_total": self.tokens_total,
            "tokens_kept": self.tokens_kept,
            "language_model": self.language_model,
            "quant": self.quant,
            "timings_s": self.timings_s,
            "warnings": self.warnings,
            "counts": self.counts,
            "created": self.created,
        }
