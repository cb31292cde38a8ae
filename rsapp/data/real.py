"""Real labelled imagery mixed into training, so the model is not blind to real sensors (issue #4).

Sources (../shared/data/real, see its SOURCES.md; RSAPP_REAL_DATA overrides the folder):
- LEVIR-CD (3 pairs, 0.5 m): two-date building change masks → change [SEG];
- SpaceNet Atlanta (panchromatic, 0.5 m, 43 footprints): [SEG] buildings, [VG] buildings;
- SpaceNet Las Vegas roads (one band, ~0.3 m, road raster): [SEG] roads;
- sen2ships (6 Sentinel-2 ports, 10 m, 152 vessels with masks): [VG] ships, [SEG] ships.
Held out for the real-imagery scores (never loaded here): the Las Vegas buildings scene and the Taizhou pair in
sample_data/.

Each sample is a random crop, resampled to a GSD 1–4× the native one (never finer), with a random flip and
quarter turn, described with the same codecs as the synthetic corpus. Its dense target marks only the class the
labels know; every other class is "unknown" (IGNORE) so the auxiliary loss does not teach false negatives.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from PIL import Image
from rasterio.features import rasterize

from rsapp.data.samples import SEG_GRID, Sample, cell_grid
from rsapp.data.world import CLASS_INDEX, CLASSES
from rsapp.geo.bands import Stretch
from rsapp.tasks.boxes import boxes_to_text
from rsapp.tasks.descriptors import mask_to_text

IGNORE = 255  # dense-target value of a class whose presence the labels do not say
MAX_FACTOR = 4.0  # coarsest resampling, × the native GSD
MIN_INSIDE = 0.5  # an object cut by the crop counts when this share of it is inside


def real_root() -> Path:
    return Path(os.environ.get("RSAPP_REAL_DATA", Path(__file__).resolve().parents[3] / "shared" / "data" / "real"))


@dataclass
class Source:
    """One labelled raster: RGB, per-pixel instance ids (0 = none) or a class mask, the class, the native GSD."""

    name: str
    rgb: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) int32 instance ids, or 0/1 for a class without instances
    kind: str  # the class the labels mark
    gsd_m: float
    instances: bool
    after: np.ndarray | None = None  # second date (change pairs); labels are then the change mask


def _grey_rgb(path: Path) -> tuple[np.ndarray, rasterio.Affine, object]:
    """One band (0 = no data), stretched as the app stretches scenes, as grey RGB."""
    with rasterio.open(path) as src:
        band = np.ma.masked_equal(src.read(1, masked=False), 0)[None]
        grey, _ = Stretch.from_sample(band).apply(band)
        return np.repeat(grey, 3, axis=2), src.transform, src.crs


def _coco_rle(counts: list[int], h: int, w: int) -> np.ndarray:
    """Uncompressed COCO RLE (column-major runs, starting with zeros) → (h, w) 0/1."""
    flat = np.zeros(h * w, np.uint8)
    pos, value = 0, 0
    for n in counts:
        flat[pos:pos + n] = value
        pos, value = pos + n, 1 - value
    return flat.reshape(w, h).T


@lru_cache(maxsize=1)
def load_sources() -> tuple[Source, ...]:
    root = real_root()
    if not root.is_dir():
        raise FileNotFoundError(f"real training data not found at {root} (set RSAPP_REAL_DATA)")
    out = []
    for tile in sorted((root / "change" / "levir-cd-full-tiles" / "label").glob("*.png")):
        a = np.asarray(Image.open(tile.parents[1] / "A" / tile.name).convert("RGB"))
        b = np.asarray(Image.open(tile.parents[1] / "B" / tile.name).convert("RGB"))
        change = (np.asarray(Image.open(tile)) > 0).astype(np.int32)
        out.append(Source(f"levir-cd {tile.stem}", a, change, "building", 0.5, False, after=b))
    atl = root / "buildings" / "spacenet-atlanta-pan"
    rgb, transform, crs = _grey_rgb(atl / "sample_geotiff.tif")
    shapes = gpd.read_file(atl / "geotiff_labels.geojson").to_crs(crs).geometry
    ids = rasterize(((g, i + 1) for i, g in enumerate(shapes) if g is not None and not g.is_empty),
                    out_shape=rgb.shape[:2], transform=transform, dtype="int32")
    out.append(Source("spacenet atlanta", rgb, ids, "building", 0.5, True))
    roads = root / "roads" / "spacenet-vegas"
    rgb, _, _ = _grey_rgb(roads / "road_mask_input.tif")
    with rasterio.open(roads / "sample_road_raster_mask.tif") as src:
        mask = (src.read(1) > 0).astype(np.int32)
    out.append(Source("spacenet vegas roads", rgb, mask, "road", 0.3, False))
    for coco_path in sorted((root / "ships" / "sen2ships").rglob("*_coco.json")):
        coco = json.loads(coco_path.read_text())
        folder = coco_path.parent if coco_path.parent.name != "annotations" else coco_path.parent.parent
        image = next(p for p in sorted(folder.iterdir()) if p.suffix in (".png", ".jpg") and "True_color" in p.name)
        rgb = np.asarray(Image.open(image).convert("RGB"))
        h, w = rgb.shape[:2]
        ids = np.zeros((h, w), np.int32)
        for i, ann in enumerate(coco["annotations"]):  # every vessel; Athens' image_id is broken (SOURCES.md)
            seg = ann.get("segmentation")
            if isinstance(seg, dict) and list(seg.get("size", [])) == [h, w]:
                ids[_coco_rle(seg["counts"], h, w) > 0] = i + 1
            else:
                x, y, bw, bh = (int(round(v)) for v in ann["bbox"])
                ids[y:y + bh, x:x + bw] = i + 1
        out.append(Source(f"sen2ships {folder.name}", rgb, ids, "ship", 10.0, True))
    return tuple(out)


def _augment(arrays: list[np.ndarray], rng) -> list[np.ndarray]:
    k, flip = int(rng.integers(4)), bool(rng.integers(2))
    out = [np.rot90(a, k) for a in arrays]
    return [np.ascontiguousarray(a[:, ::-1] if flip else a) for a in out]


def _crop(src: Source, rng, chip_px: int):
    """A random window resampled to chip_px: (images, labels on the chip grid, GSD)."""
    h, w = src.labels.shape
    largest = min(h, w) / chip_px
    factor = float(np.exp(rng.uniform(0, np.log(max(1.0, min(MAX_FACTOR, largest))))))
    side = int(round(chip_px * factor))
    side = min(side, h, w)
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    win = (slice(y, y + side), slice(x, x + side))
    images = [src.rgb[win]] + ([src.after[win]] if src.after is not None else [])
    images = [np.asarray(Image.fromarray(im).resize((chip_px, chip_px), Image.BOX)) for im in images]
    labels = np.asarray(Image.fromarray(src.labels[win]).resize((chip_px, chip_px), Image.NEAREST))
    *images, labels = _augment(images + [labels], rng)
    return images, labels, src.gsd_m * side / chip_px, src.labels[win]


def _dense(kind: str, binary: np.ndarray) -> np.ndarray:
    d = np.full((len(CLASSES), SEG_GRID, SEG_GRID), IGNORE, np.uint8)
    d[CLASS_INDEX[kind]] = cell_grid(binary)
    return d


def _boxes(labels: np.ndarray, window: np.ndarray, full_area: np.ndarray) -> list[tuple[tuple[float, ...], int]]:
    """(box in chip px, chip-pixel area) of each instance with at least MIN_INSIDE of it inside the crop."""
    inside = np.bincount(window.ravel(), minlength=len(full_area))
    out = []
    for i in np.unique(labels[labels > 0]):
        if inside[i] < MIN_INSIDE * full_area[i]:
            continue
        ys, xs = np.nonzero(labels == i)
        out.append(((float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)), len(xs)))
    return out


def real_sample(rng, chip_px: int, pairs: bool) -> Sample:
    """One real sample: a change [SEG] from LEVIR-CD when pairs, else a single-image [SEG] or [VG]."""
    sources = [s for s in load_sources() if (s.after is not None) == pairs]
    src = sources[int(rng.integers(len(sources)))]
    for _ in range(10):
        images, labels, gsd, window = _crop(src, rng, chip_px)
        binary = (labels > 0).astype(np.uint8)
        if not binary.any() and rng.random() < 0.7:
            continue  # mostly crops that show the class (or the change)
        if pairs:
            grid = cell_grid(binary)
            ignore = np.full((len(CLASSES), SEG_GRID, SEG_GRID), IGNORE, np.uint8)
            return Sample(images, "[SEG]", "segment the changes", mask_to_text(grid, ["others", src.kind]), gsd,
                          "change mask", {"grid": grid, "label": src.kind, "mask": binary}, [ignore, ignore])
        noun = {"building": ("building", "buildings"), "road": ("road", "roads"), "ship": ("ship", "ships")}[src.kind]
        if src.instances and binary.any() and rng.random() < 0.5:
            boxes = _boxes(labels, window, np.bincount(src.labels.ravel()))
            if not boxes:
                continue
            if len(boxes) <= 6 and rng.random() < 0.5:
                phrase, picked = f"all {noun[1]}", sorted(b for b, _ in boxes)
            elif len(boxes) == 1:
                phrase, picked = f"the {noun[0]}", [boxes[0][0]]
            else:
                phrase, picked = f"the largest {noun[0]}", [max(boxes, key=lambda b: b[1])[0]]
            c = CLASS_INDEX[src.kind]
            return Sample(images, "[VG]", phrase, boxes_to_text(picked, chip_px), gsd, "grounding",
                          {"boxes": picked}, [_dense(src.kind, binary)], [[(c, *b) for b, _ in boxes]], (c,))
        grid = cell_grid(binary)
        return Sample(images, "[SEG]", f"segment the {noun[1]}", mask_to_text(grid, ["others", src.kind]), gsd,
                      "segmentation", {"grid": grid, "label": src.kind, "mask": binary}, [_dense(src.kind, binary)])
    return real_sample(rng, chip_px, pairs)
