"""Counting instances: a class mask split by its instance cores (two touching houses are two, a speck of mask
with no core is nothing), and the core target the instance head learns."""

import numpy as np

from rsapp.model.counting import NETWORK_CLASSES, core_regions, mask_instances
from rsapp.train.instances import core_target


def _two_touching_and_a_speck() -> np.ndarray:
    ids = np.zeros((40, 60), np.int32)
    ids[10:30, 5:25] = 1
    ids[10:30, 25:50] = 2  # shares a wall with 1
    ids[2:4, 55:57] = 3  # a 2 × 2 px instance
    return ids


def test_core_target_peaks_at_one_in_every_instance_and_is_low_where_two_touch():
    ids = _two_touching_and_a_speck()
    t = core_target(ids)
    for i in (1, 2, 3):
        assert t[ids == i].max() == 1.0
    assert (t[ids == 0] == 0).all()
    assert t[10:30, 24:26].max() < 0.2  # the shared wall
    assert t[ids == 1].min() > 0 and t[ids == 2].min() > 0


def test_cores_split_touching_instances_and_drop_a_mask_region_without_one():
    ids = _two_touching_and_a_speck()
    mask = ids > 0
    mask[35:37, 2:5] = True  # a speck of mask, no core
    core = core_target(ids)
    core[ids == 3] = 0  # and the small instance's core was not found either
    regions = core_regions(mask, core)
    assert len(np.unique(regions[regions > 0])) == 2
    assert (regions[35:37, 2:5] == 0).all() and (regions[2:4, 55:57] == 0).all()
    # every pixel of the two houses joins one of them, split at the wall
    assert (regions[ids == 1] == regions[20, 10]).mean() > 0.95 and (regions[ids == 2] == regions[20, 40]).mean() > 0.95

    prob = mask.astype(np.float32)
    by_core = mask_instances(prob, 0.5, 1.0, 40, core)
    by_region = mask_instances(prob, 0.5, 1.0, 40)
    assert [b for b, _, _ in by_core] == [(5.0, 10.0, 25.0, 30.0), (25.0, 10.0, 50.0, 30.0)]
    assert [b for b, _, _ in by_region] == [(5.0, 10.0, 50.0, 30.0)]  # one block; the specks are under 8 m²


def test_a_core_outside_the_mask_seeds_nothing():
    mask = np.zeros((20, 20), bool)
    core = np.zeros((20, 20), np.float32)
    core[5:10, 5:10] = 0.9
    assert not core_regions(mask, core).any()


def test_a_road_broken_by_a_tree_is_one_road_and_a_driveway_stub_is_none():
    """A network class is counted as pieces bridged over small gaps: the street cut by a tree's crown is one road,
    a street 30 m away another, and a 3 × 6 m stub (a driveway) none. As mask regions they were three and a speck."""
    prob = np.zeros((200, 200), np.float32)  # 1 m a pixel
    prob[20:30, :] = 1
    prob[20:30, 90:93] = 0  # a 3 m gap under a tree
    prob[60:70, :] = 1  # another street, 30 m away
    prob[120:126, 50:53] = 1  # a driveway's stub, 18 m²
    assert len(mask_instances(prob, 0.5, 1.0, 200)) == 4
    roads = mask_instances(prob, 0.5, 1.0, 200, network=NETWORK_CLASSES["road"])
    assert [b for b, _, _ in roads] == [(0.0, 20.0, 200.0, 30.0), (0.0, 60.0, 200.0, 70.0)]
    assert [area for _, area, _ in roads] == [1970, 2000]  # the pieces' own pixels, not the bridge


def test_the_change_sentence_counts_the_maps_regions_and_reads_built_or_demolished_from_the_building_gain():
    from rsapp.analyst import change_sentence
    from scipy import ndimage

    from rsapp.model.counting import instance_count, without_specks

    change = np.zeros((100, 100), np.uint8)
    assert change_sentence(instance_count(change > 0), None) == "no change"
    change[10:20, 10:20] = 1
    assert change_sentence(instance_count(change > 0), 0.5) == "a building was built"
    assert change_sentence(1, 0.2) == "a changed area, not clearly a building built or demolished"
    change[50:60, 50:60] = change[80:90, 10:20] = 1
    change[0, 99] = 1  # a speck under MIN_INSTANCE_SHARE of the map is not a change
    assert change_sentence(instance_count(change > 0), -0.3) == "3 buildings were demolished"
    # the building probability neither clearly rose nor fell (a flood, a roof seen from another angle), or no
    # building class to read: changed areas (the flooded xBD pair, +0.04, had "6 buildings were built")
    for gain in (0.3, 0.04, -0.05, None):
        assert change_sentence(instance_count(change > 0), gain) == (
            "3 changed areas, not clearly buildings built or demolished")
    assert change_sentence(12, 0.1).startswith("many changed areas") and change_sentence(12, 0.1, exact=True) == (
        "12 changed areas, not clearly buildings built or demolished")
    # the speck is what the drawn and exported map leaves out: it holds the three regions counted
    kept = without_specks(change > 0)
    assert kept.sum() == 300 and not kept[0, 99] and ndimage.label(kept)[1] == 3
    # an area read larger than SPECK_REFERENCE_PX² does not make a house-sized change a speck: 300 px of a 4096² pair
    # (at 0.5 m, 75 m²) was under 2e-4 of it
    large = np.zeros((4096, 4096), bool)
    large[100:115, 100:120] = large[2000:2002, 2000:2020] = True  # a house, a 40 px speck
    assert instance_count(large) == 1 and without_specks(large).sum() == 300


def test_by_distance_picks_the_instance_nearest_or_farthest_from_a_class_mask_or_the_centre():
    from types import SimpleNamespace

    import torch

    from rsapp.model.inference import Runtime

    dense = torch.zeros(1, 2, 100, 100)
    dense[0, 1, :, 45:55] = 1.0  # a road down the middle of the map (class 1), the chip 100 px
    vision = SimpleNamespace(dense_classes=("building", "road"), threshold=lambda name: 0.5)
    rt = SimpleNamespace(config=SimpleNamespace(vision=vision))
    enc = SimpleNamespace(dense=dense)
    found = [((5.0, 5.0, 15.0, 15.0), 100, 0.9), ((35.0, 40.0, 43.0, 48.0), 64, 0.9),
             ((88.0, 80.0, 99.0, 95.0), 165, 0.9)]
    assert Runtime.by_distance(rt, enc, found, "nearest", "road", 100) == [found[1]]
    assert Runtime.by_distance(rt, enc, found, "farthest", "road", 100) == [found[2]]
    assert Runtime.by_distance(rt, enc, found, "nearest", "centre", 100) == [found[1]]
    dense[0, 1] = 0  # no road: every instance, for the analyst to say so
    assert len(Runtime.by_distance(rt, enc, found, "nearest", "road", 100)) == 3


def test_a_part_frame_edge_cell_only_continues_what_the_picture_holds():
    """A letterboxed picture's edge cells read part frame: a strip lit only there is held down to its inner
    neighbours (it was counted as water bodies), an object the edge cuts keeps its edge cells, and an edge that falls
    on a cell boundary is left as it is."""
    from rsapp.model.inference import picture_edges_held

    prob = np.zeros((8, 8), np.float32)
    prob[1:7, 0] = 0.9  # a strip in the left edge column only
    prob[2:5, 6:8] = 0.8  # an object reaching the right edge
    held = picture_edges_held(prob, 0.0, 8.0, 0.75, 7.5)  # left and right edges part frame
    assert held[:, 0].max() == 0.0 and np.array_equal(held[:, 6:], prob[:, 6:])
    assert np.array_equal(picture_edges_held(prob, 0.0, 8.0, 1.0, 8.0), prob)  # edges on cell boundaries
