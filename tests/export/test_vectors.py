import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Geod, Transformer

from rsapp.answer import Answer
from rsapp.export import answer_frame, frames_to_geojson, write_geojson, write_geopackage, write_mask_geotiff
from rsapp.geo import Scene, make_chip

TO_WGS84 = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)


def square_answer(chip, r0=40, c0=30, side=20, boxes=()) -> Answer:
    mask = np.zeros((chip.size, chip.size), np.uint8)
    mask[r0:r0 + side, c0:c0 + side] = 1
    return Answer(task="[SEG]", expert=2, text="", prompt="[SEG] segment the pond", model="test",
                  sources=[chip.source], transform=chip.transform, crs=chip.crs, chip_size=chip.size,
                  gsd_m=chip.gsd_m, gsd_source="metadata", mask=mask, mask_labels=["others", "water"],
                  boxes_px=list(boxes), box_labels=["pond"] * len(boxes))


def assert_rfc7946(fc):
    assert fc["type"] == "FeatureCollection" and "crs" not in fc
    for f in fc["features"]:
        geom = shapely.geometry.shape(f["geometry"])
        assert geom.is_valid
        for poly in getattr(geom, "geoms", [geom]):
            assert poly.exterior.is_ccw, "exterior rings must be counter-clockwise (right-hand rule)"
            assert all(not r.is_ccw for r in poly.interiors)
            coords = np.asarray(poly.exterior.coords)
            assert (coords[0] == coords[-1]).all()
            assert (np.abs(coords[:, 0]) <= 180).all() and (np.abs(coords[:, 1]) <= 90).all()


def test_square_mask_lands_on_the_right_lonlat_with_geodesic_area(utm_tif):
    with Scene(utm_tif) as s:
        chip = make_chip(s, None, size=400)  # native 10 m grid, chip covers rows -50..350
    fc = frames_to_geojson([answer_frame(square_answer(chip))])
    assert_rfc7946(fc)
    (feature,) = fc["features"]
    props = feature["properties"]
    assert props["label"] == "water" and props["task"] == "[SEG]" and props["gsd_source"] == "metadata"
    assert set(props) >= {"task", "label", "score", "prompt", "model", "gsd_m", "gsd_source", "source", "created",
                          "area_m2"}
    # Expected corners computed independently: chip pixels → UTM with the chip transform → lon/lat.
    xs, ys = chip.transform @ (np.array([30.0, 50.0]), np.array([40.0, 60.0]))
    lon, lat = TO_WGS84.transform(xs, ys)
    got = shapely.geometry.shape(feature["geometry"])
    pixel_deg = abs(lon[1] - lon[0]) / 20
    assert got.bounds == pytest.approx((min(lon), min(lat), max(lon), max(lat)), abs=pixel_deg)
    ring = [TO_WGS84.transform(x, y) for x, y in ((xs[0], ys[1]), (xs[1], ys[1]), (xs[1], ys[0]), (xs[0], ys[0]))]
    expected_area = abs(Geod(ellps="WGS84").polygon_area_perimeter(*zip(*ring))[0])
    assert props["area_m2"] == pytest.approx(expected_area, rel=0.01)
    assert props["area_m2"] == pytest.approx(200 * 200, rel=0.01)  # 20×20 px at 10 m


def test_boxes_export_as_polygons_with_labels(utm_tif):
    with Scene(utm_tif) as s:
        chip = make_chip(s, None, size=400)
    fc = frames_to_geojson([answer_frame(square_answer(chip, boxes=[(10, 10, 30, 20), (100, 120, 150, 180)]))])
    assert_rfc7946(fc)
    kinds = [f["properties"]["kind"] for f in fc["features"]]
    assert kinds == ["box", "box", "mask"]
    assert fc["features"][1]["properties"]["area_m2"] == pytest.approx(500 * 600, rel=0.01)


def test_geopackage_is_in_scene_crs_and_geotiff_on_chip_grid(tmp_path, utm_tif):
    with Scene(utm_tif) as s:
        chip = make_chip(s, None, size=200)
    answer = square_answer(chip)
    gpkg = write_geopackage(tmp_path / "a.gpkg", [answer_frame(answer)])
    gdf = gpd.read_file(gpkg)
    assert gdf.crs.to_epsg() == 32633 and len(gdf) == 1
    assert gdf.geometry.iloc[0].area == pytest.approx(20 * 20 * 20 * 20, rel=1e-6)  # 20 px at 20 m
    tif = write_mask_geotiff(tmp_path / "a.tif", answer)
    with rasterio.open(tif) as d:
        assert d.transform.almost_equals(chip.transform) and d.crs.to_epsg() == 32633
        assert int(d.read(1).sum()) == 400 and d.tags(1)["label_1"] == "water"
    path = write_geojson(tmp_path / "a.geojson", [answer_frame(answer)])
    assert_rfc7946(json.loads(path.read_text()))


def test_unreferenced_image_exports_in_pixel_space_and_says_so(png_file):
    with Scene(png_file) as s:
        chip = make_chip(s, None, size=160)
    fc = frames_to_geojson([answer_frame(square_answer(chip))])
    assert "no georeference" in fc["coordinate_space"]
    props = fc["features"][0]["properties"]
    assert "area_m2" not in props and props["area_px"] == pytest.approx(400)
    minx, miny, maxx, maxy = shapely.geometry.shape(fc["features"][0]["geometry"]).bounds
    assert (minx, miny) == pytest.approx((30, 40 - 20))  # 160×120 image letterboxed: rows start at -20


def test_geojson_across_the_antimeridian_is_split_within_180(tmp_path):
    """A mask on a UTM zone 60 scene that reaches past 180°E: RFC 7946 longitudes, cut at the line."""
    import geopandas as gpd
    import shapely

    from rsapp.export.vectors import frames_to_geojson

    square = shapely.box(720_000, 5_000_000, 750_000, 5_030_000)  # zone 60N (177°E), across 180°
    frame = gpd.GeoDataFrame({"label": ["water"]}, geometry=[square], crs="EPSG:32660")
    fc = frames_to_geojson([frame])
    (feature,) = fc["features"]
    geom = shapely.geometry.shape(feature["geometry"])
    assert geom.geom_type == "MultiPolygon" and geom.is_valid
    xs = [x for poly in geom.geoms for x, _ in poly.exterior.coords]
    assert min(xs) >= -180 and max(xs) <= 180 and min(xs) < -179 and max(xs) > 179
    assert feature["properties"]["area_m2"] == pytest.approx(9e8, rel=0.01)
