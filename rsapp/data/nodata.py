"""Chips with no data in them, as the app makes them (issue #4).

The app squares every chip and blanks what lies outside the scene or outside a drawn AOI polygon
(rsapp.geo.chips): a 650 × 500 scene comes with black strips on two sides, a rectangle or free-hand AOI with black
around it. The rendered corpus never had black, and the model read it as water (the held-out Las Vegas chip's
strips were "water" to the dense head). Training-time samples get such masks; their labels, visibility and
answers are those of the pixels left (rsapp.data.samples.SceneFacts).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

MIN_VALID = 0.35  # the smallest share of the chip left with data


def nodata_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) bool, True where the chip has data: a non-square scene's strips, or an AOI polygon."""
    kind = rng.choice(["strips", "side", "polygon"], p=[0.4, 0.2, 0.4])
    valid = np.ones((size, size), bool)
    if kind == "strips":  # a non-square scene, centred in its square chip
        w = int(size * rng.uniform(0.05, 0.3))
        valid[:, :w] = valid[:, size - w:] = False
    elif kind == "side":  # a scene or AOI ending inside the chip
        valid[:, : int(size * rng.uniform(0.1, 0.5))] = False
    else:  # a drawn AOI: a random polygon around the chip's centre
        n = int(rng.integers(4, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = size * rng.uniform(0.35, 0.75, n)
        c = size / 2
        pts = [(c + r * np.cos(a), c + r * np.sin(a)) for a, r in zip(angles, radii)]
        img = Image.new("L", (size, size), 0)
        ImageDraw.Draw(img).polygon(pts, fill=1)
        valid = np.asarray(img, bool)
    valid = np.rot90(valid, int(rng.integers(4))).copy()
    return valid if valid.mean() >= MIN_VALID else np.ones((size, size), bool)
