"""`python -m rsapp evaluate`: a fresh split from a seed the model never trained on, every task, GSD spoofing,
and the real labelled sets shipped in sample_data/."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rsapp.data.samples import SEG_GRID, cell_grid, make_sample
from rsapp.evaluate.metrics import F1Accumulator, IoUAccumulator, bleu4, exact, grounding_hit
from rsapp.model.runtime import BOX_SOURCES, MASK_SOURCES
from rsapp.tasks.boxes import text_to_boxes
from rsapp.tasks.descriptors import grid_to_mask, text_to_mask
from rsapp.tasks.prompts import build_prompt
from rsapp.tasks.tokens import TASKS

SPOOF_FACTORS = ("0.1", "0.3", "1", "3", "10")
EVAL_TASKS = ("[VQA]", "[CLS]", "[VG]", "[REF]", "[SEG]", "[CAP]", "[CCD]", "[SEG2]")
SAMPLES = Path(__file__).resolve().parents[2] / "sample_data"
# Inference-time ablations of the trained model (the training-time ones need runs of their own):
# predicted_gsd: SSE-U's GSD instead of the metadata; static_gate: one fixed s for every image (a CS-HLoRA that
# ignores scale, i.e. a static LoRA); single_expert: expert 0 for every task (one FFN instead of G-MoE).
ABLATIONS = ("none", "predicted_gsd", "static_gate", "single_expert")
STATIC_LOG10_GSD = 0.24  # the centre of the corpus's 0.1–30 m range


def evaluate(runtime, seed: int, n: int, real: bool = True, ablation: str = "none",
             tasks: tuple[str, ...] = EVAL_TASKS, spoof: bool = True, nodata_share: float = 0.0) -> dict:
    """Scores of a Runtime on n fresh samples per task (seeded), plus the GSD-spoofing sweep on [VQA].
    nodata_share: the share of one-image chips with no-data, blanked as the app blanks them (another split)."""
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation must be one of {ABLATIONS}")
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, 7919])
    chip = runtime.config.chip_size
    res: dict = defaultdict(list)
    vqa_samples = []
    seg, seg_px, change = ({m: acc() for m in MASK_SOURCES} for acc in (IoUAccumulator, IoUAccumulator, F1Accumulator))
    caps, cap_refs, ccds, ccd_refs = [], [], [], []
    bar = tqdm(total=n * len(tasks), desc="evaluate", leave=False)
    for task in EVAL_TASKS:
        if task not in tasks:
            continue
        for _ in range(n):
            s = make_sample(rng, task, chip, nodata_share=nodata_share)
            log10_gsd = {"predicted_gsd": None, "static_gate": STATIC_LOG10_GSD}.get(ablation, math.log10(s.gsd_m))
            expert = 0 if ablation == "single_expert" else TASKS[s.token][0]
            prompt = build_prompt(s.token, s.question, len(s.images))
            gen = runtime.generate(s.images, prompt, expert, log10_gsd)
            bar.update(1)
            if len(s.images) == 1:
                res["gsd_err"].append(abs(gen.s_mu - math.log10(s.gsd_m)))
            if task == "[VQA]":
                vqa_samples.append(s)
                res["vqa"].append(exact(gen.text, s.answer))
                res[f"vqa_{s.kind}"].append(exact(gen.text, s.answer))
            elif task in ("[CLS]", "[REF]"):
                res[task].append(exact(gen.text, s.answer))
            elif task == "[VG]":
                for source in BOX_SOURCES:  # the weights' own choice, and the other one for comparison
                    text = gen.text if source == runtime.box_source else runtime.generate(
                        s.images, prompt, expert, log10_gsd, box_source=source).text
                    boxes, _ = text_to_boxes(text, chip)
                    res[f"vg_{source}"].append(grounding_hit(boxes, s.target["boxes"]))
            elif task in ("[SEG]", "[SEG2]"):
                for source in MASK_SOURCES:  # the weights' own choice, and the other one for comparison
                    text = gen.text if source == runtime.mask_source else runtime.generate(
                        s.images, prompt, expert, log10_gsd, mask_source=source).text
                    grid, labels, _ = text_to_mask(text, SEG_GRID, ["others", s.target["label"]])
                    pred = (grid > 0).astype(np.uint8)
                    if task == "[SEG]":
                        seg[source].add(pred, s.target["grid"], s.target["label"])
                        seg_px[source].add(grid_to_mask(pred, chip), s.target["mask"], s.target["label"])
                    else:
                        change[source].add(pred, cell_grid(s.target["mask"]))
            elif task == "[CAP]":
                caps.append(gen.text)
                cap_refs.append(s.answer)
            elif task == "[CCD]":
                ccds.append(gen.text)
                ccd_refs.append(s.answer)
                res["ccd_exact"].append(exact(gen.text, s.answer))
    spoof_acc = {}
    for factor in SPOOF_FACTORS if spoof else ():
        hits = []
        for s in vqa_samples:
            gen = runtime.generate(s.images, build_prompt(s.token, s.question, 1), 0, math.log10(s.gsd_m * float(factor)))
            hits.append(exact(gen.text, s.answer))
        spoof_acc[factor] = float(np.mean(hits)) if hits else 0.0
    bar.close()
    out = {
        "seed": seed,
        "n_per_task": n,
        "nodata_share": nodata_share,
        "vqa_acc": _mean(res["vqa"]),
        "cls_acc": _mean(res["[CLS]"]),
        "vg_acc50": _mean(res[f"vg_{runtime.box_source}"]),
        "box_source": runtime.box_source,
        "vg_acc50_by_source": {b: _mean(res[f"vg_{b}"]) for b in BOX_SOURCES},
        "ref_acc": _mean(res["[REF]"]),
        "seg_miou": seg[runtime.mask_source].miou(),
        "seg_miou_px": seg_px[runtime.mask_source].miou(),
        "seg_iou_per_class": seg[runtime.mask_source].per_class(),
        "cd_f1": change[runtime.mask_source].f1() if "[SEG2]" in tasks else None,  # None: not evaluated
        "mask_source": runtime.mask_source,
        "seg_miou_by_source": {m: seg[m].miou() for m in MASK_SOURCES},
        "cd_f1_by_source": {m: change[m].f1() for m in MASK_SOURCES} if "[SEG2]" in tasks else None,
        "cap_bleu4": bleu4(caps, cap_refs),
        "ccd_bleu4": bleu4(ccds, ccd_refs),
        "ccd_exact": _mean(res["ccd_exact"]),
        "gsd_mae_log10": _mean(res["gsd_err"]),
        "spoof": spoof_acc,
        "ablation": ablation,
        "vqa_by_kind": {k[4:]: _mean(v) for k, v in sorted(res.items()) if k.startswith("vqa_")},
        "quant": runtime.quant,
        "model": runtime.name,
    }
    if real:
        out["real"] = evaluate_real(runtime)
    out["seconds"] = time.perf_counter() - t0
    return out


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def evaluate_real(runtime) -> dict:
    """The same metrics on the real labelled sets in sample_data/ (never trained on): SpaceNet Las Vegas
    building segmentation (0.3 m) and the Taizhou Landsat change pair (30 m, sparse reference labels)."""
    import geopandas as gpd
    import rasterio
    from rasterio.features import rasterize
    from rasterio.vrt import WarpedVRT

    from rsapp.analyst import Analyst
    from rsapp.geo import Scene

    analyst = Analyst(runtime=runtime)
    out = {}
    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        a = analyst.ask([scene], "[SEG] segment the buildings")
        shapes = gpd.read_file(SAMPLES / "vegas_buildings.geojson").to_crs(scene.crs).geometry
        truth = rasterize(((g, 1) for g in shapes), out_shape=(a.chip_size, a.chip_size), transform=a.transform)
        acc = IoUAccumulator()
        acc.add((a.mask > 0).astype(np.uint8), truth, "building")
        out["vegas_buildings_seg_miou_px"] = acc.miou()
        out["vegas_buildings_iou"] = acc.per_class().get("building", 0.0)
    with Scene(SAMPLES / "taizhou_2000_30m.tif") as s1, Scene(SAMPLES / "taizhou_2003_30m.tif") as s2:
        a = analyst.ask([s1, s2], "[SEG] segment the changes")
        with rasterio.open(SAMPLES / "taizhou_change_labels.tif") as src, WarpedVRT(
                src, crs=src.crs, transform=a.transform, width=a.chip_size, height=a.chip_size,
                resampling=rasterio.enums.Resampling.nearest) as vrt:
            labels = vrt.read(1)
        f1 = F1Accumulator()
        f1.add(a.mask > 0, labels == 1, valid=labels > 0)
        out["taizhou_change_f1"] = f1.f1()
        b = analyst.ask([s1, s2], "[CCD] what changed?")
        out["taizhou_ccd"] = b.text
    return out
