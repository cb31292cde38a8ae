"""AOI → pixel window → square chip at the model's input size, with its own affine transform and effective GSD."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from rasterio.enums import MaskFlags, Resampling
from rasterio.features import geometry_mask
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from rsapp.errors import RsappError
from rsapp.geo.aoi import aoi_to_scene
from rsapp.geo.raster import ground_gsd_m, read_masked

# A second date must cover at least this share of the first date's chip to be compared with it.
MIN_PAIR_COVERAGE = 0.5
EDGE_EPS_PX = 1e-6


@dataclass
class Chip:
    """What the model sees: a size×size RGB picture of a square window of the scene, letterboxed, never upsampled."""

    rgb: np.ndarray  # (size, size, 3) uint8
    valid: np.ndarray  # (size, size) bool: inside the image, not nodata, inside the AOI
    transform: Affine  # chip pixel → scene CRS (→ scene pixels when the scene has no georeference)
    crs: object  # rasterio CRS, or None for pixel space
    window_px: Window  # the square of scene pixels the chip covers
    gsd_m: float | None  # ground size of one chip pixel at the chip centre, after resampling
    source: str  # scene file name
    # the part of the chip that is imagery, (row0, row1, col0, col1) (picture_box); None: all of it. Pixel answers
    # read their maps from it alone, not from the black frame around it
    picture: tuple[int, int, int, int] | None = None

    @property
    def size(self) -> int:
        return self.rgb.shape[0]

    @property
    def scale(self) -> float:
        """Scene pixels per chip pixel (1 when the chip is the scene at native resolution, or padded)."""
        return self.window_px.width / self.size

    def to_scene(self, cols, rows) -> tuple[np.ndarray, np.ndarray]:
        """Chip pixel coordinates (edges: 0..size) → scene CRS coordinates."""
        xs, ys = self.transform @ (np.asarray(cols, dtype=float), np.asarray(rows, dtype=float))
        return np.asarray(xs), np.asarray(ys)

    def footprint(self) -> shapely.Polygon:
        """The chip's square in the scene CRS."""
        corners = [(0, 0), (self.size, 0), (self.size, self.size), (0, self.size)]
        return shapely.Polygon([self.transform @ c for c in corners])


class WindowRGB:
    """A scene window at native resolution as a lazy (H, W, 3) uint8 array: slicing reads only that part.

    Lets the model stream an 8192 × 8192 chip tile by tile without ever holding it whole.
    """

    def __init__(self, scene, window: Window):
        self.scene = scene
        self.window = window
        self.shape = (int(window.height), int(window.width), 3)

    def __getitem__(self, key) -> np.ndarray:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        r0, r1, _ = rows.indices(self.shape[0])
        c0, c1, _ = cols.indices(self.shape[1])
        win = Window(self.window.col_off + c0, self.window.row_off + r0, max(c1 - c0, 0), max(r1 - r0, 0))
        return self._read(win)

    def area_view(self, size: int) -> np.ndarray:
        """The whole window area-averaged to (size, size, 3) uint8 in one decimated read (GDAL reads the file's
        overviews when it has them), for the model's global view of the area."""
        return self._read(self.window, out_shape=(3, size, size), resampling=Resampling.average)

    def _read(self, win: Window, **decimation) -> np.ndarray:
        inside = (win.col_off >= 0 and win.row_off >= 0 and win.col_off + win.width <= self.scene.width
                  and win.row_off + win.height <= self.scene.height)
        data = read_masked(self.scene.ds, list(self.scene.rgb_bands), window=win, boundless=not inside, **decimation)
        return self.scene.stretch.apply(data)[0]


def aoi_window(scene, aoi_scene: shapely.Geometry) -> Window:
    """Integer pixel window of the AOI's bounding box, clipped to the image; RsappError when they do not meet."""
    x0, y0, x1, y1 = aoi_scene.bounds
    inv = ~scene.transform
    cols, rows = zip(*(inv @ (x, y) for x, y in ((x0, y0), (x0, y1), (x1, y0), (x1, y1))))
    # Snap to whole pixels, forgiving the float noise of a lon/lat round trip.
    c0, c1 = max(0, math.floor(min(cols) + EDGE_EPS_PX)), min(scene.width, math.ceil(max(cols) - EDGE_EPS_PX))
    r0, r1 = max(0, math.floor(min(rows) + EDGE_EPS_PX)), min(scene.height, math.ceil(max(rows) - EDGE_EPS_PX))
    if c1 <= c0 or r1 <= r0 or not aoi_scene.intersects(scene.footprint()):
        raise RsappError(f"the AOI lies outside {scene.name}")
    return Window(c0, r0, c1 - c0, r1 - r0)


def square_window(window: Window, min_side_px: int, context: float = 1.0) -> Window:
    """The square centred on window whose side is its longer side × context (at least min_side_px, so chips
    never upsample)."""
    side = max(math.ceil(max(window.width, window.height) * context), min_side_px)
    col = math.floor(window.col_off + window.width / 2 - side / 2)
    row = math.floor(window.row_off + window.height / 2 - side / 2)
    return Window(col, row, side, side)


def area_window(scene, aoi_scene: shapely.Geometry | None, window: Window | None = None) -> Window:
    """The pixel window asked about: the one given (a batch tile), else the AOI's, else the whole scene."""
    if window is not None:
        return window
    return aoi_window(scene, aoi_scene) if aoi_scene is not None else Window(0, 0, scene.width, scene.height)


def picture_box(valid: np.ndarray, min_side_px: int = 64) -> tuple[int, int, int, int] | None:
    """(row0, row1, col0, col1): the part of a chip that is picture, the bounding box of its valid pixels (a
    non-square area's square chip, the scene's edge, a nodata collar and the outside of an AOI leave a black frame
    around it), grown about its centre to at least min_side_px a side within the chip; None when that is the
    whole chip, or when nothing is valid."""
    rows, cols = np.flatnonzero(valid.any(1)), np.flatnonzero(valid.any(0))
    if not len(rows):
        return None
    box = []
    for lo, hi, length in ((rows[0], rows[-1] + 1, valid.shape[0]), (cols[0], cols[-1] + 1, valid.shape[1])):
        side = max(hi - lo, min(min_side_px, length))
        lo = min(max(lo - (side - (hi - lo)) // 2, 0), length - side)
        box += [int(lo), int(lo + side)]
    return None if box == [0, valid.shape[0], 0, valid.shape[1]] else tuple(box)


def make_chip(scene, aoi: shapely.Geometry | None = None, size: int = 256, context: float = 1.0,
              mask_outside_aoi: bool = True, window: Window | None = None) -> Chip:
    """Chip of the AOI (EPSG:4326 GeoJSON geometry, or pixel space for unreferenced images), or of the whole scene,
    or of a given pixel window (pixels outside the AOI, if one is given too, are still blanked).

    context > 1 widens the square around the AOI (a [REF] box needs its surroundings); pixels outside the AOI
    polygon are blanked unless mask_outside_aoi is False.
    """
    aoi_scene = aoi_to_scene(aoi, scene) if aoi is not None else None
    window = area_window(scene, aoi_scene, window)
    square = square_window(window, size, context)
    scale = square.width / size
    transform = scene.transform @ Affine.translation(square.col_off, square.row_off) @ Affine.scale(scale)
    inside = square.col_off >= 0 and square.row_off >= 0 and (
        square.col_off + square.width <= scene.width and square.row_off + square.height <= scene.height)
    data = read_masked(scene.ds, list(scene.rgb_bands), window=square, out_shape=(3, size, size), boundless=not inside,
                       resampling=Resampling.average if scale > 1 else Resampling.nearest)
    rgb, valid = scene.stretch.apply(data)
    if aoi_scene is not None and mask_outside_aoi:
        valid &= geometry_mask([aoi_scene], out_shape=(size, size), transform=transform, invert=True, all_touched=True)
        rgb[~valid] = 0
    return Chip(rgb=rgb, valid=valid, transform=transform, crs=scene.crs, window_px=square,
                gsd_m=ground_gsd_m(scene.crs, transform, size / 2, size / 2), source=scene.name,
                picture=picture_box(valid))  # outside the AOI is blanked: no imagery


def native_side(scene, aoi: shapely.Geometry | None = None, window: Window | None = None) -> int:
    """The longer side, in the scene's pixels, of the window asked about (area_window)."""
    window = area_window(scene, aoi_to_scene(aoi, scene) if aoi is not None else None, window)
    return int(max(window.width, window.height))


def native_area(scene, aoi: shapely.Geometry | None = None, window: Window | None = None) -> WindowRGB:
    """The window asked about (area_window), clipped to the scene, at native resolution as a lazy reader."""
    return WindowRGB(scene, area_window(scene, aoi_to_scene(aoi, scene) if aoi is not None else None, window))


def make_detail_chip(scene, aoi: shapely.Geometry | None = None, max_side_px: int = 8192,
                     window: Window | None = None) -> Chip:
    """The AOI (or scene, or given window) at native resolution for the UHR path: pixels are read lazily, tile
    by tile."""
    aoi_scene = aoi_to_scene(aoi, scene) if aoi is not None else None
    window = area_window(scene, aoi_scene, window)
    square = square_window(window, 1)
    if square.width > max_side_px:
        raise RsappError(f"the area is {square.width} px across, more than the {max_side_px} px detail limit: "
                         "draw a smaller AOI, or ask without detail")
    transform = scene.transform @ Affine.translation(square.col_off, square.row_off)
    side = int(square.width)
    valid = np.ones((side, side), bool)
    cols = np.arange(side) + square.col_off
    rows = np.arange(side) + square.row_off
    valid &= ((cols >= 0) & (cols < scene.width))[None, :] & ((rows >= 0) & (rows < scene.height))[:, None]
    if any(MaskFlags.all_valid not in flags for flags in scene.ds.mask_flag_enums):  # nodata, or a mask band
        inside = valid.all()
        valid &= scene.ds.dataset_mask(window=square, boundless=not inside) > 0
    picture = picture_box(valid)  # the imagery around an AOI is read too (its context), never blanked
    if aoi_scene is not None:
        valid &= geometry_mask([aoi_scene], out_shape=(side, side), transform=transform, invert=True,
                               all_touched=True)
    return Chip(rgb=WindowRGB(scene, square), valid=valid, transform=transform, crs=scene.crs, window_px=square,
                gsd_m=ground_gsd_m(scene.crs, transform, side / 2, side / 2), source=scene.name, picture=picture)


def make_pair(scene_a, scene_b, aoi: shapely.Geometry | None = None, size: int = 256) -> tuple[Chip, Chip]:
    """Chips of two dates on the first one's grid: the second is warped onto it, or refused with the reason."""
    chip_a = make_chip(scene_a, aoi, size)
    if scene_a.georeferenced != scene_b.georeferenced:
        raise RsappError("one date is georeferenced and the other is not, so they cannot be aligned")
    if not scene_a.georeferenced:
        if (scene_a.width, scene_a.height) != (scene_b.width, scene_b.height):
            raise RsappError(
                f"the two dates have no georeference and different sizes ({scene_a.width}×{scene_a.height} vs "
                f"{scene_b.width}×{scene_b.height}), so they cannot be aligned")
        return chip_a, make_chip(scene_b, aoi, size)

    b_in_a = scene_b.footprint_in(scene_a.crs)
    if not b_in_a.intersects(scene_a.footprint()):
        raise RsappError(f"the two dates do not overlap: {scene_b.name} lies outside {scene_a.name}")
    looked_at = chip_a.footprint().intersection(scene_a.footprint())
    coverage = looked_at.intersection(b_in_a).area / looked_at.area
    if coverage < MIN_PAIR_COVERAGE:
        raise RsappError(
            f"the two dates barely overlap here: {scene_b.name} covers {coverage:.0%} of the area "
            f"(at least {MIN_PAIR_COVERAGE:.0%} needed)")
    with WarpedVRT(scene_b.ds, crs=scene_a.crs, transform=chip_a.transform, width=size, height=size,
                   resampling=Resampling.bilinear) as vrt:
        data = read_masked(vrt, list(scene_b.rgb_bands))
    rgb, valid = scene_b.stretch.apply(data)
    valid &= chip_a.valid
    rgb[~valid] = 0
    chip_b = Chip(rgb=rgb, valid=valid, transform=chip_a.transform, crs=chip_a.crs, window_px=chip_a.window_px,
                  gsd_m=chip_a.gsd_m, source=scene_b.name, picture=picture_box(valid))
    return chip_a, chip_b
