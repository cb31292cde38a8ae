"""The app as a user drives it: a real server started by the test, Debian's Chromium through Playwright."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import shapely

from rsapp.analyst import default_weights
from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "tests" / "ui" / "screenshots"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    weights = os.environ.get("RSAPP_TEST_WEIGHTS") or str(default_weights())
    assert Path(weights, "config.json").exists(), f"no weights at {weights}"
    assert Path(CHROMIUM).exists(), "Debian chromium is needed (.ci/run installs it)"
    port = _free_port()
    env = os.environ | {"RSAPP_MAX_UPLOAD_MB": "5", "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--weights", weights], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read())
            time.sleep(1)
    else:
        proc.kill()
        raise RuntimeError("the app did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        pg = browser.new_page(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
        pg.goto(server)
        pg.wait_for_selector("#rsapp-map iframe", timeout=120_000)
        pg.frame_locator("#rsapp-map iframe").locator(".leaflet-tile-loaded").first.wait_for(timeout=60_000)
        yield pg
        browser.close()


def chat_text(page) -> str:
    return page.locator("#rsapp-chat").inner_text()


def wait_chat(page, needle: str, count: int = 1, timeout_s: float = 180) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if chat_text(page).count(needle) >= count:
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"{needle!r} ×{count} never appeared in the chat:\n{chat_text(page)[-1500:]}")


def overlay_names(page, until=lambda names: True, timeout_s: float = 60) -> list[str]:
    """The map's overlay layer names, once until(names) holds. The app replaces the map's iframe when the scene
    changes, and a query that meets the old one going away fails ("Execution context was destroyed"): read again."""
    from playwright.sync_api import Error

    deadline = time.time() + timeout_s
    names: list[str] = []
    while time.time() < deadline:
        try:
            names = page.frame_locator("#rsapp-map iframe").locator(
                ".leaflet-control-layers-overlays label").all_text_contents()  # the list opens on hover
            if until(names):
                return names
        except Error:
            pass
        page.wait_for_timeout(250)
    frame = page.locator("#rsapp-map iframe")
    src = frame.get_attribute("src") if frame.count() else None
    body = page.frame_locator("#rsapp-map iframe").locator("body").inner_text()[:200] if src else ""
    raise AssertionError(f"the map's layers never matched: {names} (page {src}: {body!r})")


def scene_box(page) -> dict:
    """Where the scene is on the screen: its bounds through the map's own projection, plus the iframe's offset."""
    frame = page.locator("#rsapp-map iframe").bounding_box()
    inner = page.frame_locator("#rsapp-map iframe").locator("body").evaluate(
        """() => { const b = window.rsappBounds, m = window.rsappMap;
                   const p0 = m.latLngToContainerPoint([b[1][0], b[0][1]]), p1 = m.latLngToContainerPoint([b[0][0], b[1][1]]);
                   const r = m.getContainer().getBoundingClientRect();
                   return {x: r.left + p0.x, y: r.top + p0.y, width: p1.x - p0.x, height: p1.y - p0.y}; }""")
    return {"x": frame["x"] + inner["x"], "y": frame["y"] + inner["y"], "width": inner["width"],
            "height": inner["height"]}


def draw_rectangle(page, fx0, fy0, fx1, fy1) -> None:
    """Drag a rectangle with the mouse using Leaflet.draw's rectangle tool; fractions of the scene on screen."""
    frame = page.frame_locator("#rsapp-map iframe")
    frame.locator(".leaflet-draw-draw-rectangle").click()
    box = scene_box(page)
    x0, y0 = box["x"] + fx0 * box["width"], box["y"] + fy0 * box["height"]
    x1, y1 = box["x"] + fx1 * box["width"], box["y"] + fy1 * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()


def ask(page, prompt: str, n_answers: int) -> None:
    page.locator("#rsapp-prompt textarea, #rsapp-prompt input").first.fill(prompt)
    page.locator("#rsapp-send").click()
    wait_chat(page, " · expert ", n_answers)


def upload(page, path) -> None:
    """The upload box empties itself after each upload, so its file input is there again for the next one."""
    page.locator("#rsapp-upload input[type=file]").wait_for(state="attached", timeout=60_000)
    page.locator("#rsapp-upload input[type=file]").set_input_files(str(path))


def download_geojson(page, tmp_path) -> dict:
    """The link is there once a layer is (the file is written when it is clicked)."""
    page.locator("a#rsapp-export-geojson").wait_for(timeout=30_000)
    with page.expect_download() as d:
        page.locator("a#rsapp-export-geojson").click()
    path = tmp_path / "layers.geojson"
    d.value.save_as(path)
    return json.loads(path.read_text())


def test_draw_aoi_ask_seg_and_vg_then_export_inside_aoi(page, tmp_path):
    SHOTS.mkdir(exist_ok=True)
    assert "vegas_buildings_0.3m.tif" in chat_text(page)
    draw_rectangle(page, 0.15, 0.2, 0.8, 0.7)
    wait_chat(page, "AOI:")
    aoi = shapely.geometry.shape(json.loads(page.locator("#rsapp-aoi textarea").input_value())["geometry"])
    assert aoi.geom_type == "Polygon" and aoi.area > 0
    before = len(overlay_names(page))
    ask(page, "[SEG] segment the buildings", 1)
    ask(page, "[VG] the largest building", 2)
    text = chat_text(page)
    assert "[SEG]" in text and "[VG]" in text and "expert 2" in text and "expert 1" in text
    names = overlay_names(page, lambda names: len(names) >= before + 1)  # an answer drew a layer (mask or boxes)
    assert any("m² (" in n and " ha)" in n for n in names), names  # each layer says its count and area
    frame = page.frame_locator("#rsapp-map iframe")
    frame.locator(".leaflet-control-layers").hover()
    page.screenshot(path=str(SHOTS / "layer_list.png"))
    frame.locator("path.leaflet-interactive").last.click(force=True)
    popup = frame.locator(".leaflet-popup-content").inner_text()
    assert "m²" in popup and "ha" in popup, popup
    assert "Layer added:" in chat_text(page) and "m² (" in chat_text(page)
    page.screenshot(path=str(SHOTS / "seg_vg.png"), full_page=True)
    fc = download_geojson(page, tmp_path)
    assert fc["features"], "the export holds the answer layers"
    footprint = shapely.box(-115.2474426, 36.1984977, -115.2460926, 36.2002527)  # vegas sample bounds
    pixel = 2.7e-6 * 256 / 100  # one chip pixel of slack, in degrees
    for f in fc["features"]:
        g = shapely.geometry.shape(f["geometry"])
        assert g.is_valid and aoi.buffer(pixel).contains(g), f["properties"]
        assert footprint.buffer(pixel).contains(g)
        assert f["properties"]["gsd_source"] == "metadata" and f["properties"]["area_m2"] > 0


def test_two_date_change_question(page):
    page.locator("#rsapp-sample input").click()
    page.locator("[role=option]", has_text="Taizhou").first.click()
    wait_chat(page, "taizhou_2003_30m.tif")
    overlay_names(page, lambda names: any("before" in n for n in names) and any("after" in n for n in names))
    frame = page.frame_locator("#rsapp-map iframe")
    swipe = frame.locator(".rsapp-swipe-range")
    swipe.wait_for(state="visible", timeout=10_000)  # two dates: a before/after swipe, not a toggle
    clip = lambda: frame.locator(".leaflet-rsappAfter-pane").evaluate("e => e.style.clip")  # noqa: E731
    before = clip()
    swipe.evaluate("e => { e.value = 0.25; e.dispatchEvent(new Event('input')); }")
    assert clip() != before and clip().startswith("rect(")
    page.locator("#rsapp-map iframe").evaluate("f => { f.dataset.mark = 'pair'; }")
    ask(page, "[CCD] what changed?", 1)
    ask(page, "[SEG] segment the changes", 2)
    assert "[CCD]" in chat_text(page) and "expert 0" in chat_text(page)
    assert page.locator("#rsapp-map iframe").get_attribute("data-mark") == "pair"
    names = overlay_names(page, lambda ns: sum("change region" in n for n in ns) == 2)  # both change maps, on top
    assert names.index(next(n for n in names if "after:" in n)) < names.index(next(n for n in names if "[CCD]" in n))
    _tiles_settled(page)
    page.screenshot(path=str(SHOTS / "change.png"), full_page=True)
    page.locator("#rsapp-map iframe").screenshot(path=str(SHOTS / "swipe.png"))


def test_bad_uploads_show_a_message_and_the_app_keeps_working(page, tmp_path, utm_tif):
    text = tmp_path / "notes.tif"
    text.write_text("not an image")
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(utm_tif.read_bytes()[:3000])
    huge = tmp_path / "huge.tif"
    huge.write_bytes(b"II*\x00" + os.urandom(6 * 1024 * 1024))
    for i, f in enumerate((text, corrupt)):
        upload(page, f)
        wait_chat(page, "⚠️", i + 1)
    upload(page, huge)
    page.wait_for_function("document.body.innerText.includes('exceed the maximum allowed size') || "
                           "document.body.innerText.includes('MB limit')", timeout=60_000)
    assert "Traceback" not in page.content()
    ask(page, "[VQA] how many buildings are there?", 1)  # the sample is still loaded and answers
    page.screenshot(path=str(SHOTS / "bad_upload.png"), full_page=True)


def test_whole_scene_run_cancels_resumes_and_lands_on_the_map(page):
    page.locator("#rsapp-sample input").click()
    page.locator("[role=option]", has_text="Paraná").first.click()
    wait_chat(page, "landsat8_224078_20200518_30m.tif")
    page.locator("#rsapp-prompt textarea, #rsapp-prompt input").first.fill("[SEG] segment the water")
    page.locator("#rsapp-whole").click()
    wait_chat(page, " of 9…")  # the first tiles are done
    page.locator("#rsapp-cancel").click()
    page.wait_for_timeout(1500)
    assert "whole scene: water" not in " ".join(overlay_names(page))
    page.locator("#rsapp-prompt textarea, #rsapp-prompt input").first.fill("[SEG] segment the water")
    page.locator("#rsapp-whole").click()  # the same prompt again: the finished tiles are not run again
    wait_chat(page, "done before), ", timeout_s=300)
    text = chat_text(page)
    resumed = int(text.split("9 tiles (")[-1].split(" done before")[0])
    assert resumed >= 1 and "⚠️" not in text, text[-800:]
    assert "at 30 m this answer is unreliable (9 of the tiles)" in text, text[-800:]  # water learned at ≤ ~8 m
    names = overlay_names(page, lambda ns: any("whole scene" in n for n in ns))
    page.screenshot(path=str(SHOTS / "whole_scene.png"), full_page=True)
    assert any("whole scene: water" in n for n in names), names


def _tiles_settled(page) -> None:
    frame = page.frame_locator("#rsapp-map iframe")
    frame.locator(".leaflet-tile-loaded").first.wait_for(timeout=60_000)
    # every scene tile of the zoom each scene layer now shows (Leaflet's: the map's zoom rounded, at most the
    # layer's native zoom) is in and loaded; right after a zoom the old level's tiles are all loaded while the new
    # level's are not yet asked for
    page.wait_for_function(
        "() => { const w = document.querySelector('#rsapp-map iframe').contentWindow;"
        " if (!w || !w.rsappMap) return false;"
        " let shown = 0, pending = 0;"
        " w.rsappMap.eachLayer(l => {"
        "   if (!(l instanceof w.L.TileLayer) || l.options.className !== 'rsapp-scene' || !l.getContainer()) return;"
        "   const z = String(Math.min(Math.round(w.rsappMap.getZoom()), l.options.maxNativeZoom ?? Infinity));"
        "   for (const i of l.getContainer().querySelectorAll('img')) {"
        "     if ((i.src.match(/\\/rsapp\\/tiles\\/[^/]+\\/(-?\\d+)\\//) || [])[1] !== z) continue;"
        "     shown += 1; pending += !i.classList.contains('leaflet-tile-loaded'); } });"
        " return shown > 0 && pending === 0; }",
        timeout=60_000)
    page.wait_for_timeout(500)


def _scene_luminance_std(page, path) -> float:
    import numpy as np
    from PIL import Image

    box = scene_box(page)
    frame = page.locator("#rsapp-map iframe").bounding_box()
    clip = {"x": max(box["x"], frame["x"]) + 20, "y": max(box["y"], frame["y"]) + 60}  # clear of the controls
    clip |= {"width": min(box["x"] + box["width"], frame["x"] + frame["width"]) - clip["x"] - 20,
             "height": min(box["y"] + box["height"], frame["y"] + frame["height"]) - clip["y"] - 40}
    page.screenshot(path=str(path), clip=clip)
    return float(np.asarray(Image.open(path).convert("L"), dtype=np.float32).std())


def test_the_scene_shows_no_hairline_between_its_tiles(page):
    """At the fractional zoom that fits the scene, Chromium left a 1 px line of the map's background between two
    rows of scene tiles, across the Las Vegas houses (Leaflet issue #3575); tiles drawn 1 px larger but still
    blended by addition drew bright lines instead. (A screenshot clipped to the scene was drawn without the seam:
    the whole page is taken.)"""
    import numpy as np
    from PIL import Image

    _tiles_settled(page)
    box = scene_box(page)
    page.screenshot(path=str(SHOTS / "scene_tiles.png"))
    x, y = round(box["x"]) + 4, round(box["y"]) + 4  # the whole scene, but for its outer 4 px
    grey = np.asarray(Image.open(SHOTS / "scene_tiles.png").convert("L"), dtype=np.float32)[
        y:y + round(box["height"]) - 8, x:x + round(box["width"]) - 8]
    assert min(grey.shape) > 200
    for axis in (1, 0):  # rows, then columns: a seam is a line darker or brighter than the lines either side
        m = grey.mean(axis)
        step = m[1:-1] - (m[:-2] + m[2:]) / 2
        assert np.abs(step).max() < 15, (axis, int(np.abs(step).argmax()) + 1, float(step.min()), float(step.max()))
        # (the image's own lines differ from their neighbours by at most ~7)


def test_a_large_upload_shows_its_native_pixels_when_zoomed_in(page, tmp_path):
    from tests.ui.test_tiles import checker_tif

    big = checker_tif(tmp_path / "pattern_8192.tif", 8192, gsd_m=0.3)  # 2 px squares: grey unless at native zoom
    upload(page, big)
    wait_chat(page, "pattern_8192.tif")
    page.wait_for_function("() => document.querySelector('#rsapp-map iframe').contentWindow.rsappMap", timeout=60_000)
    _tiles_settled(page)
    far = _scene_luminance_std(page, tmp_path / "far.png")
    page.frame_locator("#rsapp-map iframe").locator("body").evaluate(
        "() => { const m = window.rsappMap; m.setView(m.getCenter(), m.getMaxZoom(), {animate: false}); }")
    _tiles_settled(page)
    near = _scene_luminance_std(page, SHOTS / "zoomed_in.png")
    assert far < 25 and near > 60, (far, near)  # a blur far out; the squares themselves when zoomed in


def test_answers_add_layers_to_the_same_page(page):
    page.locator("#rsapp-map iframe").evaluate("f => { f.dataset.mark = 'the first page'; }")
    sizes = []
    for i in range(5):
        ask(page, "[SEG] segment the buildings", i + 1)
        overlay_names(page, lambda names, n=i + 1: sum("segment the buildings" in x for x in names) == n)
        sizes.append(page.evaluate("() => document.querySelectorAll('*').length"
                                   " - document.querySelector('#rsapp-chat').querySelectorAll('*').length"))
    assert page.locator("iframe").count() == 1
    assert page.locator("#rsapp-map iframe").get_attribute("data-mark") == "the first page"  # never rebuilt
    assert max(sizes[1:]) - min(sizes[1:]) <= 10, sizes  # the page around the chat does not grow per answer
    page.locator("#rsapp-map iframe").screenshot(path=str(SHOTS / "answer_layer.png"))


def test_tile_routes_answer_the_sessions_browser_only(page, server):
    src = page.frame_locator("#rsapp-map iframe").locator("img.leaflet-tile-loaded").first.get_attribute("src")
    url = server + src
    assert page.request.get(url).status == 200
    other = page.context.browser.new_context()
    try:
        assert other.request.get(url).status == 404  # another browser: refused
        assert other.request.get(server + "/rsapp/tiles/..%2F..%2Fapp.py/0/0/0.png").status == 404
    finally:
        other.close()
