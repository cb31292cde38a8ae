"""The mask head: the dense head refitted on the frozen tower with the real land-cover sets' labels and UC Merced
scenes whose class rules dense classes out (rsapp.data.real_sets.SCENE_RULES_OUT: a forest holds no building, a
dense residential block no bare land), labelled absent on every pixel. BCE + Dice over labelled pixels, as stage A.

Stage A's head had seen only the land-cover sets' own collections; on UC Merced's USGS orthophotos it painted roofs,
lawns and tarmac as bare land and grass as water. The refit is a second head beside the dense head (the release's
mask head, or a copy of its dense head when it has none, is where it starts): the dense head stays as stage A left
it because the tag the language model reads is of its maps, and so does the tower, so the language model's tokens
do not move. tools/ship_model.py grafts the mask head into the release with the share of it pixel answers read
(VisionConfig.mask_head_share); tools/choose_thresholds.py then chooses the thresholds again.

    python -m rsapp train dense --run configs/runs/v2_dense.json --out runs/v2d
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rsapp.data.real_sets import ruled_out_scenes, split
from rsapp.train import fit_head, read_run, start_run, vision_model
from rsapp.train.batch import Batch, add_dense
from rsapp.train.losses import pixel_loss


@dataclass
class DenseRun:
    vision: str  # release whose tower the head reads and whose mask head (else dense head) it continues from
    steps: int = 2000
    chips_per_step: int = 12  # from the land-cover sets (set-balanced)
    ruled_out_per_step: int = 4  # UC Merced scenes whose class rules dense classes out (class-balanced)
    chip: int = 256
    lr: float = 3e-4
    weight_decay: float = 1e-4
    seed: int = 7


def train_dense(run: DenseRun, out: Path) -> Path:
    rng = start_run(out, run.seed)
    model = vision_model(run.vision)
    if not hasattr(model, "mask_head"):
        model.mask_head = copy.deepcopy(model.dense_head)
    classes = len(model.cfg.dense_classes)
    train = split(held_out=False)
    labelled = [r for r in train if r.dense is not None]
    ruled_out = ruled_out_scenes(train)

    def loss_of_step() -> torch.Tensor:
        batch = Batch()
        add_dense(batch, labelled, run.chips_per_step, run.chip, classes, rng)
        if run.ruled_out_per_step:
            add_dense(batch, ruled_out, run.ruled_out_per_step, run.chip, classes, rng)
        with torch.no_grad():
            levels = model.tower.pyramid(batch.pixels())
        logits = F.interpolate(model.mask_head(levels), size=(run.chip, run.chip), mode="bilinear",
                               align_corners=False)
        return pixel_loss(logits, torch.from_numpy(np.stack(batch.dense_targets)),
                          torch.from_numpy(np.stack(batch.dense_weights)))

    return fit_head(model, model.mask_head, run, out, "dense", loss_of_step)


if __name__ == "__main__":  # python -m rsapp.train.dense RUN.json OUT_DIR
    import sys

    train_dense(read_run(DenseRun, sys.argv[1]), Path(sys.argv[2]))
