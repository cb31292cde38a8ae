"""Answer layers → GeoJSON (RFC 7946), GeoPackage (scene CRS), GeoTIFF masks (chip grid)."""

from rsapp.export.rasters import write_mask_geotiff
from rsapp.export.vectors import answer_frame, frames_to_geojson, write_geojson, write_geopackage

__all__ = ["answer_frame", "frames_to_geojson", "write_geojson", "write_geopackage", "write_mask_geotiff"]
