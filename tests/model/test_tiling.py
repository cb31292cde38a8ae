"""Areas larger than the chip: tiles cover them, maps are stitched where each tile alone sees them, resampled
maps match torch's bilinear, and the change probability is averaged over quarter turns."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rsapp.model.vision_model import TILE_OVERLAP, VisionConfig, VisionModel, tile_grid, to_tensor, upsample


@pytest.mark.parametrize("h,w", [(1024, 1024), (650, 500), (513, 513), (2149, 1500), (1300, 400), (8192, 8192)])
def test_tiles_cover_the_area_with_overlap_and_never_pass_its_edge(h, w):
    for spans, length in zip(tile_grid(h, w, 512), (h, w)):
        assert spans[0][0] == 0 and spans[-1][1] == length and all(a % 4 == 0 for a, _ in spans)
        assert all(b - a <= 640 + 3 for a, b in spans)
        assert all(b0 - a1 >= TILE_OVERLAP for (_, b0), (a1, _) in zip(spans, spans[1:]))  # overlaps


def test_a_1024_area_takes_four_tiles_not_nine():
    rows, cols = tile_grid(1024, 1024, 512)
    assert len(rows) * len(cols) == 4 and rows[0] == (0, 528)


def test_upsample_is_torch_bilinear_of_the_logits_in_bands():
    logits = np.random.default_rng(0).normal(0, 2, (37, 53)).clip(-8, 8).astype(np.float32)
    ref = torch.sigmoid(F.interpolate(torch.from_numpy(logits)[None, None], size=(148, 212), mode="bilinear",
                                      align_corners=False))[0, 0].numpy()
    prob = 1 / (1 + np.exp(-logits))
    assert np.abs(upsample(prob, (148, 212), band=50).astype(np.float32) - ref).max() < 2e-3


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VisionModel(VisionConfig(instance_classes=("building",))).eval()


def test_tiled_maps_equal_each_tile_where_only_it_sees(model):
    rgb = np.random.default_rng(1).integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
    enc = model.encode_tiled([rgb], 512, cores=True)
    rows, _ = tile_grid(1024, 1024, 512)
    side = rows[0][1]
    assert enc.dense.shape[-2:] == (256, 256)
    with torch.no_grad():
        levels = model.tower.pyramid(to_tensor(rgb[:side, :side]))
        alone = torch.sigmoid(model.dense_head(levels))[0]
        core = torch.sigmoid(model.instance_head(levels))[0]
    own = rows[1][0] // 4  # rows / columns only the first tile covers
    assert torch.allclose(enc.dense[0, :, :own, :own].float(), alone[:, :own, :own], atol=2e-3)
    assert enc.cores.shape == (1, 1, 256, 256) and enc.core_classes == ("building",)
    assert torch.allclose(enc.cores[0, :, :own, :own].float(), core[:, :own, :own], atol=2e-3)
    assert np.array_equal(enc.core("building"), enc.cores[0, 0].numpy()) and enc.core("road") is None


def test_a_narrow_pair_is_read_in_tiles_without_padding(model):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 255, (1300, 400, 3), dtype=np.uint8)
    enc = model.encode_tiled([a, a.copy()], 512)
    assert enc.dense.shape[-2:] == enc.change.shape[-2:] == (325, 100)
    assert enc.tokens.tokens.shape[1] == model.cfg.token_budget
    assert ((enc.tokens.positions >= 0) & (enc.tokens.positions <= 1)).all()


def test_change_probability_turns_with_the_image(model):
    """Averaged over the four quarter turns, the change map of a turned pair is the turned change map."""
    rng = np.random.default_rng(2)
    pair = torch.cat([to_tensor(rng.integers(0, 255, (128, 96, 3), dtype=np.uint8)) for _ in range(2)])
    turned = torch.rot90(pair, 1, (2, 3))
    with torch.no_grad():
        a = model.change_probability(pair, model.tower.pyramid(pair))
        b = model.change_probability(turned, model.tower.pyramid(turned))
    assert torch.allclose(torch.rot90(a, 1, (1, 2)), b, atol=1e-5)


def test_pixel_maps_over_quarter_turns_turn_with_the_image(model):
    """A pixel answer's class maps and instance cores, averaged over four quarter turns, of a turned image are the
    turned maps (each turn is brought back before averaging); one view alone is not."""
    x = to_tensor(np.random.default_rng(4).integers(0, 255, (96, 96, 3), dtype=np.uint8))
    turned = torch.rot90(x, 1, (2, 3))
    with torch.no_grad():
        (a, ca, _), (b, cb, _) = (model.pixel_maps(v, model.tower.pyramid(v), 4, cores=True) for v in (x, turned))
        one, one_turned = (model.pixel_maps(v, model.tower.pyramid(v))[0] for v in (x, turned))
    assert a.shape == (1, len(model.cfg.dense_classes), 24, 24) and ca.shape == (1, 1, 24, 24)
    assert torch.allclose(torch.rot90(a, 1, (2, 3)), b, atol=1e-5)
    assert torch.allclose(torch.rot90(ca, 1, (2, 3)), cb, atol=1e-5)
    assert not torch.allclose(torch.rot90(one, 1, (2, 3)), one_turned, atol=1e-3)


def test_a_tile_that_is_not_square_averages_its_half_turns(model):
    """A quarter turn would change a non-square tile's shape (and make the frozen tower specialise again): it takes
    its two half turns, so its maps turn with it by half turns."""
    x = to_tensor(np.random.default_rng(6).integers(0, 255, (96, 128, 3), dtype=np.uint8))
    half = torch.rot90(x, 2, (2, 3))
    with torch.no_grad():
        (a, _, _), (b, _, _) = (model.pixel_maps(v, model.tower.pyramid(v), 4) for v in (x, half))
        one = model.pixel_maps(x, model.tower.pyramid(x))[0]
    assert a.shape == (1, len(model.cfg.dense_classes), 24, 32)
    assert torch.allclose(torch.rot90(a, 2, (2, 3)), b, atol=1e-5)
    assert not torch.allclose(a, one, atol=1e-3)


def test_a_tiled_area_averages_turns_only_up_to_the_tile_limit(model, monkeypatch):
    import rsapp.model.vision_model as vm

    rgb = np.random.default_rng(5).integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
    once, turned = (model.encode_tiled([rgb], 512, views=v).dense for v in (1, 4))
    assert not torch.allclose(once.float(), turned.float(), atol=1e-3)
    monkeypatch.setattr(vm, "TURNED_TILES_MAX", 3)  # 2 × 2 tiles: over the limit, read once
    assert torch.equal(model.encode_tiled([rgb], 512, views=4).dense, once)


def test_each_class_is_drawn_above_its_own_threshold():
    from rsapp.model.inference import winning_class

    dense = np.array([[[0.40, 0.40, 0.10]], [[0.45, 0.60, 0.20]]], np.float32)  # (K=2, 1, 3)
    # pixel 0: only class 1 passes its 0.3 (class 2's 0.45 is under 0.5); pixel 1: both pass, the higher wins
    per_class = VisionConfig(dense_classes=("a", "b"), dense_thresholds={"a": 0.3}).thresholds()
    assert per_class.shape == (2, 1, 1) and np.allclose(per_class.ravel(), [0.3, 0.5])
    assert winning_class(dense, per_class).tolist() == [[1, 2, 0]]
    assert winning_class(dense, np.full((2, 1, 1), 0.5)).tolist() == [[0, 2, 0]]


def test_several_classes_named_are_drawn_where_each_is_the_likeliest_of_them():
    """'[SEG] the roads and buildings': one map of those two classes, each pixel the likelier of them above its own
    threshold, the classes not named left out; on two dates the changed pixels, labelled by the class either date
    shows there. One class named is drawn as before."""
    from types import SimpleNamespace

    from rsapp.model.inference import Runtime
    from rsapp.model.vision_model import VisionOutput

    cfg = VisionConfig(dense_classes=("building", "road", "water"), dense_thresholds={"road": 0.35})
    runtime = SimpleNamespace(config=SimpleNamespace(vision=cfg))
    before = torch.tensor([[[[0.6, 0.2, 0.6, 0.1]], [[0.4, 0.5, 0.7, 0.1]], [[0.9, 0.9, 0.9, 0.9]]]])
    after = torch.tensor([[[[0.1, 0.1, 0.1, 0.9]], [[0.1, 0.1, 0.1, 0.1]], [[0.9, 0.9, 0.9, 0.9]]]])
    enc = VisionOutput(tokens=None, dense=before, dense_after=after, scene=None, s_mu=None, s_logvar=None,
                       change=torch.tensor([[[0.9, 0.9, 0.1, 0.9]]]))
    mask = lambda *a: Runtime.mask(runtime, enc, *a)  # noqa: E731
    labels, names = mask(None, 1, (1, 4), None, ("road", "building"))
    assert names == ["others", "road", "building"] and labels.tolist() == [[2, 1, 1, 0]]  # water, likeliest, not
    labels, names = mask(None, 2, (1, 4), None, ("road", "building"))
    assert names == ["others", "road", "building"] and labels.tolist() == [[2, 1, 0, 2]]
    labels, names = mask("road", 2, (1, 4), None)
    assert names == ["others", "road"] and labels.tolist() == [[1, 1, 0, 0]]
    labels, names = mask("road", 1, (1, 4), None)
    assert names == ["others", "road"] and labels.tolist() == [[1, 1, 1, 0]]
    labels, names = mask(None, 1, (1, 4), None)  # none named: every class where it wins
    assert names == ["others", "building", "road", "water"] and labels.tolist() == [[3, 3, 3, 3]]


def test_the_change_answer_leaves_out_road_that_is_no_building_within_the_roads_trained_gsd():
    from rsapp.model.vision_model import VisionOutput, building_change

    cfg = VisionConfig(dense_classes=("building", "road"), dense_thresholds={"road": 0.35})
    before, after = torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)
    after[0, 1, 0] = 0.4  # a new road along the top row: drawn above the road's own 0.35
    after[0, 1, 1, :2], after[0, 0, 1, :2] = 0.9, 0.6  # road under a new building: a building change
    before[0, 1, 2] = 0.3  # under the road's threshold: not drawn
    enc = VisionOutput(tokens=None, dense=before, dense_after=after, scene=None, s_mu=None, s_logvar=None,
                       change=torch.full((1, 4, 4), 0.9))
    kept = building_change(enc, cfg, gsd_m=0.5)
    assert (kept[0] == 0).all() and (kept[1:] == np.float32(0.9)).all() and kept.dtype == np.float32
    assert (building_change(enc, cfg, gsd_m=30.0) == np.float32(0.9)).all()  # a road mask at 30 m means nothing


def test_a_framed_chip_reads_its_maps_from_the_picture_alone(model):
    """A non-square area's square chip (or a nodata collar, or the scene's edge) frames the picture in black: its
    pixel maps, instance cores and change map are the picture's own, read without the frame, and zero on it."""
    rng = np.random.default_rng(7)
    pictures = [rng.integers(0, 255, (96, 64, 3), dtype=np.uint8) for _ in range(2)]
    chips = [np.zeros((96, 96, 3), np.uint8) for _ in range(2)]
    for chip, picture in zip(chips, pictures):
        chip[:, 16:80] = picture
    framed = model.read(chips, 512, cores=True, views=4, picture=(0, 96, 16, 80))
    alone = model.encode([to_tensor(p) for p in pictures], cores=True, views=4)
    for name in ("dense", "cores", "dense_after", "change"):
        got, want = getattr(framed, name), getattr(alone, name)
        assert got.shape[-2:] == (96, 96), name
        assert torch.allclose(got[..., 16:80], want, atol=1e-5), name
        assert not got[..., :16].any() and not got[..., 80:].any(), name
    black = model.read(chips, 512, cores=True, views=4)  # the frame read as picture: other maps
    assert not torch.allclose(black.dense[..., 16:80], alone.dense, atol=1e-3)


def test_a_framed_area_is_tiled_over_its_picture_only(model):
    rgb = np.zeros((1024, 1024, 3), np.uint8)
    rgb[:, 256:768] = np.random.default_rng(8).integers(0, 255, (1024, 512, 3), dtype=np.uint8)
    framed = model.read([rgb], 512, cores=True, picture=(0, 1024, 256, 768))
    alone = model.encode_tiled([np.ascontiguousarray(rgb[:, 256:768])], 512, cores=True)
    assert framed.dense.shape[-2:] == (256, 256)
    assert torch.allclose(framed.dense[..., 64:192].float(), alone.dense.float(), atol=2e-3)
    assert torch.allclose(framed.cores[..., 64:192].float(), alone.cores.float(), atol=2e-3)
    assert not framed.dense[..., :64].any() and not framed.dense[..., 192:].any()


def test_sse_u_reads_the_same_native_tiles_of_an_area_more_than_two_chips_across(model):
    """encode_tiled's GSD reading of its own tiles is the one native_gsd makes of the image alone (the analyst's, for a
    chip resampled from the area), and the area's GSD lies between it and the global view's; up to two chips across,
    the global view reads the GSD alone."""
    from rsapp.model.vision_model import NATIVE_GSD_TILES, combine_readings, gsd_tiles

    rng = np.random.default_rng(4)
    large = rng.integers(0, 255, (300, 290, 3), dtype=np.uint8)
    enc = model.encode_tiled([large], 128)
    mu, var = model.native_gsd(large, 128)
    assert enc.native_gsd == pytest.approx((mu, var), rel=1e-4)
    whole = float(enc.s_mu[0]) + np.log10(128 / 300)
    combined, sigma = enc.area_gsd(300, 128)
    assert min(whole, mu) <= combined <= max(whole, mu)
    assert sigma ** 2 == pytest.approx(combine_readings([(whole, float(enc.s_logvar[0].exp())), (mu, var)])[1])
    assert model.encode_tiled([large[:250, :250]], 128).native_gsd is None
    rows, cols = tile_grid(2048, 2048, 512)
    picked = gsd_tiles(rows, cols)
    assert len(picked) == NATIVE_GSD_TILES
    assert {r for r, _ in picked} == set(rows) and {c for _, c in picked} == set(cols)  # every row and column


def test_readings_that_agree_narrow_their_gsd_and_readings_that_disagree_widen_it():
    from rsapp.model.vision_model import combine_readings

    assert combine_readings([(0.0, 0.01), (0.01, 0.01)]) == pytest.approx((0.005, 0.005))
    mean, var = combine_readings([(0.0, 1e-4), (1.0, 1e-4)])  # two sure readings a decade apart
    assert mean == pytest.approx(0.5) and var ** 0.5 == pytest.approx(0.5)
