"""The real sets: every one has a held-out part that never trains; made change pairs are exact by construction."""

import math

import numpy as np
import pytest

from tests.conftest import REAL

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")


@pytest.fixture(scope="module")
def rasters():
    from rsapp.data.real_sets import load_all

    return load_all()


def test_every_set_has_a_held_out_part_and_its_split_is_documented(rasters):
    from rsapp.data.real_sets import SPLITS

    sets = {r.set for r in rasters}
    held = {r.set for r in rasters if r.held_out}
    assert sets <= set(SPLITS) | {"landsat-taizhou"}
    assert held >= sets - {"landsat-nanjing"}  # Nanjing trains; Taizhou (sample_data) is its held-out twin
    names = {(r.set, r.name) for r in rasters if r.held_out}
    assert not names & {(r.set, r.name) for r in rasters if not r.held_out}
    ucm = [r for r in rasters if r.set == "ucmerced"]
    assert sum(r.held_out for r in ucm) == 420 and len({r.scene for r in ucm if r.held_out}) == 21


def test_bundled_samples_never_train(rasters):
    assert all(r.held_out for r in rasters if r.set in ("vegas-buildings", "landsat-taizhou"))


def test_made_change_pairs_are_exact_by_construction(rasters):
    from rsapp.data.real_chips import remove_buildings, synthetic_change
    from rsapp.data.real_sets import DENSE_INDEX, IGNORE

    rng = np.random.default_rng(0)
    source = next(r for r in rasters if r.set == "spacenet-atlanta" and not r.held_out)
    rgb, buildings = source.rgb[:256, :256], source.dense[:256, :256] == DENSE_INDEX["building"]
    without, change, region = remove_buildings(rgb, buildings, rng)
    assert change.any() and (change <= buildings).all() and (change <= region).all()
    assert np.array_equal(without[~region], rgb[~region])  # nothing else is touched
    assert np.abs(without[change].astype(int) - rgb[change].astype(int)).mean() > 5
    made = [m for m in (synthetic_change(source, rng, 256) for _ in range(4)) if m is not None]
    assert made and all(m[0].shape == m[1].shape == (256, 256, 3) for m in made)
    assert all(set(np.unique(m[2])) <= {0, 1, IGNORE} and (m[2] == 1).any() for m in made)


def test_pasted_buildings_land_only_on_free_ground_and_are_the_change(rasters):
    from rsapp.data.real_chips import paste_buildings
    from rsapp.data.real_sets import DENSE_INDEX, IGNORE

    rng = np.random.default_rng(1)
    source = next(r for r in rasters if r.set == "spacenet-atlanta" and not r.held_out)
    rgb, labels = source.rgb[:256, :256], source.dense[:256, :256]
    donor_rgb, donor_labels = source.rgb[256:512, 256:512], source.dense[256:512, 256:512]
    out, pasted = paste_buildings(rgb, labels, donor_rgb, donor_labels, rng)
    assert pasted.any()
    assert not (pasted & ((labels == DENSE_INDEX["building"]) | (labels == IGNORE))).any()
    assert np.array_equal(out[~pasted], rgb[~pasted])  # only the pasted pixels change
    assert np.abs(out[pasted].astype(int) - rgb[pasted].astype(int)).mean() > 5


def test_a_distractor_changes_other_classes_and_never_the_kept_pixels(rasters):
    from rsapp.data.real_chips import DISTRACTORS, distract
    from rsapp.data.real_sets import DENSE_INDEX

    rng = np.random.default_rng(2)
    source = next(r for r in rasters if r.set == "dubai" and not r.held_out)
    rgb, labels = source.rgb[:512, :512], source.dense[:512, :512]
    keep = labels == DENSE_INDEX["building"]
    others = np.isin(labels, [DENSE_INDEX[c] for c in DISTRACTORS])
    for _ in range(4):
        out = distract(rgb, labels, keep, rng)
        moved = (out != rgb).any(-1)
        assert moved.any() and not (moved & keep).any()
        assert (moved <= others).all()


def test_the_analyst_warns_beyond_the_gsd_range_each_class_trained_at(rasters):
    """TRAINED_MAX_GSD_M / TRAINED_MIN_GSD_M are what stage A saw: each train raster resampled from its own GSD up
    to MAX_FACTOR × it (Dubai's, the one set without a GSD, taken at its documented ~0.5–1 m)."""
    from rsapp.analyst import beyond_training
    from rsapp.model.trained_range import TRAINED_MAX_GSD_M, TRAINED_MIN_GSD_M
    from rsapp.data.real_chips import MAX_FACTOR

    train = [r for r in rasters if not r.held_out and r.dense is not None]
    assert {r.set for r in train if r.gsd_m is None} == {"dubai"}
    coarsest: dict[str, float] = {}
    finest: dict[str, float] = {}
    for r in train:
        for name in r.known:
            coarsest[name] = max(coarsest.get(name, 0.0), (r.gsd_m or 1.0) * MAX_FACTOR)
            finest[name] = min(finest.get(name, math.inf), r.gsd_m or 0.5)
    assert coarsest == pytest.approx(TRAINED_MAX_GSD_M)
    assert finest == pytest.approx(TRAINED_MIN_GSD_M)
    assert "at least ~10 m" in beyond_training(["ship"], 0.3)  # a harbour at 0.3 m: boats never seen that fine
    assert beyond_training(["water", "building"], 0.3) is None and beyond_training(["ship"], 10.0) is None
    assert "at most ~8 m" in beyond_training(["water"], 30.0)


def test_the_analyst_warns_about_classes_labelled_on_few_pixels(rasters):
    """THINLY_LABELLED holds the classes the train splits label on fewer than THIN_LABEL_PX pixels, with their count."""
    from rsapp.analyst import THIN_LABEL_PX, THINLY_LABELLED, thinly_labelled
    from rsapp.data.real_sets import DENSE_INDEX

    labelled: dict[str, int] = {}
    for r in rasters:
        if not r.held_out and r.dense is not None:
            for name in r.known:
                labelled[name] = labelled.get(name, 0) + int((r.dense == DENSE_INDEX[name]).sum())
    assert {n: px for n, px in labelled.items() if px < THIN_LABEL_PX} == THINLY_LABELLED
    assert "car on 1,185 labelled pixels" in thinly_labelled(["building", "car"])
    assert thinly_labelled(["building", "ship"]) is None


def test_touching_footprints_are_split_into_instances():
    from rsapp.data.real_sets import touching_split

    mask = np.zeros((40, 60), bool)
    mask[5:30, 5:24] = mask[5:30, 27:50] = True
    mask[15:18, 24:27] = True  # two footprints touching over 3 px: one region
    ids = touching_split(mask)
    assert len(np.unique(ids[ids > 0])) == 2 and ((ids > 0) == mask).all()


def test_sets_with_footprints_or_boxes_carry_their_instances(rasters):
    """One id per footprint / box: the Las Vegas sample's 26 buildings, SpaceNet Atlanta's polygons, Honolulu's
    ships; xBD's two dates of a place show the same buildings."""
    vegas = next(r for r in rasters if r.set == "vegas-buildings")
    assert vegas.instance_class == "building" and len(np.unique(vegas.instances)) - 1 == 26
    atlanta = [r for r in rasters if r.set == "spacenet-atlanta"]
    assert all(len(np.unique(r.instances)) > 5 for r in atlanta)
    ships = next(r for r in rasters if r.name == "honolulu")
    assert ships.instance_class == "ship" and len(np.unique(ships.instances)) - 1 == 12
    pre, post = (next(r for r in rasters if r.name == f"hurricane-harvey_00000007_{d}_disaster") for d in ("pre", "post"))
    assert abs(len(np.unique(pre.instances)) - len(np.unique(post.instances))) <= 2
    trees = {r.name: r for r in rasters if r.set == "neon-trees"}  # every crown box of the NEON crops, as a tree
    assert {n: len(np.unique(r.instances)) - 1 for n, r in trees.items()} == {
        "OSBS_029": 61, "SOAP_061": 37, "2019_YELL_2_541000_4977000_image_crop": 279,
        "2018_SJER_3_252000_4107000_image_477": 7, "2019_BLAN_3_751000_4330000_image_crop": 4}
    assert [n for n, r in trees.items() if r.held_out] == ["OSBS_029"]
    assert all(r.instance_class == "vegetation" and r.dense is None and r.gsd_m == 0.1 for r in trees.values())


def test_the_bundled_samples_are_scored_on_the_pixels_the_app_reads(rasters):
    """An 8-bit RGB GeoTIFF is shown as it is by the app (no percentile stretch), and scored as it is too; a 16-bit
    panchromatic one is stretched by both alike."""
    from rsapp.geo import Scene
    from tests.conftest import ROOT

    vegas = next(r for r in rasters if r.set == "vegas-buildings")
    with Scene(ROOT / "sample_data" / "vegas_buildings_0.3m.tif") as scene:
        app = scene.overview_rgb(max(scene.width, scene.height))[0]
    assert app.shape == vegas.rgb.shape and np.abs(app.astype(int) - vegas.rgb.astype(int)).mean() < 0.01
    atlanta = next(r for r in rasters if r.set == "spacenet-atlanta" and not r.held_out)
    with Scene(REAL / "buildings" / "spacenet-atlanta-pan" / "sample_geotiff.tif", bands=(1, 1, 1)) as scene:
        app = scene.overview_rgb(max(scene.width, scene.height))[0][:, :atlanta.rgb.shape[1]]
    assert np.abs(app.astype(int) - atlanta.rgb.astype(int)).mean() < 2


def test_a_crown_box_becomes_the_ellipse_it_holds_and_a_small_crown_keeps_its_pixels():
    from rsapp.data.real_sets import crown_ids
    from rsapp.evaluate.metrics import boxes_of

    ids = crown_ids([(10, 10, 30, 20), (0, 0, 40, 40)], (50, 50))  # the small crown lies on the large one
    assert boxes_of(ids)[0] == (10.0, 10.0, 30.0, 20.0)
    assert ids[15, 20] == 1 and ids[2, 2] == 0 and ids[20, 38] == 2  # box corners are not crown
    assert abs((ids == 1).sum() - np.pi * 10 * 5) < 8


def test_counting_questions_read_numbers_in_words_and_skip_those_counting_some():
    from rsapp.data.real_sets import Raster
    from rsapp.data.real_text import count_of
    from rsapp.evaluate.real import counting_questions

    assert [count_of(a) for a in ("8", "eight", "twenty", "forty-four", "sixty one", "yes", "many")] == [
        8, 8, 20, 44, 61, None, None]
    r = Raster("ucmerced", "harbor61", np.zeros((8, 8, 3), np.uint8), 0.3, True, qa=[
        ("How many boats in the picture?", "forty-four"), ("How many red cars in the picture?", "two"),
        ("How many mobile homes in the picture?", "eight"), ("How many trees in the picture?", "three"),
        ("Is there a river?", "no"), ("How many cars in the picture?", "many")])
    assert counting_questions(r) == [("ship", 44), ("building", 8)]


class _Boxes:
    """A predictor of instances only: the truth itself, or nothing."""

    dense_classes = ("building", "road", "water", "vegetation", "bare land", "car", "ship")

    def __init__(self, perfect: bool, raster):
        self.perfect, self.raster = perfect, raster

    def dense(self, rgb):
        return np.zeros((len(self.dense_classes),) + rgb.shape[:2], np.float32)

    def threshold(self, name):
        return 0.5

    def log10_gsd(self, rgb):
        return 0.0  # 1 m, on the crop

    def log10_gsd_whole(self, rgb):
        import math

        return math.log10(self.raster.gsd_m) if self.perfect else 1.0  # exact, or 10 m, on the whole image

    def instances(self, rgb, name, gsd_m):
        from rsapp.evaluate.metrics import boxes_of

        return [(b, 1, 1.0) for b in boxes_of(self.raster.instances)] if self.perfect else []


def test_evaluate_real_scores_counts_instance_boxes_and_gsd(rasters):
    import math

    from rsapp.evaluate.real import evaluate_real

    vegas = next(r for r in rasters if r.set == "vegas-buildings")
    perfect = evaluate_real(_Boxes(True, vegas), sets=("vegas-buildings",), progress=False)["vegas-buildings"]
    assert perfect["count_rel_err"] == 0 and perfect["box_f1"] == 1
    empty = evaluate_real(_Boxes(False, vegas), sets=("vegas-buildings",), progress=False)["vegas-buildings"]
    assert empty["count_rel_err"] == 1 and empty["box_f1"] == 0
    crop_err = round(abs(math.log10(vegas.gsd_m)), 4)  # the crop read as 1 m, for 0.27 m
    assert perfect["gsd_abs_log10_err"] == empty["gsd_abs_log10_err"] == crop_err
    assert perfect["gsd_whole_abs_log10_err"] == 0
    assert empty["gsd_whole_abs_log10_err"] == round(1 - math.log10(vegas.gsd_m), 4)
    # a counting question asked in words is scored against the instances counted
    vegas.qa = [("how many houses are there?", "twenty-six"), ("how many red cars are there?", "three")]
    try:
        asked = evaluate_real(_Boxes(True, vegas), sets=("vegas-buildings",), progress=False)["vegas-buildings"]
    finally:
        vegas.qa = []
    assert asked["vqa_count_rel_err"] == {"building": 0}


def test_the_sets_of_one_example_are_held_out_and_asked_as_the_cli_asks(rasters):
    from types import SimpleNamespace

    from affine import Affine

    from rsapp.data.real_sets import SINGLE_EXAMPLE_SETS
    from rsapp.evaluate.real import asked_examples

    single = [r for r in rasters if r.set in SINGLE_EXAMPLE_SETS]
    assert sorted(r.set for r in single) == sorted(SINGLE_EXAMPLE_SETS) and all(r.held_out for r in single)
    dior = next(r for r in single if r.referred)
    assert dior.referred == ("A green and brown golf field", (133.0, 237.0, 684.0, 672.0))
    asked = []

    def ask(images, prompt, boxes):  # a chip at half the image's size: its boxes are read back at twice theirs
        asked.append((len(images), prompt))
        return SimpleNamespace(boxes_px=boxes, transform=Affine.scale(2), text="answer",
                               raw_text="a row of houses is built by the road")

    on = asked_examples(lambda im, p: ask(im, p, [(66.5, 118.5, 342, 336)]), single)
    off = asked_examples(lambda im, p: ask(im, p, [(0, 0, 100, 100), (66.5, 118.5, 342, 336)]), [dior])
    assert on["dior-rsvg"]["vg_acc50"] == 1 and on["dior-rsvg"]["vg_iou"] == 1 and off["dior-rsvg"]["vg_acc50"] == 0
    assert sorted(asked[:3]) == [(1, "[CAP] describe the image"), (1, "[VG] A green and brown golf field"),
                                 (2, "[CCD] what changed?")]
    assert on["levir-cc"]["cap_bleu4"] == 1  # one of its captions, word for word
    assert on["rsicd"]["cap_bleu4"] < 0.5 and on["rsicd"]["answer"] == "answer"  # a stadium is no row of houses


def test_referring_phrases_name_only_the_instances_the_labels_single_out():
    from rsapp.data.real_sets import Raster
    from rsapp.evaluate.real import referring_phrases

    ids = np.zeros((100, 100), np.int32)
    ids[10:20, 5:15] = 1  # 100 px, the leftmost and the topmost
    ids[40:60, 40:60] = 2  # 400 px: the largest, nearest the centre
    ids[80:92, 80:92] = 3  # 144 px, the rightmost and the bottommost
    r = Raster("xbd-buildings", "x", np.zeros((100, 100, 3), np.uint8), 0.5, True, instances=ids,
               instance_class="building")
    assert dict(referring_phrases(r)) == {
        "the largest building": (40.0, 40.0, 60.0, 60.0), "the leftmost building": (5.0, 10.0, 15.0, 20.0),
        "the rightmost building": (80.0, 80.0, 92.0, 92.0), "the building at the top": (5.0, 10.0, 15.0, 20.0),
        "the building at the bottom": (80.0, 80.0, 92.0, 92.0),
        "the building nearest the centre": (40.0, 40.0, 60.0, 60.0)}
    ids[80:100, 80:100] = 3  # as large as the middle one, within 4 px of the right and bottom edges
    ids[25:35, 6:15] = 4  # below the first, as far left: neither is clearly the leftmost
    phrases = dict(referring_phrases(r))
    assert "the largest building" not in phrases and "the leftmost building" not in phrases
    assert phrases["the rightmost building"] == (80.0, 80.0, 100.0, 100.0)
    r.instance_class = "vegetation"
    assert "the tree nearest the centre" in dict(referring_phrases(r))
    r.set = "dubai"  # building regions: a compound drawn as one is not "the largest building"
    assert referring_phrases(r) == []


def test_referring_phrases_are_asked_as_the_cli_asks_and_scored_by_their_first_box(rasters):
    from collections import defaultdict
    from types import SimpleNamespace

    from affine import Affine

    from rsapp.evaluate.real import referred_scores, referring_phrases

    held = [r for r in rasters if r.held_out]
    phrases = defaultdict(list)
    for r in held:
        phrases[r.set] += referring_phrases(r)
    assert {s for s, p in phrases.items() if p} >= {"xbd-buildings", "spacenet-atlanta", "vegas-buildings"}
    truths = {f"[VG] {p}": box for r in held for p, box in referring_phrases(r)}

    def ask(images, prompt):  # a chip at half the image's size: its boxes are read back at twice theirs
        x0, y0, x1, y1 = truths[prompt]
        return SimpleNamespace(boxes_px=[(x0 / 2, y0 / 2, x1 / 2, y1 / 2)], transform=Affine.scale(2))

    right = referred_scores(ask, held)
    assert right["xbd-buildings"] == {"vg_acc50": 1, "vg_phrases": len(phrases["xbd-buildings"])}
    assert "dubai" not in right and "ucmerced" not in right
    wrong = referred_scores(lambda im, p: SimpleNamespace(boxes_px=[(0, 0, 3, 3)], transform=Affine.scale(2)), held)
    assert all(v["vg_acc50"] == 0 for v in wrong.values())
    none = referred_scores(lambda im, p: SimpleNamespace(boxes_px=[], transform=Affine.scale(2)), held)
    assert all(v["vg_acc50"] == 0 for v in none.values())


def test_instance_boxes_are_matched_one_to_one():
    from rsapp.evaluate.metrics import matched_boxes

    truth = [(0, 0, 10, 10), (20, 0, 30, 10)]
    assert matched_boxes([(0, 0, 10, 10), (1, 0, 11, 10)], truth) == 1  # two answers for one house: one match
    assert matched_boxes([(21, 0, 31, 10), (0, 1, 10, 11)], truth) == 2
    assert matched_boxes([(0, 0, 30, 10)], truth) == 0  # a row of both houses is neither


def test_a_crop_mostly_of_one_cover_is_a_land_cover_scene_of_its_split():
    from rsapp.data.real_sets import DENSE_INDEX, IGNORE, Raster, cover_scenes

    dense = np.full((512, 512), DENSE_INDEX["building"], np.uint8)
    dense[:, :256] = DENSE_INDEX["bare land"]  # the left half is desert
    dense[:40, :256] = IGNORE  # unlabelled pixels count against the share (216 / 256 of the crop stays bare)
    dense[256:, 256:] = DENSE_INDEX["water"]
    r = Raster("landcover", "tile", np.zeros((512, 512, 3), np.uint8), 1.0, True, dense,
               ("building", "bare land", "water"))
    crops = {(c.name, c.scene) for c in cover_scenes([r])}
    assert crops == {("tile@0,0", "bare land"), ("tile@128,0", "bare land"), ("tile@256,0", "bare land"),
                     ("tile@256,256", "water")}
    assert all(c.held_out and c.set == "landcover-cover" and c.rgb.shape == (256, 256, 3) for c in cover_scenes([r]))
    r.known = ("building",)  # a set that does not label bare land or water names no cover scene
    assert cover_scenes([r]) == []


def test_a_river_harbour_or_beach_scene_holds_water_and_says_nothing_else(rasters):
    from rsapp.data.real_sets import SCENE_HOLDS, SCENE_RULES_OUT, holding_scenes

    train = [r for r in rasters if not r.held_out]
    scenes = holding_scenes(train)
    assert {s.scene for s in scenes} == {"river", "harbor", "beach"} and all(s.known == ("water",) for s in scenes)
    assert len(scenes) == 3 * 60 and all(not s.held_out and s.dense is None for s in scenes)
    assert all(not set(held) & set(SCENE_RULES_OUT.get(scene, ())) for scene, held in SCENE_HOLDS.items())


def test_a_scene_whose_class_rules_classes_out_labels_them_absent_everywhere_and_nothing_else(rasters):
    from rsapp.data.real_sets import SCENE_RULES_OUT, ruled_out_scenes
    from rsapp.tasks.vocabulary import DENSE_CLASSES, SCENE_CLASSES
    from rsapp.train.batch import dense_targets

    assert set(SCENE_RULES_OUT) <= set(SCENE_CLASSES)
    assert all(set(out) <= set(DENSE_CLASSES) for out in SCENE_RULES_OUT.values())
    train = [r for r in rasters if not r.held_out]
    scenes = ruled_out_scenes(train)
    assert len(scenes) == sum(r.scene in SCENE_RULES_OUT and r.dense is None for r in train) > 0
    assert all(not s.held_out for s in scenes)  # only the train split's scenes
    forest = next(s for s in scenes if s.set == "ruled-out:forest")
    target, weight = dense_targets(forest.dense, forest.known, len(DENSE_CLASSES))
    assert not target.any()
    for k, name in enumerate(DENSE_CLASSES):  # building, car and ship absent on every pixel; the rest unsaid
        assert (weight[k] == 1).all() if name in ("building", "car", "ship") else not weight[k].any()


def test_a_shape_is_placed_only_on_allowed_pixels_or_not_at_all():
    from rsapp.data.real_chips import place

    rng = np.random.default_rng(0)
    shape = np.ones((4, 4), bool)
    shape[0, 0] = False  # a corner the shape does not cover may lie on forbidden ground
    allowed = np.zeros((12, 12), bool)
    allowed[8:, 8:] = True
    allowed[8, 8] = False
    spots = [place(shape, allowed, rng, tries=2000) for _ in range(10)]
    assert all(s == (slice(8, 12), slice(8, 12)) for s in spots)  # the only fit, reaching the last row and column
    assert place(shape, allowed, rng, to_edge=False, tries=200) is None  # which to_edge=False never draws
    assert place(np.ones((5, 5), bool), allowed, rng, tries=200) is None


def test_a_shadow_beside_a_building_touches_it_on_one_side_and_never_covers_it_or_water():
    from scipy import ndimage

    from rsapp.data.real_chips import cast_shadow, shadow_beside
    from rsapp.data.real_sets import DENSE_INDEX, IGNORE

    rng = np.random.default_rng(0)
    labels = np.full((64, 64), DENSE_INDEX["bare land"], np.uint8)
    labels[24:40, 24:40] = DENSE_INDEX["building"]
    labels[:, :8] = DENSE_INDEX["water"]
    labels[:, 56:] = IGNORE
    building = labels == DENSE_INDEX["building"]
    rgb = np.full((64, 64, 3), 200, np.uint8)
    for _ in range(20):
        shade = shadow_beside(building, rng)
        assert shade.any() and not (shade & building).any()
        assert (shade & ndimage.binary_dilation(building)).any()  # it starts at the building's edge
        ys, xs = np.nonzero(shade)
        assert ys.min() >= 24 or ys.max() <= 39 or xs.min() >= 24 or xs.max() <= 39  # thrown one way, not all round
        out, mask = cast_shadow(rgb, labels, rng, beside=1.0)
        assert mask.any() and not (mask & (building | (labels == IGNORE) | (labels == DENSE_INDEX["water"]))).any()
        assert (out[mask] < 110).all() and (out[~mask] == 200).all()


def test_a_pasted_pond_is_real_train_water_labelled_water_alone_and_never_on_padding(rasters):
    from rsapp.data.real_chips import paste_pond, water_windows
    from rsapp.data.real_sets import DENSE_INDEX, IGNORE
    from rsapp.tasks.vocabulary import DENSE_CLASSES
    from rsapp.train.batch import Batch, add_dense

    train = [r for r in rasters if not r.held_out and r.dense is not None]
    ponds = water_windows(train)
    dubai = [r for r in train if r.set == "dubai"]
    assert len(ponds) > 100 and len(ponds) == len(water_windows(dubai))  # only Dubai labels water
    assert all(p.shape == (96, 96, 3) for p in ponds)
    assert np.median([p.mean() for p in ponds]) < 60  # the labelled water is dark, as Dubai's is
    rng = np.random.default_rng(0)
    source = next(r for r in train if r.set == "spacenet-atlanta")
    rgb, labels = source.rgb[:256, :256], source.dense[:256, :256].copy()
    labels[:, 128:] = IGNORE  # padding, as a chip of a small image has
    masks = [paste_pond(rgb, labels, ponds, rng) for _ in range(8)]
    assert sum(m.any() for _, m in masks) >= 6 and not any(m[:, 128:].any() for _, m in masks)
    assert all(np.array_equal(out[~m], rgb[~m]) for out, m in masks)  # only the pond's pixels change
    batch = Batch()
    add_dense(batch, [source] * 6, 6, 256, len(DENSE_CLASSES), rng, ponds, pond_share=1.0)
    water = DENSE_INDEX["water"]
    found = 0
    for rgb, target, weight in zip(batch.dense, batch.dense_targets, batch.dense_weights):
        pond = target[water] == 1
        if not pond.any():
            continue
        found += 1
        assert (weight[:, pond] == 1).all() and target[:, pond].sum() == pond.sum()  # water alone, every class said
        assert not (weight[water] * ~pond).any()  # Atlanta says nothing of water elsewhere
        assert np.median(rgb[pond]) < 90  # real (dark) water pixels
    assert found >= 4


def test_a_cast_shadow_darkens_land_in_place_and_is_labelled_not_water(rasters):
    from rsapp.data.real_chips import cast_shadow, water_windows
    from rsapp.data.real_sets import DENSE_INDEX, IGNORE
    from rsapp.tasks.vocabulary import DENSE_CLASSES
    from rsapp.train.batch import Batch, add_dense

    train = [r for r in rasters if not r.held_out and r.dense is not None]
    rng = np.random.default_rng(0)
    dubai = next(r for r in train if r.set == "dubai" and (r.dense == DENSE_INDEX["water"]).mean() > 0.1)
    rgb, labels = dubai.rgb[:256, :256], dubai.dense[:256, :256].copy()
    labels[:, 200:] = IGNORE
    shades = [cast_shadow(rgb, labels, rng) for _ in range(8)]
    for out, shade in shades:
        assert not (shade & ((labels == IGNORE) | (labels == DENSE_INDEX["water"]))).any()  # never padding or water
        assert np.array_equal(out[~shade], rgb[~shade])
        if shade.any():  # darker, the texture kept (correlated with the ground under it)
            before, after = rgb[shade].astype(float).mean(1), out[shade].astype(float).mean(1)
            assert after.mean() < 0.55 * before.mean() and np.corrcoef(before, after)[0, 1] > 0.8
    assert sum(s.any() for _, s in shades) >= 6
    water = DENSE_INDEX["water"]
    ships = next(r for r in train if r.set == "sen2ships")
    atlanta = next(r for r in train if r.set == "spacenet-atlanta")
    for source, said_dry in ((atlanta, True), (ships, False)):  # the ships' sea is unlabelled: no shadow said dry there
        batch = Batch()
        add_dense(batch, [source] * 4, 4, 256, len(DENSE_CLASSES), rng, shadow_share=1.0)
        assert not any(t[water].any() for t in batch.dense_targets)
        assert any(w[water].any() for w in batch.dense_weights) == said_dry  # neither set labels water otherwise
    batch = Batch()  # a pond and a shadow in the same chips: each said as it is
    add_dense(batch, [atlanta] * 8, 8, 256, len(DENSE_CLASSES), rng, water_windows([dubai]), 1.0, 1.0)
    assert sum(((w[water] == 1) & (t[water] == 0)).any() for t, w in zip(batch.dense_targets, batch.dense_weights)) >= 4
    assert sum(t[water].any() for t in batch.dense_targets) >= 4


class _Changed:
    """A change predictor marking the top `share` of every picture changed."""

    def __init__(self, share: float):
        self.share = share

    def change(self, before, after, gsd_m):
        prob = np.zeros(before.shape[:2], np.float32)
        prob[:round(self.share * prob.shape[0])] = 1.0
        return prob


def test_xbd_pairs_are_real_pairs_without_change_scored_by_their_false_alarms(rasters):
    from rsapp.data.real_sets import IGNORE, SPLITS, UNCHANGED_SETS
    from rsapp.evaluate.real import evaluate_real

    pairs = [r for r in rasters if r.set in UNCHANGED_SETS]
    assert [r.name for r in pairs if r.held_out] == ["00000007"] and len(pairs) == 5 and "xbd-unchanged" in SPLITS
    for r in pairs:  # both dates of one place, every labelled pixel unchanged; footprints that differ are unlabelled
        assert r.after.shape == r.rgb.shape and not (r.after == r.rgb).all()
        assert set(np.unique(r.change)) <= {0, IGNORE} and (r.change == 0).mean() > 0.999
    scored = evaluate_real(_Changed(0.1), sets=("xbd-unchanged",), progress=False)["xbd-unchanged"]
    assert "change_f1" not in scored and scored["change_false_alarm"] == pytest.approx(0.1, abs=0.001)


def test_the_caption_bank_holds_each_scene_class_s_most_written_train_captions(rasters):
    import json

    from rsapp.analyst import default_weights
    from rsapp.data.real_sets import Raster
    from rsapp.data.real_text import COVER_CAPTIONS, caption_bank

    def scene(name, held_out, captions):
        return Raster("ucmerced", name, np.zeros((4, 4, 3), np.uint8), 0.3, held_out, scene="beach", captions=captions)

    made = [scene("a", False, ["waves on sand..", "a beach."]), scene("b", False, ["a  beach", "sea."]),
            scene("c", True, ["held out.", "held out.", "held out."])]
    # most written first (as an answer shows it: 'a  beach' is 'a beach.'); never held out; the land-cover words' own
    assert caption_bank(made, size=2) == {"beach": ["a beach.", "waves on sand."]} | COVER_CAPTIONS
    # the shipped bank is the train scenes' own (no held-out scene's captions chose it), for every label [CLS] names
    config = json.loads((default_weights() / "config.json").read_text())
    assert config["captions"] == caption_bank(list(rasters))
    assert sorted(config["captions"]) == sorted(config["vision"]["scene_classes"] + config["vision"]["cover_scenes"])


def test_a_chip_seen_through_another_sensor_keeps_its_labels_and_changes_its_look(rasters):
    from rsapp.data.real_chips import dense_chip

    source = next(r for r in rasters if not r.held_out and r.set == "dubai")

    def edges(rgb):
        return np.abs(np.diff(rgb.astype(float), axis=1)).mean()

    softer_or_sharper = recoloured = 0
    for seed in range(12):
        plain = dense_chip(source, np.random.default_rng(seed), 256)
        same = dense_chip(source, np.random.default_rng(seed), 256, look=0.0)
        assert all(np.array_equal(a, b) for a, b in zip(plain[:2], same[:2]))  # look 0: earlier runs repeat exactly
        rgb, labels, gsd = dense_chip(source, np.random.default_rng(seed), 256, look=1.0)
        assert gsd == plain[2] and rgb.shape == plain[0].shape and rgb.dtype == np.uint8
        assert np.array_equal(np.bincount(labels.ravel(), minlength=256), np.bincount(plain[1].ravel(), minlength=256))
        softer_or_sharper += abs(edges(rgb) / edges(plain[0]) - 1) > 0.1
        recoloured += np.abs(rgb.reshape(-1, 3).mean(0) - plain[0].reshape(-1, 3).mean(0)).max() > 8
    assert softer_or_sharper >= 4 and recoloured >= 4


def test_a_crown_chip_seen_through_another_sensor_keeps_its_crowns_and_changes_its_look(rasters):
    from rsapp.data.real_chips import instance_chip

    source = next(r for r in rasters if not r.held_out and r.set == "neon-trees")
    changed = 0
    for seed in range(8):
        plain = instance_chip(source, np.random.default_rng(seed), 256)
        assert all(np.array_equal(a, b) for a, b in zip(plain, instance_chip(source, np.random.default_rng(seed), 256,
                                                                              look=0.0)))  # look 0 repeats exactly
        seen = instance_chip(source, np.random.default_rng(seed), 256, look=1.0)
        # the same window, turned or flipped by later draws: the same crown pixels and labelled pixels, the same GSD
        assert np.array_equal(np.sort(seen[1], None), np.sort(plain[1], None)) and seen[3] == plain[3]
        assert seen[2].sum() == plain[2].sum()
        changed += np.abs(seen[0].astype(int) - plain[0]).mean() > 4
    assert changed >= 6
