"""The change head on the frozen stage-A tower: real pairs (set-balanced) and pairs made from single-date
building labels (rsapp.data.real_chips.synthetic_change), BCE + Dice over labelled pixels.

The tower stays as stage A left it, so the language model trained on its tokens (stage B) and SSE-U fitted on
its pooled features stay valid; tools/ship_model.py grafts the trained head into the release.

    python -m rsapp train change --run configs/runs/v2_change.json --out runs/v2c
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from rsapp.data.real_sets import split
from rsapp.model.heads import ChangeHead
from rsapp.model.vision_model import VisionConfig, VisionModel
from rsapp.train import fit_head, read_run, start_run
from rsapp.train.losses import change_loss
from rsapp.train.batch import Batch, add_change


@dataclass
class ChangeRun:
    vision: str  # folder of the stage-A (or SSE-U) checkpoint whose tower the head reads
    steps: int = 1500
    pairs_per_step: int = 8
    chip: int = 256
    synthetic_change_share: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0


def train_change(run: ChangeRun, out: Path) -> Path:
    rng = start_run(out, run.seed)
    model = VisionModel(VisionConfig())
    state = load_file(str(Path(run.vision) / "vision.safetensors"))
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("change_head.")}, strict=False)
    model.change_head = ChangeHead()  # a fresh head: its architecture may differ from the checkpoint's
    pairs = [r for r in split(held_out=False) if r.change is not None]
    buildings = [r for r in split(held_out=False) if r.dense is not None and "building" in r.known]

    def loss_of_step() -> torch.Tensor:
        batch = Batch()
        add_change(batch, pairs, buildings, run.pairs_per_step, run.synthetic_change_share, run.chip, rng)
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
