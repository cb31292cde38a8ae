"""The scene head on the frozen tower, refitted with zoomed-out views of the scenes.

Stage A trained the scene head on UC Merced at 0.3 m, zoomed in (60–100 % of a scene) but never out, so a scene from
a coarser collection was a stranger: held-out UC Merced scenes downsampled 2× were named right 0.73 of the time, 3×
0.51 (0.90 at their own scale). Here every train-split scene is seen as it is, downsampled 1.5–2.5× and 2.5–4× (each
at its own smaller size, as the analyst shows a small image), and as a mosaic of 2×2 or 3×3 scenes of its class
resampled to 256 px (a wider view at 2–3× coarser GSD); flipped at random, and half of the views seen through another
sensor's colours (colour cast, contrast, saturation, haze: another collection's look). With zoom_in (v2sc4) each is
also seen 1.4–2× finer (upsampled, at most 512 px): a finer collection, or a 600 px file of the same area resampled
into the analyst's chip, had been a stranger too (held-out head top-1 0.70 at 2.3× finer). The tower is frozen, so its
pooled features are computed once and the linear head is fitted on them (dropout, label smoothing, AdamW). With
tail_lr (v2sc8) the head reads its own copy of the tower's deep blocks and head conv (PooledTail), tuned with it on a
fresh view of every scene each pass (fit_with_tail); the shared tower stays as it was.

The head also names land-cover scenes (COVER_SCENES: a desert is "bare land", open water "water"): crops of the
land-cover sets' train tiles that one class covers to 80 % (rsapp.data.real_sets.cover_scenes), up to
cover_per_class of each, seen through the same views. Those labels sit after the 21 scene classes; the tag the
language model reads keeps the 21.

The tower stays as it was, so the language model's tokens do not move; its tag token carries the scene
probabilities, which now hold at coarser scales. tools/ship_model.py grafts the head into the release.

    python -m rsapp train scene --run configs/runs/v2_scene7.json --out runs/v2sc8
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from rsapp.data.real_chips import other_optics, other_sensor, square_resize
from rsapp.data.real_sets import cover_scenes, split
from rsapp.model.efficientnet import PooledTail
from rsapp.model.vision_model import VisionConfig, VisionModel, to_tensor
from rsapp.tasks.vocabulary import COVER_SCENES
from rsapp.train import lr_factor, read_run, save_vision_run, start_run, vision_state

MOSAIC_PX = 256


@dataclass
class SceneRun:
    vision: str  # folder of the stage-A (or SSE-U) checkpoint, or a release, whose tower the head reads
    epochs: int = 60
    batch: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-3
    dropout: float = 0.2
    label_smoothing: float = 0.05
    seed: int = 0
    scenes_per_class: int | None = None  # the first n train scenes of each class (None: all)
    photometric: float = 0.0  # share of the views seen through another sensor's colours (cast, contrast, haze)
    cover_per_class: int = 0  # land-cover scenes (COVER_SCENES) of each label drawn from the train tiles (0: none)
    zoom_in: bool = False  # also a view 1.4–2× finer (upsampled, up to 512 px): a finer collection's pixels
    optics: float = 0.0  # share of the views seen through another sensor's optics (blur, sharpening, JPEG)
    # > 0: the head is fitted with its own copy of the tower's deep blocks and head conv (PooledTail) tuned at this
    # learning rate (the head at lr), one fresh view of each scene each of `epochs` passes (fit_with_tail); 0: the
    # linear head alone on the frozen tower's pooled features
    tail_lr: float = 0.0
    accumulate: int = 16  # with tail_lr: views a step (their gradients summed; views differ in size)


def downsampled(rgb: np.ndarray, factor: float) -> np.ndarray:
    """The image area-averaged to 1/factor of its size (at least 32 px a side)."""
    h, w = rgb.shape[:2]
    size = (max(32, round(w / factor)), max(32, round(h / factor)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BOX))


def upsampled(rgb: np.ndarray, factor: float, at_most: int = 512) -> np.ndarray:
    """The image resampled to `factor` times its size (bicubic), its longer side at most `at_most` px: the same
    area at a finer GSD, as a finer collection shows it."""
    h, w = rgb.shape[:2]
    f = min(factor, at_most / max(h, w))
    return np.asarray(Image.fromarray(rgb).resize((round(w * f), round(h * f)), Image.BICUBIC))


def mosaic(images: list[np.ndarray], k: int) -> np.ndarray:
    """k × k images side by side, each area-averaged to MOSAIC_PX / k."""
    tiles = [square_resize(im, MOSAIC_PX // k, False) for im in images]
    return np.concatenate([np.concatenate(tiles[i * k:(i + 1) * k], 1) for i in range(k)], 0)


def views(rgb: np.ndarray, same_class: list[np.ndarray], rng, photometric: float = 0.0,
          zoom_in: bool = False, optics: float = 0.0) -> list[np.ndarray]:
    """A scene at its own scale, two coarser ones, a mosaic of its class and, with zoom_in, a finer one; each
    flipped with probability ½, seen through another sensor's colours with probability `photometric` and, before it
    is resampled, through another sensor's optics with probability `optics` (a blur at the scene's own pixels)."""
    def seen(image):
        return other_optics(image, rng) if optics and rng.random() < optics else image

    k = int(rng.choice([2, 3]))
    out = [seen(rgb), downsampled(seen(rgb), rng.uniform(1.5, 2.5)), downsampled(seen(rgb), rng.uniform(2.5, 4.0)),
           mosaic([same_class[int(i)] for i in rng.integers(len(same_class), size=k * k)], k)]
    if zoom_in:
        out.append(upsampled(seen(rgb), rng.uniform(1.4, 2.0)))
    out = [other_sensor(v, rng) if rng.random() < photometric else v for v in out]
    return [np.ascontiguousarray(v[:, ::-1]) if rng.random() < 0.5 else v for v in out]


def train_scene(run: SceneRun, out: Path) -> Path:
    rng = start_run(out, run.seed)
    model = VisionModel(VisionConfig(cover_scenes=COVER_SCENES if run.cover_per_class else ()))
    state = vision_state(run.vision)
    old = {k: state.pop(k) for k in ("scene_head.fc.weight", "scene_head.fc.bias")}
    missing, _ = model.load_state_dict({k: v for k, v in state.items() if not k.startswith("instance_head.")},
                                       strict=False)
    assert set(missing) == set(old), missing  # everything but the scene head comes from the checkpoint
    fc = model.scene_head.fc
    with torch.no_grad():  # the checkpoint's rows for its labels; a new label's row starts as initialised
        rows = min(len(old["scene_head.fc.weight"]), fc.out_features)
        fc.weight[:rows], fc.bias[:rows] = old["scene_head.fc.weight"][:rows], old["scene_head.fc.bias"][:rows]
    model.eval()
    labels = model.cfg.scene_labels
    rasters_of: dict[str, list] = {}
    for r in split(held_out=False):
        if r.scene is not None:
            rasters_of.setdefault(r.scene, []).append(r)
    scenes = [r for rs in rasters_of.values() for r in rs[:run.scenes_per_class]]
    if run.cover_per_class:
        covers = cover_scenes(split(held_out=False))
        for name in COVER_SCENES:
            crops = [r for r in covers if r.scene == name]
            picked = [crops[int(i)] for i in rng.choice(len(crops), min(run.cover_per_class, len(crops)), False)]
            rasters_of[name] = picked
            scenes += picked
    images_of = {name: [r.rgb for r in rs] for name, rs in rasters_of.items()}
    t0 = time.time()
    if run.tail_lr:
        fit_with_tail(model, run, scenes, images_of, rng)
        save_vision_run(model, run, out, t0, views=run.epochs * len(scenes))
        return out
    fast = copy.deepcopy(model.tower.backbone)  # features only: the saved tower stays the checkpoint's
    fast.freeze_for_inference()
    feats, targets = [], []
    with torch.no_grad():
        for r in tqdm(scenes, desc="scene views", mininterval=30):
            for v in views(r.rgb, images_of[r.scene], rng, run.photometric, run.zoom_in, run.optics):
                feats.append(model.tower.pooled(fast.pyramid(to_tensor(v)))[0])
                targets.append(labels.index(r.scene))
    x, y = torch.stack(feats), torch.tensor(targets)
    head = model.scene_head.fc.train()
    opt = torch.optim.AdamW(head.parameters(), lr=run.lr, weight_decay=run.weight_decay)
    for epoch in range(run.epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), run.batch):
            idx = order[i:i + run.batch]
            loss = F.cross_entropy(head(F.dropout(x[idx], run.dropout)), y[idx], label_smoothing=run.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 10 == 0 or epoch == run.epochs - 1:
            print(json.dumps({"epoch": epoch, "scene": round(loss.item(), 4), "s": round(time.time() - t0, 1)}),
                  flush=True)
    model.eval()
    save_vision_run(model, run, out, t0, views=len(x))
    return out


def fit_with_tail(model: VisionModel, run: SceneRun, scenes: list, images_of: dict[str, list], rng) -> None:
    """The scene head fitted with its own copy of the deep blocks (model.scene_tail, PooledTail, copied from the
    tower and tuned at run.tail_lr; the head at run.lr): each epoch one fresh view of every scene (`views`), a step
    every run.accumulate views; AdamW warmed up then cosine. The copy keeps the tower's batch-norm statistics."""
    model.scene_tail = PooledTail.copy_of(model.tower.backbone).eval()
    model.cfg.scene_tail = True
    labels = model.cfg.scene_labels
    groups = [(model.scene_tail, run.tail_lr), (model.scene_head, run.lr)]
    opt = torch.optim.AdamW([{"params": m.parameters(), "lr": lr} for m, lr in groups], weight_decay=run.weight_decay)
    steps, step = run.epochs * len(scenes) // run.accumulate, 0
    model.scene_head.train()
    for epoch in range(run.epochs):
        losses = []
        for n, i in enumerate(tqdm(rng.permutation(len(scenes)), desc=f"scene epoch {epoch}", mininterval=30)):
            r = scenes[int(i)]
            seen = views(r.rgb, images_of[r.scene], rng, run.photometric, run.zoom_in, run.optics)
            with torch.no_grad():
                levels = model.tower.pyramid(to_tensor(seen[int(rng.integers(len(seen)))]))
            logits = model.scene_head(model.scene_pooled(levels))
            loss = F.cross_entropy(logits, torch.tensor([labels.index(r.scene)]), label_smoothing=run.label_smoothing)
            (loss / run.accumulate).backward()
            losses.append(loss.item())
            if (n + 1) % run.accumulate == 0:
                for g, (_, lr) in zip(opt.param_groups, groups):
                    g["lr"] = lr * lr_factor(step, steps, warmup=20)
                opt.step()
                opt.zero_grad()
                step += 1
        print(json.dumps({"epoch": epoch, "scene": round(float(np.mean(losses)), 4)}), flush=True)
    model.eval()


if __name__ == "__main__":  # python -m rsapp.train.scene RUN.json OUT_DIR
    import sys

    train_scene(read_run(SceneRun, sys.argv[1]), Path(sys.argv[2]))
