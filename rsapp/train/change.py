"""The change head on the frozen stage-A tower: real pairs (set-balanced) and pairs made from single-date
building labels (rsapp.data.real_chips.synthetic_change: buildings inpainted away, pasted from elsewhere in the
raster, and other classes changed where nothing counts as change), BCE + Dice over labelled pixels; with
unchanged_pairs, xBD's real pairs without building change too (the release's second change head).

The tower stays as stage A left it, so the language model trained on its tokens (stage B) and SSE-U fitted on
its pooled features stay valid; tools/ship_model.py grafts the trained head into the release.

    python -m rsapp train change --run configs/runs/v2_change2.json --out runs/v2c2   # on the release's tower
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from rsapp.data.real_sets import UNCHANGED_SETS, split
from rsapp.model.heads import ChangeHead
from rsapp.train import fit_head, read_run, start_run, vision_model
from rsapp.train.losses import change_loss
from rsapp.train.batch import Batch, add_change


@dataclass
class ChangeRun:
    vision: str  # run (stage A or SSE-U) or release folder whose tower the head reads
    steps: int = 1500
    pairs_per_step: int = 8
    chip: int = 256
    synthetic_change_share: float = 0.5
    paste_share: float = 0.0  # made pairs that also gain buildings copied from elsewhere in their raster
    distractor_share: float = 0.0  # made pairs whose roads, vegetation, bare land or water change too (not change)
    unchanged_pairs: bool = False  # real pairs without building change (real_sets.UNCHANGED_SETS) train too
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0


def train_change(run: ChangeRun, out: Path) -> Path:
    rng = start_run(out, run.seed)
    model = vision_model(run.vision, fresh=("change_head",))
    model.change_head = ChangeHead()
    pairs = [r for r in split(held_out=False)
             if r.change is not None and (run.unchanged_pairs or r.set not in UNCHANGED_SETS)]
    buildings = [r for r in split(held_out=False) if r.dense is not None and "building" in r.known]

    def loss_of_step() -> torch.Tensor:
        batch = Batch()
        add_change(batch, pairs, buildings, run.pairs_per_step, run.synthetic_change_share, run.chip, rng,
                   run.paste_share, run.distractor_share)
        part = batch.parts()
        with torch.no_grad():
            levels = model.tower.pyramid(batch.pixels())
        head = model.change_head
        return change_loss(head([lv[part["before"]] for lv in levels], [lv[part["after"]] for lv in levels]),
                           batch.change)

    return fit_head(model, model.change_head, run, out, "change", loss_of_step)


if __name__ == "__main__":  # python -m rsapp.train.change RUN.json OUT_DIR
    import sys

    train_change(read_run(ChangeRun, sys.argv[1]), Path(sys.argv[2]))
