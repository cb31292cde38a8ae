"""Box codec (RSUniVLM): `[x1, y1, x2, y2]` integers on 0–100 relative to the chip ↔ chip-pixel boxes."""

from __future__ import annotations

import re

import numpy as np

BOX_SCALE = 100
_GROUP = re.compile(r"\[([^\[\]]*)\]")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def iou(a, b) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes (any units; numbers or 0-d tensors)."""
    ix = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
    iy = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
    inter = ix * iy
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


def boxes_to_text(boxes_px, chip_size: int) -> str:
    """Chip-pixel boxes → "[x1, y1, x2, y2] [..]" on 0–100."""
    groups = []
    for x1, y1, x2, y2 in boxes_px:
        v = np.clip(np.round(np.array([x1, y1, x2, y2], float) / chip_size * BOX_SCALE), 0, BOX_SCALE).astype(int)
        groups.append(f"[{v[0]}, {v[1]}, {v[2]}, {v[3]}]")
    return " ".join(groups)


def text_to_boxes(text: str, chip_size: int) -> tuple[list[tuple[float, float, float, float]], list[str]]:
    """Every bracket group of four numbers → chip-pixel box. Out-of-range numbers are clipped, malformed or
    empty groups dropped, corners put in order; problems come back as warnings, never exceptions."""
    boxes, warnings = [], []
    for raw in _GROUP.findall(text or ""):
        nums = [float(n) for n in _NUMBER.findall(raw)]
        if len(nums) != 4:
            warnings.append(f"dropped a malformed box [{raw.strip()}]")
            continue
        clipped = [min(max(n, 0.0), BOX_SCALE) for n in nums]
        if clipped != nums:
            warnings.append(f"clipped box [{raw.strip()}] to 0–{BOX_SCALE}")
        x1, x2 = sorted((clipped[0], clipped[2]))
        y1, y2 = sorted((clipped[1], clipped[3]))
        if x2 - x1 < 1e-9 or y2 - y1 < 1e-9:
            warnings.append(f"dropped an empty box [{raw.strip()}]")
            continue
        s = chip_size / BOX_SCALE
        boxes.append((x1 * s, y1 * s, x2 * s, y2 * s))
    return boxes, warnings
