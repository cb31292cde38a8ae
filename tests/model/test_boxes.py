"""Instance boxes for [VG]: targets, decoding, the selector's features and candidates, and the model wiring."""

import numpy as np
import torch

from rsapp.data.samples import make_sample
from rsapp.model.boxes import (BOX_FEATURES, FINE_MAX_SIDE, MAX_PROPOSALS, MIN_SCORE, SELECT_FEATURES, BoxHead,
                               BoxSelector, PixelStem, box_targets, choose, class_mass, level_proposals, level_targets,
                               peaks, proposal_features, selection_candidates, snap_to_region, suppress)
from rsapp.train.loop import instance_batch
from tests.model.conftest import TOY

N, K, CHIP = 16, 8, 256


def proposals(heat, geometry, cls):
    """One level's proposals, as level_proposals reads each level before it splits them by size."""
    return suppress(*peaks(heat, geometry, cls, MIN_SCORE), MAX_PROPOSALS)


def _perfect_maps(instances, known=None):
    t = box_targets(instances, known, N, K, CHIP)
    heat = torch.logit(torch.from_numpy(t["heat"]).clamp(1e-3, 1 - 1e-3))
    return heat, torch.from_numpy(t["geometry"]), t


def test_targets_decode_back_to_the_instances():
    ponds = [(3, 20.0, 30.0, 100.0, 90.0), (3, 150.0, 160.0, 230.0, 250.0)]
    ship = [(7, 40.0, 200.0, 60.0, 212.0)]
    heat, edges, _ = _perfect_maps(ponds + ship)
    boxes, scores = proposals(heat, edges, 3)
    assert len(boxes) == 2 and bool((scores > 0.9).all())
    want = sorted(tuple(v / CHIP for v in p[1:]) for p in ponds)
    got = sorted(tuple(float(v) for v in b) for b in boxes)
    np.testing.assert_allclose(got, want, atol=1e-5)
    ship_boxes, _ = proposals(heat, edges, 7)
    np.testing.assert_allclose(ship_boxes[0].numpy(), np.array(ship[0][1:]) / CHIP, atol=1e-5)
    assert len(proposals(heat, edges, 1)[0]) == 0  # no building: no proposal


def test_small_objects_are_the_fine_levels_and_large_ones_the_coarse_levels():
    pond = (3, 20.0, 30.0, 100.0, 90.0)
    cars = [(6, 33.0, 200.0, 41.0, 205.0), (6, 42.0, 200.0, 47.0, 205.0)]  # side by side: centres in one 16-px cell
    coarse, fine = level_targets([pond] + cars, None, N, K, CHIP)
    assert coarse["centre"].sum() == 2  # the coarse level keeps every instance, but has one centre for both cars
    assert fine["heat"].shape == (K, 2 * N, 2 * N) and fine["centre"].sum() == 2  # each car in its own fine cell
    assert fine["heat"][3].max() == 0  # the pond is not the fine level's
    levels = [(torch.logit(torch.from_numpy(t["heat"]).clamp(1e-3, 1 - 1e-3))[None],
               torch.from_numpy(t["geometry"])[None]) for t in (coarse, fine)]  # batched, as BoxHead returns them
    car_boxes, _ = level_proposals(levels, 6)
    want = sorted(tuple(v / CHIP for v in c[1:]) for c in cars)
    np.testing.assert_allclose(sorted(tuple(float(v) for v in b) for b in car_boxes), want, atol=1e-5)
    pond_boxes, _ = level_proposals(levels, 3)
    np.testing.assert_allclose(pond_boxes[0].numpy(), np.array(pond[1:]) / CHIP, atol=1e-5)
    assert all(max(c[3] - c[1], c[4] - c[2]) < FINE_MAX_SIDE * CHIP for c in cars)


def test_only_listed_classes_are_known():
    t = box_targets([(1, 0.0, 0.0, 32.0, 32.0)], (1,), N, K, CHIP)
    assert t["known"].tolist() == [False, True] + [False] * 6
    assert box_targets([], None, N, K, CHIP)["known"].all()


def test_box_loss_prefers_the_right_maps_and_ignores_unknown_classes():
    inst = [(3, 20.0, 30.0, 100.0, 90.0)]
    heat, edges, t = _perfect_maps(inst, known=(3,))
    target = {k: torch.from_numpy(np.asarray(v))[None] for k, v in t.items()}
    good = BoxHead.loss(heat[None], edges[None], target)
    shifted = BoxHead.loss(heat[None].roll(3, -1), (edges + 2)[None], target)
    assert good < shifted
    noisy = heat.clone()
    noisy[5] = 5.0  # a class these labels do not cover
    assert torch.isclose(BoxHead.loss(noisy[None], edges[None], target), good)


def test_features_say_which_proposal_is_largest_and_leftmost():
    boxes = torch.tensor([[0.5, 0.1, 0.9, 0.6], [0.1, 0.2, 0.2, 0.3], [0.3, 0.7, 0.4, 0.95]])
    f = proposal_features(boxes, torch.tensor([0.3, 0.9, 0.6]))
    assert f[:, 10].tolist() == [1, 0, 0]  # largest
    assert f[:, 11].tolist() == [0, 1, 0]  # most confident
    assert f[:, 12].tolist() == [0, 1, 0]  # leftmost
    assert f[:, 15].tolist() == [0, 0, 1]  # bottommost


def test_candidates_add_missed_instances_and_mark_the_answer():
    rng = np.random.default_rng(0)
    found = torch.tensor([[0.1, 0.1, 0.3, 0.3]])
    instances = [(0.1, 0.1, 0.3, 0.3), (0.6, 0.6, 0.9, 0.8)]
    boxes, scores, labels = selection_candidates(found, torch.tensor([0.8]), instances, [instances[1]], rng)
    assert len(boxes) == 2 and labels.tolist() == [0.0, 1.0]


def test_choose_takes_every_confident_proposal_or_the_best():
    assert choose(torch.tensor([-1.0, 2.0, 0.5])) == [1, 2]
    assert choose(torch.tensor([-3.0, -1.0])) == [1]
    assert choose(torch.zeros(0)) == []


def test_instance_targets_from_samples():
    rng = np.random.default_rng(5)
    samples = [make_sample(rng, "[VG]", CHIP) for _ in range(3)] + [make_sample(rng, "[CCD]", CHIP)]
    boxes, select = instance_batch(samples[:3], N, K)
    coarse, fine = boxes
    assert coarse["heat"].shape == (3, 1, K, N, N) and bool(coarse["known"].all())
    assert fine["heat"].shape == (3, 1, K, 2 * N, 2 * N)
    for s, item in zip(samples, select):
        assert item is not None
        instances, answer = item
        assert len(answer) == len(s.target["boxes"]) and all(0 <= v <= 1 for b in answer for v in b)
        assert all(any(np.allclose(a, i) for i in instances) for a in answer)  # the answer is among the instances
    pair_boxes, pair_select = instance_batch(samples[3:], N, K)
    assert pair_boxes[0]["heat"].shape[1] == 2 and pair_select == [None]


def test_box_losses_train_the_head_and_the_selector(toy_model):
    rng = np.random.default_rng(1)
    samples = [make_sample(rng, "[VG]", TOY["chip_size"]) for _ in range(4)]
    boxes, select = instance_batch(samples, N, K)
    images = torch.from_numpy(np.stack([np.stack(s.images) for s in samples])).permute(0, 1, 4, 2, 3).float() / 255
    ids = torch.tensor([[3, 5, 9, 4, 7, 8]] * 4)
    seg_class = torch.tensor([3, 3, 5, 7])
    toy_model.train()
    out = toy_model(images, ids, torch.ones_like(ids), labels=ids, g=torch.ones(4, dtype=torch.long),
                    s=torch.zeros(4), seg_class=seg_class, boxes=boxes, select=select)
    out["loss"].backward()
    assert torch.isfinite(out["box_loss"]) and "select_loss" in out
    assert toy_model.box_head.net[0].weight.grad.abs().sum() > 0
    assert toy_model.box_head.stem.fold.weight.grad.abs().sum() > 0  # the pixel stem learns from the box loss
    assert toy_model.box_head.fine.stem[0].weight.grad.abs().sum() > 0  # and so does the fine level
    assert toy_model.box_select.query.weight.grad.abs().sum() > 0
    assert toy_model.box_select.word_query.weight.grad.abs().sum() > 0  # and so does its read of the words
    assert toy_model.box_select.mass_key[2].weight.grad.abs().sum() > 0  # and of the class mass in each box


def test_no_proposal_means_no_head_answer(toy_model):
    x = torch.rand(1, 1, 3, 64, 64)
    enc = toy_model.encode(x)
    assert toy_model.select_boxes(enc, torch.tensor([[3, 5, 4]]), 1, 1, 0.0, 3) is None  # fresh head: p ≈ 0.1
    assert toy_model.select_boxes(enc, torch.tensor([[3, 5, 4]]), 1, 1, 0.0, -1) is None  # no class named
    with torch.no_grad():
        toy_model.box_head.net[-1].bias[3] = 5.0  # a confident head proposes, and the selector picks
        toy_model.box_head.fine.net[-1].bias[3] = 5.0
    picked = toy_model.select_boxes(toy_model.encode(x), torch.tensor([[3, 5, 4]]), 1, 1, 0.0, 3)
    assert picked and picked == sorted(picked) and all(0 <= v <= 1 for b in picked for v in b)


def test_train_only_freezes_everything_else(toy_model):
    from rsapp.train.loop import stage_parameters

    params = stage_parameters(toy_model, 2, "box_select")
    names = {n for n, p in toy_model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith("box_select") for n in names)
    assert {id(p) for p in params} == {id(p) for n, p in toy_model.named_parameters() if n in names}


def test_candidates_without_missed_instances_are_the_proposals_only():
    found = torch.tensor([[0.1, 0.1, 0.3, 0.3]])
    instances = [(0.1, 0.1, 0.3, 0.3), (0.6, 0.6, 0.9, 0.8)]
    boxes, _, labels = selection_candidates(found, torch.tensor([0.8]), instances, [instances[1]],
                                            np.random.default_rng(0), add_missed=False)
    assert len(boxes) == 1 and not labels.any()  # the answer was missed: nothing to learn from this row


def test_pixel_stem_starts_silent_and_sees_inside_a_cell():
    torch.manual_seed(0)
    stem = PixelStem(n=4, out_dim=8)
    view = torch.zeros(1, 3, 64, 64)  # 4 × 4 cells of 16 px
    assert stem(view).abs().max() == 0  # zero projection: a box head trained without it is unchanged
    torch.nn.init.normal_(stem.fold.weight)
    left, right = view.clone(), view.clone()
    left[..., 20:24, 17:21] = 1.0  # a 4-px object at the left of cell (1, 1) ...
    right[..., 20:24, 26:30] = 1.0  # ... and at its right
    a, b = stem(left), stem(right)
    assert a.shape == (1, 8, 4, 4)
    assert (a[..., 1, 1] - b[..., 1, 1]).abs().max() > 1e-3  # the cell's features say where in it the object is


def test_selector_reads_the_question_words_not_only_the_last_state():
    torch.manual_seed(0)
    sel = BoxSelector(hidden=16)
    feats = torch.rand(5, SELECT_FEATURES)
    leftmost, rightmost = torch.randn(4, 16), torch.randn(4, 16)
    rightmost[-1] = leftmost[-1]  # the same state at <ans>, a different word before it
    assert torch.equal(sel(leftmost, feats), sel(rightmost, feats))  # the word read starts silent
    torch.nn.init.normal_(sel.word_query.weight)
    assert (sel(leftmost, feats) - sel(rightmost, feats)).abs().max() > 1e-3


def test_class_mass_is_the_share_of_the_chip_the_class_covers_inside_each_box():
    probs = torch.zeros(4, 4)
    probs[:2, :2] = 1.0  # the class fills the top-left quarter of the chip
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0], [0.25, 0.25, 0.75, 0.75], [0.5, 0.5, 1.0, 1.0],
                          [0.0, 0.0, 0.125, 0.5]])
    assert torch.allclose(class_mass(boxes, probs), torch.tensor([0.25, 0.25, 1 / 16, 0.0, 1 / 16]))


def test_mass_features_mark_the_fullest_box_and_start_silent():
    # A wide box around a thin object and a tighter box around a big one: the box area and the mass disagree.
    boxes = torch.tensor([[0.0, 0.0, 0.9, 0.3], [0.5, 0.5, 0.9, 0.9]])
    f = proposal_features(boxes, torch.tensor([0.9, 0.9]), torch.tensor([0.02, 0.12]))
    assert f[:, 10].tolist() == [1, 0] and f[:, -1].tolist() == [0, 1]  # largest box ≠ most of the class
    assert proposal_features(boxes, torch.tensor([0.9, 0.9]))[:, BOX_FEATURES:].abs().sum() == 0
    torch.manual_seed(0)
    sel, words = BoxSelector(hidden=16), torch.randn(3, 16)
    without = f.clone()
    without[:, BOX_FEATURES:] = 0
    assert torch.equal(sel(words, f), sel(words, without))  # weights trained before the mass features: unchanged
    torch.nn.init.normal_(sel.mass_key[2].weight)
    assert (sel(words, f) - sel(words, without)).abs().max() > 1e-3


def test_extended_objects_snap_to_the_dense_region_of_their_class():
    probs = np.zeros((N, N), np.float32)
    probs[2:12, 3:13] = 0.9  # a field of 10 × 10 cells
    probs[14:16, 0:2] = 0.9  # and a small patch apart from it
    loose = (2 / N, 1 / N, 11 / N, 10 / N)  # the box head's guess: the right object, its extent off by a cell or two
    np.testing.assert_allclose(snap_to_region(loose, probs), (3 / N, 2 / N, 13 / N, 12 / N))
    small = (0 / N, 13 / N, 3 / N, 16 / N)  # under SNAP_MIN_CELLS: left as the head drew it
    assert snap_to_region(small, probs) == small
    empty = (0.0, 0.0, 0.4, 0.1)
    assert snap_to_region(empty, np.zeros((N, N), np.float32)) == empty
    corner = (10 / N, 10 / N, 16 / N, 16 / N)  # touches the field's corner only: the field is another object
    assert snap_to_region(corner, probs) == corner


def test_box_iou_agrees_with_the_one_box_iou():
    from rsapp.model.boxes import box_iou
    from rsapp.tasks.boxes import iou

    boxes = torch.rand(7, 2).repeat(1, 2) + torch.cat([torch.zeros(7, 2), torch.rand(7, 2) * 0.5], 1)
    boxes[3] = boxes[2]  # a duplicate: IoU 1
    table = box_iou(boxes, boxes[:5])
    want = torch.tensor([[iou(a, b) for b in boxes[:5]] for a in boxes])
    assert table.shape == (7, 5) and torch.allclose(table, want, atol=1e-6) and table[3, 2] == 1


def test_candidates_of_a_wood_of_instances_are_quick_and_complete():
    # "all trees" of a wood: thousands of instances, none proposed. Every one joins the candidates, once.
    side = np.linspace(0, 0.98, 45)
    trees = [(x, y, x + 0.015, y + 0.015) for x in side for y in side]
    boxes, scores, labels = selection_candidates(torch.zeros(0, 4), torch.zeros(0), trees, trees[:3],
                                                 np.random.default_rng(0))
    assert len(boxes) == len(trees) == 2025 and labels.sum() == 3 and bool((scores > 0).all())
