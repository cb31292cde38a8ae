"""The tiles of a batch: each scene on its own pixel grid, overlapping so that objects on a seam are seen whole."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import shapely

from rsapp.errors import RsappError
from rsapp.geo import Scene
from rsapp.geo.aoi import aoi_to_scene

RASTER_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Tile:
    """A window of a scene, and its core: the part nearer to it than to any neighbour (the tiles' cores cut the
    scene into pieces without gaps or overlap). Only what lies in the core is kept of the tile's answer, so an
    object seen by two tiles is counted once and the tile edges, where the model sees less, are never used."""

    path: str  # the scene file
    col: int
    row: int
    width: int
    height: int
    core: tuple[int, int, int, int] = (0, 0, 0, 0)  # col0, row0, col1, row1 (scene pixels)

    @property
    def key(self) -> str:
        return f"{self.path}|{self.col},{self.row},{self.width},{self.height}"


def starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: every tile inside the image (the last one shifted back to end at its edge)."""
    if length <= tile:
        return [0]
    return sorted(set(range(0, length - tile, tile - overlap)) | {length - tile})


def cores(begins: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """Each tile's core along one axis: from the middle of its overlap with the previous tile to the middle of its
    overlap with the next (the image's edges at the ends)."""
    cuts = [(b + a + tile) // 2 for a, b in zip(begins, begins[1:])]
    return list(zip([0] + cuts, cuts + [length]))


def scene_paths(inputs: list[str]) -> list[Path]:
    """The rasters named, with folders expanded to the rasters directly inside them (sorted)."""
    out = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in RASTER_SUFFIXES)
            if not found:
                raise RsappError(f"{p.name}/ holds no .tif / .png / .jpg files")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise RsappError(f"file not found: {p.name}")
    return out


def plan(paths: list[Path], tile: int, overlap: int, aoi: shapely.Geometry | None = None) -> list[Tile]:
    """Every tile of every scene (only those meeting the AOI when one is given)."""
    if tile < 64 or not 0 <= overlap < tile // 2:
        raise RsappError(f"--tile must be ≥ 64 px and --overlap between 0 and half of it (got {tile}, {overlap})")
    out = []
    for path in paths:
        with Scene(path) as scene:
            area = aoi_to_scene(aoi, scene) if aoi is not None else None
            rows, cols = starts(scene.height, tile, overlap), starts(scene.width, tile, overlap)
            row_cores, col_cores = cores(rows, tile, scene.height), cores(cols, tile, scene.width)
            for row, (r0, r1) in zip(rows, row_cores):
                for col, (c0, c1) in zip(cols, col_cores):
                    w, h = min(tile, scene.width), min(tile, scene.height)
                    if area is not None:
                        (x0, y0), (x1, y1) = (scene.transform @ (c, r) for c, r in ((col, row), (col + w, row + h)))
                        if not shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)).intersects(area):
                            continue
                    out.append(Tile(str(path), col, row, w, h, (c0, r0, c1, r1)))
    if not out:
        raise RsappError("the AOI meets none of the scenes")
    return out
