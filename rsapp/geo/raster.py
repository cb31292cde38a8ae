"""Open rasters safely and describe them: CRS, size, bands, footprint in EPSG:4326, ground sampling distance."""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Geod, Transformer
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from rsapp.errors import RsappError

WGS84 = CRS.from_epsg(4326)
_GEOD = Geod(ellps="WGS84")
# Rasters larger than this on a side are refused: they are not imagery anyone can mean to chat with here.
MAX_SIDE_PX = 200_000
# Formats GDAL decodes whole (no windowed reads): refused above this many pixels, as PIL refuses decompression
# bombs (its limit is 89.5 M px). Tiled or striped GeoTIFFs have no such limit: they are read by window.
WHOLE_DECODE_DRIVERS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
MAX_WHOLE_DECODE_PIXELS = 100_000_000


@dataclass(frozen=True)
class RasterInfo:
    """What a person wants to know about a raster before using it; `python -m rsapp info` prints this."""

    path: str
    driver: str
    crs: str | None
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    bounds_wgs84: tuple[float, float, float, float] | None
    gsd_m: float | None
    gsd_xy_m: tuple[float, float] | None
    overviews: list[int] = field(default_factory=list)
    band_names: list[str | None] = field(default_factory=list)

    def to_json(self) -> dict:
        d = self.__dict__.copy()
        d["bounds_wgs84"] = list(self.bounds_wgs84) if self.bounds_wgs84 else None
        d["gsd_xy_m"] = list(self.gsd_xy_m) if self.gsd_xy_m else None
        return d


def is_georeferenced(crs: CRS | None, transform: Affine) -> bool:
    return crs is not None and transform != Affine.identity()


def ground_gsd_xy_m(crs: CRS, transform: Affine, col: float, row: float) -> tuple[float, float]:
    """Ground size in metres of one pixel at (col, row), measured geodesically on WGS84.

    Works the same for projected CRSs (UTM: within the 0.04 % scale factor of |a|; Web Mercator: corrects
    its 1/cos(lat) inflation) and geographic ones (degrees converted at that latitude).
    """
    to_lonlat = Transformer.from_crs(crs, WGS84, always_xy=True)
    pts = [transform @ (col, row), transform @ (col + 1, row), transform @ (col, row + 1)]
    lon, lat = to_lonlat.transform([p[0] for p in pts], [p[1] for p in pts])
    _, _, dx = _GEOD.inv(lon[0], lat[0], lon[1], lat[1])
    _, _, dy = _GEOD.inv(lon[0], lat[0], lon[2], lat[2])
    return float(dx), float(dy)


def ground_gsd_m(crs: CRS | None, transform: Affine, col: float, row: float) -> float | None:
    """One GSD figure: the side of a square pixel of the same ground area (geometric mean of x and y)."""
    if not is_georeferenced(crs, transform):
        return None
    dx, dy = ground_gsd_xy_m(crs, transform, col, row)
    return float(np.sqrt(dx * dy))


def open_dataset(path: str | os.PathLike) -> rasterio.io.DatasetReader:
    """rasterio.open with the user's mistakes turned into one clear RsappError."""
    p = Path(path)
    if not p.exists():
        raise RsappError(f"file not found: {p}")
    if p.is_dir():
        raise RsappError(f"{p} is a folder, not an image")
    if p.is_file() and p.stat().st_size == 0:
        raise RsappError(f"{p.name} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(p)
    except RasterioError as e:
        raise RsappError(f"{p.name} is not an image rasterio can read ({_first_line(e)})") from None
    if ds.count < 1 or ds.width < 1 or ds.height < 1:
        ds.close()
        raise RsappError(f"{p.name} has no raster bands")
    if max(ds.width, ds.height) > MAX_SIDE_PX:
        ds.close()
        raise RsappError(f"{p.name} is {ds.width}×{ds.height} px, larger than the {MAX_SIDE_PX} px limit")
    if ds.driver in WHOLE_DECODE_DRIVERS and ds.width * ds.height > MAX_WHOLE_DECODE_PIXELS:
        ds.close()
        raise RsappError(f"{p.name} is a {ds.width}×{ds.height} px {ds.driver}, over the "
                         f"{MAX_WHOLE_DECODE_PIXELS // 1_000_000} M px limit for formats decoded whole: "
                         "convert it to a tiled GeoTIFF (gdal_translate -co TILED=YES)")
    return ds


def _first_line(e: Exception) -> str:
    """The most specific line of a GDAL error (rasterio chains the real cause behind a generic message), with
    every file path cut to its name: the server's folders are nobody's business."""
    while e.__cause__ is not None and "previous exception" in str(e):
        e = e.__cause__
    text = str(e).strip().splitlines()
    if not text:
        return type(e).__name__
    quoted = _QUOTED_PATH.sub(lambda m: "'" + _SEPARATOR.split(m.group(1))[-1] + "'", text[0])
    return _ABS_PATH.sub(lambda m: m.group(2), quoted)


# a quoted path (may hold spaces), and an unquoted absolute path (POSIX or Windows; group 2 is its last part)
_QUOTED_PATH = re.compile(r"'([^']*[/\\][^']*)'")
_SEPARATOR = re.compile(r"[/\\]")
_ABS_PATH = re.compile(r"((?:[A-Za-z]:)?[/\\](?:[^/\\\s'\"]+[/\\])+)([^/\\\s'\"]+)")


def describe(ds: rasterio.io.DatasetReader) -> RasterInfo:
    """RasterInfo of an open dataset: GSD at the image centre, footprint densified into EPSG:4326."""
    geo = is_georeferenced(ds.crs, ds.transform)
    bounds = gsd = gsd_xy = None
    if geo:
        w, s, e, n = transform_bounds(ds.crs, WGS84, *ds.bounds, densify_pts=21)
        # RFC 7946 §5.2: a footprint across the antimeridian has west > east, both within ±180
        w, e = (w + 540.0) % 360.0 - 180.0, (e + 540.0) % 360.0 - 180.0
        bounds = (float(w), float(s), float(e), float(n))
        gsd_xy = ground_gsd_xy_m(ds.crs, ds.transform, ds.width / 2, ds.height / 2)
        gsd = float(np.sqrt(gsd_xy[0] * gsd_xy[1]))
    return RasterInfo(
        path=str(ds.name),
        driver=ds.driver,
        crs=ds.crs.to_string() if geo else None,
        width=ds.width,
        height=ds.height,
        count=ds.count,
        dtype=ds.dtypes[0],
        nodata=None if ds.nodata is None else float(ds.nodata),
        bounds_wgs84=bounds,
        gsd_m=gsd,
        gsd_xy_m=gsd_xy,
        overviews=list(ds.overviews(1)),
        band_names=list(ds.descriptions),
    )


def read_masked(ds, indexes, window: Window | None = None, out_shape=None, boundless=False,
                resampling=rasterio.enums.Resampling.average) -> np.ma.MaskedArray:
    """Windowed, optionally decimated read (GDAL picks overviews) with nodata and NaN masked.

    A file that breaks while being read (truncated or corrupt TIFF) becomes an RsappError.
    """
    try:
        arr = ds.read(indexes, window=window, out_shape=out_shape, boundless=boundless, masked=True,
                      resampling=resampling)
    except RasterioError as e:
        raise RsappError(f"{Path(ds.name).name} could not be read: it looks corrupt ({_first_line(e)})") from None
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.ma.masked_invalid(arr)
    return arr
