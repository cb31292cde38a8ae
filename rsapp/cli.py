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
            scenes, args.prompt, aoi=aoi, gsd=args.gsd, task=args.task)
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
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.set_defaults(func=cmd_ask)
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
