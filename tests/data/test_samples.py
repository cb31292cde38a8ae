import numpy as np
import pytest

from rsapp.data.render import VISIBLE_PX, render
from rsapp.data.samples import NOT_VISIBLE, TASK_WEIGHTS, SceneFacts, caption, cell_grid, make_sample, vqa
from rsapp.data.world import BUILT_UP, CLASS_INDEX, make_world
from rsapp.tasks.boxes import text_to_boxes
from rsapp.tasks.descriptors import text_to_mask


def test_generator_is_deterministic_per_seed():
    a = make_sample(np.random.default_rng(7), "[VG]")
    b = make_sample(np.random.default_rng(7), "[VG]")
    assert a.question == b.question and a.answer == b.answer and np.array_equal(a.images[0], b.images[0])


@pytest.mark.parametrize("task", list(TASK_WEIGHTS))
def test_every_task_has_samples_whose_answers_decode(task):
    rng = np.random.default_rng(hash(task) % 1000)
    for _ in range(3):
        s = make_sample(rng, task, 128)
        assert all(im.shape == (128, 128, 3) and im.dtype == np.uint8 for im in s.images)
        assert len(s.images) == (2 if task in ("[CCD]", "[SEG2]") else 1)
        if "grid" in s.target:
            grid, _, warnings = text_to_mask(s.answer, 16, ["others", s.target["label"]])
            assert np.array_equal(grid > 0, s.target["grid"] > 0) and not warnings
        if "boxes" in s.target:
            boxes, _ = text_to_boxes(s.answer, 128)
            assert len(boxes) == len(s.target["boxes"])


def test_labels_are_exact_world_geometry():
    rng = np.random.default_rng(3)
    w = make_world(rng, 0.5, 256, "harbor")
    r = render(w, rng, 256)
    water = sum(t.geom.area for t in w.of("water")) / w.extent_m ** 2
    assert abs((r.labels == CLASS_INDEX["water"]).mean() - water) < 0.1


def test_questions_know_the_gsd():
    """Cars are counted at 0.3 m and 'not visible at this resolution' at 5 m, for the same kind of scene."""
    for gsd, expect_visible in ((0.3, True), (5.0, False)):
        rng = np.random.default_rng(11)
        answers = set()
        for _ in range(60):
            f = SceneFacts(make_world(rng, gsd, 128, "residential"), rng, 128)
            q, a, kind = vqa(rng, f)
            if "cars" in q and q.startswith("how many"):
                answers.add(a)
        assert answers, "no car question drawn"
        assert (NOT_VISIBLE in answers) != expect_visible
    assert 1.9 / 0.3 >= VISIBLE_PX > 1.9 / 5.0


def test_towns_are_one_class_where_they_are_drawn_alike():
    """Above 2 m residential and industrial towns are the same built-up districts: [CLS] cannot tell them apart, so
    it is not asked to; at 0.5 m houses and sheds are drawn one by one and keep their types."""
    for gsd in (0.5, 5.0):
        drawn, labels = [], set()
        for scene in ("residential", "industrial"):
            w = make_world(np.random.default_rng(4), gsd, 128, scene)  # the same draws for both types
            drawn.append([(t.kind, round(t.geom.area)) for t in w.things])
            labels.add(w.scene_class)
        if gsd > 2:
            assert drawn[0] == drawn[1] and labels == {BUILT_UP}
        else:
            assert drawn[0] != drawn[1] and labels == {"residential", "industrial"}


def test_coarse_districts_show_their_scale():
    """A built-up district is drawn with roofs and gardens of a real size: a few pixels each at 3 m, averaged within a
    pixel at 30 m. So its texture survives averaging 4 × 4 pixels at 3 m and not at 30 m: a chip's scale is in the
    image (SSE-U reads it), not only in the districts' outlines, which are sized to the chip."""
    coarse_texture = {}
    for gsd in (3.0, 30.0):
        w = make_world(np.random.default_rng(3), gsd, 256, "residential")
        r = render(w, np.random.default_rng(4), 256)
        blocks = r.rgb.astype(np.float32).mean(-1).reshape(64, 4, 64, 4).mean((1, 3))
        built = (r.labels == CLASS_INDEX["building"]).reshape(64, 4, 64, 4).all((1, 3))
        assert built.sum() > 20
        coarse_texture[gsd] = float(blocks[built].std())
    assert coarse_texture[3.0] > 2 * coarse_texture[30.0]


def test_captions_do_not_repeat_the_scene():
    """A coarse town is "a built-up area with a road", never "a built-up area with a built-up area and a road"."""
    rng = np.random.default_rng(5)
    seen = set()
    for scene in ("residential", "forest"):
        for _ in range(20):
            f = SceneFacts(make_world(rng, 8.0, 128, scene), rng, 128)
            text = caption(f)
            head, _, listed = text.rstrip(".").partition(" with ")
            seen.add(head)
            assert head.removesuffix(" area") not in listed, text
    assert seen == {"a built-up area", "a forest area"}


def test_change_pairs_have_masks_where_things_changed():
    rng = np.random.default_rng(5)
    seen = 0
    for _ in range(8):
        s = make_sample(rng, "[SEG2]", 128)
        if s.target["mask"].any():
            seen += 1
            assert cell_grid(s.target["mask"]).any()
    assert seen >= 3
