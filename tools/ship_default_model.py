"""Ship runs/tiny into weights/rsapp-tiny, evaluate it on a held-out seed, run the inference-time ablations, and
write its MODEL_CARD.md from those numbers. Usage: python tools/ship_default_model.py RUN MINUTES "MACHINE"."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rsapp.evaluate.run import evaluate  # noqa: E402
from rsapp.model.runtime import Runtime  # noqa: E402
from rsapp.train.ship import ship, write_card  # noqa: E402

EVAL_SEED = 20261123  # never used for training (training seeds its generator with TrainConfig.seed = 0)


def main() -> None:
    run, minutes, machine = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    dest = ship(run, Path("weights/rsapp-tiny"))
    rt = Runtime.load(dest)
    scores = evaluate(rt, EVAL_SEED, int(sys.argv[4]) if len(sys.argv) > 4 else 200)
    (run / "eval.json").write_text(json.dumps(scores, indent=1))
    print(json.dumps(scores))
    ablations = {}
    for name in ("none", "predicted_gsd", "static_gate", "single_expert"):
        ablations[name] = evaluate(rt, EVAL_SEED, 60, real=False, ablation=name,
                                   tasks=("[VQA]", "[CLS]", "[VG]", "[SEG]"), spoof=False)
        print(name, json.dumps({k: ablations[name][k] for k in ("vqa_acc", "cls_acc", "vg_acc50", "seg_miou")}))
    (run / "ablations.json").write_text(json.dumps(ablations, indent=1))
    print(write_card(dest, run, scores, ablations, minutes, machine))


if __name__ == "__main__":
    main()
