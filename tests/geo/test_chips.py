import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.warp import Resampling, calculate_default_transform, reproject

from rsapp.errors import RsappError
from rsapp.geo import Scene, make_chip, make_pair, parse_aoi
from tests.conftest import UTM_TRANSFORM, textured, write_raster

TO_WGS84 = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
TO_UTM = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True)


def aoi_for_pixels(col0, row0, col1, row1):
    """A lon/lat rectangle AOI whose UTM bounding box is exactly these pixel edges of the UTM fixture."""
    (x0, y0), (x1, y1) = UTM_TRANSFORM @ (col0, row1), UTM_TRANSFORM @ (col1, row0)
    ring = [TO_WGS84.transform(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
    return parse_aoi({"type": "Polygon", "coordinates": [ring + [ring[0]]]})


def test_aoi_chip_is_the_right_pixels(utm_tif):
    with Scene(utm_tif) as s:
        aoi = aoi_for_pixels(50, 20, 306, 276)  # 256×256 px: chip at native resolution
        chip = make_chip(s, aoi, size=256)
        expected, _ = s.stretch.apply(s.ds.read(list(s.rgb_bands), window=((20, 276), (50, 306)), masked=True))
    assert (chip.window_px.col_off, chip.window_px.row_off, chip.window_px.width) == (50, 20, 256)
    inner = chip.valid
    assert inner[2:-2, 2:-2].all()
    np.testing.assert_array_equal(chip.rgb[inner], expected[inner])
    assert chip.gsd_m == pytest.approx(10.0, rel=0.01)


def test_chip_pixel_round_trip_through_wgs84_is_sub_pixel(utm_tif):
    with Scene(utm_tif) as s:
        chip = make_chip(s, aoi_for_pixels(10, 10, 390, 290), size=128)
    rng = np.random.default_rng(0)
    cols, rows = rng.uniform(0, 128, 50), rng.uniform(0, 128, 50)
    xs, ys = chip.to_scene(cols, rows)
    lon, lat = TO_WGS84.transform(xs, ys)
    x2, y2 = TO_UTM.transform(lon, lat)
    c2, r2 = (~chip.transform) @ (np.asarray(x2), np.asarray(y2))
    assert np.max(np.hypot(c2 - cols, r2 - rows)) < 0.5
    assert np.max(np.hypot(c2 - cols, r2 - rows)) < 1e-3  # "well under a pixel"


def test_large_aoi_is_downsampled_and_gsd_follows(utm_tif):
    with Scene(utm_tif) as s:
        chip = make_chip(s, None, size=100)  # 400 px wide scene → 4 px per chip pixel
    assert chip.rgb.shape == (100, 100, 3)
    assert chip.gsd_m == pytest.approx(40.0, rel=0.01)
    # 400×300 letterboxed into a square: a quarter of the chip is padding.
    assert chip.valid.mean() == pytest.approx(0.75, abs=0.02)


def test_small_image_is_padded_not_upsampled(utm_tif):
    with Scene(utm_tif) as s:
        chip = make_chip(s, aoi_for_pixels(100, 100, 140, 130), size=64)
    assert chip.gsd_m == pytest.approx(10.0, rel=0.01)
    assert 0.2 < chip.valid.mean() < 0.4  # 40×30 px of AOI inside a 64×64 chip


def test_polygon_aoi_masks_outside_pixels(utm_tif):
    with Scene(utm_tif) as s:
        (x0, y0), (x1, y1) = UTM_TRANSFORM @ (0, 256), UTM_TRANSFORM @ (256, 0)
        tri = [TO_WGS84.transform(x, y) for x, y in ((x0, y0), (x1, y0), (x0, y1))]
        chip = make_chip(s, parse_aoi({"type": "Polygon", "coordinates": [tri + [tri[0]]]}), size=256)
    assert 0.45 < chip.valid.mean() < 0.56
    assert not chip.valid[0, -1] and chip.valid[-1, 0]
    assert (chip.rgb[~chip.valid] == 0).all()


def test_aoi_outside_image_is_refused(utm_tif):
    with Scene(utm_tif) as s, pytest.raises(RsappError, match="outside"):
        make_chip(s, parse_aoi({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}))


def test_projected_numbers_as_aoi_are_refused(utm_tif):
    with Scene(utm_tif) as s, pytest.raises(RsappError, match="longitude/latitude"):
        make_chip(s, shapely.box(500000, 4990000, 501000, 4999000))


def test_second_date_in_other_crs_lands_on_first_grid(tmp_path, utm_tif):
    with rasterio.open(utm_tif) as src:
        t, w, h = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height, *src.bounds)
        out = np.zeros((3, h, w), np.uint16)
        reproject(src.read(), out, src_transform=src.transform, src_crs=src.crs, dst_transform=t,
                  dst_crs="EPSG:4326", resampling=Resampling.bilinear)
    other = write_raster(tmp_path / "date2_wgs84.tif", out, crs="EPSG:4326", transform=t, nodata=0)
    with Scene(utm_tif) as a, Scene(other) as b:
        a.stretch = b.stretch  # same radiometry, so any difference is geometry
        ca, cb = make_pair(a, b, aoi_for_pixels(60, 40, 320, 260), size=128)
    both = ca.valid & cb.valid
    assert both.mean() > 0.6
    diff = np.abs(ca.rgb.astype(int) - cb.rgb.astype(int))[both].mean()
    shifted = np.abs(ca.rgb[:, 4:].astype(int) - cb.rgb[:, :-4].astype(int))[both[:, 4:]].mean()
    assert diff < 0.35 * shifted  # aligned far better than a 4-pixel shift


def test_dates_that_do_not_overlap_are_refused(tmp_path, utm_tif):
    far = type(UTM_TRANSFORM)(10.0, 0.0, 600_000.0, 0.0, -10.0, 5_000_000.0)
    other = write_raster(tmp_path / "far.tif", textured(300, 400), crs="EPSG:32633", transform=far)
    with Scene(utm_tif) as a, Scene(other) as b, pytest.raises(RsappError, match="do not overlap"):
        make_pair(a, b)


def test_unreferenced_pair_needs_equal_sizes(tmp_path, png_file):
    other = write_raster(tmp_path / "other.png", textured(100, 100, dtype="uint8"), driver="PNG")
    with Scene(png_file) as a, Scene(other) as b, pytest.raises(RsappError, match="different sizes"):
        make_pair(a, b)


@pytest.mark.parametrize("aoi,match", [
    ("{not json", "not valid JSON"),
    ('{"type": "Point", "coordinates": [1, 2]}', "polygon"),
    ('{"type": "FeatureCollection", "features": []}', "no geometry"),
    ('{"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}', "not valid GeoJSON|no area"),
    ("[1, 2]", "GeoJSON object"),
])
def test_bad_aoi_geojson(aoi, match):
    with pytest.raises(RsappError, match=match):
        parse_aoi(aoi)


def test_the_picture_of_a_chip_is_the_box_of_its_valid_pixels():
    from rsapp.geo.chips import picture_box

    valid = np.zeros((650, 650), bool)
    valid[:, 75:575] = True  # a 650 × 500 image in its square chip
    assert picture_box(valid) == (0, 650, 75, 575)
    assert picture_box(np.ones((256, 256), bool)) is None  # all picture: no frame
    assert picture_box(np.zeros((256, 256), bool)) is None
    sliver = np.zeros((512, 512), bool)
    sliver[10:12, 500:511] = True  # grown to 64 px a side, inside the chip
    assert picture_box(sliver) == (0, 64, 448, 512)


def test_a_chip_knows_its_picture_and_an_aoi_keeps_the_imagery_around_it(utm_tif):
    """The square chip of a 400 × 300 scene frames it: its picture is the scene's rows. A native chip of an AOI
    inside the scene is all imagery (the surroundings are context for the model), though only the AOI is valid; a
    resampled chip blanks the surroundings, so its picture is the AOI's box."""
    from rsapp.geo.chips import make_detail_chip

    with Scene(utm_tif) as s:
        assert make_detail_chip(s).picture == (50, 350, 0, 400)
        assert make_chip(s, size=100).picture == (12, 88, 0, 100)
        aoi = aoi_for_pixels(100, 130, 300, 170)  # 200 × 40 px
        native = make_detail_chip(s, aoi)
        resampled = make_chip(s, aoi, size=100)
    assert native.picture is None and 0 < native.valid.mean() < 0.5
    rows, cols = np.nonzero(resampled.valid)
    top, bottom, left, right = resampled.picture
    assert top <= rows.min() and bottom > rows.max() and right - left == 100 and bottom - top == 64  # grown
