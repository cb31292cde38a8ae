"""Geospatial core: rasters in (windowed), GSD, AOIs, chips, two-date alignment. Knows nothing about the model."""

from rsapp.geo.aoi import area_m2, parse_aoi
from rsapp.geo.chips import Chip, make_chip, make_pair
from rsapp.geo.raster import RasterInfo, ground_gsd_m
from rsapp.geo.scene import Scene

__all__ = ["Chip", "RasterInfo", "Scene", "area_m2", "ground_gsd_m", "make_chip", "make_pair", "parse_aoi"]
