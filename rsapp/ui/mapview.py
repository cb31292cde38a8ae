"""The map page: folium (Leaflet) with the scene overlays, the AOI, answer layers, the draw tool and its bridge.

Everything the page needs is inlined (vendored Leaflet, PNG data URLs), so it works with no network: basemap
tiles are only an option that appears when online. The page sits in an iframe (srcdoc, same origin as the app):
Leaflet.draw's `draw:created` writes the drawn GeoJSON into the app's AOI textbox and fires its input event,
which is how a drawn shape reaches Python.
"""

from __future__ import annotations

import base64
import html
import json
import re
from functools import lru_cache
from pathlib import Path

import folium
from branca.element import Element
from folium.plugins import Draw

STATIC = Path(__file__).resolve().parent / "static"
LAYER_COLOURS = ["#ff3b30", "#ffcc00", "#34c759", "#00c7ff", "#af52de", "#ff9500", "#ff2d92"]
AOI_TEXTBOX = "#rsapp-aoi textarea"


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
    js = "\n".join((STATIC / f).read_text() for f in ("leaflet.js", "leaflet.draw.js"))
    return f"<style>{css}</style><script>{js}</script>"


def _bridge_script(map_name: str, view_key: str) -> str:
    """Drawn shapes → the parent's AOI textbox; the view is remembered across re-renders of the same scene."""
    return f"""
window.addEventListener('load', function() {{
  var map = {map_name};
  var parentDoc = null;
  try {{ parentDoc = window.parent.document; }} catch (e) {{}}
  function sendAoi(value) {{
    if (!parentDoc) return;
    var box = parentDoc.querySelector({json.dumps(AOI_TEXTBOX)});
    if (!box) return;
    box.value = value;
    box.dispatchEvent(new Event('input', {{bubbles: true}}));
    box.dispatchEvent(new Event('change', {{bubbles: true}}));
  }}
  map.on('draw:created', function(e) {{
    sendAoi(JSON.stringify({{type: 'Feature', properties: {{shape: e.layerType}},
                             geometry: e.layer.toGeoJSON().geometry}}));
  }});
  map.on('draw:deleted', function() {{ sendAoi(''); }});
  var key = {json.dumps(view_key)};
  try {{
    var saved = window.parent.__rsappView;
    if (saved && saved.key === key) {{ map.setView(saved.center, saved.zoom, {{animate: false}}); }}
    map.on('moveend', function() {{
      window.parent.__rsappView = {{key: key, center: map.getCenter(), zoom: map.getZoom()}};
    }});
  }} catch (e) {{}}
  window.rsappMap = map;
}});
"""


def render_map(overlays: list[dict], layers: list[dict], aoi: dict | None, pixel_space: bool, view_key: str,
               online_basemaps: bool = True, height_px: int = 560) -> str:
    """The map as an iframe.

    overlays: [{"name", "data_url", "bounds"}] scene images (first date first); layers: [{"name",
    "geojson", "kind"}] answer layers; aoi: GeoJSON geometry or None; pixel_space: Leaflet CRS.Simple.
    """
    if pixel_space:
        m = folium.Map(crs="Simple", tiles=None, zoom_start=0, control_scale=False, min_zoom=-5)
    else:
        m = folium.Map(tiles=None, control_scale=True, max_zoom=22)
        if online_basemaps:  # only shows when online; the imagery never depends on it
            folium.TileLayer("OpenStreetMap", name="OpenStreetMap (online)", max_zoom=22, max_native_zoom=19,
                             show=False).add_to(m)
            folium.TileLayer(tiles="https://server.arcgisonline.com/ArcGIS/rest/services/World_Imagery/MapServer/"
                             "tile/{z}/{y}/{x}", attr="Esri World Imagery", name="Satellite (online)",
                             max_zoom=22, max_native_zoom=19, show=False).add_to(m)
    m.default_js, m.default_css = [], []
    m.get_root().header.add_child(Element(inline_assets()), name="rsapp_assets", index=0)
    m.get_root().header.add_child(Element(
        "<style>.leaflet-container{background:#20242b}.rsapp-note{color:#ddd;font:12px sans-serif}</style>"))
    for ov in overlays:
        folium.raster_layers.ImageOverlay(image=ov["data_url"], bounds=ov["bounds"], name=html.escape(ov["name"]),
                                          interactive=False, show=ov.get("show", True)).add_to(m)
    if aoi:
        folium.GeoJson(aoi, name="AOI", style_function=lambda _: {
            "color": "#ffffff", "weight": 2, "dashArray": "6 4", "fillOpacity": 0.0}).add_to(m)
    for i, layer in enumerate(layers):
        colour = LAYER_COLOURS[i % len(LAYER_COLOURS)]
        folium.GeoJson(
            layer["geojson"], name=html.escape(layer["name"]),
            style_function=lambda f, c=colour: {
                "color": c, "weight": 2,
                "fillOpacity": 0.0 if f["properties"].get("kind") == "box" else 0.35, "fillColor": c},
            tooltip=folium.GeoJsonTooltip(fields=["label", "task"], aliases=["label", "task"]),
        ).add_to(m)
    draw = Draw(draw_options={"polyline": False, "circle": False, "marker": False, "circlemarker": False,
                              "polygon": {"allowIntersection": False}, "rectangle": {}},
                edit_options={"edit": False})
    draw.default_js, draw.default_css = [], []
    draw.add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    if overlays:
        bounds = overlays[0]["bounds"]
        m.fit_bounds(bounds)
    # Runs on the page's load event, once folium's script has created the map object.
    m.get_root().script.add_child(Element(_bridge_script(m.get_name(), view_key)))
    page = m.get_root().render()
    return (f'<iframe id="rsapp-map-frame" title="map" srcdoc="{html.escape(page, quote=True)}" '
            f'style="width:100%;height:{height_px}px;border:0;border-radius:8px"></iframe>')
