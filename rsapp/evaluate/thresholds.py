"""The dense head's per-class thresholds, chosen on the train splits of the real sets (never the held-out ones):
for each class, the threshold of GRID whose IoU, averaged over the sets that label the class, is highest, the maps
read as the app reads a pixel answer (native resolution, quarter turns averaged). A map averaged over turns is
smoother than one view's, so its best threshold sits below 0.5.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from tqdm import tqdm

from rsapp.data.real_sets import DENSE_INDEX, NONE_OF_KNOWN, Raster

GRID = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
# A threshold fitted on one collection fits that collection: cars, labelled only on ISPRS' 5–9 cm panels, came out
# at 0.2 (IoU 0.25 there), which drew 32 cars on the Las Vegas sample's roofs, trees and road markings at 0.27 m.
MIN_SETS = 2


def overlaps(probs: np.ndarray, r: Raster, classes: tuple[str, ...], thresholds_of) -> dict[str, np.ndarray]:
    """Per class the raster labels: (intersection, union) pixel counts of its mask at each of the class's
    thresholds_of(name) against the labels, where they say (a (len(thresholds), 2) array)."""
    labelled = (r.dense < len(DENSE_INDEX)) | (r.dense == NONE_OF_KNOWN)
    out = {}
    for name in r.known:
        prob, truth = probs[classes.index(name)][labelled], r.dense[labelled] == DENSE_INDEX[name]
        out[name] = np.array([(float(((prob > t) & truth).sum()), float(((prob > t) | truth).sum()))
                              for t in thresholds_of(name)])
    return out


def grid_ious(predictor, rasters: list[Raster], progress: bool = True) -> dict[tuple[str, str], np.ndarray]:
    """(set, class) → IoU at each threshold of GRID, over the rasters' dense labels."""
    sums: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros((len(GRID), 2)))
    for r in tqdm([r for r in rasters if r.dense is not None], desc="thresholds", disable=not progress,
                  mininterval=10):
        for name, iu in overlaps(predictor.dense(r.rgb), r, predictor.dense_classes, lambda _: GRID).items():
            sums[(r.set, name)] += iu
    return {key: iu[:, 0] / np.maximum(iu[:, 1], 1) for key, iu in sums.items() if iu[:, 1].any()}


def choose(ious: dict[tuple[str, str], np.ndarray]) -> dict[str, float]:
    """Per class labelled by at least MIN_SETS train sets, the GRID threshold of the best IoU averaged over them
    (ties: nearer 0.5); a class fewer sets label keeps 0.5 (is left out)."""
    by_class: dict[str, list[np.ndarray]] = defaultdict(list)
    for (_, name), iou in ious.items():
        by_class[name].append(iou)
    out = {}
    for name, rows in by_class.items():
        if len(rows) < MIN_SETS:
            continue
        mean = np.round(np.mean(rows, 0), 4)
        best = np.flatnonzero(mean == mean.max())
        out[name] = float(GRID[min(best, key=lambda i: abs(GRID[i] - 0.5))])
    return out
