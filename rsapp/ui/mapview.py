"""The map page: a leafmap (folium / Leaflet) map of the scene's tiles, the draw tool, the layer control, and for
two dates a before/after swipe.

The page is built once per scene and sits in an iframe served by the app's own route (same origin as the app). Its scripts are inlined
(vendored Leaflet and Leaflet.draw, and rsapp_map.js), so it works with no network: the imagery comes from the
app's own tile route, and basemaps are only an option that appears when online. Answer layers are not part of the
page: the app sends them to rsapp_map.js (rsappSync), which adds and removes them in place. Leaflet.draw's
`draw:created` writes the drawn GeoJSON into the app's AOI textbox and fires its input event, which is how a drawn
shape reaches Python.
"""

from __future__ import annotations

import base64
import html
import json
import re
from functools import lru_cache
from pathlib import Path

import folium
import leafmap.foliumap as leafmap
from branca.element import Element
from folium.plugins import Draw

from rsapp.geo.tiles import DEEPEST_ZOOM

STATIC = Path(__file__).resolve().parent / "static"
LAYER_COLOURS = ["#ff3b30", "#ffcc00", "#34c759", "#00c7ff", "#af52de", "#ff9500", "#ff2d92"]
# A layer of several dense classes (an all-classes map: "what is the dominant land cover?", an unnamed [SEG]) draws
# each class in its own colour, the same in every such layer.
CLASS_COLOURS = {"building": "#ff3b30", "road": "#ffcc00", "vegetation": "#34c759", "water": "#00c7ff",
                 "bare land": "#c8a165", "car": "#af52de", "ship": "#ff2d92", "change": "#ff9500"}
AOI_TEXTBOX = "#rsapp-aoi textarea"
IMAGERY_SHOWN_BUTTON = "#rsapp-imagery-shown"  # clicked by the map page once its first view has drawn
MAP_HEIGHT_PX = 560
MAP_CSS = """
.leaflet-container{background:#20242b}
.rsapp-swipe{position:absolute;inset:0;pointer-events:none;z-index:650}
.rsapp-swipe-line{position:absolute;top:0;bottom:0;width:3px;margin-left:-1px;background:#fff;box-shadow:0 0 4px #000}
.rsapp-swipe-range{position:absolute;top:calc(50% - 21px);height:42px;left:0;width:100%;margin:0;background:transparent;
  -webkit-appearance:none;appearance:none;pointer-events:none}
.rsapp-swipe-range::-webkit-slider-runnable-track{background:transparent}
.rsapp-swipe-range::-webkit-slider-thumb{-webkit-appearance:none;pointer-events:auto;width:28px;height:42px;
  border-radius:6px;background:#fff;box-shadow:0 0 4px #000;cursor:ew-resize}
.rsapp-swipe-range::-moz-range-thumb{pointer-events:auto;width:28px;height:42px;border-radius:6px;cursor:ew-resize}
.rsapp-popup-layer{color:#555;font-size:11px}
"""


@lru_cache(maxsize=1)
def inline_assets() -> str:
    """Leaflet + Leaflet.draw JS/CSS as inline tags, their images as data URIs."""

    def data_uri(match):
        name = match.group(1).strip("'\"")
        path = STATIC / name
        if not path.exists():
            return match.group(0)
        mime = "image/svg+xml" if name.endswith(".svg") else "image/png"
        return f"url('data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}')"

    css = "".join(re.sub(r"url\(([^)#]+)\)", data_uri, (STATIC / f).read_text()) for f in
                  ("leaflet.css", "leaflet.draw.css"))
    js = "\n".join((STATIC / f).read_text() for f in ("leaflet.js", "leaflet.draw.js", "rsapp_map.js"))
    return f"<style>{css}</style><script>{js}</script>"


def _setup_script(map_name: str, control_name: str, view_key: str, bounds, swipe_pane: str | None) -> str:
    """Runs once the page's scripts have run (folium's creates the map and its layer control after this one is
    written), not on the load event, which waits for every tile."""
    opts = (f"{{map: {map_name}, control: {control_name}, key: {json.dumps(view_key)}, "
            f"aoiBox: {json.dumps(AOI_TEXTBOX)}, imageryShown: {json.dumps(IMAGERY_SHOWN_BUTTON)}, bounds: {json.dumps(bounds)}, swipePane: {json.dumps(swipe_pane)}}}")
    return f"document.addEventListener('DOMContentLoaded', function() {{ rsappSetup({opts}); }});"


def render_map(scenes: list[dict], pixel_space: bool, view_key: str, online_basemaps: bool = True,
               height_px: int = MAP_HEIGHT_PX) -> str:
    """The map page (HTML), built once per scene: the scene(s) as XYZ tile layers, the draw tool, the layer
    control; answer layers arrive later through rsappSync (rsapp_map.js). Two dates get the before/after swipe.

    scenes: [{"name", "url" (XYZ template), "bounds" [[s, w], [n, e]], "native_zoom", "min_zoom"}], first date
    first; pixel_space: Leaflet CRS.Simple (images without georeference).
    """
    common = dict(draw_control=False, fullscreen_control=False, measure_control=False, search_control=False,
                  locate_control=False, minimap_control=False, latlon_control=False, layers_control=False,
                  attribution_control=True, height=height_px, tiles=None, prefer_canvas=False, zoom_snap=0.25)
    if pixel_space:
        m = leafmap.Map(crs="Simple", zoom_start=0, min_zoom=-8, max_zoom=4, scale_control=False, **common)
    else:
        m = leafmap.Map(max_zoom=DEEPEST_ZOOM, scale_control=True, **common)
        if online_basemaps:  # only shows when online; the imagery never depends on it
            m.add_basemap("OpenStreetMap", show=False)
            m.add_basemap("SATELLITE", show=False)
    m.default_js, m.default_css = [], []
    root = m.get_root()
    root.header.add_child(Element(inline_assets()), name="rsapp_assets", index=0)
    root.header.add_child(Element(f"<style>{MAP_CSS}</style>"))
    swipe_pane = None
    if len(scenes) == 2:  # the second date in its own pane, above the first, clipped by the swipe
        swipe_pane = "rsappAfter"
        folium.map.CustomPane(swipe_pane, z_index=250).add_to(m)
    for i, sc in enumerate(scenes):
        extra = {"pane": swipe_pane} if i == 1 and swipe_pane else {}
        folium.raster_layers.TileLayer(
            tiles=sc["url"], name=html.escape(sc["name"]), attr="rsapp", overlay=True, control=True, show=True,
            max_native_zoom=sc["native_zoom"], max_zoom=4 if pixel_space else DEEPEST_ZOOM, min_zoom=-8 if pixel_space else 0,
            bounds=sc["bounds"], tile_size=256, no_wrap=True, keep_buffer=1, class_name="rsapp-scene", **extra,
        ).add_to(m)
    draw = Draw(draw_options={"polyline": False, "circle": False, "marker": False, "circlemarker": False,
                              "polygon": {"allowIntersection": False}, "rectangle": {}},
                edit_options={"edit": False})
    draw.default_js, draw.default_css = [], []
    draw.add_to(m)
    control = folium.LayerControl(collapsed=True)  # opens on hover: the list never covers the scene
    control.add_to(m)
    bounds = scenes[0]["bounds"] if scenes else [[0, 0], [0, 0]]
    if scenes:
        m.fit_bounds(bounds)
    root.script.add_child(Element(_setup_script(m.get_name(), control.get_name(), view_key, bounds, swipe_pane)))
    return root.render()


def map_frame(url: str, height_px: int = MAP_HEIGHT_PX) -> str:
    """The iframe the app shows: the page comes from the app's own route (same origin), not through Gradio."""
    return (f'<iframe id="rsapp-map-frame" title="map" src="{html.escape(url, quote=True)}" '
            f'style="width:100%;height:{height_px + 4}px;border:0;border-radius:8px"></iframe>')
