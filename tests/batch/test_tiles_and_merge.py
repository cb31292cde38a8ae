"""Batch pieces without the model: the tile grid and its cores, the progress file, merging across seams."""

import json

import geopandas as gpd
import pytest
import shapely

from rsapp.batch.merge import MIN_OBJECT_PX, merge, nms, pick_again, totals
from rsapp.batch.store import Store, progress_path
from rsapp.batch.tiles import Tile, cores, plan, starts
from rsapp.batch.worker import TileResult
from rsapp.errors import RsappError
from tests.batch.scenes import pond_scene


@pytest.mark.parametrize("length", [300, 512, 1000, 2048, 4096])
def test_tiles_stay_inside_and_their_cores_cut_the_axis_without_gaps(length):
    begins = starts(length, 512, 64)
    assert begins[0] == 0 and begins[-1] + min(512, length) == length
    spans = cores(begins, min(512, length), length)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(a1 == b0 for (_, b0), (a1, _) in zip(spans, spans[1:]))  # no gap, no overlap
    assert all(s <= c0 and c1 <= s + 512 for s, (c0, c1) in zip(begins, spans))  # a core lies in its tile


def test_plan_keeps_the_tiles_meeting_the_aoi(tmp_path):
    path, _ = pond_scene(tmp_path / "p.tif", side=1024)
    every = plan([path], 512, 64)
    assert len(every) == 9
    from rsapp.geo import Scene

    with Scene(path) as s:  # a small AOI in the first tile's core, as lon/lat
        from pyproj import Transformer

        to_wgs = Transformer.from_crs(s.crs, 4326, always_xy=True)
        x0, y0 = s.transform @ (10, 10)
        x1, y1 = s.transform @ (100, 100)
    aoi = shapely.box(*to_wgs.transform(x0, y1), *to_wgs.transform(x1, y0))
    assert [(t.col, t.row) for t in plan([path], 512, 64, aoi)] == [(0, 0)]
    with pytest.raises(RsappError, match="--tile"):
        plan([path], 512, 300)


def _result(key, label, kind, geoms, tile_box, score=None):
    return TileResult(key, "scene.tif", "", None, shapely.to_wkb(tile_box, hex=True),
                      [(label, kind, score, shapely.to_wkb(g, hex=True)) for g in geoms])


def test_a_region_cut_by_a_seam_comes_out_whole_and_speckle_is_not_counted():
    left, right = Tile("scene.tif", 0, 0, 100, 100, (0, 0, 50, 100)), Tile("scene.tif", 40, 0, 100, 100,
                                                                          (50, 0, 140, 100))
    a = _result(left.key, "water", "mask", [shapely.box(30, 30, 50, 60), shapely.box(5, 5, 7, 7)],
                shapely.box(0, 0, 100, 100))
    b = _result(right.key, "water", "mask", [shapely.box(50, 30, 70, 60)], shapely.box(40, 0, 140, 100))
    layers, table = merge([a, b], [left, right], "[SEG] water")
    water = layers["water"]
    assert len(water) == 1 and water.geometry.iloc[0].equals(shapely.box(30, 30, 70, 60))  # 2 × 2 px speck gone
    assert MIN_OBJECT_PX > 4 and totals(layers)["water"] == {"count": 1, "area_m2": None}
    assert list(table["n_features"]) == [2, 1]


def test_pieces_a_pixel_apart_are_one_object_and_three_apart_are_two():
    """The mask can leave a crumb of a pond one pixel from it (seen at the edge of 2 of 16 ponds in a 4096² run):
    the merge closes gaps of up to 2 px, keeping pixel edges straight."""
    tile = Tile("scene.tif", 0, 0, 100, 100, (0, 0, 100, 100))
    pond, crumb, apart = shapely.box(10, 10, 40, 40), shapely.box(41, 20, 46, 26), shapely.box(43, 60, 50, 66)
    pieces = [pond, crumb, shapely.box(10, 50, 40, 80), apart]
    layers, _ = merge([_result(tile.key, "water", "mask", pieces, shapely.box(0, 0, 100, 100))], [tile], "[SEG] water")
    water = layers["water"].geometry
    assert len(water) == 3  # the crumb joined its pond; the piece 3 px away stays apart
    joined = water[water.intersects(pond)].iloc[0]
    assert joined.area == pytest.approx(pond.area + crumb.area + 6, abs=1e-6)  # the 1-px bridge, nothing else
    assert water[water.intersects(apart)].iloc[0].equals(apart)


def test_boxes_seen_twice_are_kept_once():
    kept = nms([(shapely.box(0, 0, 10, 10), 0.9), (shapely.box(1, 0, 11, 10), 0.8), (shapely.box(30, 0, 40, 10), 0.5)])
    assert [s for _, s in kept] == [0.9, 0.5]


def test_a_pick_over_the_whole_scene_is_made_again_among_the_tiles_picks():
    """'the largest building' on a scene of two tiles: each tile boxed its own largest; the scene has one. 'the
    leftmost' and 'the topmost' are picked in map coordinates; a pick by distance stays one per tile."""
    left, right = Tile("scene.tif", 0, 0, 100, 100, (0, 0, 50, 100)), Tile("scene.tif", 40, 0, 100, 100,
                                                                          (50, 0, 140, 100))
    small, big = shapely.box(10, 10, 20, 20), shapely.box(60, 50, 90, 90)
    results = [_result(left.key, "b", "box", [small], shapely.box(0, 0, 100, 100), 0.9),
               _result(right.key, "b", "box", [big], shapely.box(40, 0, 140, 100), 0.8)]
    boxes = lambda prompt: list(merge(results, [left, right], prompt)[0]["b boxes"].geometry)  # noqa: E731
    assert boxes("[VG] the largest building") == [big] and boxes("[VG] the smallest building") == [small]
    assert boxes("[VG] the leftmost building") == [small]
    assert boxes("[VG] the topmost building") == [small]  # pixel space: y grows down the image
    assert len(boxes("[VG] the building nearest the road")) == 2 and len(boxes("[VG] all buildings")) == 2
    # in a CRS y grows north: the top is the larger y
    assert pick_again([(small, 0.9), (big, 0.8)], "topmost", north_up=True) == [(big, 0.8)]


def test_progress_is_kept_and_other_settings_are_refused(tmp_path):
    out = tmp_path / "out.gpkg"
    settings = {"prompt": "[SEG] water", "tile": 512}
    store = Store(out, settings)
    r = _result("k1", "water", "mask", [shapely.box(0, 0, 5, 5)], shapely.box(0, 0, 10, 10))
    store.add(r)
    with progress_path(out).open("a") as f:
        f.write('{"key": "k2", "pa')  # a line cut short by Ctrl-C
    again = Store(out, settings)
    assert set(again.done) == {"k1"} and again.done["k1"].features == r.features
    with pytest.raises(RsappError, match="prompt.*--fresh"):
        Store(out, {**settings, "prompt": "[SEG] roads"})
    assert Store(out, {**settings, "prompt": "[SEG] roads"}, fresh=True).done == {}
    assert json.loads(progress_path(out).read_text().splitlines()[0])["settings"]["prompt"] == "[SEG] roads"


def test_geopackage_layers_per_class_and_tiles(tmp_path):
    """The merged layers and the tile table as QGIS would open them (a projected CRS, areas geodesic)."""
    from rsapp.batch.runner import BatchReport, write_output

    crs = "EPSG:32633"
    tile = Tile("scene.tif", 0, 0, 100, 100, (0, 0, 100, 100))
    footprint = shapely.box(500_000, 4_199_900, 500_100, 4_200_000)
    r = TileResult(tile.key, "scene.tif", "water: 4 %", gpd.GeoSeries([], crs=crs).crs.to_wkt(),
                   shapely.to_wkb(footprint, hex=True),
                   [("water", "mask", None, shapely.to_wkb(shapely.box(500_010, 4_199_910, 500_030, 4_199_930),
                                                           hex=True))])
    report = BatchReport("x", 1, 1, 0, 1, 1.0, 1.0)
    write_output(tmp_path / "o.gpkg", [r], [tile], "[SEG] water", report)
    water = gpd.read_file(tmp_path / "o.gpkg", layer="water")
    tiles = gpd.read_file(tmp_path / "o.gpkg", layer="tiles")
    assert water.crs.to_epsg() == 32633 and len(water) == 1 and abs(water["area_m2"].iloc[0] - 400) < 1
    assert tiles["text"].iloc[0] == "water: 4 %" and report.layers["water"]["count"] == 1


def test_a_cluster_that_cannot_import_rsapp_is_told_in_one_line():
    from rsapp.batch.runner import _explain_cluster_error

    try:  # how distributed reports it: a RuntimeError raised from the unpickling's ModuleNotFoundError
        try:
            raise ModuleNotFoundError("No module named 'rsapp'", name="rsapp")
        except ModuleNotFoundError as e:
            raise RuntimeError("Error during deserialization of the task graph") from e
    except RuntimeError as wrapped:
        with pytest.raises(RsappError, match="cannot import rsapp.*PYTHONPATH"):
            _explain_cluster_error(wrapped, "tcp://127.0.0.1:8786")
    _explain_cluster_error(ValueError("a tile's own failure"), "tcp://127.0.0.1:8786")  # others are not renamed
