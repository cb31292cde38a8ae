"""Answer layers → vector features: boxes and masks to polygons in the scene CRS, then RFC 7946 GeoJSON or GeoPackage."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
import shapely.affinity
from affine import Affine
from rasterio.features import shapes

from rsapp.answer import Answer
from rsapp.geo.aoi import area_m2

# Mask outlines are staircases of chip pixels; simplifying by a quarter pixel removes collinear vertices
# without moving any edge by more than that.
SIMPLIFY_PX = 0.25
PIXEL_SPACE_NOTE = "pixel coordinates (column, row): this image has no georeference, so no geographic coordinates"


def box_polygons(boxes_px, transform: Affine) -> list[shapely.Polygon]:
    """Chip-pixel boxes (x1, y1, x2, y2) → polygons in the scene CRS."""
    polys = []
    for x1, y1, x2, y2 in boxes_px:
        corners = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
        polys.append(shapely.Polygon([transform @ c for c in corners]))
    return polys


def mask_polygons(mask: np.ndarray, transform: Affine, labels: list[str]) -> list[tuple[str, shapely.Geometry]]:
    """Labelled raster (0 = background) → one valid polygon per connected region, in the scene CRS."""
    tolerance = SIMPLIFY_PX * float(np.hypot(transform.a, transform.d))
    out = []
    m = np.ascontiguousarray(mask.astype(np.uint8))
    for geom, value in shapes(m, mask=m > 0, transform=transform, connectivity=4):
        poly = shapely.make_valid(shapely.geometry.shape(geom).simplify(tolerance, preserve_topology=True))
        if poly.is_empty or poly.area == 0:
            continue
        label = labels[int(value)] if int(value) < len(labels) else f"class_{int(value)}"
        out.append((label, poly))
    return out


def answer_frame(answer: Answer) -> gpd.GeoDataFrame:
    """All of an answer's geometries with DESIGN.md's properties, in the scene CRS (None for pixel space)."""
    rows, geoms = [], []
    common = {
        "task": answer.task,
        "prompt": answer.prompt,
        "model": answer.model,
        "gsd_m": answer.gsd_m,
        "gsd_source": answer.gsd_source,
        "source": ", ".join(answer.sources),
        "created": answer.created,
    }
    for i, poly in enumerate(box_polygons(answer.boxes_px, answer.transform)):
        label = answer.box_labels[i] if i < len(answer.box_labels) else answer.prompt
        score = answer.box_scores[i] if i < len(answer.box_scores) else None
        rows.append({"label": label, "score": score, "kind": "box", **common})
        geoms.append(poly)
    if answer.mask is not None:
        kind = "change" if answer.is_change else "mask"
        for label, poly in mask_polygons(answer.mask, answer.transform, answer.mask_labels):
            rows.append({"label": label, "score": None, "kind": kind, **common})
            geoms.append(poly)
    columns = ["task", "label", "score", "kind", "prompt", "model", "gsd_m", "gsd_source", "source", "created"]
    return gpd.GeoDataFrame(rows, columns=columns, geometry=geoms, crs=answer.crs)


WORLD = shapely.box(-180.0, -90.0, 180.0, 90.0)


def split_antimeridian(geom: shapely.Geometry) -> shapely.Geometry:
    """RFC 7946 §3.1.9: a shape across the antimeridian is cut at the line, each part within −180…180. A
    reprojection gives such a shape either with longitudes past ±180, or wrapped (its vertices jump from +179 to
    −179, so it spans more than half the globe): the wrapped one is first made continuous."""
    x0, _, x1, _ = geom.bounds
    if x1 - x0 > 180.0:
        geom = shapely.transform(geom, lambda xy: np.column_stack([np.where(xy[:, 0] < 0, xy[:, 0] + 360.0, xy[:, 0]),
                                                                    xy[:, 1]]))
        x0, _, x1, _ = geom.bounds
    if x0 >= -180.0 and x1 <= 180.0:
        return geom
    parts = [shapely.intersection(shapely.affinity.translate(geom, xoff=shift), WORLD) for shift in (-360.0, 0.0, 360.0)]
    return shapely.union_all([p for p in parts if not p.is_empty])


def frames_to_geojson(frames: list[gpd.GeoDataFrame]) -> dict:
    """RFC 7946 FeatureCollection: EPSG:4326 lon/lat, valid right-hand polygons, geodesic area_m2.

    Frames in pixel space (crs None) are written in pixel coordinates and the collection says so.
    """
    frames = [f for f in frames if len(f)]
    if not frames:
        return {"type": "FeatureCollection", "features": []}
    georeferenced = all(f.crs is not None for f in frames)
    if georeferenced:
        gdf = gpd.GeoDataFrame(
            [row for f in frames for row in f.to_crs(4326).to_dict("records")], geometry="geometry", crs=4326)
        gdf["area_m2"] = [area_m2(g) for g in gdf.geometry]  # before the split: one shape, one area
        valid = shapely.make_valid(np.array([split_antimeridian(g) for g in gdf.geometry.values], dtype=object))
        gdf["geometry"] = shapely.orient_polygons(valid, exterior_cw=False)
    else:
        gdf = gpd.GeoDataFrame([row for f in frames for row in f.to_dict("records")], geometry="geometry")
        gdf["area_px"] = gdf.geometry.area
    fc = json.loads(gdf.to_json(drop_id=True, na="null"))
    if not georeferenced:
        fc["coordinate_space"] = PIXEL_SPACE_NOTE
    return fc


def write_geojson(path: str | Path, frames: list[gpd.GeoDataFrame]) -> Path:
    path = Path(path)
    path.write_text(json.dumps(frames_to_geojson(frames)))
    return path


def write_geopackage(path: str | Path, frames: list[gpd.GeoDataFrame], layer: str = "rsapp") -> Path:
    """GeoPackage in the scene CRS (the first frame's), readable by QGIS as it is."""
    path = Path(path)
    frames = [f for f in frames if len(f)]
    if not frames:
        raise ValueError("nothing to export")
    crs = frames[0].crs
    gdf = gpd.GeoDataFrame(
        [row for f in frames for row in (f.to_crs(crs) if crs is not None else f).to_dict("records")],
        geometry="geometry", crs=crs)
    gdf.to_file(path, layer=layer, driver="GPKG", engine="pyogrio")
    return path
