"""Instance boxes for [VG]: a CenterNet-style proposal head on the descriptor grid, and a selector that scores the
proposals against the language model's reading of the question (region proposals the LM points at, as Groma does).

The head sees, per 16 × 16 cell, the local token there, the fused global token above it, how far each class of the
dense head's map runs from the cell in the four directions, and the cell's pixels through a small CNN (PixelStem:
a 16-px token blurs where a car's edges are inside it), and predicts for each
class how likely an instance's centre is in the cell (a peak per instance), where in the cell the centre is, and
the instance's width and height. A class map alone cannot tell two touching ponds apart or say which is the
largest; instances can. Boxes here are fractions of the chip side, (x1, y1, x2, y2) in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from rsapp.model.config import RsappConfig
from rsapp.model.lm import zero_linear
from rsapp.tasks.boxes import iou

MIN_SCORE = 0.2  # a centre peak below this is no proposal
MAX_PROPOSALS = 24  # enough that "the leftmost tree" of a wood is among them
RANK_SCALE = 10  # rank and count features are over this (the scale the selector first learned)
NMS_IOU = 0.6
BOX_FEATURES = 19  # what the boxes and scores alone say (proposal_features)
SELECT_FEATURES = BOX_FEATURES + 2  # + how much of the asked class the dense head sees inside each box
# Snapping a chosen box to the dense head's region of its class (snap_to_region): only boxes at least this many
# cells on their short side (a field, a lake, a wood: the box head's log-size is least sure there, while a
# 16-px cell is fine enough for them), cells above this probability, and only when the region's box and the
# chosen one are the same object (IoU at least SNAP_MIN_IOU).
SNAP_MIN_CELLS = 6
SNAP_THRESHOLD = 0.4
SNAP_MIN_IOU = 0.3
# Objects whose longer side is under this (chip fraction: two descriptor cells, 32 px at the default sizes) are the
# fine level's: on the 16-px grid a car's centre falls a quarter of a cell off wherever it is, and a parking lot puts
# several in one cell; the coarse level keeps the larger ones.
FINE_MAX_SIDE = 2 / 16


def class_extents(probs: torch.Tensor) -> torch.Tensor:
    """(B, K, n, n) class probabilities per cell → (B, 4K, n, n): the expected number of cells the class runs on
    from each cell to the left, up, right and down (the product of the probabilities along the way), over n.
    Where a pond's edges are is then a near-linear read-out at its centre; the box head refines it."""
    n = probs.shape[-1]
    out = []
    for axis, flip in ((3, True), (2, True), (3, False), (2, False)):
        p = probs.flip(axis) if flip else probs
        run, total = torch.ones_like(p), torch.zeros_like(p)
        for shift in range(n):  # total[j] = Σ_k Π_{i=j..j+k} p[i], along the axis
            step = p.narrow(axis, shift, n - shift)
            run = run.narrow(axis, 0, n - shift) * step
            total = total + F.pad(run, (0, shift) if axis == 3 else (0, 0, 0, shift))
        out.append(total.flip(axis) if flip else total)
    return torch.cat(out, 1) / n


class PixelStem(nn.Module):
    """Fine detail for the box head: a small CNN on the box view at stride 4, each cell's 4 × 4 positions folded
    into its channels (pixel unshuffle) and projected to the head's width. The projection starts at zero, so a
    head trained without the stem behaves as it did."""

    STRIDE = 4

    def __init__(self, n: int, out_dim: int, width: int = 32):
        super().__init__()
        self.n = n
        self.convs = nn.Sequential(nn.Conv2d(3, 24, 3, 2, 1), nn.GELU(), nn.Conv2d(24, width, 3, 2, 1), nn.GELU(),
                                   nn.Conv2d(width, width, 3, 1, 1), nn.GELU())
        self.fold = nn.Conv2d(width * 16, out_dim, 1)
        nn.init.zeros_(self.fold.weight)
        nn.init.zeros_(self.fold.bias)

    def forward(self, view: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) normalised pixels → (B, out_dim, n, n)."""
        x = self.convs(view)
        if x.shape[-1] != 4 * self.n:
            x = F.adaptive_avg_pool2d(x, 4 * self.n)
        return self.fold(F.pixel_unshuffle(x, 4))


class FineLevel(nn.Module):
    """The box head's second level, at twice the grid's resolution (8 px per position at the default sizes): its own
    stride-8 CNN on the box view says where the small things are, the coarse level's hidden features (upsampled)
    say what is around them. Same outputs as the coarse level: centre logits and geometry, in its own cells."""

    def __init__(self, dv: int, k: int, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 24, 3, 2, 1), nn.GELU(), nn.Conv2d(24, 48, 3, 2, 1), nn.GELU(),
                                  nn.Conv2d(48, width, 3, 2, 1), nn.GELU())
        self.net = nn.Sequential(nn.Conv2d(dv + width, dv, 1), nn.GELU(), nn.Conv2d(dv, dv, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(dv, k + 4, 1))
        with torch.no_grad():
            self.net[-1].bias[:k] = -2.2  # as the coarse level: centres are rare

    def forward(self, coarse: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
        """coarse (B, dv, n, n) hidden features, view (B, 3, R, R) → (B, K + 4, 2n, 2n) raw outputs."""
        side = 2 * coarse.shape[-1]
        px = self.stem(view)
        if px.shape[-1] != side:
            px = F.adaptive_avg_pool2d(px, side)
        return self.net(torch.cat([F.interpolate(coarse, scale_factor=2, mode="nearest"), px], 1))


class BoxHead(nn.Module):
    def __init__(self, cfg: RsappConfig):
        super().__init__()
        dv = cfg.vision_dim
        self.n, self.k = cfg.seg_grid, cfg.dense_classes
        self.ratio = max(1, cfg.seg_grid // cfg.grid)
        self.net = nn.Sequential(nn.Conv2d(2 * dv + 4 * self.k, dv, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(dv, dv, 3, padding=1), nn.GELU(), nn.Conv2d(dv, self.k + 4, 1))
        self.stem = PixelStem(self.n, dv)  # adds to the first layer's output
        self.fine = FineLevel(dv, self.k)
        with torch.no_grad():
            self.net[-1].bias[: self.k] = -2.2  # centres are rare: start at p ≈ 0.1 (CenterNet)

    def forward(self, fused: torch.Tensor, local_grid: torch.Tensor, probs: torch.Tensor,
                view: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """fused (B, g², dv), local_grid (B, n², dv), the dense head's (detached) class probabilities (B, K, n, n),
        the box view (B, 3, R, R) → per level (coarse n × n, fine 2n × 2n): centre logits (B, K, m, m) and geometry
        (B, 4, m, m), the instance centre's place inside the cell (x, y in 0–1) and the log of its width and height
        in cells (CenterNet's offset + size)."""
        b, dv, g, n = fused.shape[0], fused.shape[-1], self.n // self.ratio, self.n
        glob = fused.transpose(1, 2).reshape(b, dv, g, g).repeat_interleave(self.ratio, 2).repeat_interleave(self.ratio, 3)
        local = local_grid.transpose(1, 2).reshape(b, dv, n, n)
        x = self.net[0](torch.cat([glob, local, class_extents(probs)], 1)) + self.stem(view)
        hidden = self.net[1:-1](x)
        # The fine level reads the coarse level's features but does not train them (nor the tower under them): it
        # came after them, and its few small objects per chip must not pull what the coarse level learned.
        return [self._split(self.net[-1](hidden)), self._split(self.fine(hidden.detach(), view))]

    def _split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        geo = out[:, self.k:]
        return out[:, : self.k], torch.cat([torch.sigmoid(geo[:, :2]), geo[:, 2:]], 1)

    @staticmethod
    def loss(heat: torch.Tensor, geometry: torch.Tensor, target: dict) -> torch.Tensor:
        """CenterNet's penalty-reduced focal loss on the centre maps (classes the labels know only) + L1 on the
        geometry at instance centres (offsets in cells, log sizes: every instance counts the same, whatever its
        size)."""
        y, known = target["heat"], target["known"][..., None, None].float()
        p = torch.sigmoid(heat).clamp(1e-4, 1 - 1e-4)
        pos = (y >= 1).float() * known
        neg = (1 - pos) * known
        focal = -(pos * (1 - p) ** 2 * p.log() + neg * (1 - y) ** 4 * p**2 * (1 - p).log()).sum()
        centre = target["centre"]  # (B, n, n): 1 at a listed instance's centre cell
        geo = ((geometry - target["geometry"]).abs().sum(1) * centre).sum()
        return focal / pos.sum().clamp(min=1) + geo / centre.sum().clamp(min=1)


def level_targets(instances, known_classes, n: int, k: int, chip: float) -> list[dict[str, np.ndarray]]:
    """box_targets of both levels: every instance on the n × n grid (the coarse level learned them all before the
    fine one existed), those under FINE_MAX_SIDE on the 2n × 2n grid."""
    small = [i for i in instances if max(i[3] - i[1], i[4] - i[2]) < FINE_MAX_SIDE * chip]
    return [box_targets(instances, known_classes, n, k, chip), box_targets(small, known_classes, 2 * n, k, chip)]


def box_targets(instances, known_classes, n: int, k: int, chip: float) -> dict[str, np.ndarray]:
    """Targets of one image: instances [(class, x1, y1, x2, y2) in chip px], the classes whose instances are all
    listed (None: every class) → Gaussian centre maps (K, n, n), known (K,), geometry (4, n, n), centre (n, n)."""
    heat = np.zeros((k, n, n), np.float32)
    geometry = np.zeros((4, n, n), np.float32)
    centre = np.zeros((n, n), np.float32)
    known = np.ones(k, bool) if known_classes is None else np.isin(np.arange(k), list(known_classes))
    cell = chip / n
    rows, cols = np.mgrid[0:n, 0:n]
    # Smaller instances last: where two centres share a cell, the smaller one's geometry wins (the larger one's
    # centre still shows in its neighbours).
    for c, x1, y1, x2, y2 in sorted(instances, key=lambda t: -(t[3] - t[1]) * (t[4] - t[2])):
        w, h = max((x2 - x1) / cell, 0.05), max((y2 - y1) / cell, 0.05)
        cx, cy = min((x1 + x2) / 2 / cell, n - 1e-3), min((y1 + y2) / 2 / cell, n - 1e-3)
        i, j = int(cy), int(cx)
        sigma = max(0.5, min(w, h) / 6)
        heat[c] = np.maximum(heat[c], np.exp(-((rows - i) ** 2 + (cols - j) ** 2) / (2 * sigma**2)))
        heat[c, i, j] = 1.0
        geometry[:, i, j] = (cx - j, cy - i, np.log(w), np.log(h))
        centre[i, j] = 1.0
    return {"heat": heat, "known": known, "geometry": geometry, "centre": centre}


@torch.no_grad()
def level_proposals(levels: list[tuple[torch.Tensor, torch.Tensor]], cls: int, row: int = 0,
                    max_n: int = MAX_PROPOSALS) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched maps of both levels (BoxHead's output: [(B, K, n, n), (B, 4, n, n)], [(B, K, 2n, 2n), ...]) → boxes
    (P, 4) as chip fractions and scores (P,) of class cls in image row: the coarse level's centre peaks (peaks) of
    boxes at least FINE_MAX_SIDE on their longer side, the fine level's of boxes under it, best first, overlapping
    boxes suppressed."""
    found = []
    for level, (heat, geometry) in enumerate(levels):
        boxes, scores = peaks(heat[row], geometry[row], cls, MIN_SCORE)
        longer = (boxes[:, 2:] - boxes[:, :2]).amax(1)
        keep = longer >= FINE_MAX_SIDE if level == 0 else longer < FINE_MAX_SIDE
        found.append((boxes[keep], scores[keep]))
    boxes, scores = (torch.cat(part) for part in zip(*found))
    order = scores.argsort(descending=True)
    return suppress(boxes[order], scores[order], max_n)


def peaks(heat: torch.Tensor, geometry: torch.Tensor, cls: int, min_score: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Every centre peak of class cls (a 3 × 3 local maximum above min_score) as a box (chip fractions) and its
    score, best first."""
    n = heat.shape[-1]
    p = torch.sigmoid(heat[cls].float())
    peak = (p == F.max_pool2d(p[None, None], 3, 1, 1)[0, 0]) & (p > min_score)
    rows, cols = peak.nonzero(as_tuple=True)
    scores = p[rows, cols]
    order = scores.argsort(descending=True)
    rows, cols, scores = rows[order], cols[order], scores[order]
    g = geometry[:, rows, cols].float()  # (4, P)
    cx, cy, w, h = cols.float() + g[0], rows.float() + g[1], g[2].exp(), g[3].exp()
    return (torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1) / n).clamp(0, 1), scores


def suppress(boxes: torch.Tensor, scores: torch.Tensor, max_n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy non-maximum suppression of boxes sorted best first, at most max_n kept."""
    overlaps = (box_iou(boxes, boxes) >= NMS_IOU).numpy()
    keep: list[int] = []
    for i in range(len(boxes)):
        if len(keep) == max_n:
            break
        if not overlaps[i, keep].any():
            keep.append(i)
    return boxes[keep], scores[keep]


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(P, 4) and (Q, 4) boxes → (P, Q) intersection over union (0 between empty boxes)."""
    lo = torch.maximum(a[:, None, :2], b[None, :, :2])
    hi = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (hi - lo).clamp(min=0).prod(-1)
    area_a, area_b = ((x[:, 2:] - x[:, :2]).clamp(min=0).prod(-1) for x in (a, b))
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def class_mass(boxes: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """(P, 4) boxes as chip fractions, (n, n) DenseHead probabilities of one class → (P,): the share of the chip
    the class covers inside each box (cells weighted by how much of them the box covers). Closer to an object's
    own area than its box is: "the largest pond" is the largest water body, not the largest box."""
    n = probs.shape[-1]
    edges = torch.arange(n + 1, dtype=boxes.dtype, device=boxes.device) / n

    def overlap(lo, hi):  # (P, n): the part of each cell's span inside [lo, hi], in cells
        return (torch.minimum(hi[:, None], edges[1:]) - torch.maximum(lo[:, None], edges[:-1])).clamp(min=0) * n

    x1, y1, x2, y2 = boxes.unbind(1)
    return torch.einsum("pi,pj,ij->p", overlap(y1, y2), overlap(x1, x2), probs.to(boxes.dtype)) / n**2


def proposal_features(boxes: torch.Tensor, scores: torch.Tensor, mass: torch.Tensor | None = None) -> torch.Tensor:
    """(P, 4) boxes, (P,) scores, (P,) class_mass or None → (P, SELECT_FEATURES): place, size, score, and how
    each compares with the others (largest, most confident, leftmost, rightmost, topmost, bottommost, its size
    rank, how many there are), then the class mass inside it and whether it is the largest (zeros without)."""
    x1, y1, x2, y2 = boxes.unbind(1)
    w, h = x2 - x1, y2 - y1
    area = w * h
    count = len(boxes)

    def is_(values):
        return (values == values.max()).float()

    rank = area.argsort(descending=True).argsort().float()
    mass_features = (mass.sqrt(), is_(mass)) if mass is not None else (torch.zeros_like(area),) * 2
    return torch.stack([x1, y1, x2, y2, w, h, (x1 + x2) / 2, (y1 + y2) / 2, area.sqrt(), scores,
                        is_(area), is_(scores), is_(-x1), is_(x2), is_(-y1), is_(y2),
                        rank / RANK_SCALE, torch.full_like(area, count / RANK_SCALE),
                        (scores > 0.5).float(),
                        *mass_features], 1)


class BoxSelector(nn.Module):
    """Scores each proposal against the question: which of these does it mean? The query is the LM's final state
    at `<ans>` plus an attention-pooled read of the question's own token states (the last state alone barely
    tells "the leftmost tree" from "the largest tree" in a model this small; the word's own position does).
    Independent sigmoids, so "all ponds" selects several and "the largest pond" one."""

    def __init__(self, hidden: int, dim: int = 64):
        super().__init__()
        self.query = nn.Linear(hidden, dim)
        # The word read and the class-mass branch start at zero: weights trained before them behave as they did.
        self.word_score = nn.Linear(hidden, 1)  # which question tokens the pooled read attends to
        self.word_query = zero_linear(hidden, dim, bias=True)
        self.key = nn.Sequential(nn.Linear(BOX_FEATURES, dim), nn.GELU(), nn.Linear(dim, dim))
        self.mass_key = nn.Sequential(nn.Linear(SELECT_FEATURES - BOX_FEATURES, dim), nn.GELU(),
                                      zero_linear(dim, dim, bias=True))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, words: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """words (T, d): the normed final states of the prompt's text tokens, ending at `<ans>`; feats (P, F) →
        logits (P,)."""
        weights = torch.softmax(self.word_score(words)[:, 0], 0)
        pooled = (weights[:, None] * words).sum(0, keepdim=True)
        query = (self.query(words[-1:]) + self.word_query(pooled))[0]  # 2-D in: int8 dynamic linear layers
        keys = self.key(feats[:, :BOX_FEATURES]) + self.mass_key(feats[:, BOX_FEATURES:])
        return keys @ query / self.query.out_features**0.5 + self.bias


def selection_candidates(boxes: torch.Tensor, scores: torch.Tensor, instances: list[tuple[float, ...]],
                         answer: list[tuple[float, ...]], rng: np.random.Generator, add_missed: bool = True):
    """Training: the head's proposals plus (add_missed) every instance of the asked class it missed (jittered,
    with a made-up score), and which of them the answer names (best match per answer box at IoU ≥ 0.5). Boxes as
    fractions. IoUs are tensor ops: "all trees" of a wood lists thousands of instances."""
    boxes, scores = boxes.float().reshape(-1, 4), scores.float().reshape(-1)
    for inst in instances if add_missed else ():
        if not len(boxes) or box_iou(torch.tensor([inst], dtype=torch.float32), boxes).max() < 0.5:
            w, h = inst[2] - inst[0], inst[3] - inst[1]
            jitter = rng.normal(0, 0.05, 4) * np.array([w, h, w, h])
            boxes = torch.cat([boxes, torch.tensor(np.clip(np.array(inst) + jitter, 0, 1), dtype=torch.float32)[None]])
            scores = torch.cat([scores, torch.tensor([float(rng.uniform(0.25, 0.95))])])
    labels = torch.zeros(len(boxes))
    if len(boxes) and answer:
        table = box_iou(torch.tensor(answer, dtype=torch.float32), boxes)  # (answers, candidates)
        best = table.max(1)
        labels[best.indices[best.values >= 0.5]] = 1.0
    return boxes, scores, labels


def choose(logits: torch.Tensor) -> list[int]:
    """Indices the selector picks: every proposal above one half, or the best one when none is."""
    if len(logits) == 0:
        return []
    picked = (logits > 0).nonzero().flatten().tolist()
    return picked or [int(logits.argmax())]


def snap_to_region(box: tuple[float, ...], probs: np.ndarray) -> tuple[float, ...]:
    """A chosen box (chip fractions) of an extended object → the box of the dense head's connected region of the
    class (probs (n, n), 8-connected cells above SNAP_THRESHOLD) that covers most of it; the box itself when it is
    small, covers no such region, or the region's box is another object."""
    n = probs.shape[0]
    x1, y1, x2, y2 = (v * n for v in box)
    if min(x2 - x1, y2 - y1) < SNAP_MIN_CELLS:
        return box
    regions, _ = ndimage.label(probs > SNAP_THRESHOLD, structure=np.ones((3, 3)))
    inside = regions[int(y1):max(math.ceil(y2), int(y1) + 1), int(x1):max(math.ceil(x2), int(x1) + 1)]
    ids, counts = np.unique(inside[inside > 0], return_counts=True)
    if not len(ids):
        return box
    rows, cols = np.nonzero(regions == ids[counts.argmax()])
    snapped = (cols.min() / n, rows.min() / n, (cols.max() + 1) / n, (rows.max() + 1) / n)
    return snapped if iou(snapped, box) >= SNAP_MIN_IOU else box
