"""Scores: exact-match accuracy, grounding acc@0.5, mIoU, change F1, corpus BLEU-4 (sacrebleu)."""

from __future__ import annotations

import re

import numpy as np
import sacrebleu
from scipy import ndimage

from rsapp.tasks.boxes import iou


def normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", "", (text or "").lower()).strip()


def exact(pred: str, truth: str) -> bool:
    return normalise(pred) == normalise(truth)


def grounding_hit(pred_boxes, true_boxes, threshold: float = 0.5) -> bool:
    """Every true box matched one-to-one by a predicted box at IoU ≥ threshold, and no extra predictions."""
    if len(pred_boxes) != len(true_boxes):
        return False
    free = list(pred_boxes)
    for t in true_boxes:
        best = max(range(len(free)), key=lambda i: iou(free[i], t), default=None)
        if best is None or iou(free[best], t) < threshold:
            return False
        free.pop(best)
    return True


class IoUAccumulator:
    """Dataset-level intersection/union per class (foreground classes and background), then their mean."""

    def __init__(self):
        self.inter: dict[str, float] = {}
        self.union: dict[str, float] = {}

    def add(self, pred: np.ndarray, truth: np.ndarray, label: str) -> None:
        for name, p, t in ((label, pred > 0, truth > 0), ("others", pred == 0, truth == 0)):
            self.inter[name] = self.inter.get(name, 0.0) + float((p & t).sum())
            self.union[name] = self.union.get(name, 0.0) + float((p | t).sum())

    def per_class(self) -> dict[str, float]:
        return {k: self.inter[k] / self.union[k] for k in self.union if self.union[k] > 0}

    def miou(self) -> float:
        pc = self.per_class()
        return float(np.mean(list(pc.values()))) if pc else 0.0


class F1Accumulator:
    def __init__(self):
        self.tp = self.fp = self.fn = self.tn = 0.0

    def add(self, pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> None:
        p, t = pred > 0, truth > 0
        if valid is not None:
            p, t = p[valid], t[valid]
        self.tp += float((p & t).sum())
        self.fp += float((p & ~t).sum())
        self.fn += float((~p & t).sum())
        self.tn += float((~p & ~t).sum())

    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else 1.0

    @property
    def labelled_positive(self) -> bool:
        return self.tp + self.fn > 0

    def false_alarm(self) -> float:
        """The share of the labelled negatives predicted positive."""
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0


def bleu4(predictions: list[str], references: list[str]) -> float:
    """Corpus BLEU-4 in [0, 1] (sacrebleu, one reference per sample)."""
    if not predictions:
        return 0.0
    return sacrebleu.corpus_bleu(predictions, [references]).score / 100.0


def bleu4_refs(predictions: list[str], references: list[list[str]]) -> float:
    """Corpus BLEU-4 in [0, 1] (sacrebleu) against several references per sample (a sample with fewer repeats its
    first)."""
    if not predictions:
        return 0.0
    width = max(len(r) for r in references)
    streams = [[r[i] if i < len(r) else r[0] for r in references] for i in range(width)]
    return sacrebleu.corpus_bleu(predictions, streams).score / 100.0


def boxes_of(ids: np.ndarray) -> list[tuple[float, float, float, float]]:
    """(x0, y0, x1, y1) of each instance of an id map (0 none)."""
    return [(float(s[1].start), float(s[0].start), float(s[1].stop), float(s[0].stop))
            for s in ndimage.find_objects(np.maximum(ids, 0)) if s is not None]


def matched_boxes(pred_boxes, true_boxes, threshold: float = 0.5) -> int:
    """How many true boxes a one-to-one greedy matching (highest IoU first) pairs with a predicted box at
    IoU ≥ threshold."""
    pairs = sorted(((iou(p, t), i, j) for i, p in enumerate(pred_boxes) for j, t in enumerate(true_boxes)),
                   reverse=True)
    used_p, used_t = set(), set()
    for v, i, j in pairs:
        if v < threshold:
            break
        if i not in used_p and j not in used_t:
            used_p.add(i), used_t.add(j)
    return len(used_t)
