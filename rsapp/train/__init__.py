"""Training of v2: stage A (tower + heads), the SSE-U fit, stage B (projector + LM adapters). Settings come
from run files (configs/runs/*.json); never imported by the UI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path


def read_run(cls, path: str | Path):
    """A run dataclass from its JSON file (lists become tuples where the field is a tuple); unknown keys fail."""
    data = json.loads(Path(path).read_text())
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {sorted(unknown)} for {cls.__name__}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
