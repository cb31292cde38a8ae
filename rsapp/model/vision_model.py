"""The visual half of v2: the tower with the heads that read its pyramid, and SSE-U.

`VisionModel.encode` runs one chip (or a two-date pair) once and returns everything the language model and
the answer need: the kept visual tokens, per-pixel class probabilities, the change probability, scene-class
probabilities and the GSD estimate. `VisionModel.encode_tiled` does the same for an area larger than the chip
at its native resolution (GeoLLaVA-8K style): scene, GSD and tag from a global view, tokens from every tile
pruned to the budget, and the pixel maps of overlapping tiles blended at the heads' stride 4.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.nn.utils import parametrize

from rsapp.model.counting import instance_count
from rsapp.model.efficientnet import PooledTail, PyramidTail
from rsapp.model.heads import ChangeHead, DenseHead, InstanceHead, SceneHead, SSEU
from rsapp.model.trained_range import coarser_than_trained
from rsapp.model.tower import VisionTower, VisualTokens, grid_positions, prune, token_budget

# The class lists are data of the checkpoint (config.json); these are what v2 was built with (rsapp.tasks
# .vocabulary defines them; the model package does not import tasks).
DEFAULT_DENSE = ("building", "road", "water", "vegetation", "bare land", "car", "ship")
DEFAULT_SCENES = (
    "agricultural", "airplane", "baseball diamond", "beach", "buildings", "chaparral", "dense residential",
    "forest", "freeway", "golf course", "harbor", "intersection", "medium residential", "mobile home park",
    "overpass", "parking lot", "river", "runway", "sparse residential", "storage tanks", "tennis court",
)


def widened_once(method):
    """Weights stored int8 (rsapp.model.quant) are widened once per call, not at every tile or quarter turn."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with parametrize.cached():
            return method(*args, **kwargs)

    return wrapper


# SSE-U reads an area more than NATIVE_GSD_ABOVE chips across from up to NATIVE_GSD_TILES of its native tiles as
# well as from its global view: resampled more than twice, the global view reads sub-metre scenes as finer than they
# are (0.15-0.41 m for 0.5 m LEVIR-CD tiles mirrored to 2048 px; EXPERIMENTS "GSD of an image larger than the chip").
NATIVE_GSD_ABOVE = 2
NATIVE_GSD_TILES = 8


def reads_native_gsd(area_px: int, chip: int) -> bool:
    """Whether SSE-U reads the native tiles of an area `area_px` across, besides its global view."""
    return area_px > NATIVE_GSD_ABOVE * chip


def gsd_tiles(row_spans: list, col_spans: list) -> set[tuple]:
    """The tiles ((row0, row1), (col0, col1)) of a tiled area whose GSD SSE-U reads: up to NATIVE_GSD_TILES, spread
    evenly over the grid in reading order."""
    spans = [(r, c) for r in row_spans for c in col_spans]
    picked = np.linspace(0, len(spans) - 1, min(NATIVE_GSD_TILES, len(spans))).round().astype(int)
    return {spans[i] for i in picked}


def combine_readings(readings: list[tuple[float, float]]) -> tuple[float, float]:
    """(log10 GSD, variance) readings combined by their inverse variances: (mean, its variance). Readings that
    disagree more than their variances allow widen it by their reduced chi-square (the Particle Data Group's scale
    factor): a global view and tiles 0.45 decades apart are not ×/÷ 1.05 sure of their mean."""
    weights = [1.0 / var for _, var in readings]
    mean = sum(w * mu for w, (mu, _) in zip(weights, readings)) / sum(weights)
    chi2 = sum(w * (mu - mean) ** 2 for w, (mu, _) in zip(weights, readings))
    return mean, max(1.0, chi2 / max(len(readings) - 1, 1)) / sum(weights)


# A land-cover word answers [CLS] only when the scene head gives it more than this probability, more than all other
# labels together.
COVER_MIN_PROB = 0.5


@dataclass
class VisionConfig:
    token_dim: int = 256
    token_budget: int = 32
    background_clusters: int = 4
    background_share: float = 0.25
    dense_classes: tuple[str, ...] = DEFAULT_DENSE
    scene_classes: tuple[str, ...] = DEFAULT_SCENES
    s_prior: float = 0.0  # SSE-U's starting mean of log10 GSD (1 m)
    change_tta: int = 4  # quarter turns the change probability is averaged over (1: none)
    instance_classes: tuple[str, ...] = ()  # dense classes with an instance-core map (none: counted as regions)
    # A pixel answer of one image averages its class probabilities (and instance cores) over this many quarter
    # turns; a class is drawn where its averaged probability exceeds its threshold (chosen on the train splits
    # by tools/choose_thresholds.py; 0.5 for a class without one)
    dense_tta: int = 1
    # ... and a batch's tile over this many, for speed (an area of more than TURNED_TILES_MAX tiles asked at once is
    # read in one view): in one view held-out roads lost a quarter to two fifths of their IoU and real sand held five
    # times the false-water regions four turns leave; two, a quarter turn apart, took back most of both
    # (docs/EXPERIMENTS.md)
    batch_tta: int = 1
    dense_thresholds: dict = field(default_factory=dict)
    # ... and with the image read again at each of these smaller scales (a wider context per map cell), on an area
    # of at most TURNED_TILES_MAX tiles: the class probabilities of all the reads are averaged (cores are native),
    # but for the classes of dense_scales_skip, read at their own scale alone
    dense_scales: tuple[float, ...] = ()
    dense_scales_skip: tuple[str, ...] = ()
    # land-cover labels the scene head names besides scene_classes (a scene mostly of that cover); the tag the
    # language model reads holds the scene classes only
    cover_scenes: tuple[str, ...] = ()
    # [CLS] scores a scene label as the language model's log-likelihood of writing it plus this many times the
    # scene head's log-probability of it (chosen on the UC Merced train split, as is and 1.5–2.3× finer or 2×
    # coarser: the head, refitted on such views, holds across scales better than the language model's reading)
    scene_head_weight: float = 1.0
    # A pixel answer's class probability is this share of the mask head's (the dense head refitted after stage B,
    # rsapp.train.dense) and the rest of the dense head's; the tag the language model reads is of the dense head
    # alone, as stage B trained it (0: no mask head)
    mask_head_share: float = 0.0
    # The mask head reads its own copy of the tower's stride-16 and stride-32 blocks (PyramidTail), tuned for land
    # cover with it (rsapp.train.dense; False: it reads the shared tower, as every other head does)
    mask_tail: bool = False
    # The scene head reads its own copy of the tower's deep blocks and head conv (PooledTail), tuned for scenes with
    # it (rsapp.train.scene with tail_lr; False: the shared tower's pooled features)
    scene_tail: bool = False
    # A second change head (fitted with real pairs without building change too: rsapp.train.change unchanged_pairs)
    # whose logits are averaged with the first's (False: the first alone)
    second_change_head: bool = False

    @property
    def scene_labels(self) -> tuple[str, ...]:
        """Every label the scene head names, in the order of its logits (VisionOutput.labels)."""
        return self.scene_classes + self.cover_scenes

    def cover_scene(self, labels: torch.Tensor | None) -> str | None:
        """The land-cover word naming a scene whose label probabilities are `labels` (S + C,), or None: the head
        must rank it first with more than COVER_MIN_PROB (a sandy beach is also mostly bare ground)."""
        if labels is None or not self.cover_scenes:
            return None
        best = int(labels.argmax())
        name = self.scene_labels[best]
        return name if name in self.cover_scenes and float(labels[best]) > COVER_MIN_PROB else None

    def scene_name(self, out: "VisionOutput") -> str:
        """The scene head's own label: a land-cover word (cover_scene), else the likeliest scene class."""
        return self.cover_scene(out.labels[0]) or self.scene_classes[int(out.scene[0].argmax())]

    def threshold(self, name: str) -> float:
        return float(self.dense_thresholds.get(name, 0.5))

    def thresholds(self) -> np.ndarray:
        """(K, 1, 1) every dense class's threshold, to compare with (K, H, W) maps."""
        return np.array([self.threshold(c) for c in self.dense_classes], np.float32)[:, None, None]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VisionConfig":
        d = dict(d)
        for k in ("dense_classes", "scene_classes", "instance_classes", "cover_scenes", "dense_scales",
                  "dense_scales_skip"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass
class VisionOutput:
    tokens: VisualTokens  # of the first date (the second date's are in tokens_after)
    dense: torch.Tensor  # (B, K, H, W) class probabilities at chip resolution, or at stride 4 for a tiled
    # area (upsample() brings either to the chip)
    scene: torch.Tensor  # (B, S) scene-class probabilities (cfg.scene_classes: what the tag carries)
    s_mu: torch.Tensor  # (B,) SSE-U mean of log10 GSD
    s_logvar: torch.Tensor  # (B,)
    change: torch.Tensor | None = None  # (B, H, W) change probability, two dates only (stride 4 when tiled)
    dense_after: torch.Tensor | None = None
    tokens_after: VisualTokens | None = None
    cores: torch.Tensor | None = None  # (B, C, H, W) instance-core probabilities of cfg.instance_classes, first
    # date, at the resolution of `dense`; None when the model has no instance head
    core_classes: tuple[str, ...] = ()  # the classes of `cores`, in order
    labels: torch.Tensor | None = None  # (B, S + C) probabilities of every label the scene head names
    # (cfg.scene_labels: the scene classes and the cover scenes together); encode always sets it
    # the dense head's own maps, shaped as `dense` / `dense_after`, when a mask head shares the pixel answers: the
    # tag reads them (None: the tag reads `dense` / `dense_after`)
    tag_dense: torch.Tensor | None = None
    tag_dense_after: torch.Tensor | None = None
    # (log10 GSD, variance) of the pixels read, SSE-U on native tiles of an area more than NATIVE_GSD_ABOVE chips
    # across (encode_tiled's own tiles, or VisionModel.native_gsd for a chip resampled from such an area); else None
    native_gsd: tuple[float, float] | None = None

    def core(self, name: str | None) -> np.ndarray | None:
        """The instance-core map (h, w) of a dense class, or None when there is none for it."""
        if self.cores is None or name not in self.core_classes:
            return None
        return self.cores[0, self.core_classes.index(name)].numpy()

    def area_gsd(self, area_px: int, chip: int) -> tuple[float, float]:
        """SSE-U's (log10 GSD, its sigma) of the pixels of the area it read: an area larger than the chip was read
        through its global view, `chip` px across, whose pixels are area_px / chip times coarser; that reading is
        combined with native_gsd's where there is one."""
        whole = (float(self.s_mu[0]) + math.log10(min(chip / area_px, 1.0)), math.exp(float(self.s_logvar[0])))
        mu, var = whole if self.native_gsd is None else combine_readings([whole, self.native_gsd])
        return mu, math.sqrt(var)

    def area_log10_gsd(self, area_px: int, chip: int) -> float:
        """area_gsd's log10 GSD."""
        return self.area_gsd(area_px, chip)[0]

    def tag(self, after: bool = False) -> torch.Tensor:
        """(1, S + 2K + 2) what the heads already know, for the LM's tag token: scene probabilities, the share of
        the chip each dense class covers, log(1 + its instance count), and for the second date the changed share
        and log(1 + changed regions)."""
        dense = self.dense_after if after else self.dense
        tag_dense = self.tag_dense_after if after else self.tag_dense
        dense = dense if tag_dense is None else tag_dense
        masks = (dense[0] > 0.5).numpy()
        counts = torch.tensor([[instance_count(m) for m in masks]], dtype=torch.float32)
        change = torch.zeros(1, 2)
        if after and self.change is not None:
            cm = (self.change[0] > 0.5).numpy()
            change = torch.tensor([[float(cm.mean()), math.log1p(instance_count(cm))]])
        return torch.cat([self.scene, (dense > 0.5).float().mean((2, 3)), torch.log1p(counts), change], -1)


# Tiles of a large area overlap by at least this many pixels, and their maps are averaged where they do; a tile
# may grow to TILE_GROWTH × the chip so that, say, a 1024 px area takes 2 × 2 tiles of 528 px, not 3 × 3 of 512.
TILE_OVERLAP = 32
TILE_GROWTH = 1.25
# Pixel answers average quarter turns of each tile up to this many tiles (a 2,048 px area); beyond, one view each.
TURNED_TILES_MAX = 16


def tile_grid(h: int, w: int, chip: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(row spans, column spans) of the tiles covering an h × w area: one tile side for both axes (a multiple of
    4, at most TILE_GROWTH × the chip), starts multiples of 4 (the heads' stride), neighbours
    overlapping by ≥ TILE_OVERLAP; never past the edge (the last tile of an axis ends at it, up to 3 px longer),
    and an axis shorter than a tile is one span."""
    longest, most = max(h, w), int(chip * TILE_GROWTH)
    if longest <= most:
        side = longest
    else:
        n = -(-(longest - TILE_OVERLAP) // (most - TILE_OVERLAP))
        side = max(chip, -(-(longest + (n - 1) * TILE_OVERLAP) // (4 * n)) * 4)

    def spans(length: int) -> list[tuple[int, int]]:
        if length <= side:
            return [(0, length)]
        count = -(-(length - TILE_OVERLAP) // (side - TILE_OVERLAP))
        starts = sorted({int(v) // 4 * 4 for v in np.linspace(0, length - side, count)})
        return [(a, a + side) for a in starts[:-1]] + [(starts[-1], length)]
    return spans(h), spans(w)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 → (1, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0


def global_view(rgb, size: int) -> torch.Tensor:
    """A big area at (1, 3, size, size) in [0, 1]: a lazy scene reader's own decimated read when it has one (a
    GeoTIFF's overviews), else area_resize."""
    if hasattr(rgb, "area_view"):
        return to_tensor(rgb.area_view(size))
    return area_resize(rgb, size)


def area_resize(rgb, size: int) -> torch.Tensor:
    """Area-average a big (H, W, 3) uint8 image (an array, or anything sliced by rows) to (1, 3, size, size) in
    [0, 1], a band of rows at a time."""
    rows = np.linspace(0, rgb.shape[0], size + 1).round().astype(int)
    cols = np.linspace(0, rgb.shape[1], size + 1).round().astype(int)
    out = np.zeros((size, size, 3), np.float32)
    for i in range(size):
        band = rgb[rows[i]:rows[i + 1]].astype(np.float32).mean(0)
        out[i] = np.add.reduceat(band, cols[:-1], axis=0) / np.diff(cols)[:, None]
    return torch.from_numpy(out).permute(2, 0, 1)[None] / 255.0


def _bilinear_axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of a bilinear resample along one axis (pixel centres aligned)."""
    c = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    i0 = np.floor(c).astype(int)
    return i0, np.minimum(i0 + 1, n_in - 1), (c - i0).astype(np.float32)


def upsample(prob: np.ndarray, shape: tuple[int, int], band: int = 1024) -> np.ndarray:
    """A (h, w) probability map at any stride to (H, W) float16: bilinear in logit space, as the heads' own
    logits are resampled to the chip (thin roads keep their width), a band of output rows at a time (an 8192² map
    never exists in float32)."""
    prob = np.asarray(prob, np.float32)
    if prob.shape == tuple(shape):
        return prob.astype(np.float16)
    p = np.clip(prob, 1e-4, 1 - 1e-4)
    prob = np.log(p / (1 - p))
    r0, r1, fr = _bilinear_axis(shape[0], prob.shape[0])
    c0, c1, fc = _bilinear_axis(shape[1], prob.shape[1])
    out = np.empty(shape, np.float16)
    for y in range(0, shape[0], band):
        sl = slice(y, y + band)
        rows = prob[r0[sl]] * (1 - fr[sl, None]) + prob[r1[sl]] * fr[sl, None]
        out[sl] = 1 / (1 + np.exp(-(rows[:, c0] * (1 - fc) + rows[:, c1] * fc)))
    return out


def building_change(enc: VisionOutput, cfg: VisionConfig, gsd_m: float) -> np.ndarray:
    """A pair's change answer (H, W probability, on the grid of enc.change): the change head's map without the
    pixels that either date draws as road and neither as building, where the pair's GSD is within the road class's
    training. The answer is building change, as LEVIR-CD labels it and as its sentence says ("12 buildings were
    built"); asked what changed, the head also marked a new estate's roads, most of held-out LEVIR-CD test_1's false
    alarms. Two-date [SEG] of a class reads enc.change itself, so "[SEG] the new roads" still draws them; at 30 m
    the road mask means nothing and the map stays whole."""
    change = enc.change[0].numpy()
    if not {"road", "building"} <= set(cfg.dense_classes) or coarser_than_trained(["road"], gsd_m):
        return change

    def drawn(name: str) -> np.ndarray:  # in either date
        k = cfg.dense_classes.index(name)
        return np.maximum(enc.dense[0, k].numpy(), enc.dense_after[0, k].numpy()) > cfg.threshold(name)

    return np.where(drawn("road") & ~drawn("building"), 0.0, change).astype(change.dtype)


def tag_dim(cfg: "VisionConfig") -> int:
    return len(cfg.scene_classes) + 2 * len(cfg.dense_classes) + 2


class VisionModel(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.cfg = cfg
        self.tower = VisionTower(cfg.token_dim)
        self.dense_head = DenseHead(len(cfg.dense_classes))
        if cfg.mask_head_share:
            self.mask_head = DenseHead(len(cfg.dense_classes))
        if cfg.mask_tail:
            self.mask_tail = PyramidTail()
        self.change_head = ChangeHead()
        if cfg.second_change_head:
            self.second_change_head = ChangeHead()
        if cfg.instance_classes:
            self.instance_head = InstanceHead(len(cfg.instance_classes))
        if cfg.scene_tail:
            self.scene_tail = PooledTail()
        self.scene_head = SceneHead(self.tower.pooled_dim, len(cfg.scene_labels))
        self.sse_u = SSEU(self.tower.pooled_dim, prior=cfg.s_prior)

    def freeze_backbone_stats(self) -> None:
        for m in self.tower.backbone.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()

    def change_probability(self, x: torch.Tensor, levels: list[torch.Tensor]) -> torch.Tensor:
        """(1, h, w) change probability at stride 4 of the pair x (2, 3, H, W) whose pyramid is `levels`,
        averaged over cfg.change_tta quarter turns (of the change heads' mean logits)."""
        prob = 0.0
        heads = [self.change_head] + ([self.second_change_head] if self.cfg.second_change_head else [])
        for k, lv in self.turned(x, levels, self.cfg.change_tta):
            before, after = [v[:1] for v in lv], [v[1:] for v in lv]
            turned = torch.sigmoid(sum(head(before, after) for head in heads) / len(heads))
            prob = prob + torch.rot90(turned, -k, (1, 2))
        return prob / self.cfg.change_tta

    def turned(self, x: torch.Tensor, levels: list[torch.Tensor], turns: int, step: int = 1):
        """(k, the pyramid of x turned k quarter turns) for k < turns, every step-th; `levels` is x's own (k = 0)."""
        for k in range(0, turns, step):
            yield k, levels if k == 0 else self.tower.pyramid(torch.rot90(x, k, (2, 3)))

    def scene_log_probs(self, x: torch.Tensor, levels: list[torch.Tensor], pooled: torch.Tensor, views: int = 1
                        ) -> torch.Tensor:
        """(1, S + C) the scene head's log-probabilities of every label for the first image of x (pyramid `levels`,
        pooled features `pooled`), averaged over `views` quarter turns of it: a scene seen turned is the same scene,
        and the average reads coarser or softer collections better (docs/EXPERIMENTS.md, the scene head)."""
        first = [lv[:1] for lv in levels]
        step = 1 if x.shape[-1] == x.shape[-2] else 2
        reads = [self.scene_head(self.scene_pooled(lv, pooled[:1] if k == 0 else None)).log_softmax(-1)
                 for k, lv in self.turned(x[:1], first, views, step)]
        return torch.stack(reads).mean(0)

    def scene_pooled(self, levels: list[torch.Tensor], pooled: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled features the scene head reads: of its own tuned copy of the deep blocks when it has one, else
        the tower's (`pooled` when already computed)."""
        tail = getattr(self, "scene_tail", None)
        if tail is not None:
            return tail(levels[1])
        return pooled if pooled is not None else self.tower.pooled(levels)

    def mask_levels(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        """The pyramid the mask head reads: the tower's, with C4 and C5 from its own tuned copy when it has one."""
        tail = getattr(self, "mask_tail", None)
        return levels if tail is None else levels[:2] + tail(levels[1])

    def pixel_maps(self, x: torch.Tensor, levels: list[torch.Tensor], views: int = 1, cores: bool = False,
                   size=None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Class probabilities (B, K, h, w) of the images x whose pyramid is `levels`, the first image's
        instance-core probabilities (1, C, h, w) with cores=True (else None), and with a mask head the dense head's
        own class probabilities (what the tag reads; else None): at the heads' stride 4, or resampled to `size`;
        averaged over `views` quarter turns of x (the tower run again on each turned view)."""
        def prob(logits, k):
            logits = torch.rot90(logits, -k, (2, 3))
            if size is not None:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            return torch.sigmoid(logits)

        # a tile that is not square takes its half turns only: a quarter turn would change its shape, and a new
        # shape makes the frozen tower specialise again (seconds, the first time each)
        step = 1 if x.shape[-1] == x.shape[-2] else 2
        share = self.cfg.mask_head_share
        dense = own = core = 0.0
        for k, lv in self.turned(x, levels, views, step):
            p = prob(self.dense_head(lv), k)
            if share:
                own = own + p
                p = (1 - share) * p + share * prob(self.mask_head(self.mask_levels(lv)), k)
            dense = dense + p
            if cores:
                core = core + prob(self.instance_head([v[:1] for v in lv]), k)
        n = len(range(0, views, step))
        return dense / n, (core / n if cores else None), (own / n if share else None)

    @torch.no_grad()
    @widened_once
    def encode(self, images: list[torch.Tensor], change: bool = True, cores: bool = False, views: int = 1,
               scene_views: int = 1) -> VisionOutput:
        """images: one or two (1, 3, H, W) tensors in [0, 1] of the same size; change=False skips the change
        map of a pair (encode_tiled makes its own); cores=True adds the first image's instance cores (only a
        request that counts needs them); views > 1 averages the class maps and cores over that many quarter turns
        (pixel answers; the tag the language model reads is of the maps of one view, as it was trained);
        scene_views > 1 averages the scene head's reading over that many quarter turns of the first image (a
        question about the scene)."""
        x = torch.cat(images)
        levels = self.tower.pyramid(x)
        size = x.shape[-2:]
        pooled = self.tower.pooled(levels)
        grid = self.tower.fusion(levels)
        budget = lambda g: token_budget(g, self.cfg.token_budget, self.cfg.background_clusters,  # noqa: E731
                                        self.cfg.background_share)
        cores = cores and bool(self.cfg.instance_classes)
        dense, core, own = self.pixel_maps(x, levels, views, cores, size)
        mu, logvar = self.sse_u(pooled[:1], x[:1])
        log_probs = self.scene_log_probs(x, levels, pooled, scene_views)
        out = VisionOutput(tokens=budget(grid[:1]), dense=dense[:1],
                           scene=log_probs[:, :len(self.cfg.scene_classes)].softmax(-1), s_mu=mu, s_logvar=logvar,
                           labels=log_probs.softmax(-1))
        if own is not None:
            out.tag_dense = own[:1]
        if cores:
            out.cores, out.core_classes = core, self.cfg.instance_classes
        if len(images) == 2:
            if change:
                out.change = F.interpolate(self.change_probability(x, levels)[:, None], size=size,
                                           mode="bilinear", align_corners=False)[:, 0]
            out.dense_after = dense[1:]
            out.tag_dense_after = None if own is None else own[1:]
            out.tokens_after = budget(grid[1:])
        return out

    @torch.no_grad()
    def tile_gsd(self, x: torch.Tensor, levels: list[torch.Tensor]) -> tuple[float, float]:
        """SSE-U's (log10 GSD, variance) of the first image of x, whose pyramid is `levels`."""
        mu, logvar = self.sse_u(self.tower.pooled([lv[:1] for lv in levels]), x[:1])
        return float(mu[0]), math.exp(float(logvar[0]))

    @torch.no_grad()
    @widened_once
    def native_gsd(self, image, chip: int, picture: tuple[int, int, int, int] | None = None) -> tuple[float, float]:
        """SSE-U's (log10 GSD, variance) of an area larger than the chip ((H, W, 3) uint8, or a reader sliced by
        window) from its native tiles: the gsd_tiles of the grid encode_tiled lays over its picture (row0, row1,
        col0, col1; the whole area without one), combined. Only those tiles are read."""
        h, w = image.shape[:2]
        r0, r1, c0, c1 = (0, h, 0, w) if picture is None else picture
        r0, c0 = r0 // 4 * 4, c0 // 4 * 4
        row_spans, col_spans = tile_grid(r1 - r0, c1 - c0, chip)
        readings = []
        for (y, y1), (x, x1) in sorted(gsd_tiles(row_spans, col_spans)):
            tile = to_tensor(np.ascontiguousarray(image[r0 + y:r0 + y1, c0 + x:c0 + x1]))
            readings.append(self.tile_gsd(tile, self.tower.pyramid(tile)))
        return combine_readings(readings)

    @torch.no_grad()
    def read(self, images: list[np.ndarray], chip: int, cores: bool = False, views: int = 1,
             picture: tuple[int, int, int, int] | None = None, scene_views: int = 1) -> VisionOutput:
        """One image or a pair ((H, W, 3) uint8) as the answers read them: in one pass up to `chip` px, in native
        tiles above it (encode_tiled). picture (row0, row1, col0, col1): the part of the images that is picture,
        the rest being the black frame of a square chip (beyond the scene's edge, nodata, a blanked AOI's outside); the
        pixel maps are then read from the picture alone, zero on the frame, as the heads were trained and scored
        (scene, tokens and SSE-U still read the whole chip). scene_views: encode's."""
        enc = self._read_once(images, chip, cores, views, picture, scene_views)
        if len(images) == 1 and views > 1 and self.cfg.dense_scales:
            self._average_smaller_reads(enc, images[0], chip, views, picture)
        return enc

    def _average_smaller_reads(self, enc: VisionOutput, image, chip: int, views: int, picture):
        """enc's class probabilities averaged with those of the picture (the whole image without one) read at each of
        cfg.dense_scales, resampled back to enc's maps in logit space, when the area takes at most TURNED_TILES_MAX
        tiles; the classes of cfg.dense_scales_skip keep their own. The picture is cut out before it is made smaller,
        so a frame around it (nodata, the chip's letterbox) changes nothing."""
        h, w = image.shape[:2]
        if max(h, w) > chip and math.prod(map(len, tile_grid(h, w, chip))) > TURNED_TILES_MAX:
            return
        r0, r1, c0, c1 = picture or (0, h, 0, w)
        part = np.ascontiguousarray(image[r0:r1, c0:c1])  # a lazy window (WindowRGB) reads that part here
        native = enc.dense[0].float().numpy()
        per_px = native.shape[-2] / h  # map cells per image pixel: 1, or 1/4 for a tiled area
        rows = slice(round(r0 * per_px), round(r1 * per_px))
        cols = slice(round(c0 * per_px), round(c1 * per_px))
        reads = [native[:, rows, cols]]
        region = reads[0].shape[-2:]
        for f in self.cfg.dense_scales:
            size = (max(1, round(part.shape[1] * f)), max(1, round(part.shape[0] * f)))
            small = np.asarray(Image.fromarray(part).resize(size, Image.BICUBIC))
            dense = self._read_once([small], chip, False, views, None).dense[0].float().numpy()
            reads.append(np.stack([upsample(p, region) for p in dense]).astype(np.float32))
        mean = native.copy()
        mean[:, rows, cols] = np.mean(reads, axis=0)
        for name in self.cfg.dense_scales_skip:
            k = self.cfg.dense_classes.index(name)
            mean[k] = native[k]
        enc.dense = torch.from_numpy(mean[None]).to(enc.dense.dtype)

    def _read_once(self, images: list[np.ndarray], chip: int, cores: bool, views: int,
                   picture: tuple[int, int, int, int] | None, scene_views: int = 1) -> VisionOutput:
        h, w = images[0].shape[:2]
        if picture is not None and tuple(picture) == (0, h, 0, w):
            picture = None
        if max(h, w) > chip:
            return self.encode_tiled(images, chip, cores=cores, views=views, picture=picture,
                                     scene_views=scene_views)
        if picture is None:
            return self.encode([to_tensor(im) for im in images], cores=cores, views=views, scene_views=scene_views)
        # the whole chip once for the tokens, scene and SSE-U; its pixel maps come from the picture alone
        enc = self.encode([to_tensor(im) for im in images], change=False, scene_views=scene_views)
        self._maps_of_picture(enc, images, picture, cores, views)
        return enc

    def _maps_of_picture(self, enc: VisionOutput, images: list[np.ndarray], picture, cores: bool, views: int):
        """Set enc's chip-resolution pixel maps (classes, cores, change) to those of the picture alone, zero on the
        frame."""
        (h, w), (r0, r1, c0, c1) = images[0].shape[:2], picture
        x = torch.cat([to_tensor(np.ascontiguousarray(im[r0:r1, c0:c1])) for im in images])
        levels = self.tower.pyramid(x)
        dense, core, own = self.pixel_maps(x, levels, views, cores and bool(self.cfg.instance_classes),
                                           x.shape[-2:])

        def framed(part: torch.Tensor) -> torch.Tensor:
            out = part.new_zeros(part.shape[:-2] + (h, w))
            out[..., r0:r1, c0:c1] = part
            return out

        enc.dense = framed(dense[:1])
        if own is not None:
            enc.tag_dense = framed(own[:1])
        if core is not None:
            enc.cores, enc.core_classes = framed(core), self.cfg.instance_classes
        if len(images) == 2:
            enc.dense_after = framed(dense[1:])
            if own is not None:
                enc.tag_dense_after = framed(own[1:])
            enc.change = framed(F.interpolate(self.change_probability(x, levels)[:, None], size=x.shape[-2:],
                                              mode="bilinear", align_corners=False)[:, 0])

    @torch.no_grad()
    @widened_once
    def encode_tiled(self, images: list, chip: int, cores: bool = False, views: int = 1,
                     picture: tuple[int, int, int, int] | None = None, scene_views: int = 1) -> VisionOutput:
        """An area larger than the chip (one image, or two dates on one grid; (H, W, 3) uint8 arrays, or square
        readers sliced by window, up to 8192 px) at native resolution. Scene, GSD and the tag come from the global
        view (the area resampled to `chip`); the area is read in overlapping tiles of about the chip (tile_grid);
        the first date's tile tokens are pruned to the budget as one set; class and change probabilities are
        averaged where tiles overlap, at stride 4, and so are the first date's instance cores with cores=True;
        views > 1 averages each tile's class maps and cores over that many quarter turns when the area takes at
        most TURNED_TILES_MAX tiles (a larger area is read once: the turns would take its time ×views).
        Memory stays bounded by one tile pair, the tokens and the quarter-resolution maps. With picture (row0,
        row1, col0, col1) the tiles cover that part only (its start brought down to the heads' stride), and the
        maps are zero elsewhere."""
        h, w = images[0].shape[:2]
        if h != w:  # the global view is of the square the area sits in (top-left), as a chip is letterboxed
            squares = [np.pad(im, ((0, max(h, w) - h), (0, max(h, w) - w), (0, 0))) for im in images]
        else:
            squares = images
        enc = self.encode([global_view(im, chip) for im in squares], change=False, scene_views=scene_views)
        h4, w4 = -(-h // 4), -(-w // 4)
        k = len(self.cfg.dense_classes)
        # sums of the tiles' probabilities (float16 holds a sum of a few values in [0, 1] to ~1e-3)
        dense = [np.zeros((k, h4, w4), np.float16) for _ in images]
        own = [np.zeros((k, h4, w4), np.float16) for _ in images] if self.cfg.mask_head_share else []
        change = np.zeros((h4, w4), np.float16) if len(images) == 2 else None
        n_cores = len(self.cfg.instance_classes) if cores else 0
        core_sums = np.zeros((n_cores, h4, w4), np.float16) if n_cores else None
        seen = np.zeros((h4, w4), np.uint8)
        tokens, positions = [], []
        r0, r1, c0, c1 = (0, h, 0, w) if picture is None else picture
        r0, c0 = r0 // 4 * 4, c0 // 4 * 4
        row_spans, col_spans = tile_grid(r1 - r0, c1 - c0, chip)
        gsd_read = gsd_tiles(row_spans, col_spans) if reads_native_gsd(max(h, w), chip) else set()
        gsd_readings = []
        if len(row_spans) * len(col_spans) > TURNED_TILES_MAX:
            views = 1
        for rows_span in row_spans:
            for cols_span in col_spans:
                (y, y1), (x, x1) = (rows_span[0] + r0, rows_span[1] + r0), (cols_span[0] + c0, cols_span[1] + c0)
                parts = [im[y:y1, x:x1] for im in images]
                ph, pw = y1 - y, x1 - x
                batch = torch.cat([to_tensor(np.ascontiguousarray(part)) for part in parts])
                levels = self.tower.pyramid(batch)
                if (rows_span, cols_span) in gsd_read:
                    gsd_readings.append(self.tile_gsd(batch, levels))
                q = np.s_[y // 4:y // 4 + -(-ph // 4), x // 4:x // 4 + -(-pw // 4)]
                rows, cols = q[0].stop - q[0].start, q[1].stop - q[1].start
                probs, core, own_probs = self.pixel_maps(batch, levels, views, core_sums is not None)
                maps = [*probs.numpy()] + ([] if own_probs is None else [*own_probs.numpy()])
                for d, p in zip(dense + own, maps):
                    d[(slice(None),) + q] += p[:, :rows, :cols]
                if change is not None:
                    change[q] += self.change_probability(batch, levels)[0, :rows, :cols].numpy()
                if core_sums is not None:
                    core_sums[(slice(None),) + q] += core[0].numpy()[:, :rows, :cols]
                seen[q] += 1
                grid = self.tower.fusion([lv[:1] for lv in levels])[0]  # (D, gh, gw)
                cells = torch.tensor(grid.shape[-2:], dtype=torch.float32)
                tokens.append(grid.flatten(1).t())
                extent = torch.tensor([ph, pw], dtype=torch.float32)  # cell centres in the tile's pixels
                pos = grid_positions(*grid.shape[-2:]) * extent * (cells - 1) / cells + 0.5 * extent / cells
                positions.append((pos + torch.tensor([y, x])) / torch.tensor([h, w]))
        cfg = self.cfg
        kept, kept_pos = prune(torch.cat(tokens), torch.cat(positions), cfg.token_budget, cfg.background_clusters,
                               cfg.background_share)
        enc.tokens = VisualTokens(kept[None], kept_pos[None], sum(t.shape[0] for t in tokens))
        if gsd_readings:
            enc.native_gsd = combine_readings(gsd_readings)
        for total in (*dense, *own, change, core_sums):  # sums → means, in place
            if total is not None:
                np.divide(total, np.maximum(seen, 1), out=total, casting="unsafe")  # 0 where no tile read
        enc.dense = torch.from_numpy(dense[0])[None]
        if own:
            enc.tag_dense = torch.from_numpy(own[0])[None]
            enc.tag_dense_after = torch.from_numpy(own[1])[None] if len(own) == 2 else None
        if core_sums is not None:
            enc.cores, enc.core_classes = torch.from_numpy(core_sums)[None], self.cfg.instance_classes
        if change is not None:
            enc.dense_after = torch.from_numpy(dense[1])[None]
            enc.change = torch.from_numpy(change)[None]
        return enc
