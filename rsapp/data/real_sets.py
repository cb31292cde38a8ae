"""The real labelled sets of shared/data/real, each with a fixed train / held-out split (model card, issue #21).

Every set loads into `Raster` records (RGB, per-pixel class targets or a change mask, native GSD, split). The
held-out part never trains; `rsapp.evaluate` scores it. Splits are by whole image where a set has several, and
by a fixed strip of the image where it has one (named in SPLITS). The Las Vegas buildings scene and the Taizhou
pair of sample_data/ are held out entirely (the scenes every newcomer sees first).
"""

from __future__ import annotations

import csv
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from PIL import Image
from rasterio.features import rasterize
from scipy import ndimage

from rsapp.geo.bands import Stretch
from rsapp.geo.scene import display_ready
from rsapp.tasks.vocabulary import COVER_SCENES, DENSE_CLASSES, SCENE_CLASSES, SCENE_HOLDS

IGNORE = 255  # target value where the labels do not say
NONE_OF_KNOWN = 254  # dense target: none of the classes this set labels (its known classes are 0 there)
DENSE_INDEX = {name: i for i, name in enumerate(DENSE_CLASSES)}

# How each set is split (for the model card and `evaluate --real`).
SPLITS = {
    "ucmerced": "images 60–79 of every class held out (420), 0–59 train (1,260)",
    "dubai": "image_part_009 of every tile group held out (7), parts 001–008 train",
    "spacenet-atlanta": "columns ≥ 600 of the 900 px scene held out, the rest trains",
    "spacenet-vegas-roads": "columns ≥ 900 of the 1300 px scene held out",
    "deepglobe": "tile 388 held out, 104 / 113 / 343 train",
    "isprs": "the val-* panels held out, train-* train",
    "sen2ships": "Honolulu held out, the other five ports train",
    "levir-cd": "test_1 held out, test_4 / test_5 train",
    "xbd-buildings": "building footprints of the xBD Harvey images (both dates): pair 00000007 held out",
    "beijing": "pair B held out, pair A trains",
    "xbd-unchanged": "xBD Harvey's pre / post pairs as real pairs without building change (same footprints; flood, "
                     "colour and view angle differ): pair 00000007 held out (scored by its false alarms), the rest "
                     "train the second change head",
    "landsat-nanjing": "trains (sparse labels); the Taizhou pair in sample_data is held out",
    "vegas-buildings": "evaluation only (the bundled sample)",
    "neon-trees": "OSBS_029 held out (61 crowns); YELL, SOAP, SJER and BLAN train (BLAN's 4 boxes are DeepForest's "
                  "predictions, not hand labels)",
    "dior-rsvg": "evaluation only, too small to split: one DIOR image and one DIOR-RSVG phrase with its box",
    "rsicd": "evaluation only, too small to split: one RSICD image with five captions",
    "levir-cc": "evaluation only, too small to split: one LEVIR-CC pair with five change captions",
    "dubai-cover": "land-cover scenes ([CLS] 'bare land', 'water'): 256 px crops of the Dubai tiles that one class "
                   "covers to 80 %, split with their tiles",
}


def real_root() -> Path:
    return Path(os.environ.get("RSAPP_REAL_DATA", Path(__file__).resolve().parents[3] / "shared" / "data" / "real"))


def sample_root() -> Path:
    return Path(__file__).resolve().parents[2] / "sample_data"


@dataclass
class Raster:
    """One labelled image (or two-date pair) of a real set."""

    set: str
    name: str
    rgb: np.ndarray  # (H, W, 3) uint8
    gsd_m: float | None  # None where the set does not say
    held_out: bool
    dense: np.ndarray | None = None  # (H, W) uint8 class index into DENSE_CLASSES, IGNORE where unknown
    known: tuple[str, ...] = ()  # dense classes whose presence / absence the labels say everywhere they are set
    after: np.ndarray | None = None  # second date
    change: np.ndarray | None = None  # (H, W) uint8 1 changed, 0 not, IGNORE unlabelled
    scene: str | None = None  # scene class (SCENE_CLASSES; COVER_SCENES for cover_scenes' crops)
    captions: list[str] = field(default_factory=list)
    qa: list[tuple[str, str]] = field(default_factory=list)
    instances: np.ndarray | None = None  # (H, W) int32: 1.. one id per labelled instance of instance_class, 0 none
    instance_class: str | None = None  # the dense class whose instances are labelled (building, ship)
    referred: tuple[str, tuple[float, float, float, float]] | None = None  # a phrase, the box it names (x0 y0 x1 y1)


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _stretched(path: Path, bands=(1, 2, 3)) -> tuple[np.ndarray, object, object]:
    """A raster's bands stretched as the app stretches scenes (0 = no data; an 8-bit true-colour file shown as it
    is): (H, W, 3) uint8, transform, crs."""
    with rasterio.open(path) as src:
        idx = [b for b in bands if b <= src.count] or [1]
        data = np.ma.masked_equal(src.read(idx), 0)
        stretch = Stretch.identity_uint8(len(idx)) if display_ready(src) else Stretch.from_sample(data)
        rgb, _ = stretch.apply(data)
        if rgb.shape[2] == 1:
            rgb = np.repeat(rgb, 3, axis=2)
        return rgb, src.transform, src.crs


def _split_cols(r: Raster, col: int) -> list[Raster]:
    """A one-image set: a train part left of `col`, a held-out part right of it."""
    parts = []
    for held, sl in ((False, np.s_[:, :col]), (True, np.s_[:, col:])):
        parts.append(Raster(r.set, f"{r.name} {'held-out' if held else 'train'}", r.rgb[sl], r.gsd_m, held,
                            r.dense[sl] if r.dense is not None else None, r.known,
                            instances=r.instances[sl] if r.instances is not None else None,
                            instance_class=r.instance_class))
    return parts


def ucm_held_out(image: str | Path) -> bool:
    """Whether a UC Merced image ('images/harbor/harbor61.jpg') is in the held-out split (its number 60–79)."""
    return int("".join(ch for ch in Path(image).stem if ch.isdigit())[-2:]) >= 60


def load_ucmerced(root: Path) -> list[Raster]:
    base = root / "scenes" / "ucmerced"
    captions = {Path(e["image"]).name: e["captions"] for e in json.loads((base / "captions.json").read_text())}
    vqa: dict[str, list[tuple[str, str]]] = {}
    for e in json.loads((base / "vqa.json").read_text()):
        vqa.setdefault(Path(e["image"]).name, []).append((e["question"], str(e["answer"])))
    out = []
    for folder in sorted((base / "images").iterdir()):
        for path in sorted(folder.iterdir()):
            out.append(Raster("ucmerced", path.stem, _rgb(path), 0.3048, ucm_held_out(path),
                              scene=SCENE_CLASSES_OF_UCM[folder.name],
                              captions=[c.replace(" .", ".").strip() for c in captions.get(path.name, [])],
                              qa=vqa.get(path.name, [])))
    return out


# UC Merced folder names → the documented label words.
SCENE_CLASSES_OF_UCM = {
    "agricultural": "agricultural", "airplane": "airplane", "baseballdiamond": "baseball diamond",
    "beach": "beach", "buildings": "buildings", "chaparral": "chaparral", "denseresidential": "dense residential",
    "forest": "forest", "freeway": "freeway", "golfcourse": "golf course", "harbor": "harbor",
    "intersection": "intersection", "mediumresidential": "medium residential", "mobilehomepark": "mobile home park",
    "overpass": "overpass", "parkinglot": "parking lot", "river": "river", "runway": "runway",
    "sparseresidential": "sparse residential", "storagetanks": "storage tanks", "tenniscourt": "tennis court",
}


DUBAI_COLOURS = {(60, 16, 152): "building", (132, 41, 246): "bare land", (110, 193, 228): "road",
                 (254, 221, 58): "vegetation", (226, 169, 41): "water"}


def _colour_classes(mask: np.ndarray, colours: dict[tuple[int, int, int], str]) -> np.ndarray:
    out = np.full(mask.shape[:2], IGNORE, np.uint8)
    for colour, name in colours.items():
        out[(mask == colour).all(-1)] = DENSE_INDEX[name]
    return out


def load_dubai(root: Path) -> list[Raster]:
    out = []
    for group in sorted((root / "segmentation" / "dubai-landcover").glob("tile*")):
        for path in sorted((group / "images").glob("*.jpg")):
            dense = _colour_classes(_rgb(group / "masks" / f"{path.stem}.png"), DUBAI_COLOURS)
            out.append(Raster("dubai", f"{group.name}/{path.stem}", _rgb(path), None, path.stem.endswith("009"),
                              dense, tuple(DUBAI_COLOURS.values()), **building_instances(dense)))
    return out


# ISPRS colours: impervious surfaces count as road (paved ground), low vegetation and trees as vegetation.
ISPRS_COLOURS = {(255, 255, 255): "road", (0, 0, 255): "building", (0, 255, 255): "vegetation",
                 (0, 255, 0): "vegetation", (255, 255, 0): "car"}
NZ_COLOURS = {(255, 255, 255): "building"}


def load_isprs(root: Path) -> list[Raster]:
    out = []
    for folder in sorted((root / "segmentation" / "potsdam-vaihingen-panels").iterdir()):
        if not folder.is_dir() or folder.name == "PotsdamIRRG":  # IRRG is false colour: not what users load
            continue
        for path in sorted(folder.glob("*.png")):
            panel = _rgb(path)
            grey = (panel == 128).all(-1).all(0)  # the separator columns
            cols = np.nonzero(~grey)[0]
            split = cols[np.argmax(np.diff(cols) > 1)] + 1 if (np.diff(cols) > 1).any() else panel.shape[1] // 2
            image, label = panel[:, :split], panel[:, split:]
            label = label[:, (label != 128).any(-1).any(0)]
            w = min(image.shape[1], label.shape[1])
            colours = NZ_COLOURS if folder.name == "NZ32km2" else ISPRS_COLOURS
            dense = _colour_classes(label[:, :w], colours)
            if folder.name == "NZ32km2":
                dense[(label[:, :w] == 0).all(-1)] = NONE_OF_KNOWN  # background: not building
            known = tuple(sorted(set(colours.values())))
            gsd = 0.09 if folder.name == "Vaihingen" else 0.05 if folder.name.startswith("Potsdam") else 0.075
            out.append(Raster("isprs", f"{folder.name}/{path.stem}", np.ascontiguousarray(image[:, :w]), gsd,
                              path.stem.startswith("val"), dense, known, **building_instances(dense)))
    return out


def footprint_ids(shapes, shape: tuple[int, int], transform) -> np.ndarray:
    """Polygons burnt as instance ids 1..n (int32), one per polygon."""
    parts = [(g, i) for i, g in enumerate((g for g in shapes if g is not None and not g.is_empty), start=1)]
    if not parts:
        return np.zeros(shape, np.int32)
    return rasterize(parts, out_shape=shape, transform=transform, dtype="int32")


def load_spacenet(root: Path) -> list[Raster]:
    atl = root / "buildings" / "spacenet-atlanta-pan"
    rgb, transform, crs = _stretched(atl / "sample_geotiff.tif", (1,))
    shapes = gpd.read_file(atl / "geotiff_labels.geojson").to_crs(crs).geometry
    ids = footprint_ids(shapes, rgb.shape[:2], transform)
    dense = np.where(ids > 0, DENSE_INDEX["building"], NONE_OF_KNOWN).astype(np.uint8)
    out = _split_cols(Raster("spacenet-atlanta", "atlanta", rgb, 0.5, False, dense, ("building",), instances=ids,
                             instance_class="building"), 600)
    roads = root / "roads" / "spacenet-vegas"
    rgb, _, _ = _stretched(roads / "road_mask_input.tif", (1,))
    with rasterio.open(roads / "sample_road_raster_mask.tif") as src:
        road = src.read(1) > 0
    dense = np.where(road, DENSE_INDEX["road"], NONE_OF_KNOWN).astype(np.uint8)
    out += _split_cols(Raster("spacenet-vegas-roads", "vegas roads", rgb, 0.3, False, dense, ("road",)), 900)
    return out


def load_deepglobe(root: Path) -> list[Raster]:
    out = []
    for path in sorted((root / "roads" / "deepglobe").glob("*_sat.jpg")):
        tile = path.stem.split("_")[0]
        road = _rgb(path.with_name(f"{tile}_mask.png")).mean(-1) > 127
        dense = np.where(road, DENSE_INDEX["road"], NONE_OF_KNOWN).astype(np.uint8)
        out.append(Raster("deepglobe", tile, _rgb(path), 0.5, tile == "388", dense, ("road",)))
    return out


def load_ships(root: Path) -> list[Raster]:
    out = []
    for coco_path in sorted((root / "ships" / "sen2ships").rglob("*_coco.json")):
        coco = json.loads(coco_path.read_text())
        folder = coco_path.parent if coco_path.parent.name != "annotations" else coco_path.parent.parent
        image = next(p for p in sorted(folder.iterdir()) if p.suffix in (".png", ".jpg") and "True_color" in p.name)
        rgb = _rgb(image)
        h, w = rgb.shape[:2]
        ids = np.zeros((h, w), np.int32)
        for i, ann in enumerate(coco["annotations"], start=1):
            x, y, bw, bh = (int(round(v)) for v in ann["bbox"])
            ids[y:y + max(bh, 1), x:x + max(bw, 1)] = i
        dense = np.where(ids > 0, DENSE_INDEX["ship"], NONE_OF_KNOWN).astype(np.uint8)
        out.append(Raster("sen2ships", folder.name, rgb, 10.0, folder.name == "honolulu", dense, ("ship",),
                          instances=ids, instance_class="ship"))
    return out


def crown_ids(boxes: list[tuple[float, float, float, float]], shape: tuple[int, int]) -> np.ndarray:
    """Tree-crown boxes (x0, y0, x1, y1) as instance ids 1..n (int32): the ellipse each box holds, larger crowns
    first so a small crown overlapping a large one keeps its own pixels."""
    ids = np.zeros(shape, np.int32)
    order = sorted(range(len(boxes)), key=lambda i: -(boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]))
    for i in order:
        x0, y0, x1, y1 = boxes[i]
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, max((x1 - x0) / 2, 1.0), max((y1 - y0) / 2, 1.0)
        r0, c0 = max(int(cy - ry), 0), max(int(cx - rx), 0)  # the pixels of the box only
        rows, cols = np.ogrid[r0:min(int(cy + ry) + 1, shape[0]), c0:min(int(cx + rx) + 1, shape[1])]
        inside = ((cols + 0.5 - cx) / rx) ** 2 + ((rows + 0.5 - cy) / ry) ** 2 <= 1.0
        ids[r0:r0 + inside.shape[0], c0:c0 + inside.shape[1]][inside] = i + 1
    return ids


def _voc_boxes(path: Path) -> list[tuple[float, ...]]:
    return [tuple(float(o.find(f"bndbox/{k}").text) for k in ("xmin", "ymin", "xmax", "ymax"))
            for o in ET.parse(path).getroot().iter("object")]


def _csv_boxes(path: Path) -> list[tuple[float, ...]]:
    with open(path, newline="") as f:  # by column name: the SJER file orders them xmin, xmax, ymin, ymax
        return [tuple(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")) for row in csv.DictReader(f)]


def load_neon_trees(root: Path) -> list[Raster]:
    """NEON airborne 0.1 m crops with tree-crown boxes: instances of vegetation (trees), no per-pixel classes (the
    ground between crowns is unlabelled: grass is vegetation too)."""
    folder = root / "boxes" / "neon-trees"
    out = []
    for image in sorted(p for p in folder.iterdir() if p.suffix in (".tif", ".png", ".jpg")):
        xml = image.with_suffix(".xml")
        boxes = _voc_boxes(xml) if xml.exists() else [b for c in sorted(folder.glob(f"{image.stem}_*.csv"))
                                                      for b in _csv_boxes(c)]
        rgb = _rgb(image)
        out.append(Raster("neon-trees", image.stem, rgb, 0.1, image.stem == "OSBS_029",
                          instances=crown_ids(boxes, rgb.shape[:2]), instance_class="vegetation"))
    return out


def touching_split(mask: np.ndarray, erode: int = 2) -> np.ndarray:
    """Instance ids of a footprint mask whose neighbouring footprints may touch: the regions left after eroding
    by `erode` px (a contact thinner than 2 × erode parts), grown back over the mask (int32, 0 none)."""
    cores, _ = ndimage.label(ndimage.binary_erosion(mask, iterations=erode))
    _, (iy, ix) = ndimage.distance_transform_edt(cores == 0, return_indices=True)
    return np.where(mask, cores[iy, ix], 0).astype(np.int32)


def building_instances(dense: np.ndarray) -> dict:
    """Raster fields for the building instances of a land-cover mask: its building regions, touching ones split
    (these sets draw no footprints, so a terrace drawn as one region stays one)."""
    return {"instances": touching_split(dense == DENSE_INDEX["building"]), "instance_class": "building"}


def load_xbd(root: Path) -> list[Raster]:
    """xBD Hurricane Harvey (Maxar, ~0.5–0.8 m): building footprints of each date as [SEG] buildings, and the two
    dates of each place as a pair without building change (xbd_unchanged). Its damage classes are not building
    change (a flooded house is still there)."""
    base = root / "change" / "xbd-harvey"
    out = []
    for path in sorted((base / "images").glob("*.png")):
        mask = np.asarray(Image.open(base / "masks" / path.name))
        dense = np.where(mask > 0, DENSE_INDEX["building"], NONE_OF_KNOWN).astype(np.uint8)
        ids = touching_split(mask > 0)
        out.append(Raster("xbd-buildings", path.stem, _rgb(path), 0.6, "00000007" in path.stem, dense,
                          ("building",), instances=ids, instance_class="building"))
    return out + xbd_unchanged(out)


def xbd_unchanged(dates: list[Raster]) -> list[Raster]:
    """xBD Harvey's two dates of each place (load_xbd's rasters, 'hurricane-harvey_<id>_pre_disaster' / '_post_')
    as a pair without building change: the footprints are the same on both dates (they differ on under 0.02 % of
    the pixels, left unlabelled), while a flood, colour and the view angle differ. Every pixel is 'no change'
    (LEVIR-CD's sense: buildings only); its GSD is scored with xbd-buildings."""
    by_place: dict[str, dict[str, Raster]] = {}
    for r in dates:
        _, place, date, _ = r.name.split("_")
        by_place.setdefault(place, {})[date] = r
    out = []
    for place, d in sorted(by_place.items()):
        pre, post = d["pre"], d["post"]
        change = np.where(pre.dense == post.dense, 0, IGNORE).astype(np.uint8)
        out.append(Raster("xbd-unchanged", place, pre.rgb, None, pre.held_out, after=post.rgb, change=change))
    return out


def load_change(root: Path) -> list[Raster]:
    out = []
    levir = root / "change" / "levir-cd-full-tiles"
    for label in sorted((levir / "label").glob("*.png")):
        change = (np.asarray(Image.open(label).convert("L")) > 127).astype(np.uint8)
        out.append(Raster("levir-cd", label.stem, _rgb(levir / "A" / label.name), 0.5, label.stem == "test_1",
                          after=_rgb(levir / "B" / label.name), change=change))
    beijing = root / "change" / "beijing-optical"
    for pair in ("A", "B"):
        change = (np.asarray(Image.open(beijing / f"beijing_{pair}_gt_bin.png").convert("L")) > 127).astype(np.uint8)
        out.append(Raster("beijing", pair, _rgb(beijing / f"beijing_{pair}_1.jpg"), None, pair == "B",
                          after=_rgb(beijing / f"beijing_{pair}_2.jpg"), change=change))
    nanjing = root / "change" / "landsat-taizhou-nanjing" / "Nanjing"
    dates = sorted(p for p in nanjing.iterdir() if p.suffix == "" and p.with_suffix(".hdr").exists())
    if len(dates) == 2:
        before, _, _ = _stretched(dates[0], (3, 2, 1))
        after, _, _ = _stretched(dates[1], (3, 2, 1))
        change = np.full(before.shape[:2], IGNORE, np.uint8)
        change[np.asarray(Image.open(nanjing / "unchanged.bmp").convert("L")) > 127] = 0
        change[np.asarray(Image.open(nanjing / "change.bmp").convert("L")) > 127] = 1
        out.append(Raster("landsat-nanjing", "nanjing", before, 30.0, False, after=after, change=change))
    return out


# Sets of one example each: evaluation only (asked through the analyst by `evaluate --real`)
SINGLE_EXAMPLE_SETS = ("dior-rsvg", "rsicd", "levir-cc")


def load_single_examples(root: Path) -> list[Raster]:
    """The sets of one example each, too small to split, so evaluation only (held out): DIOR-RSVG's phrase and box
    (grounding), RSICD's captioned image, LEVIR-CC's captioned change pair. Their GSD is not given."""
    out = []
    dior = root / "grounding" / "dior-rsvg-golf"
    for xml in sorted(dior.glob("*_rsvg.xml")):
        tree = ET.parse(xml)
        obj = tree.find("object")
        box = tuple(float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
        out.append(Raster("dior-rsvg", xml.stem.removesuffix("_rsvg"), _rgb(dior / tree.findtext("filename")), None,
                          True, referred=(obj.findtext("description").strip(), box)))
    rsicd = root / "captions" / "rsicd-stadium"
    for line in sorted(rsicd.glob("*_captions.jsonl")):
        for item in map(json.loads, line.read_text().splitlines()):
            image = rsicd / Path(item["filename"]).name
            out.append(Raster("rsicd", image.stem, _rgb(image), None, True, captions=list(item["captions"])))
    levir_cc = root / "change" / "levir-cc-caption"
    if (levir_cc / "captions.txt").exists():
        captions = [" ".join(w for w in words if w not in ("<START>", "<END>"))
                    for words in json.loads((levir_cc / "captions.txt").read_text())]
        for before in sorted((levir_cc / "A").glob("*.png")):
            out.append(Raster("levir-cc", before.stem, _rgb(before), None, True,
                              after=_rgb(levir_cc / "B" / before.name), captions=captions))
    return out


def load_samples() -> list[Raster]:
    """The bundled samples as held-out sets: Las Vegas buildings and the Taizhou change pair."""
    root = sample_root()
    rgb, transform, crs = _stretched(root / "vegas_buildings_0.3m.tif")
    # SpaceNet labels three classes here, one file each; its tree crowns are not a class of the dense map
    buildings, roads = (gpd.read_file(root / f"vegas_{name}.geojson").to_crs(crs).geometry
                        for name in ("buildings", "roads"))
    dense = np.full(rgb.shape[:2], NONE_OF_KNOWN, np.uint8)
    dense[rasterize(((g, 1) for g in roads), out_shape=rgb.shape[:2], transform=transform) > 0] = DENSE_INDEX["road"]
    ids = footprint_ids(buildings, rgb.shape[:2], transform)
    dense[ids > 0] = DENSE_INDEX["building"]  # buildings last: they win where a road polygon overlaps them
    out = [Raster("vegas-buildings", "vegas", rgb, 0.27, True, dense, ("building", "road"), instances=ids,
                  instance_class="building")]
    before, _, _ = _stretched(root / "taizhou_2000_30m.tif", (3, 2, 1))
    after, _, _ = _stretched(root / "taizhou_2003_30m.tif", (3, 2, 1))
    with rasterio.open(root / "taizhou_change_labels.tif") as src:
        lab = src.read(1)
    change = np.select([lab == 1, lab == 2], [1, 0], IGNORE).astype(np.uint8)
    out.append(Raster("landsat-taizhou", "taizhou", before, 30.0, True, after=after, change=change))
    return out


LOADERS = (load_ucmerced, load_dubai, load_isprs, load_spacenet, load_deepglobe, load_ships, load_xbd, load_change,
           load_neon_trees, load_single_examples)
# sets of pairs without change: only the change heads that ask for them train on them (ChangeRun.unchanged_pairs)
UNCHANGED_SETS = ("xbd-unchanged",)


@lru_cache(maxsize=1)
def load_all() -> tuple[Raster, ...]:
    root = real_root()
    if not root.is_dir():
        raise FileNotFoundError(f"real data not found at {root} (set RSAPP_REAL_DATA)")
    return tuple(r for loader in LOADERS for r in loader(root)) + tuple(load_samples())


def split(held_out: bool) -> list[Raster]:
    return [r for r in load_all() if r.held_out == held_out]


# A crop is a land-cover scene when one class covers at least this share of it (a desert, open water).
COVER_SCENE_SHARE = 0.8


def covered_windows(r: Raster, names: list[str], size: int, stride: int, share: float):
    """(y, x, name) of every `size` px window of a labelled raster (on a `stride` grid) that the class `name` covers
    to at least `share`, for each of `names` in turn."""
    h, w = r.rgb.shape[:2]
    for y in range(0, h - size + 1, stride):
        for x in range(0, w - size + 1, stride):
            crop = r.dense[y:y + size, x:x + size]
            for name in names:
                if (crop == DENSE_INDEX[name]).mean() >= share:
                    yield y, x, name


def cover_scenes(rasters: list[Raster], size: int = 256, stride: int = 128) -> list[Raster]:
    """The land-cover scenes of labelled rasters: every `size` px crop (on a `stride` grid) that one class of
    COVER_SCENES covers to COVER_SCENE_SHARE, as a scene of that name (set "<set>-cover", same split)."""
    out = []
    for r in rasters:
        names = [n for n in COVER_SCENES if n in r.known] if r.dense is not None else []
        for y, x, name in covered_windows(r, names, size, stride, COVER_SCENE_SHARE) if names else ():
            out.append(Raster(f"{r.set}-cover", f"{r.name}@{y},{x}", r.rgb[y:y + size, x:x + size], r.gsd_m,
                              r.held_out, scene=name))
    return out


# Dense classes a UC Merced scene class rules out anywhere in its scenes (a forest holds no building; a parking lot,
# a dense residential block or a harbour no bare land). Stage A never saw these collections' fields, shrubland or
# lawns, and painted them: on held-out UC Merced scenes 60 % of a dense residential block was "bare land" and 51 % of
# a baseball diamond "water". Asphalt scenes (an airport, a freeway, a parking lot) rule water out only beside scenes
# that hold water (SCENE_HOLDS): alone, that took even the dark ponds away (docs/EXPERIMENTS.md, the dense head
# refitted).
SCENE_RULES_OUT = {
    "agricultural": ("building", "water", "car", "ship"), "chaparral": ("building", "water", "road", "car", "ship"),
    "forest": ("building", "car", "ship"), "baseball diamond": ("water", "ship"), "airplane": ("water", "ship"),
    "runway": ("water", "ship"), "freeway": ("water", "ship"), "intersection": ("water", "ship"),
    "overpass": ("water", "ship"), "parking lot": ("water", "ship", "bare land"),
    "dense residential": ("ship", "bare land"), "buildings": ("ship", "bare land"),
    "medium residential": ("ship",), "mobile home park": ("ship",), "sparse residential": ("ship",),
    "tennis court": ("ship",), "harbor": ("vegetation", "bare land"),
}


def holding_scenes(rasters: list[Raster]) -> list[Raster]:
    """The scenes of `rasters` whose class holds dense classes (SCENE_HOLDS), set "holds:<class>" (each scene class
    weighs the same), with those classes as `known`."""
    return [replace(r, set=f"holds:{r.scene}", known=SCENE_HOLDS[r.scene]) for r in rasters
            if r.dense is None and r.scene in SCENE_HOLDS]


def ruled_out_scenes(rasters: list[Raster]) -> list[Raster]:
    """The scenes of `rasters` whose class rules dense classes out (SCENE_RULES_OUT), as dense rasters that label
    those classes absent on every pixel (set "ruled-out:<class>", so each scene class weighs the same)."""
    return [replace(r, set=f"ruled-out:{r.scene}", dense=np.full(r.rgb.shape[:2], NONE_OF_KNOWN, np.uint8),
                    known=SCENE_RULES_OUT[r.scene]) for r in rasters if r.dense is None and r.scene in SCENE_RULES_OUT]
