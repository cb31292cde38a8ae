"""A GeoTIFF of bare ground with ponds, many of them on the seams between batch tiles (built, not stored)."""

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

GSD_M = 1.0
ORIGIN = (500_000.0, 4_200_000.0)  # UTM 33N
# Dark, as the water the land-cover sets label is (Dubai's water pixels: median (16, 18, 14), mean (26, 28, 23)). Flat
# teal (40, 70, 85) on sand, which stage A's dense head read as water, is like no labelled water, and the mask head
# does not read it as water (docs/EXPERIMENTS.md, 2026-11-29)
WATER = (20, 30, 35)


def pond_scene(path: Path, side: int = 2048, tile: int = 512, overlap: int = 64, seed: int = 0) -> tuple[Path, list]:
    """(path, pond centres (row, col)): ponds of ~90 × 120 m placed across the tile edges and elsewhere."""
    rng = np.random.default_rng(seed)
    step = tile - overlap
    edges = [s + tile for s in range(0, side - tile, step)][:-1]  # where a tile ends inside the next one
    centres = [(e, e) for e in edges] + [(e, side - e) for e in edges if abs(side - 2 * e) > 200]
    centres += [(300, 1800), (1700, 260)] if side >= 2048 else []
    img = np.empty((side, side, 3), np.float32)
    img[:] = (196, 178, 140)
    img += rng.normal(0, 10, (side, side, 1)) + rng.normal(0, 4, (side, side, 3))
    y, x = np.mgrid[:side, :side]
    for cy, cx in centres:
        pond = ((y - cy) / 45.0) ** 2 + ((x - cx) / 60.0) ** 2 < 1
        img[pond] = np.array(WATER) + rng.normal(0, 5, (int(pond.sum()), 3))
    data = np.clip(img, 0, 255).astype(np.uint8).transpose(2, 0, 1)
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8", "crs": "EPSG:32633",
               "transform": Affine(GSD_M, 0, ORIGIN[0], 0, -GSD_M, ORIGIN[1]), "tiled": True, "blockxsize": 256,
               "blockysize": 256, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path, centres
