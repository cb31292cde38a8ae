"""Finished tiles, recorded next to the output as they come (OUT.progress.jsonl: a settings line, then one line
per tile, flushed), so that an interrupted batch keeps its work and a rerun does only the rest."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rsapp.batch.worker import TileResult
from rsapp.errors import RsappError


def progress_path(out: Path) -> Path:
    return out.with_name(out.name + ".progress.jsonl")


class Store:
    def __init__(self, out: Path, settings: dict, fresh: bool = False):
        self.path = progress_path(out)
        self.done: dict[str, TileResult] = {}
        if fresh or not self.path.exists():
            self.path.write_text(json.dumps({"settings": settings}) + "\n")
            return
        lines = self.path.read_text().splitlines()
        try:
            recorded = json.loads(lines[0])["settings"]
        except (IndexError, KeyError, ValueError):
            raise RsappError(f"{self.path.name} is not a batch progress file: remove it, or add --fresh") from None
        if recorded != settings:
            changed = sorted(k for k in set(recorded) | set(settings) if recorded.get(k) != settings.get(k))
            raise RsappError(f"{self.path.name} records a batch with other settings ({', '.join(changed)}): add "
                             "--fresh to start over")
        for line in lines[1:]:
            try:
                r = TileResult.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by an interruption: that tile runs again
            self.done[r.key] = r

    def add(self, result: TileResult) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(result.to_json()) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done[result.key] = result
