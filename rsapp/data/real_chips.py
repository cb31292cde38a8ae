"""Training chips cut from the real sets: random windows resampled to the chip across GSDs (each set's native
GSD × 1–8, never finer), flips and quarter turns, colour jitter; and change pairs built from single-date real
imagery (issue #21): buildings removed from one date by inpainting them from their surroundings or pasted onto
its free ground from elsewhere in the raster, with date-to-date differences that are not change (illumination,
colour cast, haze, blur, a few pixels of misregistration, and roads, vegetation, bare land or water that changed).
The change mask is exact by construction. Ponds: real water (windows of train rasters that are all water) pasted
onto land chips in a pond's outline, labelled water by construction (an isolated still pond is rare in the labelled
sets, whose water is mostly sea and creek seen with its shore); and shadows, ground darkened in place, labelled not
water (dark ground is what a model taught ponds paints as water). Another sensor's look (other_optics, other_sensor:
blur, sharpening or JPEG, then a colour cast or haze) for scenes and, with dense_chip's `look`, land-cover chips."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

from rsapp.data.real_sets import DENSE_INDEX, IGNORE, Raster, covered_windows

MAX_FACTOR = 8.0  # coarsest resampling, × the native GSD


def _augment(arrays: list[np.ndarray], rng) -> list[np.ndarray]:
    k, flip = int(rng.integers(4)), bool(rng.integers(2))
    out = [np.rot90(a, k) for a in arrays]
    return [np.ascontiguousarray(a[:, ::-1] if flip else a) for a in out]


def square_resize(a: np.ndarray, size: int, nearest: bool) -> np.ndarray:
    """Square resample (BOX for imagery, NEAREST for labels)."""
    if a.shape[0] == size and a.shape[1] == size:
        return a
    return np.asarray(Image.fromarray(a).resize((size, size), Image.NEAREST if nearest else Image.BOX))


def window(r: Raster, rng, chip: int, max_factor: float = MAX_FACTOR) -> tuple[tuple[slice, slice], float, int]:
    """A random square window, its resampling factor (× the native GSD, 1 to max_factor) and the side it is
    resampled to: the chip, or less when the image is too small to fill a chip at that factor (the caller pads)."""
    h, w = r.rgb.shape[:2]
    factor = float(np.exp(rng.uniform(0.0, np.log(max_factor))))
    side = min(int(round(chip * factor)), h, w)
    out = min(chip, max(16, int(round(side / factor))))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return (slice(y, y + side), slice(x, x + side)), side / out, out


def _place(a: np.ndarray, chip: int, fill) -> np.ndarray:
    """Pad a resampled window to the chip (top-left), as the app blanks what lies outside the image."""
    if a.shape[0] == chip and a.shape[1] == chip:
        return a
    out = np.full((chip, chip) + a.shape[2:], fill, a.dtype)
    out[:a.shape[0], :a.shape[1]] = a
    return out


def jitter(rgb: np.ndarray, rng, strength: float = 1.0) -> np.ndarray:
    """Brightness, contrast, per-band gain (a colour cast) and saturation changes."""
    x = rgb.astype(np.float32)
    grey = x.mean(-1, keepdims=True)
    x = grey + (x - grey) * rng.uniform(1 - 0.3 * strength, 1 + 0.3 * strength)
    x = (x - x.mean()) * rng.uniform(1 - 0.25 * strength, 1 + 0.25 * strength) + x.mean()
    x = x * rng.uniform(1 - 0.2 * strength, 1 + 0.2 * strength) * rng.uniform(1 - 0.08 * strength, 1 + 0.08 * strength, 3)
    return np.clip(x, 0, 255).astype(np.uint8)


def other_sensor(rgb: np.ndarray, rng) -> np.ndarray:
    """The scene as another collection might render it: a colour cast, contrast and saturation change, and haze
    (a blend towards bright bluish grey) one time in three."""
    out = jitter(rgb, rng, rng.uniform(0.5, 1.5))
    if rng.random() < 1 / 3:
        a = rng.uniform(0.1, 0.35)
        out = np.clip(out * (1 - a) + a * np.array([200.0, 205.0, 215.0]), 0, 255).astype(np.uint8)
    return out


def other_optics(rgb: np.ndarray, rng) -> np.ndarray:
    """The scene through another sensor's optics and delivery: a softer lens (Gaussian blur, σ 0.6–1.8 px), a
    sharpened product (unsharp mask), or heavy JPEG compression (quality 20–60), one of the three."""
    kind = int(rng.integers(3))
    if kind == 2:
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=int(rng.integers(20, 61)))
        return np.asarray(Image.open(buf).convert("RGB"))
    x = rgb.astype(np.float32)
    soft = ndimage.gaussian_filter(x, (rng.uniform(0.6, 1.8),) * 2 + (0,))
    if kind == 0:
        return np.clip(soft, 0, 255).astype(np.uint8)
    return np.clip(x + rng.uniform(0.5, 1.5) * (x - soft), 0, 255).astype(np.uint8)


def _through_sensor(pixels: np.ndarray, rng, look: float):
    """(a window's pixels, the colouring its chip gets once resampled): with probability `look` through another
    sensor's optics and then in its colours (other_optics, other_sensor), else as they are with a mild jitter."""
    if look and rng.random() < look:
        return other_optics(pixels, rng), other_sensor
    return pixels, jitter


def dense_chip(r: Raster, rng, chip: int, look: float = 0.0) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(rgb chip, dense target chip, GSD of the chip or None) from a labelled raster; with probability `look` it is
    seen as another sensor would deliver it: through its optics at the window's own pixels (before it is resampled)
    and in its colours (other_optics, other_sensor)."""
    for _ in range(8):
        win, factor, side = window(r, rng, chip)
        labels = r.dense[win]
        if (labels < len(DENSE_INDEX)).any() or rng.random() < 0.2:
            break
    rgb, colour = _through_sensor(r.rgb[win], rng, look)
    rgb = _place(square_resize(rgb, side, False), chip, 0)
    labels = _place(square_resize(labels, side, True), chip, IGNORE)
    rgb, labels = _augment([rgb, labels], rng)
    return colour(rgb, rng), labels, None if r.gsd_m is None else r.gsd_m * factor


def instance_chip(r: Raster, rng, chip: int, max_factor: float = 3.0, look: float = 0.0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float | None]:
    """(rgb chip, instance ids chip (int32, 0 none), labelled chip (bool: the raster's labels say there), GSD of the
    chip or None) from a raster with instances, resampled to at most max_factor × its GSD (an instance must stay
    a few pixels across to have a core); with probability `look` seen as another sensor would deliver it, as in
    dense_chip."""
    for _ in range(8):
        win, factor, side = window(r, rng, chip, max_factor)
        if (r.instances[win] > 0).any() or rng.random() < 0.15:
            break
    rgb, colour = _through_sensor(r.rgb[win], rng, look)
    rgb = _place(square_resize(rgb, side, False), chip, 0)
    ids = _place(square_resize(r.instances[win], side, True), chip, 0)
    known = np.ones(r.rgb.shape[:2], bool)[win] if r.dense is None else r.dense[win] != IGNORE  # boxes label all
    labelled = _place(square_resize(known.astype(np.uint8), side, True), chip, 0)
    rgb, ids, labelled = _augment([rgb, ids, labelled], rng)
    return colour(rgb, rng), ids, labelled > 0, None if r.gsd_m is None else r.gsd_m * factor


def scene_chip(r: Raster, rng, chip: int) -> tuple[np.ndarray, float | None]:
    """A scene image, sometimes zoomed in (60–100 % of it), resized to the chip."""
    h, w = r.rgb.shape[:2]
    share = rng.uniform(0.6, 1.0) if rng.random() < 0.5 else 1.0
    side = int(min(h, w) * share)
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    rgb = _augment([square_resize(r.rgb[y:y + side, x:x + side], chip, False)], rng)[0]
    return jitter(rgb, rng, 0.7), None if r.gsd_m is None else r.gsd_m * side / chip


def change_chip(r: Raster, rng, chip: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float | None]:
    """(before, after, change target) from a real pair."""
    for _ in range(8):
        win, factor, side = window(r, rng, chip, max_factor=4.0)
        if (r.change[win] == 1).any() or rng.random() < 0.2:
            break
    a, b = _place(square_resize(r.rgb[win], side, False), chip, 0), _place(square_resize(r.after[win], side, False), chip, 0)
    c = _place(square_resize(r.change[win], side, True), chip, IGNORE)
    a, b, c = _augment([a, b, c], rng)
    return jitter(a, rng, 0.5), jitter(b, rng, 0.5), c, None if r.gsd_m is None else r.gsd_m * factor


def inpaint(rgb: np.ndarray, region: np.ndarray, rng) -> np.ndarray:
    """Fill `region` from its surroundings: nearest outside pixel, smoothed, with a little texture noise."""
    _, (iy, ix) = ndimage.distance_transform_edt(region, return_indices=True)
    filled = rgb[iy, ix].astype(np.float32)
    smooth = ndimage.gaussian_filter(filled, sigma=(3, 3, 0))
    noise = rng.normal(0, 4, filled.shape)
    out = rgb.astype(np.float32)
    out[region] = (smooth + noise)[region]
    return np.clip(out, 0, 255).astype(np.uint8)


def nuisance(rgb: np.ndarray, rng) -> np.ndarray:
    """Differences between two dates that are not change: illumination and colour, haze, blur, a shift."""
    x = jitter(rgb, rng, 1.0).astype(np.float32)
    if rng.random() < 0.3:
        x = x * (1 - (h := rng.uniform(0.05, 0.3))) + 200 * h  # haze
    if rng.random() < 0.3:
        x = ndimage.gaussian_filter(x, sigma=(rng.uniform(0.5, 1.2),) * 2 + (0,))  # another sensor's blur
    dy, dx = (int(v) for v in rng.integers(-2, 3, 2))
    x = np.roll(x, (dy, dx), axis=(0, 1))
    return np.clip(x, 0, 255).astype(np.uint8)


def remove_buildings(rgb: np.ndarray, buildings: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inpaint about half of the building instances away: (image without them, their mask, the inpainted
    region = their mask grown by 2 px). Pixels outside the region are untouched."""
    comps, n = ndimage.label(buildings)
    chosen = [i for i in range(1, n + 1) if rng.random() < 0.5] or [int(rng.integers(1, n + 1))]
    change = np.isin(comps, chosen)
    region = ndimage.binary_dilation(change, iterations=2)
    return inpaint(rgb, region, rng), change, region


def place(shape: np.ndarray, allowed: np.ndarray, rng, to_edge: bool = True, tries: int = 10
          ) -> tuple[slice, slice] | None:
    """Where a boolean `shape` lands inside `allowed` (same grid as the chip) covering only allowed pixels: the
    window of the first of `tries` random corners that fits, or None. to_edge=False never lets the shape touch the
    chip's last row and column (paste_buildings always drew corners that way; kept so its random draws stay)."""
    (h, w), (ph, pw) = allowed.shape, shape.shape
    for _ in range(tries):
        y, x = int(rng.integers(0, h - ph + to_edge)), int(rng.integers(0, w - pw + to_edge))
        spot = (slice(y, y + ph), slice(x, x + pw))
        if allowed[spot][shape].all():
            return spot
    return None


def paste_buildings(rgb: np.ndarray, labels: np.ndarray, donor_rgb: np.ndarray, donor_labels: np.ndarray, rng,
                    at_most: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Copy up to at_most building instances of a donor chip (same raster and scale) onto ground of `rgb` that its
    labels say holds no building: (the image with them, their mask). Each lands where it covers only labelled
    pixels of other classes, at least 3 px from any building; an instance that finds no such place is skipped."""
    building = DENSE_INDEX["building"]
    comps, n = ndimage.label(donor_labels == building)
    free = (labels != building) & (labels != IGNORE)
    free &= ~ndimage.binary_dilation(labels == building, iterations=3)
    out, pasted = rgb.copy(), np.zeros(labels.shape, bool)
    h, w = labels.shape
    boxes = ndimage.find_objects(comps)
    for i in rng.permutation(np.arange(1, n + 1))[:at_most]:
        sl = boxes[i - 1]
        shape = comps[sl] == i
        ph, pw = shape.shape
        if ph >= h // 2 or pw >= w // 2 or shape.sum() < 16:
            continue
        spot = place(shape, free, rng, to_edge=False)
        if spot is not None:
            out[spot][shape] = donor_rgb[sl][shape]
            pasted[spot] |= shape
            free[spot] &= ~ndimage.binary_dilation(shape, iterations=3)
    return out, pasted


def water_windows(rasters: list[Raster], size: int = 96) -> list[np.ndarray]:
    """Every (size, size) window, at half-size steps, of the rasters that label water where all of it is water."""
    return [r.rgb[y:y + size, x:x + size] for r in rasters if r.dense is not None and "water" in r.known
            for y, x, _ in covered_windows(r, ["water"], size, size // 2, 1.0)]


def pond_outline(h: int, w: int, rng) -> np.ndarray:
    """A pond's outline filling an (h, w) box: an ellipse whose radius wanders with the angle, as a shore does."""
    y, x = np.mgrid[:h, :w]
    dy, dx = (y - (h - 1) / 2) / (h / 2), (x - (w - 1) / 2) / (w / 2)
    angle = np.arctan2(dy, dx)
    edge = 0.8 + sum(rng.uniform(0, 0.06) * np.cos(k * angle + rng.uniform(0, 2 * np.pi)) for k in range(2, 6))
    return np.hypot(dy, dx) < edge


def paste_pond(rgb: np.ndarray, labels: np.ndarray, water: list[np.ndarray], rng) -> tuple[np.ndarray, np.ndarray]:
    """One pond of real water (a window from `water`, resampled to 10–45 % of the chip's side on each axis and
    jittered in colour) pasted in a pond's outline where the chip holds imagery (never its padding): (the image
    with it, its mask, empty when no place was found)."""
    h, w = rgb.shape[:2]
    ph, pw = int(h * rng.uniform(0.10, 0.45)), int(w * rng.uniform(0.10, 0.45))
    donor = water[int(rng.integers(len(water)))]
    patch = jitter(np.asarray(Image.fromarray(donor).resize((pw, ph), Image.BOX)), rng, 0.5)
    outline = pond_outline(ph, pw, rng)
    out, mask = rgb.copy(), np.zeros((h, w), bool)
    spot = place(outline, labels != IGNORE, rng)
    if spot is not None:
        out[spot][outline] = patch[outline]
        mask[spot] = outline
    return out, mask


CASTERS = ("building", "vegetation")  # labelled classes whose shadows cast_shadow can draw beside them


def shadow_beside(casters: np.ndarray, rng) -> np.ndarray:
    """The shadow a chip's casters (a boolean map of its buildings and trees) throw on the ground beside them: each
    swept 2–15 px away in one direction, as the sun does, less the casters themselves."""
    angle, length = rng.uniform(0, 2 * np.pi), int(rng.integers(2, 16))
    h, w = casters.shape
    swept = np.zeros_like(casters)
    for t in range(1, length + 1):
        dy, dx = int(round(t * np.sin(angle))), int(round(t * np.cos(angle)))
        swept[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] |= \
            casters[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return swept & ~casters


def cast_shadow(rgb: np.ndarray, labels: np.ndarray, rng, beside: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A shadow cast on a chip's imagery (never its padding, never labelled water): with probability `beside` (when
    the chip labels buildings or trees) the one they throw beside them (shadow_beside), else a pond-like or long
    outline 5–40 % of the chip's side; the ground under it darkened to 0.2–0.5 of its light and a little bluer, its
    texture kept, as a building's or a tree's shadow is: (the image with it, its mask, empty when no place was
    found)."""
    h, w = rgb.shape[:2]
    dry = (labels != IGNORE) & (labels != DENSE_INDEX["water"])
    mask = np.zeros((h, w), bool)
    casters = np.isin(labels, [DENSE_INDEX[c] for c in CASTERS]) if beside else None
    if beside and rng.random() < beside and casters.any():
        mask = shadow_beside(casters, rng) & dry
    else:
        sh, sw = int(h * rng.uniform(0.05, 0.4)), int(w * rng.uniform(0.05, 0.4))
        outline = pond_outline(sh, sw, rng) if rng.random() < 0.5 else np.ones((sh, sw), bool)
        spot = place(outline, dry, rng)
        if spot is not None:
            mask[spot] = outline
    out = rgb.copy()
    if mask.any():
        dark = rgb[mask].astype(np.float32) * rng.uniform(0.2, 0.5)
        out[mask] = np.clip(dark * rng.uniform([0.85, 0.9, 1.0], [0.95, 1.0, 1.2]), 0, 255)
    return out, mask


DISTRACTORS = ("road", "vegetation", "bare land", "water")  # classes whose changes are not building change


def distract(rgb: np.ndarray, labels: np.ndarray, keep: np.ndarray, rng) -> np.ndarray:
    """A change that is not a building's, on one date: some regions of a labelled non-building class (roads,
    vegetation, bare land, water) inpainted away or recoloured as a season or a construction site would; pixels
    in `keep` (buildings and the made change) are untouched."""
    present = [DENSE_INDEX[c] for c in DISTRACTORS if (labels == DENSE_INDEX[c]).sum() > 0.02 * labels.size]
    if not present:
        return rgb
    comps, n = ndimage.label(labels == present[int(rng.integers(len(present)))])
    region = np.isin(comps, [i for i in range(1, n + 1) if rng.random() < 0.5] or [int(rng.integers(1, n + 1))])
    region &= ~ndimage.binary_dilation(keep, iterations=3)
    if rng.random() < 0.5:
        return inpaint(rgb, region, rng)
    x = rgb.astype(np.float32)
    x[region] = x[region] * rng.uniform(0.75, 1.25, 3) + rng.uniform(-25, 25)
    return np.clip(x, 0, 255).astype(np.uint8)


def synthetic_change(r: Raster, rng, chip: int, paste: float = 0.0, distractor: float = 0.0):
    """A change pair from a single-date raster with building labels, some buildings existing on one date only:
    (before, after, change target, GSD or None, built: True when they are new, False when demolished), or None
    when the raster shows no buildings here. With probability `paste` the date without them also gains buildings
    copied from elsewhere in the raster (change too); with probability `distractor` one date also changes roads,
    vegetation, bare land or water where the raster labels them (not change: the target stays 0 there)."""
    building = DENSE_INDEX["building"]
    for _ in range(8):
        win, factor, side = window(r, rng, chip, max_factor=4.0)
        labels = _place(square_resize(r.dense[win], side, True), chip, IGNORE)
        if (labels == building).sum() > 0.01 * chip * chip:
            break
    else:
        return None
    rgb = _place(square_resize(r.rgb[win], side, False), chip, 0)
    rgb, labels = _augment([rgb, labels], rng)
    without, change, region = remove_buildings(rgb, labels == building, rng)
    if paste and rng.random() < paste:
        span, (h, w) = win[0].stop - win[0].start, r.rgb.shape[:2]  # another window at the same scale
        y, x = int(rng.integers(0, h - span + 1)), int(rng.integers(0, w - span + 1))
        donor_win = (slice(y, y + span), slice(x, x + span))
        donor = _augment([square_resize(r.rgb[donor_win], side, False),
                          square_resize(r.dense[donor_win], side, True)], rng)
        without, pasted = paste_buildings(without, labels, *donor, rng)
        change |= pasted
        region |= pasted
    built = bool(rng.random() < 0.7)
    before, after = (without, rgb) if built else (rgb, without)
    if distractor and rng.random() < distractor:
        keep = region | (labels == building)
        if rng.random() < 0.5:
            before = distract(before, labels, keep, rng)
        else:
            after = distract(after, labels, keep, rng)
    target = change.astype(np.uint8)
    target[region & ~change] = IGNORE  # the inpainted rim is neither clearly changed nor clearly not
    return nuisance(before, rng), nuisance(after, rng), target, None if r.gsd_m is None else r.gsd_m * factor, built
