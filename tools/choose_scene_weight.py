"""Choose how much [CLS] trusts the scene head against the language model (VisionConfig.scene_head_weight) on the
UC Merced train split, read as it is, 1.5× and 2× finer and 2× coarser, and write it into a release's config.json.

Each scene is asked once through the runtime's [CLS] path; the LM's and the head's scores of every label are kept
and combined for every weight of the grid. The chosen weight is the smallest whose train top-1 (the mean over the
four readings) is within TIE of the best: past it, the train split cannot tell weights apart.

    PYTHONPATH=. python tools/choose_scene_weight.py weights/rsapp-v2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rsapp.data.real_sets import split
from rsapp.model.inference import Request, Runtime
from rsapp.model.vlm import CONFIG_FILE
from rsapp.tasks.tokens import TASKS
from rsapp.train.scene import downsampled, upsampled

GRID = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0)
TIE = 0.005
READINGS = {"as is": 1.0, "1.5x finer": 1.5, "2x finer": 2.0, "2x coarser": 0.5}  # size factors
CHIP = 512  # the analyst resamples a larger image into its chip


def resized(rgb: np.ndarray, factor: float) -> np.ndarray:
    """The scene `factor` times its size, as the analyst's chip shows it (finer: at most CHIP px)."""
    if factor == 1.0:
        return rgb
    return upsampled(rgb, factor, CHIP) if factor > 1 else downsampled(rgb, 1 / factor)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--per-class", type=int, default=10, help="train scenes of each class (spread over it)")
    ap.add_argument("--quant", default="auto", help="the runtime path the answers take (default: the app's)")
    args = ap.parse_args()
    rt = Runtime.load(args.folder, args.quant)
    of_class: dict[str, list] = {}
    for r in split(held_out=False):
        if r.set == "ucmerced":
            of_class.setdefault(r.scene, []).append(r)
    scenes = [rs[int(i)] for rs in of_class.values()
              for i in np.linspace(0, len(rs) - 1, args.per_class).round()]
    kept = []  # (reading, true label, labels, LM scores, head scores)
    score = rt.label_scores

    def keeping(enc, req, s):
        labels, written, head = score(enc, req, s)
        kept[-1] += (labels, written.numpy(), head.numpy())
        return labels, written, head

    rt.label_scores = keeping  # this runtime only: the [CLS] path hands its scores to the tool
    req = Request("[CLS]", "", TASKS["[CLS]"].expert, "text", labels=rt.config.vision.scene_labels)
    for name, factor in READINGS.items():
        for r in tqdm(scenes, desc=name, mininterval=10):
            kept.append((name, r.scene))
            rt.generate([resized(r.rgb, factor)], req)
    kept = [k for k in kept if len(k) == 5]  # a scene answered with a land-cover word has no scores
    top1 = {}
    for w in GRID:
        accs = [np.mean([lb[int(np.argmax(lm + w * hd))] == truth for name, truth, lb, lm, hd in kept if name == n])
                for n in READINGS]
        top1[w] = float(np.mean(accs))
        print(f"weight {w:5.1f}: " + " ".join(f"{n} {a:.3f}" for n, a in zip(READINGS, accs)) + f" | {top1[w]:.3f}")
    best = max(top1.values())
    chosen = min(w for w, a in top1.items() if a >= best - TIE)
    print("chosen:", chosen)
    path = args.folder / CONFIG_FILE
    cfg = json.loads(path.read_text())
    cfg["vision"]["scene_head_weight"] = chosen
    path.write_text(json.dumps(cfg, indent=1))


if __name__ == "__main__":
    main()
