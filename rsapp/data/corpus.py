"""`python -m rsapp corpus`: a generated split on disk (PNG images + one JSONL line per sample) to look at."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from rsapp.data.samples import make_sample


def write_corpus(out: Path, seed: int, n: int, chip_px: int = 256) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    rng = np.random.default_rng([seed, 31337])
    with (out / "samples.jsonl").open("w") as f:
        for i in tqdm(range(n), desc="corpus"):
            s = make_sample(rng, None, chip_px)
            names = []
            for j, im in enumerate(s.images):
                name = f"images/{i:06d}_{j}.png"
                Image.fromarray(im).save(out / name)
                names.append(name)
            rec = {"id": i, "images": names, "token": s.token, "question": s.question, "answer": s.answer,
                   "gsd_m": round(s.gsd_m, 4), "kind": s.kind}
            if "boxes" in s.target:
                rec["boxes_px"] = [[round(v, 2) for v in b] for b in s.target["boxes"]]
            f.write(json.dumps(rec) + "\n")
    return out
