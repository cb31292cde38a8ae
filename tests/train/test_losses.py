import torch


def test_a_scene_holding_a_class_pushes_only_its_most_likely_pixels_of_that_class():
    from rsapp.train.losses import present_loss

    logits = torch.full((2, 3, 10, 10), -4.0)
    logits[0, 1, :2] = 3.0  # chip 0 already shows class 1 on 20 % of its pixels
    logits[1, 2, 0, 0] = 1.0  # chip 1 shows class 2 on one pixel, weakly
    logits.requires_grad_(True)
    loss = present_loss(logits, [(1,), (2,)], top_share=0.1)
    loss.backward()
    pushed = logits.grad != 0
    assert pushed[0, 1].sum() == 10 and pushed[0, 1, :2].sum() == 10  # the 10 % most likely, within the shown 20 %
    assert pushed[1, 2].sum() == 10 and pushed[1, 2, 0, 0]  # the likeliest pixel, and nine more
    assert not pushed[:, 0].any() and not pushed[0, 2].any() and not pushed[1, 1].any()  # other classes: unsaid
    assert (logits.grad[pushed] < 0).all()  # towards the class
    confident = present_loss(torch.full((1, 3, 10, 10), 6.0), [(0,)], 0.1)
    assert confident < 0.01 < loss  # nothing left to push where the class is already seen


def test_a_tree_crown_chip_labels_its_crowns_vegetation_and_leaves_the_ground_between_unlabelled():
    import numpy as np

    from rsapp.data.real_sets import DENSE_INDEX, Raster, crown_ids
    from rsapp.train.batch import Batch, add_crowns

    rgb = np.full((300, 300, 3), 120, np.uint8)
    crowns = crown_ids([(20, 20, 80, 90), (150, 160, 230, 220)], rgb.shape[:2])
    neon = Raster("neon-trees", "t", rgb, 0.1, False, instances=crowns, instance_class="vegetation")
    batch = Batch()
    add_crowns(batch, [neon], 3, 128, len(DENSE_INDEX), np.random.default_rng(0))
    for target, weight in zip(batch.dense_targets, batch.dense_weights):
        crown = target[DENSE_INDEX["vegetation"]] > 0
        assert (weight[:, crown] == 1).sum(0).min() == 5  # on a crown: vegetation, and not building, road, water,
        assert weight[DENSE_INDEX["ship"]].sum() == weight[DENSE_INDEX["car"]].sum() == 0  # bare land; cars unsaid
        assert weight[:, ~crown].sum() == 0  # between the crowns: unlabelled (grass is vegetation too)
        assert target.sum() == crown.sum()
    assert sum(t[DENSE_INDEX["vegetation"]].sum() for t in batch.dense_targets) > 0
