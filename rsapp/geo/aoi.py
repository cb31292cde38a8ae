"""Areas of interest: GeoJSON in EPSG:4326 (pixel coordinates for images without georeference) → scene geometry."""

from __future__ import annotations

import json
from pathlib import Path

import shapely
from pyproj import Geod
from rasterio.warp import transform_geom

from rsapp.errors import RsappError
from rsapp.geo.raster import WGS84

_GEOD = Geod(ellps="WGS84")


def parse_aoi(obj) -> shapely.Geometry:
    """A Polygon/MultiPolygon from a GeoJSON geometry, Feature or FeatureCollection (dict, JSON text or file)."""
    data = _load_json(obj)
    geoms = []
    try:
        kind = data.get("type")
        if kind == "FeatureCollection":
            geoms = [shapely.geometry.shape(f["geometry"]) for f in data["features"] if f.get("geometry")]
        elif kind == "Feature":
            geoms = [shapely.geometry.shape(data["geometry"])] if data.get("geometry") else []
        elif kind is not None:
            geoms = [shapely.geometry.shape(data)]
    except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.GEOSException) as e:
        raise RsappError(f"the AOI is not valid GeoJSON ({e})") from None
    if not geoms:
        raise RsappError("the AOI GeoJSON holds no geometry")
    polys = [g for g in geoms if g.geom_type in ("Polygon", "MultiPolygon")]
    if len(polys) != len(geoms):
        kinds = sorted({g.geom_type for g in geoms})
        raise RsappError(f"the AOI must be a polygon or rectangle, not {', '.join(kinds)}")
    geom = shapely.make_valid(shapely.union_all(polys))
    geom = shapely.union_all([g for g in getattr(geom, "geoms", [geom]) if g.geom_type in ("Polygon", "MultiPolygon")])
    if geom.is_empty or geom.area == 0:
        raise RsappError("the AOI has no area")
    return geom


def _load_json(obj) -> dict:
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, Path) or (isinstance(obj, str) and not obj.lstrip().startswith(("{", "["))):
        p = Path(obj)
        if not p.exists():
            raise RsappError(f"AOI file not found: {p}")
        text = p.read_text(errors="replace")
    else:
        text = str(obj)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RsappError(f"the AOI is not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise RsappError("the AOI must be a GeoJSON object")
    return data


def check_lonlat(geom: shapely.Geometry) -> None:
    """GeoJSON AOIs for georeferenced scenes are lon/lat (RFC 7946); catch projected or swapped numbers early."""
    x0, y0, x1, y1 = geom.bounds
    if x0 < -180 or x1 > 180 or y0 < -90 or y1 > 90:
        raise RsappError(
            f"the AOI coordinates ({x0:.4g}, {y0:.4g}, {x1:.4g}, {y1:.4g}) are not longitude/latitude (EPSG:4326)"
        )


def aoi_to_scene(geom: shapely.Geometry, scene) -> shapely.Geometry:
    """AOI into the scene's CRS; for a scene with no georeference the AOI is already in pixel (col, row) space."""
    if not scene.georeferenced:
        return geom
    check_lonlat(geom)
    return shapely.geometry.shape(transform_geom(WGS84, scene.crs, shapely.geometry.mapping(geom)))


def area_m2(geom_wgs84: shapely.Geometry) -> float:
    """Geodesic area on WGS84 of a lon/lat geometry."""
    area, _ = _GEOD.geometry_area_perimeter(geom_wgs84)
    return abs(float(area))
