"""Synthetic worlds in metres (in the spirit of ScaleEarth's GeoScale-VQA): what is where, at real-world sizes.

A world is a square of side `extent_m` = chip pixels × GSD. Its objects are shapely polygons in metres
(x east, y south, origin top-left) with a class, a height (for shadows) and a colour. Fine worlds (≤ 2 m GSD) hold
individual buildings, cars, trees, ships; coarse worlds (> 2 m) hold districts: built-up areas, field mosaics,
forests, lakes, rivers, highways, with large objects (warehouses, big ships) still drawn one by one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely import affinity

# Mask classes (index = label value); 0 is the background of descriptors ("others": bare ground, anything else).
CLASSES = ["others", "building", "road", "water", "vegetation", "field", "car", "ship"]
CLASS_INDEX = {c: i for i, c in enumerate(CLASSES)}
SCENE_TYPES = ["residential", "industrial", "farmland", "forest", "lake", "harbor", "parking", "bare land"]
FINE_MAX_GSD_M = 2.0
# Above FINE_MAX_GSD_M a town is drawn as built-up districts, whatever it is made of: residential and industrial
# scenes look alike there and take one class (10 m land-cover products have a single "built-up" class too).
BUILT_UP = "built-up"


@dataclass
class Thing:
    kind: str  # one of CLASSES
    geom: shapely.Geometry  # metres, origin top-left, y down
    height_m: float = 0.0
    colour: tuple[int, int, int] = (128, 128, 128)
    size_m: float = 0.0  # the size that decides visibility (smallest side, or crown diameter)


@dataclass
class World:
    extent_m: float
    gsd_m: float
    scene_type: str
    things: list[Thing] = field(default_factory=list)
    ground: tuple[int, int, int] = (150, 140, 120)
    sun_azimuth: float = 0.8  # radians, shadow direction

    def of(self, kind: str) -> list[Thing]:
        return [t for t in self.things if t.kind == kind]

    @property
    def scene_class(self) -> str:
        """The scene class the image shows ([CLS] answers, captions): its type, or BUILT_UP for a coarse town."""
        coarse_town = self.gsd_m > FINE_MAX_GSD_M and self.scene_type in ("residential", "industrial")
        return BUILT_UP if coarse_town else self.scene_type


def _jitter(rng, rgb, amount=18):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


ROOFS = [(170, 170, 170), (180, 90, 70), (140, 110, 90), (215, 215, 210), (110, 110, 120)]
GROUNDS = [(150, 140, 120), (170, 155, 125), (135, 130, 110), (185, 170, 140)]
FIELDS = [(120, 150, 70), (170, 160, 90), (95, 130, 60), (190, 175, 120), (140, 120, 80)]
WATER = [(40, 70, 100), (30, 60, 80), (50, 85, 105)]
VEG = [(50, 90, 45), (60, 100, 50), (40, 75, 40)]


def _rect(cx, cy, w, h, angle_deg=0.0):
    return affinity.rotate(shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), angle_deg, origin=(cx, cy))


def _blob(rng, cx, cy, r, n=14, rough=0.25):
    ang = np.sort(rng.uniform(0, 2 * math.pi, n))
    rad = r * (1 + rough * rng.uniform(-1, 1, n))
    return shapely.Polygon(np.c_[cx + rad * np.cos(ang), cy + rad * np.sin(ang)]).buffer(0)


def _free(geom, taken, pad=0.0):
    """True when geom (grown by pad metres) touches nothing already placed."""
    if not taken:
        return True
    return not bool(shapely.intersects(np.asarray(taken, dtype=object), geom.buffer(pad) if pad else geom).any())


def make_world(rng: np.random.Generator, gsd_m: float, chip_px: int = 256, scene_type: str | None = None) -> World:
    extent = chip_px * gsd_m
    scene_type = scene_type or SCENE_TYPES[int(rng.integers(len(SCENE_TYPES)))]
    if gsd_m > FINE_MAX_GSD_M and scene_type == "parking":
        scene_type = "industrial"  # a parking lot is not a scene at coarse GSD
    w = World(extent_m=extent, gsd_m=gsd_m, scene_type=scene_type, ground=_jitter(rng, GROUNDS[rng.integers(4)]),
              sun_azimuth=float(rng.uniform(0, 2 * math.pi)))
    (_fine if gsd_m <= FINE_MAX_GSD_M else _coarse)(rng, w)
    return w


# --- fine worlds: objects one by one ---------------------------------------------------------------------------
def _road(rng, w: World, taken, horizontal=None, width=None):
    e = w.extent_m
    width = width or float(rng.uniform(6, 14))
    horizontal = bool(rng.integers(2)) if horizontal is None else horizontal
    pos = float(rng.uniform(0.2, 0.8) * e)
    geom = shapely.box(-e, pos - width / 2, 2 * e, pos + width / 2) if horizontal else shapely.box(
        pos - width / 2, -e, pos + width / 2, 2 * e)
    geom = geom.intersection(shapely.box(0, 0, e, e))
    w.things.append(Thing("road", geom, colour=_jitter(rng, (95, 95, 100), 10), size_m=width))
    taken.append(geom)
    return geom


def _buildings(rng, w: World, taken, n, size=(8, 22), zone=None):
    e = w.extent_m
    zone = zone or shapely.box(0, 0, e, e)
    x0, y0, x1, y1 = zone.bounds
    for _ in range(n * 6):
        if n <= 0:
            break
        lo, hi = min(size[0], 0.8 * size[1]), size[1]
        bw, bh = rng.uniform(lo, hi), rng.uniform(lo, hi)
        g = _rect(rng.uniform(x0, x1), rng.uniform(y0, y1), bw, bh, float(rng.choice([0, 0, 90, rng.uniform(0, 90)])))
        if zone.contains(g) and _free(g, taken, pad=2.0):
            w.things.append(Thing("building", g, height_m=float(rng.uniform(3, 12 if size[1] < 30 else 20)),
                                  colour=_jitter(rng, ROOFS[rng.integers(len(ROOFS))]), size_m=min(bw, bh)))
            taken.append(g)
            n -= 1


def _cars(rng, w: World, taken, n, along=None):
    e = w.extent_m
    for _ in range(n * 8):
        if n <= 0:
            break
        if along is not None:
            x0, y0, x1, y1 = along.bounds
            cx, cy = rng.uniform(max(x0, 0), min(x1, e)), rng.uniform(max(y0, 0), min(y1, e))
            horizontal = (x1 - x0) > (y1 - y0)
            g = _rect(cx, cy, 4.6, 1.9, 0 if horizontal else 90)
            ok = along.contains(g) and _free(g, [t.geom for t in w.of("car")], 0.8)
        else:
            g = _rect(rng.uniform(0, e), rng.uniform(0, e), 4.6, 1.9, float(rng.choice([0, 90])))
            ok = _free(g, taken, 0.8)
        if ok:
            w.things.append(Thing("car", g, height_m=1.5, colour=_jitter(rng, ROOFS[rng.integers(len(ROOFS))], 60),
                                  size_m=1.9))
            taken.append(g)
            n -= 1


def _trees(rng, w: World, taken, n, zone=None):
    e = w.extent_m
    zone = zone or shapely.box(0, 0, e, e)
    x0, y0, x1, y1 = zone.bounds
    for _ in range(n * 4):
        if n <= 0:
            break
        d = rng.uniform(3, 11)
        g = shapely.Point(rng.uniform(x0, x1), rng.uniform(y0, y1)).buffer(d / 2, 8)
        if _free(g, taken, 0.5):
            w.things.append(Thing("vegetation", g, height_m=d, colour=_jitter(rng, VEG[rng.integers(3)]), size_m=d))
            taken.append(g)
            n -= 1


def _water(rng, w: World, taken, r, centre=None):
    e = w.extent_m
    cx, cy = centre if centre else (rng.uniform(0.25, 0.75) * e, rng.uniform(0.25, 0.75) * e)
    g = _blob(rng, cx, cy, r).intersection(shapely.box(0, 0, e, e))
    if not g.is_empty and _free(g, taken, 3.0):
        w.things.append(Thing("water", g, colour=_jitter(rng, WATER[rng.integers(3)], 8), size_m=2 * r))
        taken.append(g)
        return g
    return None


def _ships(rng, w: World, water, n, length=(15, 60)):
    placed = []
    for _ in range(n * 10):
        if n <= 0 or water is None:
            break
        L = rng.uniform(min(length[0], 0.8 * length[1]), length[1])
        x0, y0, x1, y1 = water.bounds
        g = _rect(rng.uniform(x0, x1), rng.uniform(y0, y1), L, L / rng.uniform(4, 6), float(rng.uniform(0, 180)))
        if water.buffer(-2).contains(g) and _free(g, placed, L * 0.3):
            w.things.append(Thing("ship", g, height_m=L / 10, colour=_jitter(rng, (200, 200, 195), 30), size_m=L / 5))
            placed.append(g)
            n -= 1


def _fields(rng, w: World, taken, n, size=(40, 200)):
    e = w.extent_m
    for _ in range(n * 5):
        if n <= 0:
            break
        g = _rect(rng.uniform(0, e), rng.uniform(0, e), rng.uniform(*size), rng.uniform(*size),  # noqa: E501
                  float(rng.uniform(-20, 20))).intersection(shapely.box(0, 0, e, e))
        if g.area > 100 and _free(g, taken, 2.0):
            w.things.append(Thing("field", g, colour=_jitter(rng, FIELDS[rng.integers(len(FIELDS))], 10),
                                  size_m=math.sqrt(g.area)))
            taken.append(g)
            n -= 1


def _fine(rng, w: World) -> None:
    e, t = w.extent_m, []
    kind = w.scene_type
    k = lambda lo, hi: int(rng.integers(lo, hi + 1))  # noqa: E731
    if kind == "residential":
        roads = [_road(rng, w, t) for _ in range(k(1, 2))]
        _buildings(rng, w, t, k(2, 9) if e < 300 else k(8, 25))
        _trees(rng, w, t, k(0, 12))
        if rng.random() < 0.3:
            _water(rng, w, t, rng.uniform(6, 25))
        _cars(rng, w, t, k(0, 5), along=roads[0])
    elif kind == "industrial":
        road = _road(rng, w, t, width=float(rng.uniform(8, 16)))
        _buildings(rng, w, t, k(1, 5), size=(25, min(120, e / 3)))
        _cars(rng, w, t, k(0, 6), along=road)
    elif kind == "parking":
        lot = shapely.box(e * 0.1, e * 0.1, e * rng.uniform(0.5, 0.9), e * rng.uniform(0.5, 0.9))
        w.things.append(Thing("road", lot, colour=_jitter(rng, (90, 90, 95), 8), size_m=30))
        _cars(rng, w, [], k(1, 9), along=lot)
        t.append(lot)
        _trees(rng, w, t, k(0, 6))
    elif kind == "farmland":
        _fields(rng, w, t, k(2, 6), size=(e * 0.2, e * 0.6))
        if rng.random() < 0.5:
            _road(rng, w, t, width=float(rng.uniform(4, 8)))
        _buildings(rng, w, t, k(0, 2))
        _trees(rng, w, t, k(0, 8))
    elif kind == "forest":
        _trees(rng, w, t, int(e * e / 60) if e < 200 else 600)
        if rng.random() < 0.4:
            _road(rng, w, t, width=float(rng.uniform(4, 8)))
    elif kind in ("lake", "harbor"):
        if kind == "harbor":
            side = bool(rng.integers(2))
            water = shapely.box(0, 0, e, e * rng.uniform(0.45, 0.65)) if side else shapely.box(
                0, e * rng.uniform(0.35, 0.55), e, e)
            w.things.append(Thing("water", water, colour=_jitter(rng, WATER[rng.integers(3)], 8), size_m=e))
            t.append(water)
            land = shapely.box(0, 0, e, e).difference(water)
            _buildings(rng, w, t, k(1, 5), size=(15, min(60, e / 4)), zone=land.envelope)
            _ships(rng, w, water, k(1, 5), length=(max(10, 8 * w.gsd_m), min(120, e / 3)))
        else:
            water = _water(rng, w, t, e * rng.uniform(0.15, 0.35), centre=(e / 2, e / 2))
            _ships(rng, w, water, k(0, 3), length=(max(6, 8 * w.gsd_m), min(40, e / 6)))
            _trees(rng, w, t, k(3, 20))
    else:  # bare land
        if rng.random() < 0.6:
            _road(rng, w, t, width=float(rng.uniform(4, 10)))
        _buildings(rng, w, t, k(0, 1))


# --- coarse worlds: districts ----------------------------------------------------------------------------------
def _district(rng, w, kind, geom, colour, size_m):
    geom = geom.intersection(shapely.box(0, 0, w.extent_m, w.extent_m))
    if not geom.is_empty and geom.area > 0:
        w.things.append(Thing(kind, geom, colour=colour, size_m=size_m))


def _coarse(rng, w: World) -> None:
    e = w.extent_m
    kind = w.scene_type
    if kind in ("farmland", "residential", "industrial", "bare land", "forest"):
        n = int(rng.integers(4, 16)) if kind == "farmland" else int(rng.integers(0, 5))
        for _ in range(n):
            size = rng.uniform(150, 700)
            _district(rng, w, "field", _rect(rng.uniform(0, e), rng.uniform(0, e), size, size * rng.uniform(0.5, 1.5),
                                              float(rng.uniform(-15, 15))), _jitter(rng, FIELDS[rng.integers(5)]),
                      size)
    if kind == "forest" or rng.random() < 0.3:
        r = e * (rng.uniform(0.25, 0.45) if kind == "forest" else rng.uniform(0.08, 0.2))
        _district(rng, w, "vegetation", _blob(rng, rng.uniform(0.2, 0.8) * e, rng.uniform(0.2, 0.8) * e, r, 18, 0.35),
                  _jitter(rng, VEG[rng.integers(3)], 8), r)
    if kind in ("lake", "harbor") or rng.random() < 0.25:
        r = e * (rng.uniform(0.15, 0.35) if kind in ("lake", "harbor") else rng.uniform(0.04, 0.1))
        water = _blob(rng, rng.uniform(0.3, 0.7) * e, rng.uniform(0.3, 0.7) * e, r, 20, 0.3)
        _district(rng, w, "water", water, _jitter(rng, WATER[rng.integers(3)], 8), 2 * r)
        if kind == "harbor":
            _ships(rng, w, water, int(rng.integers(1, 4)), length=(max(60, 6 * w.gsd_m), max(80, 12 * w.gsd_m)))
    if kind in ("residential", "industrial", "harbor"):
        for _ in range(int(rng.integers(1, 3))):
            r = e * rng.uniform(0.12, 0.3)
            built = _blob(rng, rng.uniform(0.25, 0.75) * e, rng.uniform(0.25, 0.75) * e, r, 16, 0.3)
            _district(rng, w, "building", built, _jitter(rng, (150, 145, 145), 15), 10.0)
    if kind != "lake" and rng.random() < 0.7:
        width = float(rng.uniform(12, 40))
        pos = float(rng.uniform(0.15, 0.85) * e)
        road = shapely.LineString([(0, pos), (e, pos + rng.uniform(-0.3, 0.3) * e)]) if rng.integers(2) else \
            shapely.LineString([(pos, 0), (pos + rng.uniform(-0.3, 0.3) * e, e)])
        _district(rng, w, "road", road.buffer(width / 2, cap_style="flat"), _jitter(rng, (110, 110, 110), 10), width)
