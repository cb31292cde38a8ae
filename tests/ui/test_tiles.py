"""The map's tile and export routes (a real ASGI app, the real registry): a session's scene is served at every
zoom down to its native pixels; an id it was not given, a path, or an ended session's scene finds nothing."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import rasterio
from affine import Affine
from morecantile import tms
from PIL import Image
from starlette.applications import Starlette
from starlette.testclient import TestClient

from rsapp.geo import Scene
from rsapp.geo.tiles import TILE_PX, TileSource, needs_overviews, render_tile
from rsapp.ui.routes import ROUTES
from rsapp.ui.session import Session

WEB = tms.get("WebMercatorQuad")


def checker_tif(path, side: int, gsd_m: float = 0.5, crs="EPSG:32633", overviews: bool = False):
    """Black and white squares of 2 px: a pattern that shows only at native resolution (grey when averaged)."""
    y, x = np.mgrid[:side, :side]
    band = (((y // 2 + x // 2) % 2) * 255).astype(np.uint8)
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8", "tiled": True,
               "blockxsize": 256, "blockysize": 256, "compress": "deflate", "photometric": "RGB"}
    if crs:
        profile |= {"crs": crs, "transform": Affine(gsd_m, 0, 500_000.0, 0, -gsd_m, 4_500_000.0)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack([band] * 3))
        if overviews:
            dst.build_overviews([2, 4, 8], rasterio.enums.Resampling.average)
    return path


def png_array(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def centre_tile(src: TileSource, z: int):
    (south, west), (north, east) = src.bounds
    return WEB.tile((west + east) / 2, (south + north) / 2, z)


def test_tiles_reach_native_resolution_and_zoomed_out_tiles_average(tmp_path):
    path = checker_tif(tmp_path / "checker.tif", 2048, overviews=True)
    with Scene(path) as scene:
        src = TileSource.of(scene)
    assert src.georeferenced and src.native_zoom >= 18 and src.min_zoom < src.native_zoom
    deep = png_array(render_tile(src, src.native_zoom, *_xy(centre_tile(src, src.native_zoom))))
    far = png_array(render_tile(src, src.min_zoom, *_xy(centre_tile(src, src.min_zoom))))
    inside = far[..., 3] > 0
    assert deep[..., 3].min() == 255 and deep[..., 0].std() > 60, "the 2 px squares are visible at native zoom"
    assert inside.any() and far[..., 0][inside].std() < 20, "zoomed out, the squares average to grey"
    assert render_tile(src, src.native_zoom, 0, 0) is None  # a tile elsewhere on Earth


def _xy(tile):
    return tile.x, tile.y


def test_pixel_space_tiles_cover_columns_and_rows(png_file):
    with Scene(png_file) as scene:
        src = TileSource.of(scene)
        full = scene.stretch.apply(scene.ds.read(list(scene.rgb_bands), masked=True))[0]
    assert not src.georeferenced and src.bounds == ((-120.0, 0.0), (0.0, 160.0))
    tile = png_array(render_tile(src, 0, 0, 0))  # zoom 0: one image pixel per tile pixel
    assert (tile[:120, :160, 3] == 255).all() and (tile[120:, :, 3] == 0).all() and (tile[:, 160:, 3] == 0).all()
    assert np.abs(tile[:120, :160, :3].astype(int) - full.astype(int)).max() <= 1
    assert render_tile(src, 0, 1, 0) is None and render_tile(src, 0, -1, 0) is None


def test_routes_serve_only_the_scenes_shared_with_a_session(tmp_path, geo_tif):
    client = TestClient(Starlette(routes=ROUTES))
    a, b = Session(), Session()
    a.load([str(geo_tif)])
    b.load([str(checker_tif(tmp_path / "b.tif", 512))])
    (scene_a,), (scene_b,) = a.map_scenes(), b.map_scenes()
    z = a.sources[0].native_zoom
    url = scene_a["url"].format(z=z, **dict(zip("xy", _xy(centre_tile(a.sources[0], z)))))
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and png_array(r.content)[..., 3].any()
    assert a.scene_ids[0] not in scene_b["url"] and len(a.scene_ids[0]) >= 24  # unguessable, one per session
    for bad in ("/rsapp/tiles/not-an-id/1/0/0.png", f"/rsapp/tiles/{a.scene_ids[0]}/x/0/0.png",
                "/rsapp/tiles/..%2F..%2Fetc%2Fpasswd/1/0/0.png", f"/rsapp/tiles/{geo_tif}/1/0/0.png",
                "/rsapp/export/not-a-session/rsapp_layers.geojson", f"/rsapp/export/{a.id}/..%2Fsecret"):
        assert client.get(bad).status_code == 404, bad
    assert client.get(f"/rsapp/export/{a.id}/rsapp_layers.geojson").status_code == 409  # no layer yet: said so
    page = client.get(f"/rsapp/map/{a.id}/{a.page_id}")
    assert page.status_code == 200 and "rsappSetup(" in page.text
    assert client.get(f"/rsapp/map/{b.id}/{a.page_id}").status_code == 404  # another session's page id
    a.load([str(tmp_path / "b.tif")])  # another scene: the old id stops working
    assert client.get(url).status_code == 404
    new_url = a.map_scenes()[0]["url"]
    a.close()  # the session ended: its scenes and exports go
    assert client.get(new_url.format(z=1, x=0, y=0)).status_code == 404
    assert client.get(f"/rsapp/export/{a.id}/rsapp_layers.geojson").status_code == 404


def test_an_upload_without_overviews_gets_them_and_a_sample_is_left_alone(tmp_path):
    big = checker_tif(tmp_path / "big.tif", 4096)
    assert needs_overviews(big)
    said = []
    s = Session()
    s.load([str(big)], uploaded=(str(big),), progress=lambda f, desc: said.append(desc))
    assert not needs_overviews(big) and (tmp_path / "big.tif.ovr").exists() and "overviews" in said[0]
    sample = checker_tif(tmp_path / "sample.tif", 4096)
    Session().load([str(sample)])
    assert needs_overviews(sample)  # not an upload: the file is never touched


def test_the_map_page_is_self_contained_and_gets_its_layers_by_payload(geo_tif):
    s = Session()
    s.load([str(geo_tif)])
    assert s.map_page("an old page") is None
    page = s.map_page(s.page_id)
    assert "rsappSetup(" in page and "/rsapp/tiles/" in page
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page), "nothing is fetched from the network"
    payload = s.map_payload()
    assert payload["key"] == s.view_key and payload["layers"] == []
    json.dumps(payload)


def test_a_session_opened_by_one_browser_is_not_served_to_another(geo_tif):
    from starlette.middleware import Middleware

    from rsapp.ui.routes import CLIENT_COOKIE, ClientCookie

    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    app = Starlette(routes=[*ROUTES, Route("/", lambda request: HTMLResponse("<p>the app</p>"))],
                    middleware=[Middleware(ClientCookie)])
    mine, other = TestClient(app), TestClient(app)
    assert "set-cookie" not in mine.get("/rsapp/tiles/unknown/0/0/0.png").headers  # only a page gives it
    first = mine.get("/")  # the page gives the browser its cookie
    assert CLIENT_COOKIE in first.cookies and "HttpOnly" in first.headers["set-cookie"]
    assert "set-cookie" not in mine.get("/").headers  # given once
    other.get("/")
    s = Session(client=mine.cookies[CLIENT_COOKIE])
    s.load([str(geo_tif)])
    z = s.sources[0].native_zoom
    url = s.map_scenes()[0]["url"].format(z=z, **dict(zip("xy", _xy(centre_tile(s.sources[0], z)))))
    assert mine.get(url).status_code == 200
    assert other.get(url).status_code == 404  # the same URL from another browser
    assert TestClient(Starlette(routes=ROUTES)).get(url).status_code == 404  # or from no browser at all
