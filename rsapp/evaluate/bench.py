"""`python -m rsapp bench`: model load, latency per task on a 512×512 chip, decode speed against transformers'
own generate, the 8192×8192 UHR path, memory."""

from __future__ import annotations

import math
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


DECODE_TOKENS = 32
DECODE_RUNS = 3  # each side's best of three: the machine's noise only ever slows a run down
DECODE_PROMPT = "<|im_start|>user\nDescribe what a satellite image of a harbour usually shows.<|im_end|>\n<|im_start|>assistant\n"


def transformers_rate(ids: list[int], cfg) -> float:
    """Tokens per second of transformers' own fp32 LlamaForCausalLM.generate on SmolLM2's base weights (run in a
    child process by decode_rates, so its copy of the model does not count in our peak memory)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rsapp.model.pretrained import lm_state_dict

    ids = torch.tensor([ids])
    hf = LlamaForCausalLM(LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.ffn_size,
        num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.kv_heads,
        rope_theta=cfg.rope_theta, rms_norm_eps=cfg.rms_eps, tie_word_embeddings=True)).eval()
    state = {"model." + k.replace(".base.weight", ".weight"): v for k, v in lm_state_dict().items()}
    hf.load_state_dict(state | {"lm_head.weight": state["model.embed_tokens.weight"]}, strict=True)
    with torch.no_grad():
        hf.generate(ids, max_new_tokens=2, min_new_tokens=2, do_sample=False)  # warm-up
        best = math.inf
        for _ in range(DECODE_RUNS):
            t0 = time.perf_counter()
            out = hf.generate(ids, max_new_tokens=DECODE_TOKENS, min_new_tokens=DECODE_TOKENS, do_sample=False)
            best = min(best, time.perf_counter() - t0)
    return (out.shape[1] - ids.shape[1]) / best


def decode_rates(rt) -> dict:
    """Tokens per second of our decoder (its quantization path, KV cache, CS-HLoRA and the chosen expert) and of
    transformers' own fp32 generate on the same base weights and prompt, DECODE_TOKENS each, best of DECODE_RUNS."""
    import multiprocessing

    import torch

    lm, cfg = rt.model.lm, rt.model.cfg.lm
    ids = torch.tensor([rt.tokenizer.encode(DECODE_PROMPT).ids])
    s = torch.tensor([0.0])
    best = math.inf
    with torch.no_grad():
        for _ in range(DECODE_RUNS):
            cache = lm.new_cache()
            hidden = lm(lm.embed(ids), s, 0, cache)
            t0 = time.perf_counter()
            for _ in range(DECODE_TOKENS):
                nxt = lm.greedy(hidden[0, -1])
                hidden = lm(lm.embed(torch.tensor([[nxt]])), s, 0, cache)
            best = min(best, time.perf_counter() - t0)
    ours = DECODE_TOKENS / best
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        theirs = pool.apply(transformers_rate, (ids[0].tolist(), cfg))
    return {"decode_tokens_per_s": round(ours, 2), "transformers_fp32_tokens_per_s": round(theirs, 2),
            "decode_speedup_vs_transformers": round(ours / theirs, 2)}


def bench(analyst, repeats: int = 3, uhr: bool = True) -> dict:
    from rsapp.geo import Scene

    t0 = time.perf_counter()
    rt = analyst.runtime
    out: dict = {"model_load_s": round(time.perf_counter() - t0, 2), "quant": rt.quant, "model": rt.name,
                 **rt.sizes}
    with tempfile.TemporaryDirectory() as tmp:
        a = _write_scene(Path(tmp) / "a.tif", 512, 0.5, 1)
        b = _write_scene(Path(tmp) / "b.tif", 512, 0.5, 2)
        latency = {}
        with Scene(a) as sa, Scene(b) as sb:
            for token, prompt in tqdm(BENCH_PROMPTS.items(), desc="bench", leave=False):
                scenes = [sa, sb] if token == "[CCD]" else [sa]
                times = []
                for _ in range(repeats):
                    ans = analyst.ask(scenes, prompt)
                    times.append(ans.timings_s["total"])
                latency[token] = statistics.median(times)
        out["latency_s"] = latency
        out.update(decode_rates(rt))
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
