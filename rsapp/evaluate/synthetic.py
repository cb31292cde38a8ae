"""`evaluate --seed N`: the synthetic corpus as a regression check of what only it gives — GSD from pixels
across 0.1–30 m (SSE-U) — on a fresh split of a seed never trained on."""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm import tqdm

from rsapp.data.samples import make_sample


def evaluate_synthetic(runtime, seed: int, n: int, progress: bool = True) -> dict:
    rng = np.random.default_rng([seed, 7919])
    chip = 256
    errors = []
    for _ in tqdm(range(n), desc="synthetic", disable=not progress, mininterval=10):
        s = make_sample(rng, "[CAP]", chip)
        x = torch.from_numpy(np.ascontiguousarray(s.images[0])).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            mu = float(runtime.model.vision.encode([x]).s_mu[0])
        errors.append(abs(mu - math.log10(s.gsd_m)))
    return {"seed": seed, "n": n, "gsd_mae_log10": round(float(np.mean(errors)), 4),
            "gsd_within_x2": round(float(np.mean(np.array(errors) < math.log10(2))), 4)}
