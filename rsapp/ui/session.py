"""One browser session's state: the scene(s), the AOI, the answer layers, and their exports on disk.

Rasters are reopened per request (cheap, and a rasterio dataset is not shared across threads); the map
overlay of a file is cached by path and modification time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import shapely

from rsapp.answer import Answer
from rsapp.errors import RsappError
from rsapp.export import answer_frame, frames_to_geojson, write_geojson, write_geopackage, write_mask_geotiff
from rsapp.geo import Scene, area_m2, parse_aoi
from rsapp.geo.aoi import aoi_to_scene
from rsapp.geo.chips import aoi_window
from rsapp.geo.display import png_data_url, web_overlay

MAX_UPLOAD_MB = int(os.environ.get("RSAPP_MAX_UPLOAD_MB", "1024"))
# Exports are written under one root that the server is allowed to serve, one folder per session; a session's
# folder goes when the session ends, and folders older than STALE_HOURS go when the app starts.
EXPORT_ROOT = Path(tempfile.gettempdir()) / "rsapp-sessions"
STALE_HOURS = 24
# Answer layers one session keeps (each holds its mask or boxes in memory).
MAX_LAYERS = 20


@lru_cache(maxsize=16)
def _overlay(path: str, mtime: float) -> tuple[str, list[list[float]]]:
    with Scene(path) as scene:
        rgba, bounds = web_overlay(scene)
    return png_data_url(rgba), bounds


def overlay_for(path: str) -> tuple[str, list[list[float]]]:
    return _overlay(path, Path(path).stat().st_mtime)


@dataclass
class Layer:
    name: str
    answer: Answer | None  # None for a layer merged from a whole-scene run
    features: object = None  # a GeoDataFrame given directly (whole-scene runs)

    @cached_property
    def frame(self):
        """The layer's features, vectorised once for both the map and the exports."""
        return self.features if self.features is not None else answer_frame(self.answer)

    def geojson(self, pixel_space: bool) -> dict:
        fc = frames_to_geojson([self.frame])
        return to_leaflet_simple(fc) if pixel_space else fc


@dataclass
class Session:
    paths: list[str] = field(default_factory=list)
    aoi: dict | None = None  # GeoJSON geometry as drawn (lon/lat; Leaflet CRS.Simple for unreferenced images)
    layers: list[Layer] = field(default_factory=list)
    georeferenced: bool = True
    key: str = ""  # the browser session's id (Gradio's session hash); names the export folder
    workdir: str = ""

    def __post_init__(self):
        if not self.workdir:
            self.workdir = str(workdir_for(self.key) if self.key else Path(_new_workdir()))

    def close(self) -> None:
        """The session ended: its export folder goes."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- scenes ------------------------------------------------------------------------------------------------
    def open(self) -> list[Scene]:
        return [Scene(p) for p in self.paths]

    def load(self, paths: list[str], uploaded: tuple[str, ...] = ()) -> str:
        """Replace the scene(s); returns a one-line description. Raises RsappError and changes nothing if bad.
        The upload limit applies to the files in `uploaded` (not to the bundled samples)."""
        for p in uploaded:
            size_mb = Path(p).stat().st_size / 1e6 if Path(p).exists() else 0
            if size_mb > MAX_UPLOAD_MB:
                raise RsappError(f"{Path(p).name} is {size_mb:.0f} MB, over the {MAX_UPLOAD_MB} MB limit")
        scenes = [Scene(p) for p in paths]
        try:
            if len(scenes) == 2:
                from rsapp.geo import make_pair

                make_pair(scenes[0], scenes[1], None, 64)  # overlap and alignment are checked up front
            desc = [describe_scene(s) for s in scenes]
            geo = scenes[0].georeferenced
        finally:
            for s in scenes:
                s.close()
        if not self.paths or self.paths[0] != paths[0]:
            self.layers = []  # answers about another scene; a second date keeps the first date's layers
            self.aoi = None
        self.paths, self.georeferenced = list(paths), geo
        return " | ".join(desc)

    # --- AOI ---------------------------------------------------------------------------------------------------
    def aoi_for_model(self):
        """The AOI as the analyst wants it: lon/lat, or pixel (col, row) for unreferenced images."""
        if not self.aoi:
            return None
        geom = parse_aoi(self.aoi)
        if not self.georeferenced:
            geom = shapely.transform(geom, lambda xy: xy * [1, -1])
        return geom

    def set_aoi(self, text: str) -> str:
        text = (text or "").strip()
        if not text:
            self.aoi = None
            return "AOI cleared: the whole scene is used."
        geom = parse_aoi(text)
        scenes = self.open()
        try:  # refused now, with the reason, rather than at Send
            aoi_window(scenes[0], aoi_to_scene(geom, scenes[0]))
        finally:
            for scene in scenes:
                scene.close()
        data = json.loads(text)
        self.aoi = data.get("geometry", data) if data.get("type") == "Feature" else shapely.geometry.mapping(geom)
        if self.georeferenced:
            return f"AOI: {area_m2(geom) / 1e6:.3g} km²"
        return f"AOI: {geom.area:.0f} px² (this image has no georeference)"

    # --- layers and exports ------------------------------------------------------------------------------------
    def add(self, answer: Answer) -> Layer | None:
        """The answer's boxes or mask as a new layer; None when it has none. RsappError when the session already
        keeps MAX_LAYERS (the answer itself stays in the chat)."""
        if not (answer.n_boxes or answer.n_mask_pixels):
            return None
        base = f"{answer.task} {answer.prompt.split(']', 1)[-1].strip() or answer.task}"
        return self._append(Layer(self._free_name(base), answer))

    def add_features(self, base: str, frame) -> Layer | None:
        """Features merged elsewhere (a whole-scene run) as a new layer; None when there are none."""
        if not len(frame):
            return None
        return self._append(Layer(self._free_name(base), None, frame))

    def _free_name(self, base: str) -> str:
        base = base[:60]
        names = {layer.name for layer in self.layers}
        name, k = base, 2
        while name in names:
            name, k = f"{base} ({k})", k + 1
        return name

    def _append(self, layer: Layer) -> Layer:
        if len(self.layers) >= MAX_LAYERS:
            raise RsappError(f"the map keeps at most {MAX_LAYERS} layers: this answer's layer was not added "
                             "(remove a layer, or export them, to make room)")
        self.layers.append(layer)
        return layer

    def remove(self, name: str) -> bool:
        before = len(self.layers)
        self.layers = [layer for layer in self.layers if layer.name != name]
        return len(self.layers) < before

    def export(self) -> dict[str, str | None]:
        """All layers as GeoJSON and GeoPackage, the latest mask as GeoTIFF; paths or None."""
        out: dict[str, str | None] = {"geojson": None, "gpkg": None, "mask_tif": None}
        frames = [layer.frame for layer in self.layers if len(layer.frame)]
        if not frames:
            return out
        d = Path(self.workdir)
        d.mkdir(parents=True, exist_ok=True)
        out["geojson"] = str(write_geojson(d / "rsapp_layers.geojson", frames))
        crs_set = {str(f.crs) for f in frames}
        if len(crs_set) == 1:
            out["gpkg"] = str(write_geopackage(d / "rsapp_layers.gpkg", frames))
        masks = [layer.answer for layer in self.layers if layer.answer is not None and layer.answer.mask is not None]
        if masks:
            name = "rsapp_change_mask.tif" if masks[-1].is_change else "rsapp_mask.tif"
            out["mask_tif"] = str(write_mask_geotiff(d / name, masks[-1]))
        return out


def _new_workdir() -> str:
    EXPORT_ROOT.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix="s-", dir=EXPORT_ROOT)


def workdir_for(key: str) -> Path:
    """The export folder of a browser session (its id reduced to safe characters)."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "", key)[:64] or "anonymous"
    return EXPORT_ROOT / f"s-{safe}"


def remove_stale_workdirs(max_age_hours: float = STALE_HOURS) -> int:
    """Export folders older than max_age_hours (left by sessions that never ended cleanly); how many went."""
    if not EXPORT_ROOT.is_dir():
        return 0
    cutoff = time.time() - max_age_hours * 3600
    gone = 0
    for d in EXPORT_ROOT.glob("s-*"):
        if d.is_dir() and d.stat().st_mtime < cutoff:
            shutil.rmtree(d, ignore_errors=True)
            gone += 1
    return gone


def describe_scene(scene: Scene) -> str:
    i = scene.info
    gsd = f"{i.gsd_m:.3g} m GSD" if i.gsd_m else "no georeference (pixel space)"
    return f"{scene.name}: {i.width}×{i.height} px, {i.count} band(s) {i.dtype}, {i.crs or 'no CRS'}, {gsd}"


def to_leaflet_simple(fc: dict) -> dict:
    """Pixel-space GeoJSON (col, row) → Leaflet CRS.Simple (x = col, y = -row)."""
    out = json.loads(json.dumps(fc))
    for f in out["features"]:
        geom = shapely.geometry.shape(f["geometry"])
        f["geometry"] = shapely.geometry.mapping(shapely.transform(geom, lambda xy: xy * [1, -1]))
    return out
