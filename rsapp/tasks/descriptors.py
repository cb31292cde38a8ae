"""Text4Seg semantic descriptors ↔ masks.

Canonical form (DESIGN.md): an N×N grid, row-wise run-length encoded as `label *count` runs joined by `| `,
rows joined by newlines; background is `others`. The parser also reads RSUniVLM's variant (`label*count` runs
joined by `, `). A short output is padded with the last label, a long one truncated, with a warning.
"""

from __future__ import annotations

import re

import numpy as np

BACKGROUND = "others"
_RUN = re.compile(r"^\s*(.*?)\s*\*\s*(\d+)\s*$")


def mask_to_text(grid: np.ndarray, labels: list[str]) -> str:
    """(N, N) label indices (0 = others) → canonical descriptor text."""
    rows = []
    for row in grid:
        runs, start = [], 0
        for i in range(1, len(row) + 1):
            if i == len(row) or row[i] != row[start]:
                runs.append(f"{labels[int(row[start])]} *{i - start}")
                start = i
        rows.append("| ".join(runs))
    return "\n".join(rows)


def text_to_mask(text: str, n: int, labels: list[str] | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """Descriptor text → ((n, n) uint8 grid, labels with 0 = others, warnings). Unknown labels are added."""
    labels = list(labels) if labels else [BACKGROUND]
    if labels[0] != BACKGROUND:
        labels.insert(0, BACKGROUND)
    warnings: list[str] = []
    cells: list[int] = []
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    if len(lines) == 1 and "|" not in lines[0] and "," in lines[0]:
        lines = [lines[0]]  # RSUniVLM variant on one line: runs continue across rows
    for line in lines:
        row: list[int] = []
        for part in re.split(r"\||,", line):
            if not part.strip():
                continue
            m = _RUN.match(part)
            name, count = (m.group(1), int(m.group(2))) if m else (part.strip(), 1)
            name = name.strip().lower() or BACKGROUND
            if name not in labels:
                labels.append(name)
            row.extend([labels.index(name)] * count)
        if len(lines) > 1 and len(row) != n:  # one row per line: fix its length
            if row:
                warnings.append(f"row of {len(row)} cells fitted to {n}")
                row = (row + [row[-1]] * n)[:n]
        cells.extend(row)
    total = n * n
    if len(cells) < total:
        if cells:
            warnings.append(f"descriptor had {len(cells)} of {total} cells; padded with the last label")
        cells.extend([cells[-1] if cells else 0] * (total - len(cells)))
    elif len(cells) > total:
        warnings.append(f"descriptor had {len(cells)} cells; truncated to {total}")
        cells = cells[:total]
    if len(labels) > 255:
        raise ValueError("too many labels")
    return np.asarray(cells, dtype=np.uint8).reshape(n, n), labels, warnings


def grid_from_mask(mask: np.ndarray, n: int) -> np.ndarray:
    """(S, S) label mask → (n, n) grid by majority vote in each cell (how training targets are made)."""
    s = mask.shape[0]
    edges = np.linspace(0, s, n + 1).round().astype(int)
    grid = np.zeros((n, n), dtype=np.uint8)
    for i in range(n):
        for j in range(n):
            cell = mask[edges[i]:edges[i + 1], edges[j]:edges[j + 1]]
            grid[i, j] = np.bincount(cell.ravel(), minlength=1).argmax()
    return grid


def grid_to_mask(grid: np.ndarray, size: int) -> np.ndarray:
    """(n, n) grid → (size, size) mask on the chip grid (nearest: each chip pixel takes its cell's label)."""
    n = grid.shape[0]
    idx = np.minimum((np.arange(size) * n) // size, n - 1)
    return grid[idx[:, None], idx[None, :]]
