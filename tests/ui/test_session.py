"""Session state without the browser: an AOI outside the image is refused when it is set, and nothing changes;
layers stop at a cap with a message; exports are written only when asked for, and their folders go with their
session, stale ones at start; a layer's summary counts and measures it."""

import json

import pytest
import shapely

from rsapp.errors import RsappError
from rsapp.ui.session import Session


def test_an_aoi_outside_the_image_is_refused_when_set_and_the_session_keeps_its_aoi(geo_tif):
    s = Session()
    s.load([str(geo_tif)])
    inside = {"type": "Polygon", "coordinates": [[[15.001, 45.19], [15.01, 45.19], [15.01, 45.199],
                                                  [15.001, 45.199], [15.001, 45.19]]]}
    assert s.set_aoi(json.dumps(inside)).startswith("AOI:")
    far = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    with pytest.raises(RsappError, match="outside"):
        s.set_aoi(json.dumps(far))
    assert shapely.geometry.shape(s.aoi).equals(shapely.geometry.shape(inside))  # the earlier AOI stays


def _answer_with_a_box(geo_tif):
    """An answer with one box on a real chip of the scene (the layer bookkeeping needs no model)."""
    from rsapp.answer import Answer
    from rsapp.geo import Scene, make_chip

    with Scene(geo_tif) as scene:
        chip = make_chip(scene, None, 64)
    return Answer(task="[VG]", expert=1, text="1 found", raw_text="", prompt="[VG] the pond", model="test",
                  sources=[chip.source], transform=chip.transform, crs=chip.crs, chip_size=64, gsd_m=chip.gsd_m,
                  gsd_source="metadata", boxes_px=[(4.0, 4.0, 20.0, 20.0)], box_scores=[0.9],
                  box_labels=["pond"])


def test_layers_stop_at_the_cap_with_a_clear_message_and_nothing_is_lost(geo_tif):
    from rsapp.ui.session import MAX_LAYERS

    s = Session()
    s.load([str(geo_tif)])
    for _ in range(MAX_LAYERS):
        assert s.add(_answer_with_a_box(geo_tif)) is not None
    with pytest.raises(RsappError, match=f"at most {MAX_LAYERS} layers"):
        s.add(_answer_with_a_box(geo_tif))
    assert len(s.layers) == MAX_LAYERS and len({layer.name for layer in s.layers}) == MAX_LAYERS
    assert s.remove(s.layers[0].name) and s.add(_answer_with_a_box(geo_tif)) is not None


def test_a_sessions_export_folder_goes_when_it_ends_and_stale_ones_at_start(geo_tif, monkeypatch, tmp_path):
    import os
    import time
    from pathlib import Path

    from rsapp.ui import session as session_module

    monkeypatch.setattr(session_module, "EXPORT_ROOT", tmp_path / "sessions")
    s = Session(key="abc/../123")  # a session id never escapes the export root
    assert Path(s.workdir).parent == tmp_path / "sessions"
    s.load([str(geo_tif)])
    assert not any(Path(s.workdir).glob("*")), "nothing is written before a download is asked for"
    s.add(_answer_with_a_box(geo_tif))
    assert not any(Path(s.workdir).glob("*"))
    assert s.export_file("rsapp_layers.geojson").is_file()
    s.close()
    assert not Path(s.workdir).exists()
    old, fresh = Session(key="old"), Session(key="fresh")
    for x in (old, fresh):
        x.add(_answer_with_a_box(geo_tif))
        x.export_file("rsapp_layers.gpkg")
    day_ago = time.time() - 25 * 3600
    os.utime(old.workdir, (day_ago, day_ago))
    assert session_module.remove_stale_workdirs() == 1
    assert not Path(old.workdir).exists() and Path(fresh.workdir).exists()


def test_the_upload_limit_applies_to_uploads_not_to_the_bundled_samples(geo_tif, monkeypatch):
    from rsapp.ui import session as session_module

    monkeypatch.setattr(session_module, "MAX_UPLOAD_MB", 0)
    s = Session()
    assert "geo" in s.load([str(geo_tif)])  # a sample: no limit
    with pytest.raises(RsappError, match="MB limit"):
        s.load([str(geo_tif)], uploaded=(str(geo_tif),))


def test_a_layer_summary_counts_its_features_and_their_geodesic_area(geo_tif):
    from rsapp.ui.session import totals_text

    s = Session()
    s.load([str(geo_tif)])
    layer = s.add(_answer_with_a_box(geo_tif))
    (feature,) = layer.collection["features"]
    area = feature["properties"]["area_m2"]
    assert area > 0 and layer.summary() == f"1 pond, {area:,.0f} m² ({area / 1e4:,.2f} ha)"
    specks = [{"properties": {"label": "building", "kind": "mask", "area_m2": a}} for a in (120.0, 80.0, 2.0)]
    assert totals_text(specks) == "2 buildings, 202 m² (0.02 ha)"  # a 2 m² speck is area, not a building
    # a row of three houses is one polygon: the count is what the model counted by instance
    assert totals_text(specks, {"building": 4, "road": 2}) == "4 buildings, 202 m² (0.02 ha)"
    assert totals_text([{"properties": {"label": "water", "kind": "mask", "area_m2": 2e4}}] * 3) == \
        "3 water regions, 60,000 m² (6.00 ha)"
    assert totals_text([{"properties": {"label": "the largest building", "kind": "box", "area_m2": 1e3}}]) == \
        "the largest building, 1,000 m² (0.10 ha)"
    with pytest.raises(RsappError, match="nothing to export"):
        Session().export_file("rsapp_layers.geojson")
    assert s.export_file("../../etc/passwd") is None


def test_the_same_scene_loaded_twice_at_once_keeps_one_map_page(geo_tif):
    """A dropdown may report one pick twice; both loads run at once. Each used to share the scene under new ids, so
    the map was left showing a page id the session no longer served ("not found")."""
    from concurrent.futures import ThreadPoolExecutor

    s = Session()
    s.load([str(geo_tif)])
    first = s.page_id
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: s.load([str(geo_tif)]), range(2)))
    assert s.page_id == first and s.map_page(first) is not None
    s.close()


def test_a_layer_of_several_classes_colours_each_class_and_a_layer_of_one_does_not(geo_tif):
    """An all-classes map ("what is the dominant land cover?") is drawn class by class, as its summary counts it."""
    import numpy as np

    from rsapp.answer import Answer
    from rsapp.geo import Scene, make_chip
    from rsapp.ui.mapview import CLASS_COLOURS

    with Scene(geo_tif) as scene:
        chip = make_chip(scene, None, 64)
    mask = np.zeros((64, 64), np.uint8)
    mask[4:20, 4:20], mask[30:60, 30:60] = 1, 2
    s = Session()
    s.load([str(geo_tif)])
    for labels in (["others", "building", "water"], ["others", "water", "water"]):
        s.add(Answer(task="[VQA]", expert=0, text="", raw_text="", prompt="what covers most of the area?",
                     model="test", sources=[chip.source], transform=chip.transform, crs=chip.crs, chip_size=64,
                     gsd_m=chip.gsd_m, gsd_source="metadata", mask=mask.copy(), mask_labels=labels))
    several, one = s.map_payload()["layers"]
    assert several["classes"] == {"building": CLASS_COLOURS["building"], "water": CLASS_COLOURS["water"]}
    assert {f["properties"]["label"] for f in several["geojson"]["features"]} == {"building", "water"}
    assert one["classes"] == {} and one["colour"] != several["colour"]


def test_a_long_prompts_layer_name_is_cut_without_a_trailing_space(geo_tif):
    """The chat writes a layer's name in *italics*: a name cut to 60 characters just after a space would show its
    asterisks ("*… the number of *")."""
    from dataclasses import replace

    s = Session()
    s.load([str(geo_tif)])
    prompt = "[VQA] is the number of buildings greater than the number of roads here?"
    assert prompt[59] == " "  # cut at 60 characters, it would end in a space
    layer = s.add(replace(_answer_with_a_box(geo_tif), task="[VQA]", prompt=prompt))
    assert layer.name == prompt[:59] and not layer.name.endswith(" ")
