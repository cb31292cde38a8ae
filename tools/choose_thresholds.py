"""Choose the dense head's per-class thresholds on the real train splits and write them, with the quarter turns
they were chosen for, into a checkpoint's config.json (release tooling: rsapp.evaluate.thresholds).

    PYTHONPATH=. python tools/choose_thresholds.py weights/rsapp-v2 --views 4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rsapp.data.real_sets import split
from rsapp.evaluate.real import VisionPredictor
from rsapp.evaluate.thresholds import GRID, choose, grid_ious
from rsapp.model.vlm import CONFIG_FILE, RsappVLM


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--views", type=int, default=4, help="quarter turns a pixel answer's maps average over")
    args = ap.parse_args()
    vision = RsappVLM.load(args.folder).vision
    vision.cfg.dense_tta = args.views
    ious = grid_ious(VisionPredictor(vision), split(held_out=False))
    print("set / class IoU at thresholds " + " ".join(f"{t:.2f}" for t in GRID))
    for (s, name), iou in sorted(ious.items()):
        print(f"  {s} / {name}: " + " ".join(f"{v:.3f}" for v in iou))
    chosen = choose(ious)
    print("chosen:", chosen)
    path = args.folder / CONFIG_FILE
    cfg = json.loads(path.read_text())
    cfg["vision"].update(dense_tta=args.views, dense_thresholds=chosen)
    path.write_text(json.dumps(cfg, indent=1))


if __name__ == "__main__":
    main()
