"""The shipped default model, on a split it never saw (a seed neither training nor the model card used).

The floors sit far below the card's scores and far above what random weights reach (they answer nothing
parseable: 0 on every task), so they fail on a stub or on weights that no longer fit the code, not on noise.
"""

import pytest

from rsapp.analyst import default_weights
from rsapp.evaluate.run import evaluate
from rsapp.model.modeling import RsappVLM
from rsapp.model.runtime import Runtime

WEIGHTS = default_weights()
FLOORS = {"vqa_acc": 0.6, "cls_acc": 0.6, "vg_acc50": 0.3, "seg_miou": 0.45, "cd_f1": 0.5}

pytestmark = pytest.mark.skipif(not (WEIGHTS / "config.json").exists(), reason="no shipped weights")


def test_shipped_weights_fill_every_module_of_the_code():
    assert RsappVLM.load(WEIGHTS).missing_modules == []


def test_shipped_model_does_every_task_on_unseen_scenes():
    scores = evaluate(Runtime.load(WEIGHTS), seed=31337, n=40, real=False, spoof=False,
                      tasks=("[VQA]", "[CLS]", "[VG]", "[SEG]", "[SEG2]"))
    below = {k: round(scores[k], 3) for k, floor in FLOORS.items() if not scores[k] >= floor}
    assert not below, f"below the floors {FLOORS}: {below}"
    assert scores["gsd_mae_log10"] <= 0.35  # SSE-U within about a factor of two of the true GSD
