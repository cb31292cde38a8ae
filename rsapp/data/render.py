"""Render a World at its GSD: pixels with texture, shadows, blur and noise that grow with GSD; exact labels.

Objects under VISIBLE_PX pixels still leave their colour in the mix (as on a real sensor) but are not
"visible" to the questions: the questions are conditioned on the same GSD that drives CS-HLoRA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from PIL import Image, ImageDraw, ImageFilter
from shapely import affinity

from rsapp.data.world import CLASS_INDEX, FINE_MAX_GSD_M, World

# An object is resolvable when its smallest side spans at least this many pixels.
VISIBLE_PX = 2.5
# ... and this share of it lies inside the chip (inside the chip's data, for chips with no-data: rsapp.data.nodata).
MIN_INSIDE = 0.6
SUPERSAMPLE = 2
_DRAW_ORDER = {"field": 0, "water": 1, "road": 2, "vegetation": 3, "building": 4, "car": 5, "ship": 5}


@dataclass
class Rendered:
    rgb: np.ndarray  # (S, S, 3) uint8
    labels: np.ndarray  # (S, S) uint8 class index (CLASSES)
    boxes_px: list[tuple[float, float, float, float]]  # per world thing, chip pixels (clipped)
    visible: list[bool]  # per world thing: resolvable at this GSD and mostly inside the chip


def _polys(geom):
    if geom.is_empty:
        return []
    if geom.geom_type == "Polygon":
        return [geom]
    return [g for g in getattr(geom, "geoms", []) if g.geom_type == "Polygon"]


def _draw(draw: ImageDraw.ImageDraw, geom, scale: float, fill) -> None:
    for poly in _polys(geom):
        pts = [(x * scale, y * scale) for x, y in poly.exterior.coords]
        if len(pts) >= 3:
            draw.polygon(pts, fill=fill)


def _noise(rng, size: int, cells: int) -> np.ndarray:
    """Smooth noise in [-1, 1] at a given number of cells across."""
    small = rng.uniform(-1, 1, (cells + 1, cells + 1)).astype(np.float32)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC), dtype=np.float32)


def render(world: World, rng: np.random.Generator, chip_px: int = 256) -> Rendered:
    ss = SUPERSAMPLE
    big = chip_px * ss
    scale_big = big / world.extent_m
    img = Image.new("RGB", (big, big), world.ground)
    draw = ImageDraw.Draw(img)
    lab = Image.new("L", (chip_px, chip_px), 0)
    ldraw = ImageDraw.Draw(lab)
    order = sorted(range(len(world.things)), key=lambda i: _DRAW_ORDER[world.things[i].kind])
    dx, dy = math.cos(world.sun_azimuth), math.sin(world.sun_azimuth)
    for i in order:
        t = world.things[i]
        if t.height_m > 0 and t.kind in ("building", "vegetation", "car", "ship"):
            shadow = affinity.translate(t.geom, dx * t.height_m * 0.6, dy * t.height_m * 0.6)
            darker = tuple(int(c * 0.45) for c in world.ground)
            _draw(draw, shadow.difference(t.geom), scale_big, darker)
        _draw(draw, t.geom, scale_big, t.colour)
        _draw(ldraw, t.geom, chip_px / world.extent_m, CLASS_INDEX[t.kind])
    # Polygons are drawn at SUPERSAMPLE× for anti-aliased edges; textures and the sensor act at chip resolution.
    rgb = np.asarray(img.resize((chip_px, chip_px), Image.BOX), dtype=np.float32)
    rgb = _textures(rng, world, rgb, chip_px)
    # Sensor: blur and noise grow with GSD (coarser sensors, more atmosphere).
    s_log = math.log10(world.gsd_m)
    rgb_img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    rgb_img = rgb_img.filter(ImageFilter.GaussianBlur(radius=0.3 + 0.25 * (s_log + 1)))
    out = np.asarray(rgb_img, dtype=np.float32)
    out += rng.normal(0, 2.0 + 1.5 * (s_log + 1), out.shape).astype(np.float32)
    gain = rng.uniform(0.85, 1.15)
    out = np.clip((out - 128) * rng.uniform(0.85, 1.2) + 128 * gain, 0, 255).astype(np.uint8)
    boxes, visible = [], []
    for t in world.things:
        x0, y0, x1, y1 = (v / world.gsd_m for v in t.geom.bounds)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, chip_px), min(y1, chip_px)
        boxes.append((cx0, cy0, cx1, cy1))
        inside = max(cx1 - cx0, 0) * max(cy1 - cy0, 0) / max((x1 - x0) * (y1 - y0), 1e-9)
        visible.append(t.size_m / world.gsd_m >= VISIBLE_PX and inside >= MIN_INSIDE)
    return Rendered(rgb=out, labels=np.asarray(lab, dtype=np.uint8), boxes_px=boxes, visible=visible)


def _textures(rng, world: World, rgb: np.ndarray, big: int) -> np.ndarray:
    """Ground-level variation: low-frequency tone, fine grain, and the make-up of coarse districts."""
    tone = _noise(rng, big, 4)[..., None] * 10 + _noise(rng, big, 24)[..., None] * 6
    grain = rng.normal(0, 4, (big, big, 1)).astype(np.float32)
    rgb = rgb + tone + grain
    if world.gsd_m > FINE_MAX_GSD_M:
        # Districts are made of parts of a real size (roofs and gardens, tree crowns, strips of crop) drawn at that
        # size: a few pixels each at 3 m, averaged within a pixel at 30 m, as a sensor sees them. That, not the
        # districts' outlines (sized to the chip), is what shows a coarse chip's scale.
        for t in world.of("building"):
            mask = _mask(world, t, big)
            parts = _cells(rng, world, big, DISTRICT_PART_M["building"], _BUILT_PALETTE)
            rgb[mask] = rgb[mask] * 0.3 + parts[mask] * 0.7
        for kind, amount in (("vegetation", 0.35), ("field", 0.08)):
            for t in world.of(kind):
                mask = _mask(world, t, big)
                shade = _cells(rng, world, big, DISTRICT_PART_M[kind], np.array([[1 - amount], [1 + amount]]))
                rgb[mask] = rgb[mask] * shade[mask]
    return rgb


# Size in metres of what a coarse district is made of: a house and its garden, a tree crown, a strip of crop.
DISTRICT_PART_M = {"building": 12.0, "vegetation": 6.0, "field": 20.0}
_BUILT_PALETTE = np.array([[175, 170, 165], [95, 95, 100], [90, 115, 70]], np.float32)


def _mask(world: World, thing, size: int) -> np.ndarray:
    """Where one thing lies on a size × size grid of the chip (bool)."""
    m = Image.new("L", (size, size), 0)
    _draw(ImageDraw.Draw(m), thing.geom, size / world.extent_m, 255)
    return np.asarray(m) > 0


def _cells(rng, world: World, size: int, cell_m: float, values: np.ndarray) -> np.ndarray:
    """(size, size, channels): a random value of `values` per square cell of cell_m metres, as pixels of the chip
    see it: cells larger than a pixel are blocks, cells smaller than a pixel are averaged (area resampling)."""
    n = max(1, round(world.extent_m / cell_m))
    pick = values[rng.integers(0, len(values), (n, n))]
    resample = Image.BOX if n > size else Image.NEAREST
    return np.stack([np.asarray(Image.fromarray(pick[..., c].astype(np.float32)).resize((size, size), resample),
                                np.float32) for c in range(values.shape[1])], -1)


def object_mask(world: World, index: int, chip_px: int) -> np.ndarray:
    """Pixels of one thing on the chip grid (for change masks and instance checks)."""
    return _mask(world, world.things[index], chip_px).astype(np.uint8)


def union_mask(world: World, geoms: list[shapely.Geometry], chip_px: int) -> np.ndarray:
    m = Image.new("L", (chip_px, chip_px), 0)
    d = ImageDraw.Draw(m)
    for g in geoms:
        _draw(d, g, chip_px / world.extent_m, 1)
    return np.asarray(m, dtype=np.uint8)
