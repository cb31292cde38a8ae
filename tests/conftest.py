"""Fixtures: tiny rasters written to a temp dir, in the CRSs the tests need."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"


def write_raster(path: Path, data: np.ndarray, crs=None, transform=None, nodata=None, driver="GTiff",
                 descriptions=None) -> Path:
    """(bands, h, w) array → raster file; no crs/transform gives an unreferenced image."""
    count, h, w = data.shape
    profile = dict(driver=driver, width=w, height=h, count=count, dtype=data.dtype.name)
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
    return path


def textured(h: int, w: int, bands: int = 3, seed: int = 0, dtype="uint16") -> np.ndarray:
    """Smooth random texture with structure, so warps and stretches have something to align."""
    rng = np.random.default_rng(seed)
    base = rng.random((bands, h // 8 + 2, w // 8 + 2))
    up = np.kron(base, np.ones((8, 8)))[:, :h, :w]
    scale, offset = (200, 20) if np.dtype(dtype) == np.uint8 else (3000, 500)
    return (up * scale + offset).astype(dtype)


# A UTM 33N raster at 10 m near 45°N and an EPSG:4326 raster at 1e-4° around the same place.
UTM_TRANSFORM = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_000_000.0)
GEO_TRANSFORM = Affine(1e-4, 0.0, 15.0, 0.0, -1e-4, 45.2)


@pytest.fixture
def utm_tif(tmp_path) -> Path:
    return write_raster(tmp_path / "utm.tif", textured(300, 400), crs="EPSG:32633", transform=UTM_TRANSFORM)


@pytest.fixture
def geo_tif(tmp_path) -> Path:
    return write_raster(tmp_path / "geo.tif", textured(200, 300, seed=1), crs="EPSG:4326", transform=GEO_TRANSFORM)


@pytest.fixture
def png_file(tmp_path) -> Path:
    return write_raster(tmp_path / "plain.png", textured(120, 160, dtype="uint8"), driver="PNG")
REAL = ROOT.parent / "shared" / "data" / "real"  # ../shared/data/real (CI has a copy beside the clone)
