"""Training-time colour casts (rsapp.data.colour)."""

from dataclasses import replace

import numpy as np

from rsapp.data.colour import colour_cast
from rsapp.data.samples import make_sample


def _channel_means(rgb: np.ndarray) -> np.ndarray:
    return rgb.reshape(-1, 3).astype(np.float64).mean(0)


def test_a_cast_changes_colour_balance_but_not_labels():
    rng = np.random.default_rng(0)
    moved = []
    for _ in range(20):
        s = make_sample(rng, "[SEG]", 64)
        c = colour_cast(s, rng)
        assert c.images[0].shape == s.images[0].shape and c.images[0].dtype == np.uint8
        assert (c.answer, c.question, c.target, c.gsd_m) == (s.answer, s.question, s.target, s.gsd_m)
        before, after = _channel_means(s.images[0]), _channel_means(c.images[0])
        # Per-channel gains move the channels' balance, not only the brightness.
        moved.append(np.ptp(np.log(after + 1) - np.log(before + 1)))
        assert s.images[0] is not c.images[0]
    assert np.median(moved) > 0.1


def test_both_dates_of_a_pair_share_the_cast():
    rng = np.random.default_rng(1)
    between_dates, between_casts = [], []
    for _ in range(20):
        s = make_sample(rng, "[CCD]", 64)
        same = replace(s, images=[s.images[0], s.images[0].copy()])  # a pair where nothing changed
        a, b = (im.astype(np.float64) for im in colour_cast(same, rng).images)
        independent = colour_cast(replace(s, images=[s.images[0]]), rng).images[0].astype(np.float64)
        between_dates.append(np.abs(a - b).mean())
        between_casts.append(np.abs(a - independent).mean())
    # The dates differ by a small per-date gain only (σ 0.04), far less than two independent casts do.
    assert np.mean(between_dates) < 0.4 * np.mean(between_casts)
