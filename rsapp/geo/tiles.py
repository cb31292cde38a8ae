"""XYZ tiles of a scene for the web map, so that zooming in reaches the file's native resolution and zooming out
reads its overviews.

A georeferenced scene is cut into Web Mercator tiles by rio-tiler (a windowed, overview-aware read, reprojected
on the fly). An image without georeference is shown in Leaflet's CRS.Simple (x = column, y = −row, zoom 0 = one
image pixel per screen pixel), and its tiles are plain decimated windows of the image. Both use the scene's own
display bands and stretch, so every tile of a scene looks the same as the model's chips.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.enums import Resampling
from rasterio.windows import Window
from rio_tiler.errors import NoOverviewWarning, TileOutsideBounds
from rio_tiler.io import Reader

from rsapp.geo.bands import Stretch
from rsapp.geo.raster import read_masked

TILE_PX = 256
# Overviews are built for an upload without them when it is larger than this on a side: every zoomed-out tile,
# and the scene's own display statistics, would otherwise read the full-resolution pixels each time.
OVERVIEWS_FROM_PX = 2048
DEEPEST_ZOOM = 24  # how far the map lets one zoom in (past the native zoom, tiles are enlarged)


@dataclass(frozen=True)
class TileSource:
    """What a tile route needs to draw a scene: the file, its display bands and stretch, where it lies."""

    path: str
    bands: tuple[int, int, int]
    stretch: Stretch
    georeferenced: bool
    width: int
    height: int
    bounds: tuple[tuple[float, float], tuple[float, float]]  # Leaflet [[south, west], [north, east]]
    native_zoom: int  # the zoom at which one tile pixel is (at most) one image pixel
    min_zoom: int  # the zoom at which the whole scene fits in about one tile

    @classmethod
    def of(cls, scene) -> "TileSource":
        if scene.georeferenced:
            with Reader(str(scene.path)) as reader:
                west, south, east, north = reader.get_geographic_bounds(reader.tms.rasterio_geographic_crs)
                native, lowest = reader.maxzoom, reader.minzoom
            bounds = ((south, west), (north, east))
        else:
            bounds = ((-float(scene.height), 0.0), (0.0, float(scene.width)))
            native = 0
            lowest = -math.ceil(math.log2(max(scene.width, scene.height, TILE_PX) / TILE_PX))
        return cls(str(scene.path), tuple(scene.rgb_bands), scene.stretch, scene.georeferenced, scene.width,
                   scene.height, bounds, int(native), int(min(lowest, native)))


def render_tile(src: TileSource, z: int, x: int, y: int) -> bytes | None:
    """The tile as a PNG (transparent where the scene has no data); None when the tile misses the scene."""
    data = _web_tile(src, z, x, y) if src.georeferenced else _pixel_tile(src, z, x, y)
    if data is None:
        return None
    rgb, valid = src.stretch.apply(data)
    rgba = np.dstack([rgb, (valid * 255).astype(np.uint8)])
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _web_tile(src: TileSource, z: int, x: int, y: int) -> np.ma.MaskedArray | None:
    with warnings.catch_warnings(), Reader(src.path) as reader:
        warnings.simplefilter("ignore", NoOverviewWarning)  # a small file needs none
        if not reader.tile_exists(x, y, z):
            return None
        try:  # bilinear when enlarging or reprojecting, the overviews' own averages when shrinking
            img = reader.tile(x, y, z, tilesize=TILE_PX, indexes=src.bands, resampling_method="bilinear",
                              reproject_method="bilinear")
        except TileOutsideBounds:
            return None
    return img.array


def _pixel_tile(src: TileSource, z: int, x: int, y: int) -> np.ma.MaskedArray | None:
    """CRS.Simple tile (x, y) at zoom z covers image columns [x, x + 1) · 256 / 2^z and rows likewise."""
    span = TILE_PX / 2.0 ** z
    col0, row0 = x * span, y * span
    if col0 >= src.width or row0 >= src.height or col0 + span <= 0 or row0 + span <= 0:
        return None
    with rasterio.open(src.path) as ds:
        return read_masked(ds, list(src.bands), window=Window(col0, row0, span, span), out_shape=(3, TILE_PX, TILE_PX),
                           boundless=True, resampling=Resampling.bilinear if span < TILE_PX else Resampling.average)


@lru_cache(maxsize=1)
def empty_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (1, 1), (0, 0, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def needs_overviews(path: str | Path) -> bool:
    """A GeoTIFF larger than OVERVIEWS_FROM_PX on a side that has no overviews."""
    with rasterio.open(path) as ds:
        return (ds.driver == "GTiff" and max(ds.width, ds.height) > OVERVIEWS_FROM_PX
                and not ds.overviews(1))


def build_overviews(path: str | Path) -> int:
    """External overviews (FILE.ovr, the file itself untouched) halving down to one tile; how many levels."""
    with rasterio.Env(TIFF_USE_OVR=True, COMPRESS_OVERVIEW="DEFLATE"), rasterio.open(path, "r+") as ds:
        factors, side = [], max(ds.width, ds.height)
        while side / 2 ** (len(factors) + 1) >= TILE_PX / 2:
            factors.append(2 ** (len(factors) + 1))
        ds.build_overviews(factors, Resampling.average)
    return len(factors)
