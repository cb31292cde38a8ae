"""Sentences written from a class mask on the chip grid, for answers the language model never learned: what a
[SEG] mask holds, how much of the area a class covers, what covers most of it, and where in the image it lies.

A mask is (H, W) label indices (0 = others); `valid` the chip's image pixels (the picture, inside the AOI).
"""

from __future__ import annotations

import numpy as np


def mask_summary(mask: np.ndarray, labels: list[str], valid: np.ndarray, gsd_m: float | None, change: bool,
                 counts: dict[str, int] | None = None) -> str:
    """'road: 12 % of the area, 0.31 km²' per label, for a person to read; 'building: 16 found, 27.7 % …' where the
    model counted the label's instances."""
    n_valid = max(int(valid.sum()), 1)
    parts = []
    for i, name in enumerate(labels[1:], start=1):
        px = int((mask == i).sum())
        if not px:
            continue
        area = f", {px * gsd_m**2 / 1e6:.3g} km²" if gsd_m else ""
        found = f"{counts[name]} found, " if counts and name in counts else ""
        parts.append(f"{'changed' if name == 'change' else name}: {found}{100 * px / n_valid:.1f} % of the area{area}")
    if not parts:
        return "no change found" if change else "nothing of that class found"
    return ("changed — " if change and labels[1:] != ["change"] else "") + "; ".join(parts)


def share_of_area(mask: np.ndarray, label: str, valid: np.ndarray, gsd_m: float | None) -> str:
    """'12.3 % of the area is water (0.031 km²)': the answer to how much of the area a class covers."""
    px = int((mask > 0).sum())
    area = f" ({px * gsd_m**2 / 1e6:.3g} km²)" if gsd_m and px else ""
    return f"{100 * px / max(int(valid.sum()), 1):.1f} % of the area is {label}{area}"


def class_shares(mask: np.ndarray, labels: list[str], valid: np.ndarray) -> np.ndarray:
    """The share of the picture's valid part each label of an all-classes mask covers (index 0: others)."""
    return np.bincount(mask[valid], minlength=len(labels)) / max(int(valid.sum()), 1)


# A class is named in a composition when it covers at least this share of the image's valid part.
COMPOSITION_MIN_SHARE = 0.01


def composition(mask: np.ndarray, labels: list[str], valid: np.ndarray, gsd_m: float | None) -> str:
    """'mostly bare land (62.0 % of the area, 0.041 km²), then water 20.1 %, road 5.3 %' ('building covers most
    (31.0 % …), then …' when no class covers half): the classes of an all-classes mask by the share they cover, the
    answer to what the land cover is."""
    n_valid = max(int(valid.sum()), 1)
    share = class_shares(mask, labels, valid)
    shares = sorted(((share[i], name) for i, name in enumerate(labels) if i and share[i] >= COMPOSITION_MIN_SHARE),
                    reverse=True)
    if not shares:
        return "none of the classes the model knows covers the area"
    (top, name), rest = shares[0], shares[1:]
    area = f", {top * n_valid * gsd_m**2 / 1e6:.3g} km²" if gsd_m else ""
    then = ", then " + ", ".join(f"{n} {100 * sh:.1f} %" for sh, n in rest) if rest else ""
    said = f"mostly {name}" if top >= 0.5 else f"{name} covers most"
    return f"{said} ({100 * top:.1f} % of the area{area}){then}"


# Two areas compared are "as much" when the smaller is at least this share of the larger
SAME_AREA_SHARE = 0.9
# What a counted instance of a class is called: one, and more
_COUNTED_AS = {"building": ("building", "buildings"), "road": ("road piece", "road pieces"),
               "water": ("water body", "water bodies"), "vegetation": ("patch of vegetation", "patches of vegetation"),
               "bare land": ("patch of bare land", "patches of bare land"), "car": ("car", "cars"),
               "ship": ("ship", "ships")}


def counted_things(n: int, name: str) -> str:
    """"21 buildings", "3 water regions": n of a class, as its count is said."""
    return f"{n} {_COUNTED_AS[name][n != 1]}"


def _touching(names: list[str], of: int = 1) -> str:
    """What a count of connected mask regions cannot split, said of the classes counted that way among `of`."""
    if not names:
        return ""
    return f" (touching {'ones' if len(names) == of else _COUNTED_AS[names[0]][1]} count as one)"


def count_sentence(n: int, name: str | None, as_regions: bool) -> str:
    """The answer to how many there are: '21' where the model splits the class's mask into instances (cores, a
    network's bridged pieces); '45 patches of vegetation (touching ones count as one)' where it
    counts connected regions of the mask (`as_regions`: a row of touching trees, or two parked cars, is one; said
    where there are two or more)."""
    return f"{counted_things(n, name)}{_touching([name] if n > 1 else [])}" if as_regions else str(n)


def comparison(mask: np.ndarray, labels: list[str], valid: np.ndarray, cmp, counts: dict[str, int],
               as_regions: tuple[str, ...] = ()) -> str:
    """The answer to a question comparing two classes (rsapp.tasks.vocabulary.Comparison), from an all-classes mask
    (their areas) or the counts of their instances: 'yes: 21 buildings against 3 road pieces', 'no: building covers
    4.1 % of the area, water 9.8 %', or for a "which" question the class it holds for ('water: water covers 9.8 % of
    the area, vegetation 4.1 %'); what was compared is always said, and of a count, which of the two classes
    (`as_regions`) were counted as connected regions of their mask."""
    if cmp.by == "count":
        a, b = counts.get(cmp.first, 0), counts.get(cmp.second, 0)
        merged = [c for c, n in ((cmp.first, a), (cmp.second, b)) if c in as_regions and n > 1]
        said = f"{counted_things(a, cmp.first)} against {counted_things(b, cmp.second)}{_touching(merged, 2)}"
        same = a == b
    else:
        share = class_shares(mask, labels, valid)
        a, b = (float(share[labels.index(c)]) for c in (cmp.first, cmp.second))
        said = f"{cmp.first} covers {100 * a:.1f} % of the area, {cmp.second} {100 * b:.1f} %"
        same = min(a, b) >= SAME_AREA_SHARE * max(a, b)
    if cmp.which:
        if same:
            return f"about the same: {said}"
        first = (a > b) == (cmp.relation == ">")
        return f"{cmp.first if first else cmp.second}: {said}"
    holds = same if cmp.relation == "=" else (not same and (a > b) == (cmp.relation == ">"))
    return f"{'yes' if holds else 'no'}: {said}"


# A class is there when its mask covers more than this share of the image's valid part: chosen on the train split of
# RSIVQA's "does this picture contain trees?" (UC Merced images 0–59: 0.745; held out, 60–79: 0.88, where the
# language model answered 0.67)
PRESENT_MIN_SHARE = 0.005


def presence(mask: np.ndarray, label: str, valid: np.ndarray, gsd_m: float | None) -> str:
    """'yes: 12.3 % of the area is vegetation (0.031 km²)', or 'no: …' with what little was found (a small pool is
    less than the share): the answer to whether a class is there."""
    share = int((mask > 0).sum()) / max(int(valid.sum()), 1)
    if share > PRESENT_MIN_SHARE:
        return f"yes: {share_of_area(mask, label, valid, gsd_m)}"
    if not share:
        return f"no {label} found"
    found = share_of_area(mask, label, valid, gsd_m)
    return f"no: {found}, below the {100 * PRESENT_MIN_SHARE:g} % that counts as there"


# A ninth of the image holds a class when the class covers at least this share of it, and at least this fraction
# of the share of the ninth it covers most (a few stray pixels elsewhere are not "where it is").
NINTH_MIN_SHARE, NINTH_OF_MOST = 0.02, 0.3
_ROWS, _COLS = ("top", "middle", "bottom"), ("left", "middle", "right")
_WHOLE_ROW = ("across the top", "across the middle", "across the bottom")
_WHOLE_COL = ("down the left side", "down the middle", "down the right side")


def _ninth(r: int, c: int) -> str:
    if (r, c) == (1, 1):
        return "the centre"
    if r == 1:
        return f"the {_COLS[c]}"
    return f"the {_ROWS[r]}" if c == 1 else f"the {_ROWS[r]} {_COLS[c]}"


def _thirds(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column edges cutting the image's valid part in thirds each way."""
    rows, cols = np.nonzero(valid)
    return (np.linspace(rows.min(), rows.max() + 1, 4).round().astype(int),
            np.linspace(cols.min(), cols.max() + 1, 4).round().astype(int))


def where_in_image(mask: np.ndarray, label: str, valid: np.ndarray) -> str:
    """'road: down the middle and across the top of the image (drawn on the map)': the ninths of the image (its
    valid part, cut in thirds each way) the class lies in, whole rows and columns of ninths said as such."""
    if not valid.any():
        return f"no {label} found"
    r_edges, c_edges = _thirds(valid)
    share = np.zeros((3, 3))
    for r in range(3):
        for c in range(3):
            cell = np.s_[r_edges[r]:r_edges[r + 1], c_edges[c]:c_edges[c + 1]]
            share[r, c] = (mask[cell] > 0).sum() / max(int(valid[cell].sum()), 1)
    if share.max() <= 0:
        return f"no {label} found"
    held = share >= max(NINTH_MIN_SHARE, NINTH_OF_MOST * share.max())
    if not held.any():
        return f"hardly any {label}: a few pixels, under {100 * NINTH_MIN_SHARE:.0f} % of any part of the image"
    if held.all():
        return f"{label}: all over the image (drawn on the map)"
    parts, left = [], held.copy()
    for c in range(3):
        if held[:, c].all():
            parts.append(_WHOLE_COL[c])
            left[:, c] = False
    for r in range(3):
        if held[r].all():
            parts.append(_WHOLE_ROW[r])
            left[r] = False
    parts += [_ninth(r, c) for r, c in zip(*np.nonzero(left))]
    said = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return f"{label}: {said} of the image (drawn on the map)"


def where_box_is(box: tuple[float, float, float, float], valid: np.ndarray) -> str:
    """'the top left': the ninth of the image (as where_in_image cuts it) a box's centre lies in."""
    r_edges, c_edges = _thirds(valid)
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return _ninth(int(np.clip(np.searchsorted(r_edges, y, side="right") - 1, 0, 2)),
                  int(np.clip(np.searchsorted(c_edges, x, side="right") - 1, 0, 2)))
