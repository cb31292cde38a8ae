"""The real labelled sets mixed into training (present on the training machine; skipped where they are not)."""

import numpy as np
import pytest

from rsapp.data.real import IGNORE, real_root, real_sample
from rsapp.data.samples import SEG_GRID
from rsapp.tasks.boxes import text_to_boxes
from rsapp.tasks.descriptors import text_to_mask

pytestmark = pytest.mark.skipif(not real_root().is_dir(), reason="../shared/data/real is not on this machine")


def test_real_samples_decode_back_to_their_labels():
    rng = np.random.default_rng(0)
    seen = set()
    for i in range(24):
        s = real_sample(rng, 256, pairs=i % 4 == 0)
        assert all(im.shape == (256, 256, 3) and im.dtype == np.uint8 for im in s.images)
        assert len(s.images) == (2 if i % 4 == 0 else 1) == len(s.dense)
        assert s.gsd_m >= 0.3
        seen.add((s.token, s.question.split()[-1]))
        if s.token == "[SEG]":
            grid, _, warnings = text_to_mask(s.answer, SEG_GRID, ["others", s.target["label"]])
            assert not warnings and np.array_equal(grid > 0, s.target["grid"] > 0)
        else:
            boxes, warnings = text_to_boxes(s.answer, 256)
            assert not warnings and len(boxes) == len(s.target["boxes"])
        # Only the labelled class is known to the dense target; the others are marked unknown.
        d = s.dense[0]
        assert ((d == IGNORE).all(axis=(1, 2))).sum() >= d.shape[0] - 1
    assert ("[SEG]", "changes") in seen and len(seen) >= 3
