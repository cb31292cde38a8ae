"""`python -m rsapp bench`: latency per task on a 512×512 chip, decode speed, the 8192×8192 UHR path, memory."""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window
from tqdm import tqdm

from rsapp.data.render import render
from rsapp.data.world import make_world

BENCH_PROMPTS = {
    "[VQA]": "[VQA] how many buildings are there?",
    "[CAP]": "[CAP] describe the image",
    "[CLS]": "[CLS] what kind of scene is this?",
    "[VG]": "[VG] the largest building",
    "[REF]": "[REF] what is at [20, 20, 40, 40]?",
    "[SEG]": "[SEG] segment the buildings",
    "[CCD]": "[CCD] what changed?",
}
UHR_SIDE = 8192


def _write_scene(path: Path, side: int, gsd_m: float, seed: int) -> Path:
    """A georeferenced synthetic scene (UTM 33N), written block by block so memory stays small."""
    rng = np.random.default_rng(seed)
    block = 512
    profile = dict(driver="GTiff", width=side, height=side, count=3, dtype="uint8", crs="EPSG:32633",
                   transform=Affine(gsd_m, 0, 500_000, 0, -gsd_m, 5_000_000), tiled=True, blockxsize=256,
                   blockysize=256, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(0, side, block):
            for c in range(0, side, block):
                tile = render(make_world(rng, gsd_m, block, "residential"), rng, block).rgb
                dst.write(tile.transpose(2, 0, 1), window=Window(c, r, block, block))
        if side > 2048:
            dst.build_overviews([2, 4, 8, 16, 32], rasterio.enums.Resampling.average)
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench(analyst, repeats: int = 3, uhr: bool = True) -> dict:
    from rsapp.geo import Scene

    rt = analyst.runtime
    out: dict = {"quant": rt.quant, "model": rt.name, "bytes_fp32": rt.bytes_fp32,
                 "bytes_quantized": rt.bytes_quantized}
    with tempfile.TemporaryDirectory() as tmp:
        a = _write_scene(Path(tmp) / "a.tif", 512, 0.5, 1)
        b = _write_scene(Path(tmp) / "b.tif", 512, 0.5, 2)
        latency, per_token = {}, []
        with Scene(a) as sa, Scene(b) as sb:
            for token, prompt in tqdm(BENCH_PROMPTS.items(), desc="bench", leave=False):
                scenes = [sa, sb] if token == "[CCD]" else [sa]
                times = []
                for _ in range(repeats):
                    ans = analyst.ask(scenes, prompt)
                    times.append(ans.timings_s["total"])
                    if ans.timings_s.get("new_tokens", 0) > 1:
                        per_token.append(ans.timings_s["decode"] / ans.timings_s["new_tokens"])
                latency[token] = statistics.median(times)
        out["latency_s"] = latency
        out["decode_ms_per_token"] = 1000 * statistics.median(per_token) if per_token else None
        if uhr:
            path = _write_scene(Path(tmp) / "uhr.tif", UHR_SIDE, 0.3, 3)
            with Scene(path) as s:
                t0 = time.perf_counter()
                ans = analyst.ask([s], "[VQA] how many buildings are there?", detail=True)
                out["uhr_seconds"] = time.perf_counter() - t0
                out["uhr_side_px"] = UHR_SIDE
                out["uhr_tokens_total"] = ans.tokens_total
                out["uhr_tokens_kept"] = ans.tokens_kept
    out["peak_rss_mb"] = peak_rss_mb()
    return out
