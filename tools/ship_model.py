"""Assemble a release folder from the training runs (release tooling, not part of the app package): the stage-B
checkpoint (everything trained), with heads taken from later fits on the same frozen tower grafted in — SSE-U
(rsapp.train.scale), the change head (rsapp.train.change) and a second one averaged with it, the scene head
(rsapp.train.scene), the instance head (rsapp.train.instances, which also gives the release its instance classes)
and the mask head (rsapp.train.dense, with the share of it pixel answers read; choose the thresholds again with
tools/choose_thresholds.py). The stage-B folder may be a release: its heads are replaced by the fitted ones given.

    PYTHONPATH=. python tools/ship_model.py runs/v2b2 --sse-u runs/v2s_b --change runs/v2c --scene runs/v2sc2 \
        --instances runs/v2i --out weights/rsapp-v2
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file

from rsapp.model.vlm import CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, RsappVLM, VLMConfig


def graft(state: dict, fitted_folder: Path, head: str, source: Path, as_head: str | None = None) -> dict:
    """`state` (a stage-B checkpoint's trained tensors) with vision.<as_head or head>.* replaced by the fitted run's
    <head>.*, after checking the run's tower is the checkpoint's (stage B stores fp16: equal after rounding)."""
    as_head = as_head or head
    fitted = load_file(str(fitted_folder / "vision.safetensors"))
    for k, v in fitted.items():
        if k.startswith("tower.") and f"vision.{k}" in state:
            mine = state[f"vision.{k}"]
            if not mine.equal(v.to(mine.dtype)):
                raise SystemExit(f"{fitted_folder} was fitted on another tower than {source}'s ({k} differs)")
    kept = {k: v for k, v in state.items() if not k.startswith(f"vision.{as_head}.")}
    return kept | {f"vision.{as_head}.{k[len(head) + 1:]}": v for k, v in fitted.items() if k.startswith(f"{head}.")}


def ship(stage_b: Path, out: Path, sse_u: Path | None = None, change: Path | None = None,
         scene: Path | None = None, instances: Path | None = None, dense: Path | None = None,
         mask_share: float = 1.0, second_change: Path | None = None, captions: bool = False) -> Path:
    state = load_file(str(stage_b / WEIGHTS_FILE))
    cfg = VLMConfig.from_dict(json.loads((stage_b / CONFIG_FILE).read_text()))
    heads = (("sse_u", sse_u), ("change_head", change), ("scene_head", scene), ("instance_head", instances),
             ("mask_head", dense))
    for head, folder in heads:
        if folder is not None:
            state = graft(state, folder, head, stage_b)
    if second_change is not None:  # a second change head, its logits averaged with the first's
        state = graft(state, second_change, "change_head", stage_b, as_head="second_change_head")
        cfg.vision.second_change_head = True
    if instances is not None:
        fitted = json.loads((instances / "run.json").read_text())["config"]
        cfg.vision.instance_classes = tuple(fitted["instance_classes"])
    if scene is not None:  # the labels the fitted scene head names besides the scene classes, and its own deep blocks
        fitted = json.loads((scene / "run.json").read_text())["config"]
        cfg.vision.cover_scenes = tuple(fitted.get("cover_scenes", ()))
        cfg.vision.scene_tail = bool(fitted.get("scene_tail"))
        if cfg.vision.scene_tail:
            state = graft(state, scene, "scene_tail", stage_b)
        else:
            state = {k: v for k, v in state.items() if not k.startswith("vision.scene_tail.")}
    if dense is not None:
        cfg.vision.mask_head_share = mask_share
        # a mask head fitted with its own copy of the deep blocks (train dense with tail_lr) brings the copy
        cfg.vision.mask_tail = any(k.startswith("mask_tail.") for k in load_file(str(dense / "vision.safetensors")))
        if cfg.vision.mask_tail:
            state = graft(state, dense, "mask_tail", stage_b)
        else:
            state = {k: v for k, v in state.items() if not k.startswith("vision.mask_tail.")}
    if captions:
        cfg.captions = real_caption_bank()
    model = RsappVLM(cfg)
    model.load_bases()
    model.load_trained(state)
    model.save(out)
    shutil.copy(stage_b / TOKENIZER_FILE, out / TOKENIZER_FILE)
    return out


def real_caption_bank() -> dict[str, list[str]]:
    """The [CAP] caption bank of the real train scenes (UC Merced's; rsapp.data.real_text.caption_bank)."""
    from rsapp.data.real_sets import split
    from rsapp.data.real_text import caption_bank

    return caption_bank(split(held_out=False))


def add_captions(release: Path) -> Path:
    """A release's config.json with the caption bank (its weights untouched, so git stores no new copy of them)."""
    path = release / CONFIG_FILE
    cfg = json.loads(path.read_text())
    cfg["captions"] = real_caption_bank()
    path.write_text(json.dumps(cfg, indent=1))
    return path


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("stage_b")
    p.add_argument("--sse-u", dest="sse_u")
    p.add_argument("--change", help="a change-head run (python -m rsapp train change) on the same tower")
    p.add_argument("--second-change", dest="second_change",
                   help="a second change-head run (e.g. with unchanged_pairs), its logits averaged with the first's")
    p.add_argument("--scene", help="a scene-head run (python -m rsapp train scene) on the same tower")
    p.add_argument("--instances", help="an instance-head run (python -m rsapp train instances) on the same tower")
    p.add_argument("--dense", help="a mask-head run (python -m rsapp train dense) on the same tower")
    p.add_argument("--mask-share", type=float, default=1.0,
                   help="the share of the mask head's probability in pixel answers (the rest: the dense head's)")
    p.add_argument("--captions", action="store_true", help="give the release the real train scenes' caption bank")
    p.add_argument("--captions-only", dest="captions_only", action="store_true",
                   help="only add the caption bank to the release STAGE_B (its config.json; no --out)")
    p.add_argument("--out")
    a = p.parse_args()
    if a.captions_only:
        print(add_captions(Path(a.stage_b)))
    elif not a.out:
        p.error("--out is required")
    else:
        print(ship(Path(a.stage_b), Path(a.out),
                   *(Path(v) if v else None for v in (a.sse_u, a.change, a.scene, a.instances, a.dense)),
                   mask_share=a.mask_share, second_change=Path(a.second_change) if a.second_change else None,
                   captions=a.captions))
