"""Samples for every task token, from synthetic worlds whose labels are exact and whose questions know the GSD.

A question is conditioned on the same GSD that drives CS-HLoRA (ScaleEarth's closed loop): counting cars is
asked at 0.3 m, "is there a built-up area?" at 10 m, and "not visible at this resolution" is the answer when
the objects asked about are below the resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely

from rsapp.data.nodata import nodata_mask
from rsapp.data.render import MIN_INSIDE, VISIBLE_PX, render, union_mask
from rsapp.data.world import BUILT_UP, CLASS_INDEX, CLASSES, FINE_MAX_GSD_M, Thing, World, make_world
from rsapp.tasks.boxes import boxes_to_text
from rsapp.tasks.descriptors import mask_to_text

GSD_RANGE_M = (0.1, 30.0)
NOT_VISIBLE = "not visible at this resolution"
# Smallest size (m) of each countable kind; below VISIBLE_PX pixels of it, the kind is not resolvable.
TYPICAL_SIZE_M = {"car": 1.9, "building": 8.0, "vegetation": 4.0, "ship": 10.0}
NOUN = {"building": ("building", "buildings"), "car": ("car", "cars"), "ship": ("ship", "ships"),
        "vegetation": ("tree", "trees"), "water": ("pond", "ponds"), "field": ("field", "fields"),
        "road": ("road", "roads")}
SEG_KINDS = ["building", "road", "water", "vegetation", "field", "car", "ship"]
SEG_NAMES = {"building": "buildings", "road": "roads", "water": "water", "vegetation": "vegetation",
             "field": "fields", "car": "cars", "ship": "ships"}
AREA_NAMES = {"others": "bare ground", "building": "buildings", "road": "roads", "water": "water",
              "vegetation": "vegetation", "field": "fields", "car": "cars", "ship": "ships"}
NICE = [1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000, 1500, 2000, 3000, 5000, 7000]
TASK_WEIGHTS = {"[VQA]": 0.26, "[CAP]": 0.07, "[CLS]": 0.08, "[VG]": 0.17, "[REF]": 0.07, "[SEG]": 0.17,
                "[CCD]": 0.09, "[SEG2]": 0.09}
SEG_GRID = 16
INSTANCE_KINDS = ("building", "car", "ship", "water", "field", "vegetation")  # what [VG] refers to
# A descriptor cell takes a class when that class covers this share of it: thin roads and small cars survive.
CELL_COVER = 0.25


@dataclass
class Sample:
    images: list[np.ndarray]  # (S, S, 3) uint8 each
    token: str
    question: str
    answer: str
    gsd_m: float
    kind: str = ""  # the question type (count, presence, ...), for per-type scores
    target: dict = field(default_factory=dict)  # structured truth for evaluation (boxes, grid)
    dense: list[np.ndarray] = field(default_factory=list)  # per image (classes, n, n) 0/1 cover grid (training aid)
    # per image [(class index, x1, y1, x2, y2) chip px] of the visible instances (box head's training target), and
    # the classes whose instances are all listed (None: every class; real imagery labels one class or none)
    instances: list[list[tuple]] = field(default_factory=list)
    instance_classes: tuple[int, ...] | None = None


def sample_gsd(rng) -> float:
    lo, hi = np.log10(GSD_RANGE_M)
    return float(10 ** rng.uniform(lo, hi))


def resolvable(kind: str, gsd_m: float) -> bool:
    return kind not in TYPICAL_SIZE_M or TYPICAL_SIZE_M[kind] / gsd_m >= VISIBLE_PX


def nice_number(x: float) -> int:
    return min(NICE, key=lambda n: abs(math.log(max(x, 0.5) / n)))


def location_phrase(cx: float, cy: float, size: float) -> str:
    """Where a point lies in the picture: 'top left', 'centre', 'bottom'..."""
    col = "left" if cx < size / 3 else "right" if cx > 2 * size / 3 else ""
    row = "top" if cy < size / 3 else "bottom" if cy > 2 * size / 3 else ""
    return f"{row} {col}".strip() or "centre"


def cell_grid(binary: np.ndarray, n: int = SEG_GRID, cover: float = CELL_COVER) -> np.ndarray:
    """(S, S) 0/1 mask → (n, n) 0/1 grid: a cell is 1 when the class covers `cover` of it."""
    s = binary.shape[0]
    k = s // n
    share = binary[: n * k, : n * k].reshape(n, k, n, k).mean(axis=(1, 3))
    return (share >= cover).astype(np.uint8)


def dense_grid(labels: np.ndarray, n: int = SEG_GRID) -> np.ndarray:
    """(S, S) class-index map → (classes, n, n) 0/1: which classes cover each descriptor cell (the vision
    tower's auxiliary target, the same cover rule as the [SEG] answers)."""
    return np.stack([cell_grid((labels == i).astype(np.uint8), n) for i in range(len(CLASSES))])


class SceneFacts:
    """A rendered world with what can be seen in it at its GSD."""

    def __init__(self, world: World, rng, chip_px: int, valid: np.ndarray | None = None):
        """valid: where the chip has data (rsapp.data.nodata); the rest is blanked, and what lies mostly there is
        not visible."""
        self.world = world
        self.chip_px = chip_px
        self.r = render(world, rng, chip_px)
        self.fine = world.gsd_m <= FINE_MAX_GSD_M
        self.valid = valid
        if valid is not None:
            self.r.rgb = np.where(valid[..., None], self.r.rgb, 0).astype(np.uint8)
            self.r.labels = np.where(valid, self.r.labels, 0).astype(np.uint8)
            self.r.visible = [v and _share_inside(valid, box) >= MIN_INSIDE
                              for v, box in zip(self.r.visible, self.r.boxes_px)]

    def present(self, kind: str) -> bool:
        """Whether the world has this kind where the chip has data."""
        if self.valid is None:
            return bool(self.world.of(kind))
        return bool((self.r.labels == CLASS_INDEX[kind]).any())

    def visible(self, kind: str) -> list[int]:
        return [i for i, t in enumerate(self.world.things) if t.kind == kind and self.r.visible[i]]

    def countable(self, kind: str) -> bool:
        if kind in ("building", "vegetation") and not self.fine:
            return False  # districts, not objects
        return kind in ("building", "car", "ship", "vegetation", "water") and resolvable(kind, self.world.gsd_m)

    def box(self, i: int) -> tuple[float, float, float, float]:
        return self.r.boxes_px[i]

    def instances(self) -> list[tuple]:
        """(class index, box px) of every visible thing of a kind [VG] can refer to."""
        return [(CLASS_INDEX[t.kind], *self.box(i)) for i, t in enumerate(self.world.things)
                if self.r.visible[i] and t.kind in INSTANCE_KINDS]

    def class_share(self) -> dict[str, float]:
        labels = self.r.labels if self.valid is None else self.r.labels[self.valid]
        counts = np.bincount(labels.ravel(), minlength=len(CLASS_INDEX))
        return {k: counts[v] / labels.size for k, v in CLASS_INDEX.items()}


def _share_inside(valid: np.ndarray, box) -> float:
    """Share of a chip-pixel box that has data."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    window = valid[max(y0, 0):max(y1, y0 + 1), max(x0, 0):max(x1, x0 + 1)]
    return float(window.mean()) if window.size else 0.0


# --- single-image tasks ------------------------------------------------------------------------------------------
def vqa(rng, f: SceneFacts) -> tuple[str, str, str]:
    gsd = f.world.gsd_m
    kinds = ["building", "car", "ship", "vegetation", "water"]
    qtype = rng.choice(["presence", "count", "count", "area", "size", "compare"])
    if qtype == "presence":
        kind = str(rng.choice(["building", "road", "water", "vegetation", "field", "car", "ship"]))
        if kind == "building" and not f.fine:
            return "is there a built-up area?", "yes" if f.present("building") else "no", "presence"
        noun = NOUN[kind][0]
        art = "an" if noun[0] in "aeiou" else "a"
        if not resolvable(kind, gsd):
            return f"is there {art} {noun}?", NOT_VISIBLE, "visibility"
        return f"is there {art} {noun}?", "yes" if f.visible(kind) else "no", "presence"
    if qtype == "count":
        kind = str(rng.choice(kinds))
        q = f"how many {NOUN[kind][1]} are there?"
        if not resolvable(kind, gsd) or (kind in ("building", "vegetation") and not f.fine):
            return q, NOT_VISIBLE, "visibility"
        n = len(f.visible(kind))
        if n > 12:
            return q, "more than 12", "count"
        return q, str(n), "count"
    if qtype == "area":
        share = f.class_share()
        top = max(share, key=share.get)
        return "what covers most of the area?", AREA_NAMES[top], "area"
    if qtype == "size":
        kind = str(rng.choice(["building", "ship", "water", "field"]))
        cands = f.visible(kind)
        if not cands:
            return vqa(rng, f)
        i = max(cands, key=lambda j: f.world.things[j].geom.area)
        g = f.world.things[i].geom
        rect = g.minimum_rotated_rectangle
        xs, ys = rect.exterior.coords.xy
        sides = [math.hypot(xs[k + 1] - xs[k], ys[k + 1] - ys[k]) for k in range(2)]
        return f"how long is the largest {NOUN[kind][0]}?", f"about {nice_number(max(sides))} m", "size"
    # compare two countable kinds
    a, b = rng.choice([k for k in kinds if k != "water"], 2, replace=False)
    q = f"are there more {NOUN[a][1]} than {NOUN[b][1]}?"
    if not (f.countable(a) and f.countable(b)):
        return q, NOT_VISIBLE, "visibility"
    return q, "yes" if len(f.visible(a)) > len(f.visible(b)) else "no", "compare"


def caption(f: SceneFacts) -> str:
    parts = []
    w = f.world
    if f.fine:
        nb = len(f.visible("building"))
        if nb:
            parts.append(f"{nb} building{'s' * (nb > 1)}" if nb <= 9 else "many buildings")
    elif f.present("building"):
        parts.append("a built-up area")
    if f.present("road"):
        parts.append("a road" if len(w.of("road")) == 1 else "roads")
    if f.present("water"):
        parts.append("water")
    if f.present("vegetation"):
        parts.append("trees" if f.fine else "a forest")
    if f.present("field"):
        parts.append("fields")
    for kind in ("car", "ship"):
        n = len(f.visible(kind))
        if n:
            parts.append(f"{n} {NOUN[kind][0]}{'s' * (n > 1)}")
    scene = {"bare land": "an area of bare land", "industrial": "an industrial area", "lake": "a lake",
             "harbor": "a harbor", "parking": "a parking lot", "forest": "a forest area",
             "farmland": "farmland", "residential": "a residential area",
             BUILT_UP: "a built-up area"}[w.scene_class]
    # What the scene phrase says is not listed again: "a built-up area with a road", "a forest area with water".
    parts = [p for p in parts if p not in scene]
    if not parts:
        return f"{scene}."
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{scene} with {listed}."


def grounding(rng, f: SceneFacts):
    """([VG] phrase, boxes) or None when nothing in the scene can be referred to."""
    options = [k for k in INSTANCE_KINDS if f.visible(k)]
    if not f.fine:
        options = [k for k in options if k in ("water", "field", "ship", "vegetation", "building")]
    if not options:
        return None
    kind = str(rng.choice(options))
    idx = f.visible(kind)
    noun, plural = NOUN[kind]
    if kind == "vegetation" and not f.fine:
        noun, plural = "forest", "forests"
    if kind == "building" and not f.fine:
        noun, plural = "built-up area", "built-up areas"
    mode = rng.choice(["largest", "all", "side"]) if len(idx) > 1 else "only"
    if mode == "all" and len(idx) <= 6:
        return f"all {plural}", [f.box(i) for i in sorted(idx, key=lambda j: f.box(j)[:2])]
    if mode == "side":
        side = str(rng.choice(["left", "right", "top", "bottom"]))
        key = {"left": lambda j: f.box(j)[0], "right": lambda j: -f.box(j)[2], "top": lambda j: f.box(j)[1],
               "bottom": lambda j: -f.box(j)[3]}[side]
        pick = "leftmost" if side == "left" else "rightmost" if side == "right" else "topmost" if side == "top" \
            else "bottommost"
        return f"the {pick} {noun}", [f.box(min(idx, key=key))]
    if mode == "only":
        return f"the {noun}", [f.box(idx[0])]
    return f"the largest {noun}", [f.box(max(idx, key=lambda j: f.world.things[j].geom.area))]


def refer(rng, f: SceneFacts):
    options = [(i, k) for k in ("building", "car", "ship", "water", "field") for i in f.visible(k)]
    if not options:
        return None
    i, kind = options[int(rng.integers(len(options)))]
    noun = NOUN[kind][0] if (f.fine or kind not in ("building",)) else "built-up area"
    art = "an" if noun[0] in "aeiou" else "a"
    box = boxes_to_text([f.box(i)], f.chip_px)
    question = str(rng.choice([f"what is at {box}?", f"what is this? {box}", box]))
    return question, f"{art} {noun}"


def segmentation(rng, f: SceneFacts):
    present = [k for k in SEG_KINDS if f.present(k) and resolvable(k, f.world.gsd_m)]
    kind = str(rng.choice(present if present and rng.random() < 0.85 else SEG_KINDS))
    name = SEG_NAMES[kind] if (f.fine or kind != "building") else "built-up area"
    binary = (f.r.labels == CLASS_INDEX[kind]).astype(np.uint8)
    grid = cell_grid(binary)
    return f"segment the {name}", mask_to_text(grid, ["others", kind]), grid, kind, binary


# --- change pairs ------------------------------------------------------------------------------------------------
CHANGE_EVENTS = ["built", "demolished", "flooded", "cleared", "none"]


def change_pair(rng, gsd_m: float, chip_px: int):
    """(before facts, after facts, caption, changed kind, change mask) of one world and an event."""
    from rsapp.data.world import WATER, _blob, _buildings, _jitter  # the generator's own building blocks

    for _ in range(20):
        world = make_world(rng, gsd_m, chip_px)
        event = str(rng.choice(CHANGE_EVENTS))
        after = World(extent_m=world.extent_m, gsd_m=gsd_m, scene_type=world.scene_type,
                      things=list(world.things), ground=world.ground, sun_azimuth=world.sun_azimuth)
        e = world.extent_m
        changed: list[shapely.Geometry] = []
        kind = "building"
        if event == "built":
            if gsd_m <= FINE_MAX_GSD_M:
                before_n = len(after.things)
                _buildings(rng, after, [t.geom for t in after.things], int(rng.integers(1, 5)))
                changed = [t.geom for t in after.things[before_n:]]
            else:
                blob = _blob(rng, rng.uniform(0.25, 0.75) * e, rng.uniform(0.25, 0.75) * e, e * rng.uniform(0.08, 0.18))
                blob = blob.difference(shapely.union_all([t.geom for t in after.of("water")] or [shapely.Point()]))
                after.things.append(Thing("building", blob, colour=_jitter(rng, (150, 145, 145), 15), size_m=10))
                changed = [blob]
        elif event == "demolished":
            blds = [t for t in after.things if t.kind == "building"]
            if not blds:
                continue
            gone = [blds[i] for i in rng.choice(len(blds), min(len(blds), int(rng.integers(1, 4))), replace=False)]
            after.things = [t for t in after.things if all(t is not g for g in gone)]
            changed = [t.geom for t in gone]
        elif event == "flooded":
            kind = "water"
            blob = _blob(rng, rng.uniform(0.2, 0.8) * e, rng.uniform(0.2, 0.8) * e, e * rng.uniform(0.1, 0.25))
            after.things.append(Thing("water", blob, colour=_jitter(rng, WATER[0], 8), size_m=e))
            changed = [blob.difference(shapely.union_all([t.geom for t in world.of("water")] or [shapely.Point()]))]
        elif event == "cleared":
            kind = "vegetation"
            trees = [t for t in after.things if t.kind == "vegetation"]
            if not trees:
                continue
            centre = trees[int(rng.integers(len(trees)))].geom.centroid
            zone = centre.buffer(e * rng.uniform(0.15, 0.35))
            gone = [t for t in trees if t.geom.intersects(zone)]
            after.things = [t for t in after.things if all(t is not g for g in gone)]
            changed = [t.geom for t in gone]
        before_f = SceneFacts(world, rng, chip_px)
        after_f = SceneFacts(after, rng, chip_px)
        mask = union_mask(world, changed, chip_px) if changed else np.zeros((chip_px, chip_px), np.uint8)
        if event != "none" and mask.sum() < (chip_px * chip_px) * 0.002:
            continue  # too small to see: try another world
        if event == "none":
            return before_f, after_f, "no change.", kind, mask
        ys, xs = np.nonzero(mask)
        where = location_phrase(xs.mean(), ys.mean(), chip_px)
        text = {
            "built": "new buildings were built" if gsd_m <= FINE_MAX_GSD_M else "the built-up area expanded",
            "demolished": "buildings were demolished", "flooded": "an area was flooded",
            "cleared": "trees were cleared"}[event]
        return before_f, after_f, f"{text} in the {where}.", kind, mask
    raise RuntimeError("could not make a change pair")


# --- one sample --------------------------------------------------------------------------------------------------
def make_sample(rng: np.random.Generator, task: str | None = None, chip_px: int = 256,
                gsd_m: float | None = None, nodata_share: float = 0.0) -> Sample:
    """One training/evaluation sample. task is a token, or "[SEG2]" for a two-date change mask; nodata_share: the
    chance that a one-image sample's chip has no-data (rsapp.data.nodata; training only)."""
    sample, facts = _make_sample(rng, task, chip_px, gsd_m, nodata_share)
    sample.dense = [dense_grid(f.r.labels) for f in facts]
    sample.instances = [f.instances() for f in facts]
    return sample


def _make_sample(rng, task, chip_px, gsd_m, nodata_share=0.0) -> tuple[Sample, list[SceneFacts]]:
    tasks = list(TASK_WEIGHTS)
    task = task or str(rng.choice(tasks, p=np.array(list(TASK_WEIGHTS.values())) / sum(TASK_WEIGHTS.values())))
    gsd = gsd_m or sample_gsd(rng)
    if task in ("[CCD]", "[SEG2]"):
        before, after, text, kind, mask = change_pair(rng, gsd, chip_px)
        images = [before.r.rgb, after.r.rgb]
        if task == "[CCD]":
            return Sample(images, "[CCD]", "what changed?", text, gsd, "change caption", {"caption": text}), \
                [before, after]
        grid = cell_grid(mask)
        return Sample(images, "[SEG]", "segment the changes", mask_to_text(grid, ["others", kind]), gsd,
                      "change mask", {"grid": grid, "label": kind, "mask": mask}), [before, after]
    valid = nodata_mask(rng, chip_px) if nodata_share and rng.random() < nodata_share else None
    f = SceneFacts(make_world(rng, gsd, chip_px), rng, chip_px, valid)
    img = [f.r.rgb]
    if task == "[VQA]":
        q, a, kind = vqa(rng, f)
        return Sample(img, task, q, a, gsd, kind), [f]
    if task == "[CAP]":
        text = caption(f)
        return Sample(img, task, "describe the image", text, gsd, "caption", {"caption": text}), [f]
    if task == "[CLS]":
        return Sample(img, task, "what kind of scene is this?", f.world.scene_class, gsd, "scene"), [f]
    if task == "[VG]":
        g = grounding(rng, f)
        if g is None:
            return _make_sample(rng, task, chip_px, None, nodata_share)
        phrase, boxes = g
        return Sample(img, task, phrase, boxes_to_text(boxes, chip_px), gsd, "grounding", {"boxes": boxes}), [f]
    if task == "[REF]":
        r = refer(rng, f)
        if r is None:
            return _make_sample(rng, task, chip_px, None, nodata_share)
        return Sample(img, task, r[0], r[1], gsd, "refer"), [f]
    if task == "[SEG]":
        q, text, grid, kind, binary = segmentation(rng, f)
        return Sample(img, task, q, text, gsd, "segmentation", {"grid": grid, "label": kind, "mask": binary}), [f]
    raise ValueError(task)
