"""Training of v2: stage A (tower + heads), the SSE-U fit, stage B (projector + LM adapters). Settings come
from run files (configs/runs/*.json); never imported by the UI."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch


def read_run(cls, path: str | Path):
    """A run dataclass from its JSON file (lists become tuples where the field is a tuple); unknown keys fail."""
    data = json.loads(Path(path).read_text())
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {sorted(unknown)} for {cls.__name__}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def start_run(out: Path, seed: int) -> np.random.Generator:
    """Make the run's folder, seed torch, and return the run's numpy generator."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def lr_factor(step: int, steps: int, warmup: int = 50) -> float:
    """Linear warm-up over `warmup` steps, then a cosine from 1 to 0 over the run."""
    return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
