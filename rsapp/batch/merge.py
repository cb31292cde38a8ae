"""Tile answers → one layer per class: mask polygons unioned across seams (an object cut by a seam comes out
whole), boxes de-duplicated in map coordinates (NMS), counts and geodesic areas; and the table of tiles."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from pyproj import CRS

from rsapp.batch.tiles import Tile
from rsapp.batch.worker import TileResult
from rsapp.geo.aoi import area_m2
from rsapp.tasks.vocabulary import grounding_selection

NMS_IOU = 0.5
# A region smaller than one cell of the model's pixel maps (stride 4: 4 × 4 px) is resampling speckle, not an
# object: it is not counted.
MIN_OBJECT_PX = 16
# Pieces of one region that the mask left a pixel apart (a crumb at a pond's edge, a 1-px crack) are joined: the
# union is closed by this many pixels (grown, then shrunk back with square corners, so pixel edges stay straight).
CLOSE_PX = 1


def nms(boxes: list[tuple[shapely.Geometry, float | None]], iou: float = NMS_IOU) -> list:
    """Boxes (polygon, score) with the lower-scored of any pair overlapping more than `iou` dropped."""
    kept: list[tuple[shapely.Geometry, float | None]] = []
    for geom, score in sorted(boxes, key=lambda b: -(b[1] or 0.0)):
        if all(shapely.intersection(geom, g).area <= iou * shapely.union(geom, g).area for g, _ in kept):
            kept.append((geom, score))
    return kept


# A [VG] phrase's pick ("the largest building") over a whole scene: each tile picked its own, and the merge picks
# again among them in map coordinates (y grows north in a CRS, south in pixel space). A pick by distance ("the tree
# nearest the road") stays one per tile: the tiles' distances are not kept.
SCENE_PICKS = {
    "largest": lambda b, north_up: (b[2] - b[0]) * (b[3] - b[1]),
    "smallest": lambda b, north_up: -(b[2] - b[0]) * (b[3] - b[1]),
    "leftmost": lambda b, north_up: -(b[0] + b[2]), "rightmost": lambda b, north_up: b[0] + b[2],
    "topmost": lambda b, north_up: (b[1] + b[3]) * (1 if north_up else -1),
    "bottommost": lambda b, north_up: (b[1] + b[3]) * (-1 if north_up else 1),
}


def pick_again(boxes: list[tuple[shapely.Geometry, float | None]], select: str, north_up: bool) -> list:
    """The one box of a scene's tile picks that the selection asks for (SCENE_PICKS); all of them for any other."""
    if select not in SCENE_PICKS or not boxes:
        return boxes
    return [max(boxes, key=lambda b: SCENE_PICKS[select](b[0].bounds, north_up))]


def closed_union(geoms: list[shapely.Geometry], gap: float) -> shapely.Geometry:
    """The union of mask polygons with gaps up to 2 × gap closed (morphological closing, square corners)."""
    grown = shapely.union_all([shapely.buffer(g, gap, join_style="mitre") for g in geoms])
    return shapely.buffer(grown, -gap, join_style="mitre")


def merge(results: list[TileResult], tiles: list[Tile], prompt: str) -> tuple[dict[str, gpd.GeoDataFrame],
                                                                            gpd.GeoDataFrame]:
    """({layer name: features}, tile table), in the scenes' CRS when they share one, else EPSG:4326."""
    out_crs = _output_crs({r.crs_wkt for r in results})
    tile_px = {t.key: t.width * t.height for t in tiles}
    by_scene: dict[str, list[TileResult]] = defaultdict(list)
    for r in results:
        by_scene[r.path].append(r)
    layers: dict[str, list[gpd.GeoDataFrame]] = defaultdict(list)
    select = grounding_selection(prompt)  # a pick such as "the largest building": made again over each scene
    for path, rs in by_scene.items():
        crs = CRS.from_wkt(rs[0].crs_wkt) if rs[0].crs_wkt else None
        pixel = shapely.from_wkb(rs[0].tile_wkb).area / tile_px[rs[0].key]  # one pixel's area in map units
        task = next((r.task for r in rs if r.task), "")
        groups: dict[tuple[str, str], list] = defaultdict(list)
        for r in rs:
            for label, kind, score, wkb in r.features:
                groups[(label, kind)].append((shapely.from_wkb(wkb), score))
        for (label, kind), items in groups.items():
            if kind == "box":
                kept = pick_again(nms(items), select, north_up=crs is not None)
                geoms, scores = [g for g, _ in kept], [s for _, s in kept]
            else:
                geoms = [g for g in shapely.get_parts(closed_union([g for g, _ in items], CLOSE_PX * pixel ** 0.5))
                         if g.geom_type == "Polygon" and g.area >= MIN_OBJECT_PX * pixel]
                scores = [None] * len(geoms)
            frame = gpd.GeoDataFrame({"task": task, "label": label, "kind": kind, "score": scores,
                                      "scene": Path(path).name, "prompt": prompt}, geometry=geoms, crs=crs)
            layers[label if kind != "box" else f"{label} boxes"].append(frame)
    merged = {}
    for name, frames in layers.items():
        gdf = _concat(frames, out_crs)
        gdf["area_m2"] = [area_m2(g) for g in gdf.to_crs(4326).geometry] if out_crs is not None else None
        merged[name] = gdf
    return merged, tile_table(results, tiles, out_crs, prompt)


def _output_crs(crss: set[str | None]) -> CRS | None:
    """The scenes' shared CRS; EPSG:4326 when they differ; None for pixel space (unreferenced images)."""
    if None in crss:
        return None
    return CRS.from_wkt(next(iter(crss))) if len(crss) == 1 else CRS.from_epsg(4326)


def _concat(frames: list[gpd.GeoDataFrame], crs) -> gpd.GeoDataFrame:
    """Frames of possibly different CRSs as one frame in `crs`."""
    return gpd.GeoDataFrame(pd.concat([f.to_crs(crs) if crs is not None else f for f in frames],
                                      ignore_index=True), geometry="geometry", crs=crs)


def tile_table(results: list[TileResult], tiles: list[Tile], out_crs, prompt: str) -> gpd.GeoDataFrame:
    """One row per finished tile, in plan order: where it is, what the model answered there, how many features."""
    by_key = {r.key: r for r in results}
    frames = []
    for t in tiles:
        r = by_key.get(t.key)
        if r is None:
            continue
        row = {"task": r.task, "label": "tile", "kind": "tile", "scene": Path(t.path).name, "col": t.col, "row": t.row,
               "width": t.width, "height": t.height, "text": r.text, "n_features": len(r.features),
               "note": r.note, "prompt": prompt}
        frame = gpd.GeoDataFrame([row], geometry=[shapely.from_wkb(r.tile_wkb)],
                                 crs=CRS.from_wkt(r.crs_wkt) if r.crs_wkt else None)
        frames.append(frame)
    return _concat(frames, out_crs) if frames else gpd.GeoDataFrame(geometry=[], crs=out_crs)


def totals(layers: dict[str, gpd.GeoDataFrame]) -> dict[str, dict]:
    """Per layer: how many features, and their geodesic area in m² (None in pixel space)."""
    out = {}
    for name, gdf in layers.items():
        area = gdf["area_m2"]
        out[name] = {"count": int(len(gdf)),
                     "area_m2": None if area.isna().all() else round(float(area.sum()), 1)}
    return out
