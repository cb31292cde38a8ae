"""Choosing the dense head's per-class thresholds (rsapp.evaluate.thresholds)."""

import numpy as np

from rsapp.data.real_sets import DENSE_INDEX, IGNORE, Raster
from rsapp.evaluate.thresholds import GRID, choose, overlaps


def test_overlaps_count_only_where_the_labels_say():
    road = DENSE_INDEX["road"]
    dense = np.array([[road, road, IGNORE, 0]], np.uint8)  # 0: building, which this raster does not label
    r = Raster("s", "x", np.zeros((1, 4, 3), np.uint8), None, False, dense=dense, known=("road",))
    probs = np.zeros((len(DENSE_INDEX), 1, 4), np.float32)
    probs[road] = [[0.9, 0.3, 0.9, 0.9]]
    (low, high) = overlaps(probs, r, tuple(DENSE_INDEX), lambda _: [0.2, 0.5])["road"]
    assert low.tolist() == [2, 3] and high.tolist() == [1, 3]  # the IGNORE pixel never counts


def test_the_threshold_is_the_best_on_average_over_the_sets_labelling_the_class():
    grid = np.array(GRID)
    peak = lambda at: 1 - np.abs(grid - at)  # noqa: E731
    ious = {("a", "road"): peak(0.3), ("b", "road"): peak(0.4), ("a", "water"): np.full(len(GRID), 0.8),
            ("b", "water"): np.full(len(GRID), 0.6), ("a", "building"): peak(0.25), ("b", "building"): peak(0.25) - 0.5,
            ("a", "car"): peak(0.2)}
    chosen = choose(ious)
    assert chosen["road"] == 0.4  # a flat top from 0.3 to 0.4 between the two sets' peaks: the end nearer 0.5
    assert chosen["water"] == 0.5  # all tied: the usual threshold
    assert chosen["building"] == 0.25
    assert "car" not in chosen  # one set labels it: its peak is that collection's, the class keeps 0.5
