"""Assemble a release folder from the training runs (release tooling, not part of the app package):
the stage-B checkpoint (everything trained), with SSE-U taken from a later fit on the same frozen tower.

    python tools/ship_model.py runs/v2b --sse-u runs/v2s_b --out weights/rsapp-v2
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from safetensors.torch import load_file

from rsapp.model.vlm import TOKENIZER_FILE, RsappVLM


def ship(stage_b: Path, out: Path, sse_u: Path | None = None) -> Path:
    model = RsappVLM.load(stage_b)
    if sse_u is not None:
        fitted = load_file(str(sse_u / "vision.safetensors"))
        head = {k.removeprefix("sse_u."): v for k, v in fitted.items() if k.startswith("sse_u.")}
        tower = {k: v for k, v in fitted.items() if k.startswith("tower.") and not RsappVLM.is_base(f"vision.{k}")}
        own = model.vision.state_dict()
        # the stage-B checkpoint stores fp16: the same tower equals the fitted one rounded to fp16
        if any(not own[k].equal(v.half().to(own[k].dtype) if v.is_floating_point() else v) for k, v in tower.items()):
            raise SystemExit(f"{sse_u} was fitted on another tower than {stage_b}'s")
        model.vision.sse_u.load_state_dict(head, strict=True)
    model.save(out)
    shutil.copy(stage_b / TOKENIZER_FILE, out / TOKENIZER_FILE)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("stage_b")
    p.add_argument("--sse-u", dest="sse_u")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    print(ship(Path(a.stage_b), Path(a.out), Path(a.sse_u) if a.sse_u else None))
