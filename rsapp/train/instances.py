"""The instance head on the frozen tower: building cores from the footprints and building regions of the real sets'
train splits (SpaceNet Atlanta, xBD Harvey, Dubai), so that counting and [VG] boxes see two touching houses as
two and a speck of mask as nothing (rsapp.model.counting).

The target of a pixel is how deep it lies inside its own instance: its distance to the instance's edge (a pixel
next to another instance or to the background is on the edge) over the largest such distance in that instance,
so every instance, however small, peaks at 1 and two touching instances meet at their low edges. BCE + soft Dice
over the labelled pixels, at the chip's resolution.

The tower stays as it was (the language model's tokens, SSE-U and the other heads keep reading the same
features); tools/ship_model.py grafts the head into the release.

    python -m rsapp train instances --run configs/runs/v2_instances.json --out runs/v2i
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from scipy import ndimage

from rsapp.data.real_chips import instance_chip
from rsapp.data.real_sets import split
from rsapp.model.vision_model import VisionConfig, VisionModel
from rsapp.train import fit_head, read_run, start_run
from rsapp.train.batch import pick, to_tensor
from rsapp.train.losses import pixel_loss


@dataclass
class InstanceRun:
    vision: str  # folder of the checkpoint whose tower the head reads (the release's)
    sets: tuple[str, ...] = ("spacenet-atlanta", "xbd-buildings", "dubai")  # train splits with building instances
    steps: int = 2000
    chips_per_step: int = 8
    chip: int = 256
    max_factor: float = 3.0  # coarsest resampling of a chip, × the set's GSD
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0


def core_target(ids: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1]: each instance pixel's depth inside its own instance (1 + distance to the
    instance's edge, over the instance's largest), 0 outside instances."""
    inside = ids > 0
    padded = np.pad(ids, 1, mode="edge")
    inner = inside.copy()
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):  # a pixel whose 4-neighbour is another id is on the edge
        inner &= padded[dy:dy + ids.shape[0], dx:dx + ids.shape[1]] == ids
    depth = ndimage.distance_transform_edt(inner) + inside
    if not inside.any():
        return depth.astype(np.float32)
    peak = np.asarray(ndimage.maximum(depth, ids, index=np.arange(ids.max() + 1)), np.float64)
    return np.where(inside, depth / np.maximum(peak[ids], 1.0), 0.0).astype(np.float32)


def core_loss(logits: torch.Tensor, targets: list[np.ndarray], labelled: list[np.ndarray]) -> torch.Tensor:
    """Core logits (B, 1, h, w) at any stride against (H, W) core targets, over the labelled pixels."""
    t = torch.from_numpy(np.stack(targets))[:, None]
    w = torch.from_numpy(np.stack(labelled)).float()[:, None]
    up = F.interpolate(logits, size=t.shape[-2:], mode="bilinear", align_corners=False)
    return pixel_loss(up, t, w)


def train_instances(run: InstanceRun, out: Path) -> Path:
    rng = start_run(out, run.seed)
    state = load_file(str(Path(run.vision) / "vision.safetensors"))
    model = VisionModel(VisionConfig(instance_classes=("building",)))
    model.tower.load_state_dict({k[len("tower."):]: v for k, v in state.items() if k.startswith("tower.")})
    rasters = [r for r in split(held_out=False)
               if r.set in run.sets and r.instances is not None and r.instance_class == "building"]

    def loss_of_step() -> torch.Tensor:
        chips, targets, labelled = [], [], []
        for _ in range(run.chips_per_step):
            rgb, ids, known, _ = instance_chip(pick(rasters, rng), rng, run.chip, run.max_factor)
            chips.append(rgb), targets.append(core_target(ids)), labelled.append(known)
        with torch.no_grad():
            levels = model.tower.pyramid(to_tensor(chips))
        return core_loss(model.instance_head(levels), targets, labelled)

    return fit_head(model, model.instance_head, run, out, "core", loss_of_step)


if __name__ == "__main__":  # python -m rsapp.train.instances RUN.json OUT_DIR
    import sys

    train_instances(read_run(InstanceRun, sys.argv[1]), Path(sys.argv[2]))
