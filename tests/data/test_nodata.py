"""Chips with no-data (rsapp.data.nodata): blanked as the app blanks them, with labels and answers of what is left."""

import numpy as np

from rsapp.data.nodata import MIN_VALID, nodata_mask
from rsapp.data.samples import SceneFacts, make_sample
from rsapp.data.world import make_world
from rsapp.tasks.boxes import text_to_boxes


def test_masks_leave_enough_data_and_vary():
    rng = np.random.default_rng(0)
    masks = [nodata_mask(rng, 64) for _ in range(60)]
    assert all(m.shape == (64, 64) and m.dtype == bool and m.mean() >= MIN_VALID for m in masks)
    assert sum(m.all() for m in masks) < 15  # most chips lose some of their data (a polygon leaving too little blanks nothing)
    assert len({round(float(m.mean()), 2) for m in masks}) > 20


def test_blanked_pixels_carry_no_class_and_hide_what_lies_there():
    rng = np.random.default_rng(2)
    world = make_world(rng, 0.3, 128, "parking")
    valid = np.ones((128, 128), bool)
    valid[:, :64] = False  # the left half has no data
    f = SceneFacts(world, np.random.default_rng(5), 128, valid)
    full = SceneFacts(world, np.random.default_rng(5), 128)
    assert not f.r.rgb[:, :64].any() and not f.r.labels[:, :64].any()
    assert np.array_equal(f.r.rgb[:, 64:], full.r.rgb[:, 64:])
    left = [i for i, b in enumerate(full.r.boxes_px) if b[2] <= 64 and full.r.visible[i]]
    assert left and not any(f.r.visible[i] for i in left)
    assert len(f.visible("car")) < len(full.visible("car"))


def test_answers_refer_only_to_what_has_data():
    rng = np.random.default_rng(4)
    blanked = 0
    for _ in range(30):
        s = make_sample(rng, "[VG]", 128, nodata_share=1.0)
        black = ~s.images[0].any(axis=2)
        blanked += black.any()
        for x0, y0, x1, y1 in text_to_boxes(s.answer, 128)[0]:
            window = black[int(y0):max(int(y1), int(y0) + 1), int(x0):max(int(x1), int(x0) + 1)]
            assert window.mean() < 0.5  # every answer box lies mostly where there is data
        for inst in s.instances[0]:
            x0, y0, x1, y1 = (int(v) for v in inst[1:])
            assert black[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)].mean() < 0.5
    assert blanked > 20
