"""Sentences written from a class mask: where in the image a class lies (ninths of its valid part), where one
boxed instance is, whether a class is there, and what covers most of the area."""

import numpy as np

from rsapp.tasks.mask_sentences import (PRESENT_MIN_SHARE, comparison, composition, presence, where_box_is,
                                        where_in_image)


def _valid(shape=(90, 90)) -> np.ndarray:
    return np.ones(shape, bool)


def test_a_band_down_the_middle_and_a_blob_in_a_corner_are_said_as_such():
    mask = np.zeros((90, 90), np.uint8)
    mask[:, 40:50] = 1  # a road down the middle
    mask[5:20, 65:85] = 1  # a car park top right
    assert where_in_image(mask, "road", _valid()) == "road: down the middle and the top right of the image (drawn on the map)"


def test_whole_rows_every_ninth_a_trace_and_nothing_are_said_as_such():
    across = np.zeros((90, 90), np.uint8)
    across[70:80] = 1
    assert where_in_image(across, "road", _valid()) == "road: across the bottom of the image (drawn on the map)"
    assert where_in_image(np.ones((90, 90), np.uint8), "water", _valid()) == "water: all over the image (drawn on the map)"
    trace = np.zeros((90, 90), np.uint8)
    trace[10, 10] = 1  # 1 px of a 900 px ninth
    assert where_in_image(trace, "ship", _valid()).startswith("hardly any ship")
    assert where_in_image(np.zeros((90, 90), np.uint8), "ship", _valid()) == "no ship found"


def test_a_few_stray_pixels_beside_the_bulk_are_not_where_it_is():
    mask = np.zeros((90, 90), np.uint8)
    mask[60:90, 0:30] = 1  # the bottom left ninth, full
    mask[0:5, 60:90] = 1  # a sixth of the top right ninth: under 0.3 of the fullest ninth
    assert where_in_image(mask, "building", _valid()) == "building: the bottom left of the image (drawn on the map)"


def test_thirds_are_of_the_image_not_of_its_black_frame():
    """A 60-row image in a 90-row chip (rows 15–75 valid): its top third is rows 15–35."""
    valid = np.zeros((90, 90), bool)
    valid[15:75] = True
    mask = np.zeros((90, 90), np.uint8)
    mask[16:30, 35:55] = 1
    assert where_in_image(mask, "pond", valid) == "pond: the top of the image (drawn on the map)"
    assert where_box_is((35, 16, 55, 30), valid) == "the top"
    assert where_box_is((0, 60, 20, 74), valid) == "the bottom left"
    assert where_box_is((35, 40, 55, 50), valid) == "the centre"


def test_a_class_is_there_when_it_covers_more_than_a_trace_of_the_picture():
    valid = np.zeros((100, 100), bool)
    valid[:, :50] = True  # half the chip is frame: shares are of the picture
    mask = np.zeros((100, 100), np.uint8)
    mask[:3, :10] = 1  # 30 px: 0.6 % of the picture's 5,000, 0.3 % of the chip
    assert 30 / 5000 > PRESENT_MIN_SHARE > 30 / 10000
    assert presence(mask, "vegetation", valid, 1.0) == "yes: 0.6 % of the area is vegetation (3e-05 km²)"
    mask[:3, :10], mask[0, :10] = 0, 1  # 10 px: 0.2 %
    assert presence(mask, "vegetation", valid, None) == (
        "no: 0.2 % of the area is vegetation, below the 0.5 % that counts as there")
    assert presence(np.zeros((100, 100), np.uint8), "water", valid, 1.0) == "no water found"


def test_the_composition_names_the_classes_by_share_of_the_picture_largest_first():
    labels = ["others", "building", "road", "water"]
    mask = np.zeros((100, 100), np.uint8)
    mask[:, :60] = 3  # water 60 % of the chip
    mask[:, 60:90] = 1  # building 30 %
    mask[0, 90:95] = 2  # road 0.05 %: under the 1 % named
    valid = _valid((100, 100))
    said = composition(mask, labels, valid, 2.0)
    assert said == "mostly water (60.0 % of the area, 0.024 km²), then building 30.0 %"
    valid[:, 90:] = False  # a frame around the picture is not counted
    assert composition(mask, labels, valid, None) == "mostly water (66.7 % of the area), then building 33.3 %"
    assert composition(np.zeros((9, 9), np.uint8), labels, _valid((9, 9)), 1.0).startswith("none of the classes")
    mask[:, :60] = 2  # road 60 % of the picture now: under half of the whole chip, first of the classes
    valid[:] = True
    mask[:, 45:60] = mask[0, 90:95] = 0
    assert composition(mask, labels, valid, None) == "road covers most (45.0 % of the area), then building 30.0 %"


def test_two_classes_are_compared_by_area_or_by_count_and_the_answer_says_what_was_compared():
    from rsapp.tasks.vocabulary import Comparison

    labels = ["others", "building", "road", "water", "vegetation"]
    valid = np.zeros((100, 100), bool)
    valid[:, :50] = True  # half the chip is frame: shares are of the picture
    mask = np.zeros((100, 100), np.uint8)
    mask[:20, :50], mask[20:30, :50], mask[50:70, 60:] = 1, 4, 4  # 20 % building, 10 % vegetation (frame ignored)
    more = Comparison("building", "vegetation", ">", False, "area")
    assert comparison(mask, labels, valid, more, {}) == "yes: building covers 20.0 % of the area, vegetation 10.0 %"
    fewer = Comparison("vegetation", "building", ">", False, "area")
    assert comparison(mask, labels, valid, fewer, {}).startswith("no:")
    assert comparison(mask, labels, valid, Comparison("vegetation", "building", "<", True, "area"), {}) == (
        "vegetation: vegetation covers 10.0 % of the area, building 20.0 %")  # which covers less
    mask[30:39, :50] = 4  # vegetation 19 %: within a tenth of the buildings' 20 %
    assert comparison(mask, labels, valid, Comparison("building", "vegetation", "=", False, "area"), {}).startswith(
        "yes: ")
    counted = Comparison("building", "road", "<", False, "count")
    assert comparison(mask, labels, valid, counted, {"building": 21, "road": 4}) == (
        "no: 21 buildings against 4 road pieces")
    assert comparison(mask, labels, valid, Comparison("car", "ship", ">", True, "count"), {"car": 0, "ship": 0}) == (
        "about the same: 0 cars against 0 ships")
    # what the model counted as connected regions of its mask is said, of one class or of both
    cars = Comparison("building", "car", ">", False, "count")
    assert comparison(mask, labels, valid, cars, {"building": 21, "car": 12}, ("car",)) == (
        "yes: 21 buildings against 12 cars (touching cars count as one)")
    assert comparison(mask, labels, valid, Comparison("car", "ship", ">", False, "count"), {"car": 3, "ship": 1},
                      ("car", "ship")) == "yes: 3 cars against 1 ship (touching cars count as one)"
    assert comparison(mask, labels, valid, Comparison("car", "ship", ">", False, "count"), {"car": 3, "ship": 2},
                      ("car", "ship")) == "yes: 3 cars against 2 ships (touching ones count as one)"


def test_a_count_of_patches_says_what_was_counted():
    from rsapp.tasks.mask_sentences import count_sentence

    assert count_sentence(21, "building", False) == "21" and count_sentence(4, "road", False) == "4"
    assert count_sentence(45, "vegetation", True) == "45 patches of vegetation (touching ones count as one)"
    assert count_sentence(12, "car", True) == "12 cars (touching ones count as one)"
    assert count_sentence(1, "water", True) == "1 water body" and count_sentence(0, "car", True) == "0 cars"
