"""A Scene is one opened raster with its display bands and stretch: the unit the analyst, the map and the CLI share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely
from rasterio.enums import ColorInterp
from rasterio.warp import transform_geom

from rsapp.geo.bands import Stretch, pick_rgb_bands
from rsapp.geo.raster import WGS84, RasterInfo, describe, is_georeferenced, open_dataset, read_masked

# Statistics for the stretch come from a decimated read of at most this many pixels a side (overviews help).
STATS_MAX_SIDE_PX = 1024


def display_ready(ds) -> bool:
    """8-bit true-colour photos (PNG/JPEG, RGB-tagged TIFFs; an open rasterio dataset) are shown as they are, not
    re-stretched."""
    if ds.dtypes[0] != "uint8":
        return False
    ci = list(ds.colorinterp)
    return ds.driver in ("PNG", "JPEG") or (ColorInterp.red in ci and ColorInterp.blue in ci)


class Scene:
    """An open raster. Use as a context manager or call close(); reads are always windowed or decimated."""

    def __init__(self, path: str | Path, bands: tuple[int, int, int] | None = None):
        self.path = Path(path)
        self.ds = open_dataset(self.path)
        try:
            self.info: RasterInfo = describe(self.ds)
            self.rgb_bands = tuple(bands) if bands else pick_rgb_bands(self.ds)
            if any(not 1 <= b <= self.ds.count for b in self.rgb_bands):
                raise ValueError(f"bands {self.rgb_bands} are not in 1..{self.ds.count}")
            # Reading a decimated sample now also proves the file is readable end to end (catches corrupt TIFFs).
            self.stretch = self._compute_stretch()
        except Exception:
            self.ds.close()
            raise

    # --- identity -------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def georeferenced(self) -> bool:
        return is_georeferenced(self.ds.crs, self.ds.transform)

    @property
    def crs(self):
        return self.ds.crs if self.georeferenced else None

    @property
    def transform(self):
        return self.ds.transform

    @property
    def width(self) -> int:
        return self.ds.width

    @property
    def height(self) -> int:
        return self.ds.height

    # --- reading --------------------------------------------------------------------------------------------
    def decimated_shape(self, max_side_px: int) -> tuple[int, int]:
        scale = min(1.0, max_side_px / max(self.width, self.height))
        return max(1, round(self.height * scale)), max(1, round(self.width * scale))

    def _compute_stretch(self) -> Stretch:
        if display_ready(self.ds):  # shown as it is: no sample to read
            return Stretch.identity_uint8(3)
        h, w = self.decimated_shape(STATS_MAX_SIDE_PX)
        return Stretch.from_sample(read_masked(self.ds, list(self.rgb_bands), out_shape=(3, h, w)))

    def overview_rgb(self, max_side_px: int) -> tuple[np.ndarray, np.ndarray]:
        """The whole scene, decimated to max_side_px, as ((h, w, 3) uint8, (h, w) valid)."""
        h, w = self.decimated_shape(max_side_px)
        return self.stretch.apply(read_masked(self.ds, list(self.rgb_bands), out_shape=(3, h, w)))

    # --- geometry -------------------------------------------------------------------------------------------
    def footprint(self) -> shapely.Polygon:
        """The image outline in the scene CRS (pixel coordinates when not georeferenced)."""
        return shapely.box(*self.ds.bounds) if self.georeferenced else shapely.box(0, 0, self.width, self.height)

    def footprint_in(self, crs) -> shapely.Geometry:
        """The image outline, densified so it stays true after reprojection, in another CRS."""
        box = self.footprint()
        x0, y0, x1, y1 = box.bounds
        densified = shapely.segmentize(box, max_segment_length=max(x1 - x0, y1 - y0) / 16)
        return shapely.geometry.shape(transform_geom(self.crs, crs, shapely.geometry.mapping(densified)))

    def footprint_wgs84(self) -> shapely.Geometry | None:
        return self.footprint_in(WGS84) if self.georeferenced else None

    # --- lifetime -------------------------------------------------------------------------------------------
    def close(self) -> None:
        self.ds.close()

    def __enter__(self) -> "Scene":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Scene({self.name!r}, {self.width}×{self.height}, crs={self.info.crs}, gsd_m={self.info.gsd_m})"
