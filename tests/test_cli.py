"""The CLI as a user runs it: a real subprocess, JSON on stdout, one clear line on stderr for every mistake."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SAMPLES, UTM_TRANSFORM, textured, write_raster


def rsapp(*args, cwd=ROOT):
    env = {k: v for k, v in os.environ.items() if k != "RSAPP_DEBUG"}
    return subprocess.run([sys.executable, "-m", "rsapp", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_info_json_on_utm_and_wgs84(utm_tif, geo_tif):
    for path, crs in ((utm_tif, "EPSG:32633"), (geo_tif, "EPSG:4326")):
        r = rsapp("info", path, "--json")
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert {"crs", "width", "height", "count", "dtype", "gsd_m", "bounds_wgs84"} <= set(info)
        assert info["crs"] == crs and info["gsd_m"] > 0 and len(info["bounds_wgs84"]) == 4


def test_info_on_unreferenced_png_has_nulls(png_file):
    info = json.loads(rsapp("info", png_file, "--json").stdout)
    assert info["gsd_m"] is None and info["bounds_wgs84"] is None and info["crs"] is None


def test_info_on_bundled_samples():
    for f in ("landsat8_224078_20200518_30m.tif", "vegas_buildings_0.3m.tif", "taizhou_2000_30m.tif"):
        info = json.loads(rsapp("info", SAMPLES / f, "--json").stdout)
        assert info["gsd_m"] == pytest.approx(30 if "30m" in f else 0.27, rel=0.1)


def test_the_vegas_label_files_hold_one_class_each_on_the_image():
    """SpaceNet labels buildings, roads and tree crowns on the Las Vegas crop; the footprints file used to hold all
    56 polygons, so scoring a building mask against it counted trees and roads as buildings."""
    import geopandas as gpd
    import rasterio
    from shapely.geometry import box

    with rasterio.open(SAMPLES / "vegas_buildings_0.3m.tif") as src:
        image = box(*src.bounds)
    for name, cls, n in (("buildings", "building", 26), ("roads", "road", 3), ("trees", "tree", 27)):
        labels = gpd.read_file(SAMPLES / f"vegas_{name}.geojson")
        assert len(labels) == n and set(labels["class"]) == {cls} and labels.crs.to_epsg() == 4326
        assert labels.geometry.intersects(image).all()


def _bad_inputs(tmp_path, utm_tif):
    text = tmp_path / "notes.tif"
    text.write_text("this is not an image")
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(utm_tif.read_bytes()[:4000])
    header_only = tmp_path / "header.tif"
    header_only.write_bytes(b"II*\x00" + b"\xff" * 200)
    far_aoi = tmp_path / "far.geojson"
    far_aoi.write_text('{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}')
    broken_aoi = tmp_path / "broken.geojson"
    broken_aoi.write_text('{"type": "Polygon", "coordinates": [[[0, 0], [1, 0]')
    point_aoi = tmp_path / "point.geojson"
    point_aoi.write_text('{"type": "Point", "coordinates": [15, 45]}')
    projected_aoi = tmp_path / "utm.geojson"
    projected_aoi.write_text('{"type": "Polygon", "coordinates": [[[500000, 4990000], [501000, 4990000], '
                             '[501000, 4999000], [500000, 4990000]]]}')
    far = write_raster(tmp_path / "far.tif", textured(50, 50), crs="EPSG:32633",
                       transform=type(UTM_TRANSFORM)(10.0, 0.0, 700_000.0, 0.0, -10.0, 5_000_000.0))
    ask = ("ask", utm_tif, "--prompt", "[SEG] segment the roads")
    no_rasters = tmp_path / "no_rasters"
    no_rasters.mkdir()
    (no_rasters / "readme.txt").write_text("nothing here")
    batch = ("batch", utm_tif, "--prompt", "[SEG] segment the roads")
    return {
        "missing file": ("info", tmp_path / "nope.tif"),
        "text file": ("info", text),
        "empty file": ("info", empty),
        "truncated tiff": ("info", corrupt),
        "corrupt header": ("info", header_only),
        "a folder": ("info", tmp_path),
        "ask on text file": ("ask", text, "--prompt", "[VQA] how many ships?"),
        "aoi outside image": (*ask, "--aoi", far_aoi),
        "aoi not json": (*ask, "--aoi", broken_aoi),
        "aoi is a point": (*ask, "--aoi", point_aoi),
        "aoi not lon/lat": (*ask, "--aoi", projected_aoi),
        "aoi file missing": (*ask, "--aoi", tmp_path / "none.geojson"),
        "dates do not overlap": ("ask", utm_tif, far, "--prompt", "[CCD] what changed?"),
        "unknown token": ("ask", utm_tif, "--prompt", "[XYZ] hello"),
        "CCD with one image": ("ask", utm_tif, "--prompt", "[CCD] what changed?"),
        "absurd gsd": (*ask, "--gsd", "-3"),
        "no weights there": (*ask, "--weights", tmp_path / "empty-weights"),
        "unknown quantization": (*ask, "--quant", "none"),
        "out in a missing folder": (*ask, "--out", tmp_path / "no" / "such" / "a.geojson"),
        "out is a folder": (*ask, "--out", tmp_path),
        "prompt too long": ("ask", utm_tif, "--prompt", "[VQA] " + "why " * 400),
        "batch out of an unknown kind": (*batch, "--out", tmp_path / "water.txt"),
        "batch out in a missing folder": (*batch, "--out", tmp_path / "no" / "water.gpkg"),
        "batch folder without rasters": ("batch", no_rasters, "--prompt", "[SEG] water", "--out",
                                         tmp_path / "w.gpkg"),
        "batch tile too small": (*batch, "--out", tmp_path / "w.gpkg", "--tile", "16"),
        "batch no workers": (*batch, "--out", tmp_path / "w.gpkg", "--workers", "0"),
        "batch workers kept too briefly": (*batch, "--out", tmp_path / "w.gpkg", "--keep", "5"),
    }


def test_every_bad_input_exits_nonzero_with_one_clear_line(tmp_path, utm_tif):
    for name, args in _bad_inputs(tmp_path, utm_tif).items():
        r = rsapp(*args)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode != 0, name
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{name}: {r.stderr!r}"
        assert "Traceback" not in r.stderr and "unexpected" not in r.stderr, f"{name}: {r.stderr!r}"


def test_ask_answers_on_a_sample_and_writes_geojson(tmp_path):
    """The whole path on real imagery with the shipped weights: route, chip, model, codec, export."""
    import shapely

    out = tmp_path / "answer.geojson"
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text('{"type": "Polygon", "coordinates": [[[-115.2472, 36.1988], [-115.2463, 36.1988], '
                   '[-115.2463, 36.1999], [-115.2472, 36.1999], [-115.2472, 36.1988]]]}')
    r = rsapp("ask", SAMPLES / "vegas_buildings_0.3m.tif", "--prompt", "[SEG] segment the buildings", "--aoi", aoi,
              "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert {"task", "expert", "text", "gsd_m", "gsd_source", "n_boxes", "n_mask_pixels"} <= set(answer)
    assert answer["task"] == "[SEG]" and answer["expert"] == 2 and answer["gsd_source"] == "metadata"
    assert answer["gsd_m"] == pytest.approx(0.27, rel=0.05)  # the 408 px AOI padded into the 512 chip, never upsampled
    fc = json.loads(out.read_text())
    assert fc["type"] == "FeatureCollection"
    area = shapely.geometry.shape(json.loads(aoi.read_text()))
    for f in fc["features"]:
        assert area.buffer(1e-5).contains(shapely.geometry.shape(f["geometry"]))
    r = rsapp("ask", SAMPLES / "taizhou_2000_30m.tif", SAMPLES / "taizhou_2003_30m.tif", "--prompt",
              "what changed?", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["task"] == "[CCD]"


def test_ask_without_json_prints_the_answer_and_a_readable_gsd(utm_tif):
    """The two lines a person reads: the answer, and the GSD to three significant figures (not 0.5002000800071549)."""
    r = rsapp("ask", utm_tif, "--prompt", "[CLS] what kind of scene is this?")
    assert r.returncode == 0, r.stderr
    answer, gsd = r.stdout.strip().splitlines()[-2:]
    assert answer.startswith("[CLS] (expert 0: image) ")
    value = gsd.split()[1]
    assert gsd.startswith("GSD ") and " m (metadata); " in gsd and len(value.replace(".", "").lstrip("0")) <= 3, gsd
