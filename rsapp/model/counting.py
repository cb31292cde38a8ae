"""How the model counts instances, shared with whoever reports counts (the map's layer totals) without importing
torch: a region of a class's mask smaller than MIN_INSTANCE_M2 is a speck, not a thing.

A class with an instance-core map (the instance head) is counted by its cores: the core map, smoothed over
CORE_SMOOTH_PX, above CORE_THRESHOLD inside the mask and at least MIN_SEED_M2 large seeds one instance, which takes
the mask pixels of its connected region nearest to it; a region of mask holding no seed is not an instance. Two
touching houses have two cores; a speck has none. The three settings were chosen on the train splits of SpaceNet
Atlanta, xBD and Dubai (lowest mean relative count error over a grid of thresholds 0.4–0.6, seeds 0–16 m²,
smoothing 0 or 4 px).

(Before the instance head, a per-class minimum region of 48 m² for buildings was tried: best on the xBD training
images, it took the Las Vegas sample from 36 to 9 counted buildings of 26, the mask there splitting houses into
pieces and merging rows of them. Thresholds on the mask cannot separate instances; the cores do.)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Smallest region of a class counted as an instance (m²): a car is ~9 m², a small shed ~10 m².
MIN_INSTANCE_M2 = 8.0
# Instance cores: the core map is smoothed over this many chip pixels (one cell of the heads' stride-4 map), and a
# connected part above the threshold inside the mask of at least this area seeds an instance.
CORE_SMOOTH_PX = 4.0
CORE_THRESHOLD = 0.4
MIN_SEED_M2 = 8.0
# Classes that form networks, which the mask breaks wherever a tree, a shadow or a car lies over them: (gap in m
# that still joins two pieces into one, smallest piece in m² that counts, a driveway's stub being less). Counted
# as mask regions, the Las Vegas sample's street was 33 roads; bridged this way it is 4 (3 with stage A's dense head
# alone; its labels hold 3).
NETWORK_CLASSES = {"road": (4.0, 100.0)}


def counting_method(name: str, cored: tuple[str, ...]) -> str:
    """How a dense class's instances are counted: 'cores' (its mask split by the instance head's cores; the classes
    `cored` have them), 'network' (its pieces bridged over small gaps: NETWORK_CLASSES) or 'regions' (connected
    regions of its mask: touching ones are one)."""
    return "cores" if name in cored else "network" if name in NETWORK_CLASSES else "regions"


def core_regions(mask: np.ndarray, core: np.ndarray, sigma: float = 0.0, min_seed_px: float = 1.0) -> np.ndarray:
    """(h, w) int32 instance ids of a boolean class mask split by its cores: the core map smoothed by `sigma`
    (map pixels), its connected parts above CORE_THRESHOLD inside the mask of at least min_seed_px are the seeds,
    each mask pixel joins the nearest seed of its own connected region, and a region without a seed stays 0."""
    if sigma > 0:
        core = ndimage.gaussian_filter(core, sigma)
    seeds, n = ndimage.label(mask & (core > CORE_THRESHOLD))
    if n and min_seed_px > 1:
        small = np.bincount(seeds.ravel()) < min_seed_px
        small[0] = False
        seeds[small[seeds]] = 0
    if not seeds.any():
        return np.zeros(mask.shape, np.int32)
    regions, _ = ndimage.label(mask)
    _, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    nearest = seeds[iy, ix]
    return np.where(mask & (regions[iy, ix] == regions), nearest, 0).astype(np.int32)


def network_regions(mask: np.ndarray, gap_px: float) -> np.ndarray:
    """(h, w) int32 ids of a network class's mask: pieces less than gap_px apart share an id (the mask closed over
    the gap is what joins them; the ids stay on the mask's own pixels)."""
    iterations = max(1, round(gap_px / 2))  # a closing of k steps bridges gaps up to about 2k pixels
    joined, _ = ndimage.label(ndimage.binary_closing(mask, iterations=iterations) | mask)
    return np.where(mask, joined, 0).astype(np.int32)


def mask_instances(prob: np.ndarray, threshold: float, gsd_m: float, chip_px: int,
                   core: np.ndarray | None = None, network: tuple[float, float] | None = None) -> list[tuple]:
    """Instances of one class's probability map (h, w) of a chip chip_px rows high at gsd_m metres a pixel:
    connected regions above the threshold (or, given the class's core map of the same shape, the mask split by
    its cores: core_regions; or, given a network class's (gap m, least m²) from NETWORK_CLASSES, its pieces
    bridged over the gap: network_regions) of at least MIN_INSTANCE_M2, as (box (x0, y0, x1, y1) in chip px, area
    in px of the map, mean probability)."""
    prob = np.asarray(prob, np.float32)
    scale = chip_px / prob.shape[0]  # a large chip's map is at quarter resolution
    px_m2 = (gsd_m * scale) ** 2
    min_px = max(4.0, (network[1] if network else MIN_INSTANCE_M2) / px_m2)
    if network is not None:
        regions = network_regions(prob > threshold, network[0] / (gsd_m * scale))
    elif core is None:
        regions, _ = ndimage.label(prob > threshold)
    else:
        regions = core_regions(prob > threshold, np.asarray(core, np.float32), CORE_SMOOTH_PX / scale,
                               MIN_SEED_M2 / px_m2)
    found = []
    for i, sl in enumerate(ndimage.find_objects(regions), start=1):
        if sl is None:
            continue
        inside = regions[sl] == i
        area = int(inside.sum())
        if area < min_px:
            continue
        box = tuple(scale * float(v) for v in (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop))
        found.append((box, area, float(prob[sl][inside].mean())))
    return found


# Regions smaller than this share of the map are not counted as instances (speckle of the pixel head), the share
# taken of at most SPECK_REFERENCE_PX² pixels: an area read larger, in tiles at native resolution, holds objects no
# larger in pixels (as a share of a 4096² pair, a house-sized change of 0.5 m pixels was a speck). Checked on the
# train change pairs up to LEVIR-CD's 1024² tiles (their regions 11 / 13 for 11 / 13 labelled).
MIN_INSTANCE_SHARE = 2e-4
SPECK_REFERENCE_PX = 1024


def speckless_regions(mask) -> tuple[np.ndarray, int]:
    """(ids 1..n of a boolean (H, W) mask's connected regions, 0 elsewhere and on its speckle, n): a region under
    MIN_INSTANCE_SHARE of the mask (of at most SPECK_REFERENCE_PX² pixels) is speckle."""
    labels, n = ndimage.label(mask)
    if not n:
        return labels, 0
    kept = np.bincount(labels.ravel()) >= MIN_INSTANCE_SHARE * min(labels.size, SPECK_REFERENCE_PX ** 2)
    kept[0] = False
    return (np.cumsum(kept) * kept)[labels], int(kept.sum())


def without_specks(mask) -> np.ndarray:
    """A boolean (H, W) mask without its speckle, so what is drawn and exported holds exactly the regions
    instance_count counts."""
    return speckless_regions(mask)[0] > 0


def instance_count(mask) -> int:
    """Connected regions of a boolean (H, W) mask, ignoring speckle."""
    return speckless_regions(mask)[1]
