import numpy as np
import pytest

from rsapp.tasks.boxes import boxes_to_text, text_to_boxes
from rsapp.tasks.descriptors import grid_from_mask, grid_to_mask, mask_to_text, text_to_mask


@pytest.mark.parametrize("n", [16, 24])
def test_mask_descriptor_round_trip_is_exact_on_the_grid(n):
    rng = np.random.default_rng(n)
    grid = np.zeros((n, n), np.uint8)
    grid[2:7, 3:11] = 1
    grid[n // 2:, n // 2:] = 2
    grid[rng.random((n, n)) < 0.05] = 3
    labels = ["others", "road", "water", "building"]
    text = mask_to_text(grid, labels)
    assert text.splitlines()[0].startswith("others *") and "| " in text
    back, names, warnings = text_to_mask(text, n, labels)
    assert np.array_equal(back, grid) and names == labels and warnings == []
    assert np.array_equal(grid_from_mask(grid_to_mask(grid, 256), n), grid)


def test_rsunivlm_variant_and_unknown_labels():
    grid, labels, warnings = text_to_mask("others*20, road*10, others*226", 16)
    assert labels == ["others", "road"] and (grid > 0).sum() == 10 and warnings == []
    assert grid.ravel()[20:30].tolist() == [1] * 10


@pytest.mark.parametrize("text", ["", "garbage", "others *3", "road *999", "| | *", "others *16\n" * 40, "🙂 *2"])
def test_malformed_descriptors_degrade_never_crash(text):
    grid, labels, warnings = text_to_mask(text, 16)
    assert grid.shape == (16, 16) and labels[0] == "others"


def test_boxes_round_trip_within_one_unit():
    rng = np.random.default_rng(0)
    boxes = []
    for _ in range(20):
        x1, y1 = rng.uniform(0, 200, 2)
        boxes.append((x1, y1, x1 + rng.uniform(5, 50), y1 + rng.uniform(5, 50)))
    back, warnings = text_to_boxes(boxes_to_text(boxes, 256), 256)
    assert warnings == [] and len(back) == 20
    assert np.abs(np.array(back) - np.array(boxes)).max() / 256 * 100 <= 1.0


def test_malformed_boxes_are_clipped_or_dropped_with_warnings():
    boxes, warnings = text_to_boxes("[10, 20, 130, 40] [5, 5] [50, 60, 40, 70] [1, 1, 1, 1] [a, b, c, d] [", 100)
    assert boxes == [(10, 20, 100, 40), (40, 60, 50, 70)]
    assert len(warnings) == 4


def test_questions_name_their_class_in_the_words_people_use():
    from rsapp.tasks.vocabulary import dense_class_of, selection_of

    assert [dense_class_of(q) for q in ("segment the roads", "Segment the PONDS!", "segment the built-up area",
                                        "segment the changes", "segment the trees", "where are the houses?",
                                        "outline the boats")] == \
        ["road", "water", "building", None, "vegetation", "building", "ship"]
    assert [selection_of(p) for p in ("the largest pond", "all ships", "the building on the left",
                                      "the northernmost tree")] == ["largest", "all", "leftmost", "topmost"]
