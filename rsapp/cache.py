"""Where rsapp keeps what it makes for itself (SmolLM2's converted weights, the kept batch cluster's files):
`RSAPP_CACHE`, default ~/.cache/rsapp. Torch-free, so light commands can ask."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("RSAPP_CACHE") or Path.home() / ".cache" / "rsapp")
