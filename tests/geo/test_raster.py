import math

import numpy as np
import pytest
from pyproj import Geod

from rsapp.errors import RsappError
from rsapp.geo import Scene
from rsapp.geo.bands import Stretch
from tests.conftest import UTM_TRANSFORM, write_raster

WGS84_A, WGS84_E2 = 6378137.0, 6.69437999014e-3


def test_utm_gsd_matches_geodesic_distance(utm_tif):
    with Scene(utm_tif) as s:
        info = s.info
    # Independent check: geodesic length of the centre pixel's edges, from PROJ's inverse UTM.
    from pyproj import Transformer

    t = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    cx, cy = UTM_TRANSFORM @ (200, 150)
    lon0, lat0 = t.transform(cx, cy)
    lon1, lat1 = t.transform(cx + 10, cy)
    _, _, d = Geod(ellps="WGS84").inv(lon0, lat0, lon1, lat1)
    assert info.gsd_m == pytest.approx(d, rel=0.01)
    assert info.gsd_m == pytest.approx(10.0, rel=0.01)
    assert info.crs == "EPSG:32633"
    assert (info.width, info.height, info.count, info.dtype) == (400, 300, 3, "uint16")


def test_geographic_gsd_converted_at_centre(geo_tif):
    with Scene(geo_tif) as s:
        info = s.info
    lat = math.radians(45.2 - 100 * 1e-4)
    # Lengths of 1e-4° along a parallel and a meridian on the WGS84 ellipsoid (closed forms, not PROJ).
    w = math.sqrt(1 - WGS84_E2 * math.sin(lat) ** 2)
    dx = math.radians(1e-4) * WGS84_A * math.cos(lat) / w
    dy = math.radians(1e-4) * WGS84_A * (1 - WGS84_E2) / w**3
    assert info.gsd_xy_m[0] == pytest.approx(dx, rel=0.01)
    assert info.gsd_xy_m[1] == pytest.approx(dy, rel=0.01)
    assert info.gsd_m == pytest.approx(math.sqrt(dx * dy), rel=0.01)
    w_, s_, e_, n_ = info.bounds_wgs84
    assert (w_, n_) == pytest.approx((15.0, 45.2), abs=1e-9)
    assert (e_, s_) == pytest.approx((15.03, 45.18), abs=1e-9)


def test_unreferenced_image_has_no_gsd_or_bounds(png_file):
    with Scene(png_file) as s:
        assert not s.georeferenced
        assert s.info.gsd_m is None and s.info.bounds_wgs84 is None and s.info.crs is None


@pytest.mark.parametrize("count,names,expected", [
    (7, None, (4, 3, 2)),  # Landsat 8/9 stack
    (13, None, (4, 3, 2)),  # Sentinel-2
    (4, None, (1, 2, 3)),  # RGBN
    (6, None, (3, 2, 1)),  # Landsat TM
    (3, ["blue", "green", "red"], (3, 2, 1)),  # named bands win over conventions
    (6, [f"b ({um} micrometers)" for um in (0.48, 0.56, 0.66, 0.83, 1.65, 2.2)], (3, 2, 1)),
])
def test_display_bands(tmp_path, count, names, expected):
    data = np.ones((count, 8, 8), np.uint16)
    path = write_raster(tmp_path / "b.tif", data, crs="EPSG:32633", transform=UTM_TRANSFORM, descriptions=names)
    with Scene(path) as s:
        assert s.rgb_bands == expected


def test_stretch_ignores_nodata_and_nan():
    band = np.ma.masked_invalid(np.array([[[np.nan, 0.0, 10.0, 20.0], [30.0, 40.0, 50.0, 1e9]]]))
    band[0, 1, 3] = np.ma.masked  # a nodata pixel with an absurd value
    s = Stretch.from_sample(np.ma.concatenate([band, band, band]))
    assert s.lo[0] >= 0 and s.hi[0] <= 50
    rgb, valid = s.apply(np.ma.concatenate([band, band, band]))
    assert rgb.shape == (2, 4, 3) and rgb.dtype == np.uint8
    assert not valid[0, 0] and not valid[1, 3] and valid[0, 1]
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[1, 2, 0] == 255


def test_float_raster_with_nodata_is_stretched(tmp_path):
    data = np.linspace(0, 1, 3 * 64 * 64, dtype=np.float32).reshape(3, 64, 64)
    data[:, :8] = -9999
    path = write_raster(tmp_path / "f.tif", data, crs="EPSG:32633", transform=UTM_TRANSFORM, nodata=-9999)
    with Scene(path) as s:
        rgb, valid = s.overview_rgb(64)
    assert not valid[:8].any() and valid[8:].all()
    assert rgb[8:].max() == 255 and rgb[8:].min() == 0


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"II*\x00" + b"\x00" * 50])
def test_bad_files_raise_clear_errors_naming_the_file_not_the_folder(tmp_path, content):
    folder = tmp_path / "server side" / "upload"
    folder.mkdir(parents=True)
    p = folder / "bad.tif"
    p.write_bytes(content)
    with pytest.raises(RsappError, match="bad.tif") as e:
        Scene(p)
    assert str(tmp_path) not in str(e.value) and "upload" not in str(e.value), e.value


def test_truncated_tiff_is_reported_as_corrupt(tmp_path, utm_tif):
    p = tmp_path / "truncated.tif"
    p.write_bytes(utm_tif.read_bytes()[: utm_tif.stat().st_size // 3])
    with pytest.raises(RsappError, match="corrupt|not an image") as e:
        Scene(p)
    assert str(tmp_path) not in str(e.value)


def test_a_png_that_decodes_to_too_many_pixels_is_refused_before_it_is_read(tmp_path):
    """A decompression bomb: ~100 KB on disk, 108 M px decoded (GDAL decodes PNG whole)."""
    import struct
    import zlib

    from rsapp.errors import RsappError
    from rsapp.geo.raster import open_dataset

    w, h = 12000, 9000
    comp, data, row = zlib.compressobj(9), b"", b"\x00" * (w + 1)
    for _ in range(h):
        data += comp.compress(row)
    data += comp.flush()

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    assert path.stat().st_size < 2_000_000
    with pytest.raises(RsappError, match="M px limit"):
        open_dataset(path)
