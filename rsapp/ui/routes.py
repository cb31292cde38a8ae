"""The app's own HTTP routes beside Gradio's: scene tiles for the map, and exports written when asked for.

/rsapp/tiles/{scene id}/{z}/{x}/{y}.png   a tile of a scene shared with a session (rsapp.ui.registry)
/rsapp/export/{session id}/{file}         the session's layers as rsapp_layers.geojson / .gpkg or its mask GeoTIFF
Anything else under these (an unknown id, a path, a bad number) is a 404 that says nothing about the files.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from rsapp.errors import RsappError
from rsapp.geo.tiles import empty_png, render_tile
from rsapp.ui import registry

log = logging.getLogger("rsapp.ui")
NOT_FOUND = PlainTextResponse("not found", status_code=404)


def _tile(request: Request) -> Response:
    p = request.path_params
    source = registry.scene(p["scene"])
    try:
        z, x, y = int(p["z"]), int(p["x"]), int(p["y"])
    except ValueError:
        return NOT_FOUND
    if source is None or abs(z) > 30:
        return NOT_FOUND
    try:
        png = render_tile(source, z, x, y)
    except RsappError as e:
        log.warning("tile %s/%s/%s: %s", z, x, y, e)
        png = None
    return Response(png or empty_png(), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=3600"})


def _export(request: Request) -> Response:
    session = registry.session(request.path_params["session"])
    if session is None:
        return NOT_FOUND
    try:
        path = session.export_file(request.path_params["name"])
    except RsappError as e:
        return PlainTextResponse(str(e), status_code=409)
    if path is None:
        return NOT_FOUND
    return FileResponse(path, filename=path.name, headers={"Cache-Control": "no-store"})


ROUTES = [
    Route("/rsapp/tiles/{scene}/{z}/{x}/{y}.png", _tile),
    Route("/rsapp/export/{session}/{name}", _export),
]


def tile_url(scene_id: str) -> str:
    return f"/rsapp/tiles/{scene_id}/{{z}}/{{x}}/{{y}}.png"


def export_url(session_id: str, name: str) -> str:
    return f"/rsapp/export/{session_id}/{name}"
