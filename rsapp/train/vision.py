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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from rsapp.data.real_chips import change_chip, dense_chip, scene_chip, synthetic_change
from rsapp.data.real_sets import DENSE_INDEX, NONE_OF_KNOWN, split
from rsapp.model.vision_model import VisionConfig, VisionModel
from rsapp.model.pretrained import vision_state_dict
from rsapp.tasks.vocabulary import SCENE_CLASSES
from rsapp.train import lr_factor, read_run, start_run
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



def pick(rasters: list, rng):
    """A set uniformly, then one of its rasters: a set of one large scene weighs as much as one of 56 tiles."""
    sets = sorted({r.set for r in rasters})
    chosen = sets[int(rng.integers(len(sets)))]
    members = [r for r in rasters if r.set == chosen]
    return members[int(rng.integers(len(members)))]


def to_batch(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


def dense_targets(labels: np.ndarray, known: tuple[str, ...], classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) class-index labels of a set that labels `known` → (K, H, W) 0/1 targets and (K, H, W) weights."""
    target = np.zeros((classes,) + labels.shape, np.float32)
    weight = np.zeros_like(target)
    for name in known:
        k = DENSE_INDEX[name]
        labelled = (labels < classes) | (labels == NONE_OF_KNOWN)
        target[k] = labels == k
        weight[k] = labelled
    return target, weight


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
    pairs = [r for r in train if r.change is not None]
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
        # Dense.
        ims, tg, wt, gsd_d = [], [], [], []
        for _ in range(run.dense_per_step):
            r = pick(dense_sets, rng)
            rgb, labels, g = dense_chip(r, rng, run.chip)
            t, w = dense_targets(labels, r.known, len(cfg.dense_classes))
            ims.append(rgb), tg.append(t), wt.append(w), gsd_d.append(g)
        # Scenes.
        sc, sy, gsd_s = [], [], []
        for _ in range(run.scene_per_step):
            r = scenes[int(rng.integers(len(scenes)))]
            rgb, g = scene_chip(r, rng, run.chip)
            sc.append(rgb), sy.append(SCENE_CLASSES.index(r.scene)), gsd_s.append(g)
        # Change pairs: real ones, and ones made from single-date buildings.
        ca, cb, ct = [], [], []
        while len(ca) < run.change_per_step:
            if rng.random() < run.synthetic_change_share:
                made = synthetic_change(pick(building_sets, rng), rng, run.chip)
            else:
                made = change_chip(pick(pairs, rng), rng, run.chip)
            if made is not None:
                ca.append(made[0]), cb.append(made[1]), ct.append(made[2])
        x = to_batch(ims + sc + ca + cb)
        levels = model.tower.pyramid(x)
        nd, ns, nc = len(ims), len(sc), len(ca)
        rows = lambda a, b: [lv[a:b] for lv in levels]  # noqa: E731
        # Dense loss.
        logits = F.interpolate(model.dense_head(rows(0, nd)), size=(run.chip, run.chip), mode="bilinear",
                               align_corners=False)
        l_dense = pixel_loss(logits, torch.from_numpy(np.stack(tg)), torch.from_numpy(np.stack(wt)))
        # Scene loss.
        pooled = model.tower.pooled(levels)
        l_scene = F.cross_entropy(model.scene_head(pooled[nd:nd + ns]), torch.tensor(sy))
        # Change loss.
        c0 = nd + ns
        l_change = change_loss(model.change_head(rows(c0, c0 + nc), rows(c0 + nc, c0 + 2 * nc)), ct)
        # SSE-U where the GSD is known.
        gs = gsd_d + gsd_s
        known = [i for i, g in enumerate(gs) if g is not None]
        l_gsd = torch.zeros(())
        if known:
            idx = torch.tensor(known)
            mu, logvar = model.sse_u(pooled[:nd + ns][idx].detach(), x[:nd + ns][idx])
            s = torch.tensor([math.log10(gs[i]) for i in known], dtype=torch.float32)
            l_gsd = 0.5 * (logvar + (s - mu) ** 2 * torch.exp(-logvar)).mean()
        loss = l_dense + l_scene + l_change + 0.3 * l_gsd
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        log.append({"step": step, "dense": l_dense.item(), "scene": l_scene.item(), "change": l_change.item(),
                    "gsd": l_gsd.item(), "s": round(time.time() - t0, 1)})
        if step % 50 == 0 or step == run.steps - 1:
            recent = log[-50:]
            print(json.dumps({k: round(float(np.mean([r[k] for r in recent])), 4) for k in recent[0]}), flush=True)
        if (step + 1) % 250 == 0 or step == run.steps - 1:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "vision.safetensors"))
            (out / "run.json").write_text(json.dumps({"run": asdict(run), "config": cfg.to_dict(),
                                                      "minutes": round((time.time() - t0) / 60, 1)}, indent=1))
    return out


if __name__ == "__main__":  # python -m rsapp.train.vision RUN.json OUT_DIR
    import sys

    train_vision(read_run(VisionRun, sys.argv[1]), Path(sys.argv[2]))
