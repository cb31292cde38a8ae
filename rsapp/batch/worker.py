"""One tile through the analyst. The model is loaded once per process (a Dask worker, or this one) and kept:
tasks carry only the tile and the prompt, never the model."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import shapely
import shapely.affinity
from rasterio.windows import Window

from rsapp.batch.tiles import Tile
from rsapp.errors import RsappError

_ANALYSTS: dict[str, object] = {}
_SCENES: dict[tuple[str, float], object] = {}  # open scenes of this process (a scene's stretch is computed once)


@dataclass(frozen=True)
class Job:
    tile: Tile
    prompt: str
    weights: str
    aoi_wkt: str | None = None  # EPSG:4326 (pixel space for unreferenced images)
    torch_threads: int = 0  # 0: torch's default


@dataclass
class TileResult:
    key: str
    path: str
    text: str
    crs_wkt: str | None
    tile_wkb: str  # the tile's footprint in the scene CRS (pixel space for unreferenced images), WKB hex
    # (label, kind, score, WKB hex in the scene CRS) per feature of the tile's answer
    features: list[tuple[str, str, float | None, str]] = field(default_factory=list)
    note: str = ""  # why the tile has no answer (no valid pixels, ...), or what to doubt in it (answer warnings)
    gsd_m: float | None = None
    task: str = ""  # the task token the prompt was routed to

    def to_json(self) -> dict:
        return {"key": self.key, "path": self.path, "text": self.text, "crs_wkt": self.crs_wkt,
                "tile_wkb": self.tile_wkb, "features": self.features, "note": self.note, "gsd_m": self.gsd_m,
                "task": self.task}

    @classmethod
    def from_json(cls, d: dict) -> "TileResult":
        return cls(d["key"], d["path"], d["text"], d["crs_wkt"], d["tile_wkb"], [tuple(f) for f in d["features"]],
                   d["note"], d.get("gsd_m"), d.get("task", ""))


def analyst_for(weights: str, torch_threads: int = 0):
    """This process's analyst for these weights, loaded on first use."""
    if weights not in _ANALYSTS:
        import torch

        from rsapp.analyst import Analyst

        if torch_threads:
            torch.set_num_threads(torch_threads)
        _keep_freed_memory()
        analyst = Analyst(weights)
        analyst.runtime  # load now, once
        _ANALYSTS[weights] = analyst
    return _ANALYSTS[weights]


def _keep_freed_memory() -> None:
    """Let glibc keep freed memory for the next tile. Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_
    set, which also fixes glibc's mmap threshold at 128 KiB: every tensor of a tile is then a fresh mmap, zeroed
    by the kernel, and a tile takes twice as long (most of it in system time)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD: blocks below 256 MiB come from the heap
        libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD: keep up to 512 MiB free at the heap's top
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def use_analyst(weights: str, analyst) -> None:
    """Run this process's tiles with an analyst already loaded (the app's), instead of loading another."""
    _ANALYSTS[weights] = analyst


def scene_for(path: str):
    """This process's open scene for a file (reopened if the file changed): its display stretch, computed from
    the whole scene, is then computed once, and every tile of the scene is stretched the same way."""
    from rsapp.geo import Scene

    key = (path, os.stat(path).st_mtime)
    if key not in _SCENES:
        _SCENES[key] = Scene(path)
    return _SCENES[key]


def run_tile(job: Job) -> TileResult:
    from rsapp.export import answer_frame

    t = job.tile
    analyst = analyst_for(job.weights, job.torch_threads)
    scene = scene_for(t.path)
    crs_wkt = scene.crs.to_wkt() if scene.crs else None
    to_map = scene.transform.to_shapely()
    pixels_to_map = lambda c0, r0, c1, r1: shapely.affinity.affine_transform(shapely.box(c0, r0, c1, r1), to_map)  # noqa: E731
    where = shapely.to_wkb(pixels_to_map(t.col, t.row, t.col + t.width, t.row + t.height), hex=True)
    try:
        answer = analyst.ask([scene], job.prompt, aoi=shapely.from_wkt(job.aoi_wkt) if job.aoi_wkt else None,
                             window=Window(t.col, t.row, t.width, t.height), turns=False)
    except RsappError as e:  # a tile of no data, or outside the AOI: recorded, not fatal
        return TileResult(t.key, t.path, "", crs_wkt, where, note=str(e))
    core = pixels_to_map(*t.core)
    features = []
    for row in answer_frame(answer).itertuples():
        if row.kind == "box":  # a box belongs to the tile whose core holds its centre
            geom = row.geometry if core.contains(row.geometry.centroid) else None
        else:  # a region keeps its part inside the core; the cores' union joins it again across seams
            geom = polygons_of(shapely.intersection(row.geometry, core))
        if geom is not None and not geom.is_empty and geom.area > 0:
            score = None if row.score is None or row.score != row.score else float(row.score)
            features.append((row.label, row.kind, score, shapely.to_wkb(geom, hex=True)))
    return TileResult(t.key, t.path, answer.text, crs_wkt, where, features, gsd_m=answer.gsd_m, task=answer.task,
                      note="; ".join(answer.warnings))  # e.g. a class asked far coarser than the model learned it


def polygons_of(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygonal part of a clipped shape (a clip along a shared edge also yields lines and points)."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon") and p.area > 0]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def worker_threads(workers: int) -> int:
    """torch threads per worker process so that the workers together use the machine's cores once."""
    return max(1, (os.cpu_count() or 1) // max(workers, 1))
