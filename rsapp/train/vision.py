"""Stage A of v2: the pretrained tower fine-tuned with the heads that read its pyramid, on the real sets' train
splits (dense classes, change, scene classes, SSE-U). Settings come from a run file (JSON of VisionRun).

Losses (here, not in the model): dense — per-class BCE + soft Dice over the pixels whose class the set labels;
change — BCE + Dice over labelled pixels; scene — cross-entropy; SSE-U — Gaussian NLL of log10 GSD where known.
The backbone's batch-norm statistics stay frozen (ImageNet's): batches of a few chips from mixed sets would
only make them noisy.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rsapp.data.real_sets import UNCHANGED_SETS, split
from rsapp.model.vision_model import VisionConfig, VisionModel
from rsapp.model.pretrained import vision_state_dict
from rsapp.tasks.vocabulary import SCENE_CLASSES
from rsapp.train import lr_factor, optimizer_step, read_run, save_vision_run, start_run
from rsapp.train.batch import Batch, add_change, add_dense, add_scenes
from rsapp.train.losses import change_loss, pixel_loss


@dataclass
class VisionRun:
    steps: int = 1500
    chip: int = 256
    dense_per_step: int = 6
    scene_per_step: int = 6
    change_per_step: int = 3
    synthetic_change_share: float = 0.5
    lr_backbone: float = 2e-4
    lr_heads: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    init: str | None = None  # a previous stage-A checkpoint to continue from



def stage_a_losses(model: VisionModel, batch: Batch, chip: int) -> dict[str, torch.Tensor]:
    """Every head of the visual half on one batch: dense, scene, change, and SSE-U where the GSD is known."""
    x = batch.pixels()
    levels = model.tower.pyramid(x)
    part = batch.parts()
    rows = lambda name: [lv[part[name]] for lv in levels]  # noqa: E731
    logits = F.interpolate(model.dense_head(rows("dense")), size=(chip, chip), mode="bilinear", align_corners=False)
    losses = {"dense": pixel_loss(logits, torch.from_numpy(np.stack(batch.dense_targets)),
                                  torch.from_numpy(np.stack(batch.dense_weights)))}
    pooled = model.tower.pooled(levels)
    losses["scene"] = F.cross_entropy(model.scene_head(pooled[part["scenes"]]), torch.tensor(batch.scene_labels))
    losses["change"] = change_loss(model.change_head(rows("before"), rows("after")), batch.change)
    known = [i for i, g in enumerate(batch.gsd_m) if g is not None]  # dense and scene chips
    losses["gsd"] = torch.zeros(())
    if known:
        idx = torch.tensor(known)
        mu, logvar = model.sse_u(pooled[idx].detach(), x[idx])
        s = torch.tensor([math.log10(batch.gsd_m[i]) for i in known], dtype=torch.float32)
        losses["gsd"] = 0.5 * (logvar + (s - mu) ** 2 * torch.exp(-logvar)).mean()
    return losses


def train_vision(run: VisionRun, out: Path) -> Path:
    rng = start_run(out, run.seed)
    cfg = VisionConfig()
    model = VisionModel(cfg)
    if run.init:
        from safetensors.torch import load_file
        model.load_state_dict(load_file(Path(run.init) / "vision.safetensors"), strict=True)
    else:
        model.tower.backbone.load_state_dict(vision_state_dict(), strict=True)
    train = split(held_out=False)
    dense_sets = [r for r in train if r.dense is not None]
    scenes = [r for r in train if r.scene is not None]
    pairs = [r for r in train if r.change is not None and r.set not in UNCHANGED_SETS]  # as stage A was trained
    building_sets = [r for r in dense_sets if "building" in r.known]
    backbone = [p for n, p in model.named_parameters() if n.startswith("tower.backbone.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("tower.backbone.")]
    opt = torch.optim.AdamW([{"params": backbone, "lr": run.lr_backbone}, {"params": rest, "lr": run.lr_heads}],
                            weight_decay=run.weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]
    log = []
    t0 = time.time()
    for step in tqdm(range(run.steps), desc="stage A", mininterval=30):
        for g, lr in zip(opt.param_groups, base_lrs):  # warm-up then cosine
            g["lr"] = lr * lr_factor(step, run.steps)
        model.train()
        model.freeze_backbone_stats()
        batch = Batch()
        add_dense(batch, dense_sets, run.dense_per_step, run.chip, len(cfg.dense_classes), rng)
        add_scenes(batch, scenes, run.scene_per_step, run.chip, SCENE_CLASSES, rng)
        add_change(batch, pairs, building_sets, run.change_per_step, run.synthetic_change_share, run.chip, rng)
        losses = stage_a_losses(model, batch, run.chip)
        loss = losses["dense"] + losses["scene"] + losses["change"] + 0.3 * losses["gsd"]
        optimizer_step(opt, model.parameters(), loss)
        log.append({"step": step, **{k: v.item() for k, v in losses.items()}, "s": round(time.time() - t0, 1)})
        if step % 50 == 0 or step == run.steps - 1:
            recent = log[-50:]
            print(json.dumps({k: round(float(np.mean([r[k] for r in recent])), 4) for k in recent[0]}), flush=True)
        if (step + 1) % 250 == 0 or step == run.steps - 1:
            save_vision_run(model, run, out, t0)
    return out


if __name__ == "__main__":  # python -m rsapp.train.vision RUN.json OUT_DIR
    import sys

    train_vision(read_run(VisionRun, sys.argv[1]), Path(sys.argv[2]))
