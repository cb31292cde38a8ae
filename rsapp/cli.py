"""`python -m rsapp`: the same entry points the app uses, for scripts and for checking results by hand.

Every user mistake exits non-zero with one line on stderr and no traceback (RSAPP_DEBUG=1 shows it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import warnings
from pathlib import Path

from rsapp.errors import RsappError

EXIT_USER_ERROR = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130  # Ctrl-C: what was done is written


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


def check_output_path(path: str) -> None:
    """Refuse an output path the answer could not be written to, before any work is done."""
    p = Path(path)
    if p.is_dir():
        raise RsappError(f"--out {path} is a folder; give a file name such as {p / 'answer.geojson'}")
    if not p.parent.is_dir():
        raise RsappError(f"--out {path}: the folder {p.parent} does not exist")
    if not os.access(p.parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise RsappError(f"--out {path} is not writable")


def cmd_ask(args) -> int:
    from rsapp.analyst import Analyst
    from rsapp.export import answer_frame, write_geojson
    from rsapp.geo import Scene, parse_aoi

    if args.out:
        check_output_path(args.out)
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
        print(f"GSD {answer.gsd_m:.3g} m ({answer.gsd_source}); {answer.n_boxes} boxes, {answer.n_mask_pixels} mask px")
    return 0


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def cmd_batch(args) -> int:
    from rsapp.batch.runner import check_out, run_batch
    from rsapp.geo import parse_aoi

    if args.stop_workers:
        from rsapp.batch import kept_cluster

        stopped = kept_cluster.stop()
        print("local batch workers stopped" if stopped else "no local batch workers were running")
        return 0
    if not args.inputs or not args.prompt or not args.out:
        raise RsappError("batch needs SCENE_OR_FOLDER..., --prompt and --out")
    from rsapp.batch.kept_cluster import MIN_KEEP_S

    if args.keep != 0 and args.keep < MIN_KEEP_S:
        raise RsappError(f"--keep is 0 (close the local workers with the run) or at least {MIN_KEEP_S:g} seconds")
    check_output_path(args.out)
    check_out(Path(args.out))
    if args.workers < 1:
        raise RsappError("--workers must be at least 1")
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops a batch as Ctrl-C does: what is done is written
    report = run_batch(args.inputs, args.prompt, Path(args.out), args.weights,
                       aoi=parse_aoi(args.aoi) if args.aoi else None, tile=args.tile, overlap=args.overlap,
                       scheduler=args.scheduler, workers=args.workers, fresh=args.fresh, progress=not args.json,
                       keep_s=args.keep)
    if args.json:
        _print_json(report.to_dict())
    else:
        done = "interrupted: " if report.interrupted else ""
        print(f"{done}{report.tiles_run} tiles run, {report.tiles_resumed} resumed, of {report.tiles} "
              f"({report.tiles_per_s} tiles/s) → {report.out}")
        for name, t in report.layers.items():
            area = f", {t['area_m2']:,.0f} m²" if t["area_m2"] is not None else ""
            print(f"  {name}: {t['count']}{area}")
        if report.cluster == "kept":
            print(f"(the local workers stay up, model loaded, until idle for {args.keep:g} s: "
                  "`python -m rsapp batch --stop-workers` stops them now)")
    return EXIT_INTERRUPTED if report.interrupted else 0


def cmd_model_info(args) -> int:
    from rsapp.analyst import Analyst
    from rsapp.model.info import describe

    analyst = Analyst(weights=args.weights, quant=args.quant)
    if not analyst.available():
        raise RsappError(f"no weights in {analyst.weights}")
    from rsapp.model.vlm import RsappVLM

    rt = analyst.runtime
    info = describe(RsappVLM.load(analyst.weights)) | {"weights": str(analyst.weights), "quant": rt.quant,
                                                        **rt.sizes}
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

    analyst = Analyst(weights=args.weights, quant=args.quant)
    rt = analyst.runtime
    result: dict = {"model": rt.name, "quant": rt.quant}
    if args.real:
        from rsapp.evaluate.real import RuntimePredictor, asking, evaluate_real

        result["real"] = evaluate_real(RuntimePredictor(rt), text_n=args.text_n, ask=asking(analyst))
    if args.seed is not None:
        from rsapp.evaluate.synthetic import evaluate_synthetic

        result["synthetic"] = evaluate_synthetic(rt, args.seed, args.n)
    if len(result) == 2:
        raise RsappError("say what to evaluate: --real, --seed N (the synthetic split), or both")
    _print_json(result) if args.json else print(json.dumps(result, indent=2))
    return 0


def cmd_corpus(args) -> int:
    from rsapp.data.corpus import write_corpus

    path = write_corpus(Path(args.out), seed=args.seed, n=args.n)
    print(json.dumps({"out": str(path), "n": args.n, "seed": args.seed}))
    return 0


# stage → (module, run class, trainer) under rsapp.train
TRAINERS = {"vision": ("vision", "VisionRun", "train_vision"), "change": ("change", "ChangeRun", "train_change"),
            "scene": ("scene", "SceneRun", "train_scene"), "instances": ("instances", "InstanceRun", "train_instances"),
            "dense": ("dense", "DenseRun", "train_dense"), "language": ("language", "LanguageRun", "train_language")}


def cmd_train(args) -> int:
    import importlib

    from rsapp.train import read_run

    module, run_cls, trainer = TRAINERS[args.stage]
    mod = importlib.import_module(f"rsapp.train.{module}")
    final = getattr(mod, trainer)(read_run(getattr(mod, run_cls), args.run), Path(args.out))
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
    ask.add_argument("--weights", help="model folder (default: weights/rsapp-v2)")
    ask.add_argument("--quant", default="auto", help="auto | int8 | nf4 | fp32")
    ask.add_argument("--detail", action="store_true",
                     help="show the model the AOI at native resolution (up to 8192 px) through the token budget")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.set_defaults(func=cmd_ask)

    ba = sub.add_parser("batch", help="one prompt over whole scenes or folders, tile by tile (Dask), merged")
    ba.add_argument("inputs", nargs="*", metavar="SCENE_OR_FOLDER")
    ba.add_argument("--prompt")
    ba.add_argument("--aoi", help="only the tiles meeting this AOI (GeoJSON, EPSG:4326), masked to it")
    ba.add_argument("--tile", type=int, default=512, help="tile side in the scenes' pixels (default 512)")
    ba.add_argument("--overlap", type=int, default=64, help="pixels shared by neighbouring tiles (default 64)")
    ba.add_argument("--out", help="OUT.gpkg (a layer per class + tiles) or OUT.geojson")
    ba.add_argument("--scheduler", help="a running Dask scheduler, e.g. tcp://127.0.0.1:8786 (default: a local "
                                        "cluster)")
    ba.add_argument("--workers", type=int, default=1, help="local worker processes (each loads the model once)")
    ba.add_argument("--keep", type=float, default=300.0,
                    help="seconds the local workers stay up once idle, model loaded, for the next batch (default "
                         "300, at least 30; 0: close them with this run)")
    ba.add_argument("--stop-workers", action="store_true", help="stop the kept local workers now, and exit")
    ba.add_argument("--fresh", action="store_true", help="start over instead of resuming OUT's progress file")
    ba.add_argument("--weights")
    ba.add_argument("--json", action="store_true")
    ba.set_defaults(func=cmd_batch)

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

    ev = sub.add_parser("evaluate", help="scores on the real held-out sets and/or a fresh synthetic split")
    ev.add_argument("--real", action="store_true", help="every real set's held-out split (see the model card)")
    ev.add_argument("--text-n", dest="text_n", type=int, default=100,
                    help="scenes per set asked [CLS]/[CAP]/[VQA] through the language model (0: heads only)")
    ev.add_argument("--seed", type=int, help="a synthetic split of this seed: GSD from pixels and spoofing")
    ev.add_argument("--n", type=int, default=100, help="synthetic samples")
    ev.add_argument("--weights")
    ev.add_argument("--quant", default="auto")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    co = sub.add_parser("corpus", help="write a generated split (images + JSONL) for inspection")
    co.add_argument("--seed", type=int, required=True)
    co.add_argument("--n", type=int, required=True)
    co.add_argument("--out", required=True)
    co.set_defaults(func=cmd_corpus)

    tr = sub.add_parser("train", help="train a stage of v2 from a run file (configs/runs/*.json)")
    tr.add_argument("stage", choices=list(TRAINERS),
                    help="vision: tower + heads (stage A); change: the change head on the frozen tower; "
                         "scene: the scene head on the frozen tower, with zoomed-out views; "
                         "instances: the building-core head on the frozen tower (counting, [VG]); "
                         "dense: the land-cover head refitted on the frozen tower, with scenes ruling classes out; "
                         "language: projector + LM adapters (stage B)")
    tr.add_argument("--run", required=True, help="run settings, JSON")
    tr.add_argument("--out", required=True)
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
