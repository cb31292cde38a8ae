"""SSE-U fit on the frozen tower (after stage A): real chips resampled across GSDs (each set's native GSD × 1–8)
and the synthetic corpus (0.1–30 m, what only it spans), Gaussian NLL of log10 GSD. Features are computed once,
so the head trains for many epochs in seconds."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from rsapp.data.real_chips import dense_chip, scene_chip
from rsapp.data.real_sets import split
from rsapp.data.samples import make_sample
from rsapp.model.heads import contrast_signature
from rsapp.model.vision_model import VisionConfig, VisionModel
from rsapp.train import read_run, start_run


@dataclass
class ScaleRun:
    vision: str  # stage-A folder; the fitted SSE-U is written back into a copy in the output folder
    real_chips: int = 1500
    synthetic_chips: int = 1500
    epochs: int = 300
    lr: float = 3e-3
    seed: int = 0



def _features(model: VisionModel, images: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        return model.tower.pooled(model.tower.pyramid(x)), contrast_signature(x)


def fit_scale(run: ScaleRun, out: Path) -> Path:
    rng = start_run(out, run.seed)
    model = VisionModel(VisionConfig())
    model.load_state_dict(load_file(str(Path(run.vision) / "vision.safetensors")), strict=True)
    model.eval()
    train = [r for r in split(held_out=False) if r.gsd_m is not None]
    dense = [r for r in train if r.dense is not None]
    scenes = [r for r in train if r.scene is not None]
    images, targets = [], []
    for _ in tqdm(range(run.real_chips), desc="real chips", mininterval=10):
        if rng.random() < 0.5:
            rgb, gsd = scene_chip(scenes[int(rng.integers(len(scenes)))], rng, 256)
        else:
            rgb, _, gsd = dense_chip(dense[int(rng.integers(len(dense)))], rng, 256)
        images.append(rgb), targets.append(math.log10(gsd))
    for _ in tqdm(range(run.synthetic_chips), desc="synthetic chips", mininterval=10):
        s = make_sample(rng, "[CAP]", 256)
        images.append(s.images[0]), targets.append(math.log10(s.gsd_m))
    pooled, signature = [], []
    for i in tqdm(range(0, len(images), 32), desc="features", mininterval=10):
        p, sig = _features(model, images[i:i + 32])
        pooled.append(p), signature.append(sig)
    pooled, signature = torch.cat(pooled), torch.cat(signature)
    s = torch.tensor(targets, dtype=torch.float32)
    head = model.sse_u
    opt = torch.optim.AdamW(head.parameters(), lr=run.lr, weight_decay=1e-4)
    n = len(s)
    for epoch in range(run.epochs):
        order = torch.randperm(n)
        for i in range(0, n, 256):
            idx = order[i:i + 256]
            mu, logvar = head.from_features(pooled[idx], signature[idx])
            loss = 0.5 * (logvar + (s[idx] - mu) ** 2 * torch.exp(-logvar)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        mu, _ = head.from_features(pooled, signature)
    err = (mu - s).abs()
    real_n = run.real_chips
    report = {"train_mae_real": round(float(err[:real_n].mean()), 4),
              "train_mae_synthetic": round(float(err[real_n:].mean()), 4), "run": asdict(run)}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "vision.safetensors"))
    (out / "scale.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return out


if __name__ == "__main__":  # python -m rsapp.train.scale RUN.json OUT_DIR
    import sys

    fit_scale(read_run(ScaleRun, sys.argv[1]), Path(sys.argv[2]))
