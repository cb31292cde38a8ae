"""`python -m rsapp`: the same entry points the app uses, for scripts and for checking results by hand.

Every user mistake exits non-zero with one line on stderr and no traceback (RSAPP_DEBUG=1 shows it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path

from rsapp.errors import RsappError

EXIT_USER_ERROR = 2
EXIT_FAILURE = 1


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=None, default=str))


def cmd_info(args) -> int:
    from rsapp.geo import Scene

    with Scene(args.file) as scene:
        info = scene.info.to_json()
        info["rgb_bands"] = list(scene.rgb_bands)
    if args.json:
        _print_json(info)
    else:
        for k, v in info.items():
            print(f"{k:>14}: {v}")
    return 0


def cmd_ask(args) -> int:
    from rsapp.analyst import Analyst
    from rsapp.export import answer_frame, write_geojson
    from rsapp.geo import Scene, parse_aoi

    aoi = parse_aoi(args.aoi) if args.aoi else None
    scenes = []
    try:
        for f in [args.file] + ([args.file2] if args.file2 else []):
            scenes.append(Scene(f))
        answer = Analyst(weights=args.weights, quant=args.quant).ask(
            scenes, args.prompt, aoi=aoi, gsd=args.gsd, task=args.task, detail=args.detail)
    finally:
        for s in scenes:
            s.close()
    if args.out:
        write_geojson(args.out, [answer_frame(answer)])
    summary = answer.summary()
    summary["out"] = str(args.out) if args.out else None
    if args.json:
        _print_json(summary)
    else:
        print(f"{answer.task} (expert {answer.expert}: {answer.expert_name}) {answer.text}")
        print(f"GSD {answer.gsd_m} m ({answer.gsd_source}); {answer.n_boxes} boxes, {answer.n_mask_pixels} mask px")
    return 0


def cmd_model_info(args) -> int:
    import torch

    from rsapp.analyst import Analyst
    from rsapp.model.config import PRESETS, RsappConfig
    from rsapp.model.info import describe
    from rsapp.model.modeling import RsappVLM
    from rsapp.model.quant import choose_path, linear_bytes

    analyst = Analyst(weights=args.weights, quant=args.quant)
    if analyst.available():
        rt = analyst.runtime
        fp32_model = RsappVLM.load(analyst.weights)
        info = describe(fp32_model) | {"weights": str(analyst.weights), "trained": True}
        info.update(quant=rt.quant, bytes_fp32=rt.bytes_fp32, bytes_quantized=rt.bytes_quantized)
    else:
        torch.manual_seed(0)
        model = RsappVLM(RsappConfig(**PRESETS["tiny"]))
        path = choose_path(args.quant)
        info = describe(model) | {"weights": None, "trained": False,
                                  "note": f"no weights in {analyst.weights}: the tiny preset's architecture"}
        info.update(quant=path, bytes_fp32=linear_bytes(model, "fp32"), bytes_quantized=linear_bytes(model, path))
    _print_json(info) if args.json else print(json.dumps(info, indent=2))
    return 0


def cmd_bench(args) -> int:
    from rsapp.analyst import Analyst
    from rsapp.evaluate.bench import bench

    result = bench(Analyst(weights=args.weights, quant=args.quant), repeats=args.repeats, uhr=not args.no_uhr)
    _print_json(result) if args.json else print(json.dumps(result, indent=2))
    return 0


def cmd_evaluate(args) -> int:
    from rsapp.analyst import Analyst
    from rsapp.evaluate.run import evaluate

    result = evaluate(Analyst(weights=args.weights, quant=args.quant).runtime, args.seed, args.n,
                      real=not args.no_real, ablation=args.ablation, spoof=args.ablation == "none",
                      nodata_share=args.nodata_share)
    _print_json(result) if args.json else print(json.dumps(result, indent=2))
    return 0


def cmd_corpus(args) -> int:
    from rsapp.data.corpus import write_corpus

    path = write_corpus(Path(args.out), seed=args.seed, n=args.n)
    print(json.dumps({"out": str(path), "n": args.n, "seed": args.seed}))
    return 0


def cmd_train(args) -> int:
    from rsapp.train.loop import TrainConfig, train

    cfg = TrainConfig(preset=args.preset, out=args.out, seed=args.seed)
    for key in ("stage1_steps", "stage2_steps", "batch_size", "init_from", "lr_stage2", "pair_share", "warmup",
                "real_share", "real_from_step", "colour_cast", "nodata_share", "stop_at", "fresh_lr_scale",
                "train_only", "select_missed", "box_weight", "select_weight", "sse_weight"):
        if getattr(args, key) is not None:
            setattr(cfg, key, getattr(args, key))
    if args.task_weights:
        try:
            cfg.task_weights = {k: float(v) for k, v in json.loads(args.task_weights).items()}
        except (ValueError, AttributeError) as e:
            raise RsappError(f'--task-weights must be JSON like {{"[VG]": 0.3}}: {e}') from None
    final = train(cfg)
    print(json.dumps({"final": str(final)}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rsapp", description="Chat with remote-sensing imagery, offline.")
    sub = p.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="describe a raster: CRS, size, bands, footprint, GSD")
    info.add_argument("file")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=cmd_info)

    ask = sub.add_parser("ask", help="ask the model about an image (or two dates of one place)")
    ask.add_argument("file")
    ask.add_argument("file2", nargs="?", help="second date, for [CCD] and change [SEG]")
    ask.add_argument("--prompt", required=True, help='e.g. "[VQA] how many ships?"')
    ask.add_argument("--task", help="force a task token (auto, VQA, VG, SEG, CCD, CAP, CLS, REF)")
    ask.add_argument("--aoi", help="AOI as a GeoJSON file (EPSG:4326; pixel coordinates for unreferenced images)")
    ask.add_argument("--gsd", type=float, help="override the ground sampling distance, metres per pixel")
    ask.add_argument("--out", help="write the answer's boxes/masks as GeoJSON here")
    ask.add_argument("--weights", help="model folder (default: weights/rsapp-tiny)")
    ask.add_argument("--quant", default="auto", help="auto | int8 | nf4 | fp32")
    ask.add_argument("--detail", action="store_true",
                     help="show the model the AOI at native resolution (up to 8192 px) through the token budget")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.set_defaults(func=cmd_ask)

    mi = sub.add_parser("model-info", help="parameters per part, CS-HLoRA tiers, quantization, sizes")
    mi.add_argument("--weights")
    mi.add_argument("--quant", default="auto")
    mi.add_argument("--json", action="store_true")
    mi.set_defaults(func=cmd_model_info)

    be = sub.add_parser("bench", help="latency per task (512×512 chip), decode speed, the 8192×8192 UHR path")
    be.add_argument("--weights")
    be.add_argument("--quant", default="auto")
    be.add_argument("--repeats", type=int, default=3)
    be.add_argument("--no-uhr", action="store_true", help="skip the 8192×8192 run")
    be.add_argument("--json", action="store_true")
    be.set_defaults(func=cmd_bench)

    ev = sub.add_parser("evaluate", help="scores on a fresh seeded split and the real labelled samples")
    ev.add_argument("--seed", type=int, required=True)
    ev.add_argument("--n", type=int, default=200, help="samples per task")
    ev.add_argument("--weights")
    ev.add_argument("--quant", default="auto")
    ev.add_argument("--no-real", action="store_true", help="skip the real labelled sets")
    ev.add_argument("--nodata-share", dest="nodata_share", type=float, default=0.0,
                    help="share of one-image chips with no-data, blanked as the app blanks them (another split)")
    ev.add_argument("--ablation", default="none", choices=["none", "predicted_gsd", "static_gate", "single_expert"],
                    help="inference-time ablation of the trained model")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    co = sub.add_parser("corpus", help="write a generated split (images + JSONL) for inspection")
    co.add_argument("--seed", type=int, required=True)
    co.add_argument("--n", type=int, required=True)
    co.add_argument("--out", required=True)
    co.set_defaults(func=cmd_corpus)

    tr = sub.add_parser("train", help="train the default model (two stages, resumable)")
    tr.add_argument("--preset", default="tiny", choices=["tiny", "small"])
    tr.add_argument("--out", default="runs/tiny")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--stage1-steps", dest="stage1_steps", type=int)
    tr.add_argument("--stage2-steps", dest="stage2_steps", type=int)
    tr.add_argument("--batch-size", dest="batch_size", type=int)
    tr.add_argument("--init-from", dest="init_from", help="continue from a trained model folder (skips stage 1)")
    tr.add_argument("--lr-stage2", dest="lr_stage2", type=float)
    tr.add_argument("--warmup", type=int)
    tr.add_argument("--pair-share", dest="pair_share", type=float, help="share of two-date batches")
    tr.add_argument("--real-share", dest="real_share", type=float,
                    help="share of samples from the real labelled sets in ../shared/data/real")
    tr.add_argument("--colour-cast", dest="colour_cast", type=float,
                    help="share of samples under a random colour cast (white balance, saturation, haze)")
    tr.add_argument("--nodata-share", dest="nodata_share", type=float,
                    help="share of one-image samples whose chip has no-data (blank strips or outside an AOI polygon)")
    tr.add_argument("--real-from-step", dest="real_from_step", type=int, help="stage-2 step the real samples join at")
    tr.add_argument("--fresh-lr-scale", dest="fresh_lr_scale", type=float,
                    help="lr multiplier of the newest modules (rsapp.train.loop.FRESH_MODULES)")
    tr.add_argument("--box-weight", dest="box_weight", type=float, help="weight of the [VG] box head's loss")
    tr.add_argument("--select-weight", dest="select_weight", type=float,
                    help="weight of the [VG] proposal selector's loss")
    tr.add_argument("--sse-weight", dest="sse_weight", type=float, help="weight of SSE-U's Gaussian NLL")
    tr.add_argument("--stop-at", dest="stop_at", type=int, help="stop stage 2 at this step (schedule unchanged)")
    tr.add_argument("--task-weights", dest="task_weights", help='JSON task mix, e.g. {"[VG]": 0.3}')
    tr.add_argument("--train-only", dest="train_only",
                    help="comma-separated parameter-name prefixes to train (the rest frozen), e.g. box_select")
    tr.add_argument("--no-select-missed", dest="select_missed", action="store_false", default=None,
                    help="the [VG] selector learns from the box head's proposals only (as at inference)")
    tr.set_defaults(func=cmd_train)
    return p


def _quiet_libraries() -> None:
    """GDAL and friends report problems through logging and warnings; the CLI reports them once, itself."""
    for name in ("rasterio", "fiona", "pyogrio", "py.warnings"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    warnings.filterwarnings("ignore")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = os.environ.get("RSAPP_DEBUG") == "1"
    if not debug:
        _quiet_libraries()
    try:
        return args.func(args)
    except RsappError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as e:  # a bug, not the user's fault: still one line, with a way to see more
        if debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"error: unexpected {type(e).__name__}: {msg} (run with RSAPP_DEBUG=1 for details)", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
