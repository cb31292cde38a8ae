"""One browser session's state: the scene(s) and their tile ids, the AOI, the answer layers, and the exports
(written only when the user asks for a download).

Rasters are reopened per request (cheap, and a rasterio dataset is not shared across threads). The session and
its scenes are shared with the map's routes under unguessable ids (rsapp.ui.registry), revoked when it ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import shapely

from rsapp.answer import Answer
from rsapp.errors import RsappError
from rsapp.export import answer_frame, frames_to_geojson, write_geojson, write_geopackage, write_mask_geotiff
from rsapp.geo import Scene, area_m2, parse_aoi
from rsapp.geo.aoi import aoi_to_scene
from rsapp.geo.chips import aoi_window
from rsapp.geo.tiles import TileSource, build_overviews, needs_overviews
from rsapp.model.counting import MIN_INSTANCE_M2
from rsapp.ui import registry
from rsapp.ui.mapview import CLASS_COLOURS, LAYER_COLOURS, render_map
from rsapp.ui.routes import tile_url

MAX_UPLOAD_MB = int(os.environ.get("RSAPP_MAX_UPLOAD_MB", "1024"))
# Exports are written under one root that the server is allowed to serve, one folder per session; a session's
# folder goes when the session ends, and folders older than STALE_HOURS go when the app starts.
EXPORT_ROOT = Path(tempfile.gettempdir()) / "rsapp-sessions"
STALE_HOURS = 24
# Answer layers one session keeps (each holds its mask or boxes in memory).
MAX_LAYERS = 20


EXPORT_FILES = ("rsapp_layers.geojson", "rsapp_layers.gpkg", "rsapp_mask.tif")
# Labels counted as regions, not as things ("3 water regions", but "23 buildings").
MASS_LABELS = {"water", "vegetation", "change", "bare land", "bare", "others", "grass", "cropland", "forest", "land",
               "sea", "snow", "cloud"}


@dataclass
class Layer:
    name: str
    answer: Answer | None  # None for a layer merged from a whole-scene run
    features: object = None  # a GeoDataFrame given directly (whole-scene runs)
    uid: int = 0  # the map's id of the layer (names can come back after a removal)

    @cached_property
    def frame(self):
        """The layer's features, vectorised once for both the map and the exports."""
        return self.features if self.features is not None else answer_frame(self.answer)

    @cached_property
    def collection(self) -> dict:
        """RFC 7946, with each feature's geodesic area_m2."""
        return frames_to_geojson([self.frame])

    def geojson(self, pixel_space: bool) -> dict:
        return to_leaflet_simple(self.collection) if pixel_space else self.collection

    @cached_property
    def class_colours(self) -> dict[str, str]:
        """Each class's colour when the layer draws several classes (one answer's all-classes map), else {}; found
        once, not at every map sync."""
        labels = {f["properties"].get("label") for f in self.collection["features"]}
        return {name: CLASS_COLOURS[name] for name in sorted(labels & CLASS_COLOURS.keys())} if len(labels) > 1 else {}

    def summary(self) -> str:
        """Counts per label and the geodesic area: "23 buildings, 4,310 m² (0.43 ha)"; a label the model counted
        by instance is its count, not its polygons'."""
        return totals_text(self.collection["features"], self.answer.counts if self.answer is not None else None)


@dataclass
class Session:
    paths: list[str] = field(default_factory=list)
    aoi: dict | None = None  # GeoJSON geometry as drawn (lon/lat; Leaflet CRS.Simple for unreferenced images)
    layers: list[Layer] = field(default_factory=list)
    georeferenced: bool = True
    key: str = ""  # the browser session's id (Gradio's session hash); names the export folder
    workdir: str = ""
    id: str = ""  # the id the map's routes know this session by (unguessable)
    client: str | None = None  # the browser's rsapp_client cookie: the routes answer only that browser
    scene_ids: list[str] = field(default_factory=list)  # tile ids of the loaded scene(s), first date first
    sources: list[TileSource] = field(default_factory=list)
    _next_uid: int = 1
    _page: tuple[str, str] | None = None  # (page id, HTML) of the map page last served
    _loading: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self):
        if not self.workdir:
            self.workdir = str(workdir_for(self.key) if self.key else Path(_new_workdir()))
        self.id = self.id or registry.new_id()
        registry.share_session(self.id, self)

    def close(self) -> None:
        """The session ended: its tile and export ids stop working, its export folder goes."""
        registry.revoke(self.id, keep_session=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- scenes ------------------------------------------------------------------------------------------------
    def open(self) -> list[Scene]:
        return [Scene(p) for p in self.paths]

    def load(self, paths: list[str], uploaded: tuple[str, ...] = (), progress=None) -> str:
        """Replace the scene(s); returns a one-line description. Raises RsappError and changes nothing if bad.
        The upload limit applies to the files in `uploaded` (not to the bundled samples), and an upload large
        enough to need overviews gets them (FILE.ovr) before anything reads it; progress(fraction, desc) hears
        of it."""
        for p in uploaded:
            size_mb = Path(p).stat().st_size / 1e6 if Path(p).exists() else 0
            if size_mb > MAX_UPLOAD_MB:
                raise RsappError(f"{Path(p).name} is {size_mb:.0f} MB, over the {MAX_UPLOAD_MB} MB limit")
        scenes = []
        try:
            for p in paths:
                if p in uploaded and _readable(p) and needs_overviews(p):
                    if progress:
                        progress(0.2, desc=f"building overviews for {Path(p).name} (once; zooming out then reads them)")
                    build_overviews(p)
                scenes.append(Scene(p))
            if len(scenes) == 2:
                from rsapp.geo import make_pair

                make_pair(scenes[0], scenes[1], None, 64)  # overlap and alignment are checked up front
            desc = [describe_scene(s) for s in scenes]
            sources = [TileSource.of(s) for s in scenes]
            geo = scenes[0].georeferenced
        finally:
            for s in scenes:
                s.close()
        with self._loading:  # one load at a time: a dropdown may report one pick twice, both loads run at once
            if list(paths) == self.paths and self.scene_ids:
                # the same scene(s) again keep their tile ids, so the map page's id does not move: two loads racing
                # each re-shared them, and the map showed whichever page id lost (refused as an old page)
                return " | ".join(desc)
            if not self.paths or self.paths[0] != paths[0]:
                self.layers = []  # answers about another scene; a second date keeps the first date's layers
                self.aoi = None
            registry.revoke(self.id)  # the previous scenes' tiles are no longer this session's
            self.paths, self.georeferenced, self.sources = list(paths), geo, sources
            self.scene_ids = [registry.share_scene(self.id, src, self.client) for src in sources]
        return " | ".join(desc)

    def map_scenes(self) -> list[dict]:
        """The loaded scene(s) as the map's tile layers."""
        out = []
        for i, (sid, src) in enumerate(zip(self.scene_ids, self.sources)):
            name = Path(src.path).name if len(self.sources) == 1 else f"{'before' if i == 0 else 'after'}: {Path(src.path).name}"
            out.append({"name": name, "url": tile_url(sid), "bounds": [list(src.bounds[0]), list(src.bounds[1])],
                        "native_zoom": src.native_zoom, "min_zoom": src.min_zoom})
        return out

    @property
    def view_key(self) -> str:
        """Names the map page of the loaded scene(s): the page is rebuilt only when this changes."""
        return "|".join([*self.paths, *self.scene_ids])

    @property
    def page_id(self) -> str:
        return hashlib.sha256(self.view_key.encode()).hexdigest()[:16]

    def map_page(self, page_id: str) -> str | None:
        """The map page of the loaded scene(s), if page_id names it (an old page's id finds nothing)."""
        if not self.paths or page_id != self.page_id:
            return None
        if self._page is None or self._page[0] != page_id:
            self._page = (page_id, render_map(self.map_scenes(), pixel_space=not self.georeferenced,
                                              view_key=self.view_key))
        return self._page[1]

    def map_payload(self) -> dict:
        """What the map page shows on top of the scene: the AOI and the answer layers (rsapp_map.js rsappSync)."""
        pixel = not self.georeferenced
        return {"key": self.view_key, "aoi": self.aoi,
                "layers": [{"id": str(layer.uid), "name": layer.name, "summary": layer.summary(),
                            "colour": LAYER_COLOURS[(layer.uid - 1) % len(LAYER_COLOURS)],
                            "classes": layer.class_colours, "geojson": layer.geojson(pixel)}
                           for layer in self.layers]}

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
        base = base[:60].rstrip()  # never ending in a space: the chat writes it in *italics*, which a space before the * breaks
        names = {layer.name for layer in self.layers}
        name, k = base, 2
        while name in names:
            name, k = f"{base} ({k})", k + 1
        return name

    def _append(self, layer: Layer) -> Layer:
        if len(self.layers) >= MAX_LAYERS:
            raise RsappError(f"the map keeps at most {MAX_LAYERS} layers: this answer's layer was not added "
                             "(remove a layer, or export them, to make room)")
        layer.uid, self._next_uid = self._next_uid, self._next_uid + 1
        self.layers.append(layer)
        return layer

    def remove(self, name: str) -> bool:
        before = len(self.layers)
        self.layers = [layer for layer in self.layers if layer.name != name]
        return len(self.layers) < before

    def exports_available(self) -> dict[str, bool]:
        """Which downloads there is something for: all layers (GeoJSON; GeoPackage when they share a CRS), and
        the latest mask as a GeoTIFF."""
        frames = self._frames()
        return {"rsapp_layers.geojson": bool(frames),
                "rsapp_layers.gpkg": bool(frames) and len({str(f.crs) for f in frames}) == 1,
                "rsapp_mask.tif": self._latest_mask() is not None}

    def _frames(self) -> list:
        return [layer.frame for layer in self.layers if len(layer.frame)]

    def _latest_mask(self) -> Answer | None:
        masks = [layer.answer for layer in self.layers if layer.answer is not None and layer.answer.mask is not None]
        return masks[-1] if masks else None

    def export_file(self, name: str) -> Path | None:
        """One download, written now into the session's folder; None for a name that is not an export."""
        if name not in EXPORT_FILES:
            return None
        if not self.exports_available()[name]:
            raise RsappError("nothing to export yet: ask a question that draws a layer" if not self.layers else
                             f"{name} cannot be made from these layers")
        d = Path(self.workdir)
        d.mkdir(parents=True, exist_ok=True)
        frames = self._frames()
        if name == "rsapp_layers.geojson":
            return write_geojson(d / name, frames)
        if name == "rsapp_layers.gpkg":
            return write_geopackage(d / name, frames)
        mask = self._latest_mask()
        return write_mask_geotiff(d / ("rsapp_change_mask.tif" if mask.is_change else name), mask)


def _readable(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def totals_text(features: list[dict], counted: dict[str, int] | None = None) -> str:
    """"23 buildings, 4,310 m² (0.43 ha)"; "2 buildings, 5 roads, …"; without an area in pixel space. A label in
    `counted` (instances the model counted) takes that count instead of its features'."""
    counts: dict[str, int] = {}
    area, has_area = 0.0, False
    for f in features:
        p = f.get("properties") or {}
        label = str(p.get("label") or "feature")
        if p.get("area_m2") is not None:
            area, has_area = area + float(p["area_m2"]), True
            if p.get("kind") != "box" and p["area_m2"] < MIN_INSTANCE_M2:
                continue  # a speck of the mask: in the area, not in the count (as the model counts)
        counts[label] = counts.get(label, 0) + 1
    for label, n in (counted or {}).items():
        if label in counts:
            counts[label] = n
    if not counts and not has_area:
        return "nothing"
    parts = [_count_text(n, label) for label, n in counts.items()]
    if has_area:
        parts.append(f"{area:,.0f} m² ({area / 1e4:,.2f} ha)")
    return ", ".join(parts)


def _count_text(n: int, label: str) -> str:
    if label.startswith(("the ", "a ", "an ")):  # a grounded phrase ("the largest building"), not a class
        return label if n == 1 else f"{n} × {label}"
    if label in MASS_LABELS:
        return f"{n} {label} region{'s' if n != 1 else ''}"
    plural = label if n == 1 or label.endswith("s") else (label[:-1] + "ies" if label.endswith("y") else label + "s")
    return f"{n} {plural}"


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
