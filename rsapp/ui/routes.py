"""The app's own HTTP routes beside Gradio's: scene tiles for the map, and exports written when asked for.

/rsapp/tiles/{scene id}/{z}/{x}/{y}.png   a tile of a scene shared with a session (rsapp.ui.registry)
/rsapp/export/{session id}/{file}         the session's layers as rsapp_layers.geojson / .gpkg or its mask GeoTIFF
/rsapp/map/{session id}/{page id}         the session's map page (the iframe's document) for its current scene
Anything else under these (an unknown id, a path, a bad number, another browser asking) is a 404 that says
nothing about the files. A browser is told apart by the rsapp_client cookie, which ClientCookie gives every
browser on its first request (the page itself), before any session exists.
"""

from __future__ import annotations

import logging

from http.cookies import SimpleCookie

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from rsapp.errors import RsappError
from rsapp.geo.tiles import empty_png, render_tile
from rsapp.ui import registry

log = logging.getLogger("rsapp.ui")
NOT_FOUND = PlainTextResponse("not found", status_code=404)
CLIENT_COOKIE = "rsapp_client"


class ClientCookie:
    """ASGI middleware: an HTML page sent to a browser without the rsapp_client cookie sets one (random,
    HttpOnly, SameSite=Strict), so sessions and their tiles can be tied to the browser that opened them.

    Only a page sets it: the page's own requests (scripts, styles, the queue) go out in parallel before any of
    their answers is back, and if each of them set a cookie of its own, the one the browser kept could differ
    from the one its session was opened with, and the session's map would be refused to its own browser."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or _cookie_of(scope):
            return await self.app(scope, receive, send)
        value = registry.new_id()

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/html"):
                    headers.append("set-cookie", f"{CLIENT_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict")
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _cookie_of(scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            jar = SimpleCookie()
            jar.load(value.decode("latin-1"))
            if CLIENT_COOKIE in jar:
                return jar[CLIENT_COOKIE].value
    return None


def client_of(request) -> str | None:
    """The asking browser's rsapp_client cookie (a Starlette or Gradio request), or None."""
    cookies = getattr(request, "cookies", None) or {}
    return cookies.get(CLIENT_COOKIE)


def _tile(request: Request) -> Response:
    p = request.path_params
    source = registry.scene(p["scene"], client_of(request))
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
    session = registry.session(request.path_params["session"], client_of(request))
    if session is None:
        return NOT_FOUND
    try:
        path = session.export_file(request.path_params["name"])
    except RsappError as e:
        return PlainTextResponse(str(e), status_code=409)
    if path is None:
        return NOT_FOUND
    return FileResponse(path, filename=path.name, headers={"Cache-Control": "no-store"})


def _map_page(request: Request) -> Response:
    session = registry.session(request.path_params["session"], client_of(request))
    page = session.map_page(request.path_params["page"]) if session is not None else None
    if page is None:
        log.warning("map page %s not served: %s", request.path_params["page"],
                    registry.why_not(request.path_params["session"], client_of(request)) if session is None
                    else f"the session shows page {session.page_id}")
        return NOT_FOUND
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


ROUTES = [
    Route("/rsapp/tiles/{scene}/{z}/{x}/{y}.png", _tile),
    Route("/rsapp/export/{session}/{name}", _export),
    Route("/rsapp/map/{session}/{page}", _map_page),
]


def tile_url(scene_id: str) -> str:
    return f"/rsapp/tiles/{scene_id}/{{z}}/{{x}}/{{y}}.png"


def map_url(session_id: str, page_id: str) -> str:
    return f"/rsapp/map/{session_id}/{page_id}"


def export_url(session_id: str, name: str) -> str:
    return f"/rsapp/export/{session_id}/{name}"
