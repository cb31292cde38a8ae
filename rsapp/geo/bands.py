"""Which bands make a true-colour picture, and how to stretch 8/16-bit/float data to 8-bit for display and the model."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.enums import ColorInterp

# Centre wavelengths (µm) a true-colour composite wants.
_RGB_UM = (0.655, 0.560, 0.480)
# 2–98 % is the usual display stretch: robust to a few saturated or dark pixels.
STRETCH_PERCENTILES = (2.0, 98.0)


def pick_rgb_bands(ds) -> tuple[int, int, int]:
    """1-based band indexes (red, green, blue), from the file's own metadata first, then sensor conventions."""
    n = ds.count
    if n < 3:
        return (1, 1, 1)
    ci = list(ds.colorinterp)
    if all(c in ci for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)):
        return tuple(ci.index(c) + 1 for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue))
    by_name = _bands_from_names([d or "" for d in ds.descriptions])
    if by_name:
        return by_name
    by_wavelength = _bands_from_wavelengths(ds)
    if by_wavelength:
        return by_wavelength
    name = Path(ds.name).name.upper()
    if re.match(r"L[COT]0[89]", name) and n >= 7:  # Landsat 8/9 OLI: B1 coastal, B2 blue, B3 green, B4 red
        return (4, 3, 2)
    if re.search(r"S2[AB]|SENTINEL-?2", name) and n >= 10:  # Sentinel-2: B02 blue, B03 green, B04 red
        return (4, 3, 2)
    if n == 6:  # Landsat TM/ETM+ reflective bands 1,2,3,4,5,7
        return (3, 2, 1)
    if 7 <= n <= 11:  # Landsat 8/9 stacks
        return (4, 3, 2)
    if n in (12, 13):  # Sentinel-2 L2A / L1C stacks
        return (4, 3, 2)
    return (1, 2, 3)  # RGB or RGBN


def _bands_from_names(names: list[str]) -> tuple[int, int, int] | None:
    wanted = {"red": ("red", "b4", "b04", "r"), "green": ("green", "b3", "b03", "g"), "blue": ("blue", "b2", "b02", "b")}
    found = {}
    for colour, aliases in wanted.items():
        for i, nm in enumerate(names):
            key = nm.strip().lower()
            if key in aliases or key.startswith(colour):
                found[colour] = i + 1
                break
    if len(found) == 3 and len(set(found.values())) == 3:
        return (found["red"], found["green"], found["blue"])
    return None


def _bands_from_wavelengths(ds) -> tuple[int, int, int] | None:
    """ENVI headers (and some GeoTIFFs) carry centre wavelengths; take the bands closest to R, G, B."""
    um = []
    for i in range(1, ds.count + 1):
        tags = ds.tags(i)
        value = tags.get("wavelength") or tags.get("WAVELENGTH")
        if value is None:
            m = re.search(r"\(([\d.]+) micrometers\)", (ds.descriptions[i - 1] or "").lower())
            value = m.group(1) if m else None
        try:
            um.append(float(value))
        except (TypeError, ValueError):
            return None
    if any(u > 100 for u in um):  # nanometres
        um = [u / 1000 for u in um]
    picks = tuple(int(np.argmin([abs(u - target) for u in um])) + 1 for target in _RGB_UM)
    if len(set(picks)) == 3 and all(abs(um[p - 1] - t) < 0.06 for p, t in zip(picks, _RGB_UM)):
        return picks
    return None


@dataclass(frozen=True)
class Stretch:
    """Per-band linear stretch lo→0, hi→255, computed once per scene so every chip of it looks the same."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]

    @classmethod
    def identity_uint8(cls, n: int) -> "Stretch":
        return cls(lo=(0.0,) * n, hi=(255.0,) * n)

    @classmethod
    def from_sample(cls, sample: np.ma.MaskedArray) -> "Stretch":
        """Percentile stretch of a (bands, h, w) masked sample, ignoring nodata/NaN."""
        lo, hi = [], []
        for band in sample:
            values = band.compressed()
            if values.size == 0:
                lo.append(0.0)
                hi.append(1.0)
                continue
            a, b = np.percentile(values, STRETCH_PERCENTILES)
            if b <= a:
                a, b = float(values.min()), float(values.max())
                b = b if b > a else a + 1.0
            lo.append(float(a))
            hi.append(float(b))
        return cls(lo=tuple(lo), hi=tuple(hi))

    def apply(self, data: np.ma.MaskedArray) -> tuple[np.ndarray, np.ndarray]:
        """(bands, h, w) masked → ((h, w, bands) uint8, (h, w) valid mask); masked pixels become 0."""
        lo = np.asarray(self.lo, dtype=np.float32)[:, None, None]
        hi = np.asarray(self.hi, dtype=np.float32)[:, None, None]
        scaled = (np.ma.getdata(data).astype(np.float32) - lo) / (hi - lo) * 255.0
        out = np.clip(np.nan_to_num(scaled, nan=0.0), 0, 255).astype(np.uint8)
        valid = ~np.ma.getmaskarray(data).any(axis=0)
        out[:, ~valid] = 0
        return np.ascontiguousarray(out.transpose(1, 2, 0)), valid
