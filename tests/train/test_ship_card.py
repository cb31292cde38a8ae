"""The model card of a chain continued on another machine: runs/ is not in git, so the runs no longer on disk keep
what the card being replaced says of them, and the new run is written from its own logs."""

import json
from dataclasses import asdict

import pytest

from rsapp.evaluate.run import SPOOF_FACTORS
from rsapp.train.loop import TrainConfig
from rsapp.train.ship import Recorded, write_card

OLD_CARD = """# rsapp-tiny

Batch 12, AdamW, cosine schedules, on a test machine, 589 minutes in all:
- `tiny` stage 1 (one FFN, no CS-HLoRA / SSE-U): 2300 steps at peak lr 0.0015, LM loss 3.83 → 0.47.
- `tiny` stage 2 (FFN split into the three G-MoE experts): 1500 steps at peak lr 0.0008, LM loss 0.44 → 0.40.
- `tiny_ft` stage 2 (continued from `runs/tiny/final`; dense head): 1250 steps at peak lr 0.0008.

Reproduce:
1. `python -m rsapp train --preset tiny --out runs/tiny --stage1-steps 2300 --stage2-steps 1500`
2. `python -m rsapp train --preset tiny --out runs/tiny_ft --stage2-steps 4000 --init-from runs/tiny/final`
3. `python tools/ship_default_model.py runs/tiny,runs/tiny_ft "MACHINE"` (ships fp16 weights).
"""

METRICS = ("vqa_acc", "cls_acc", "vg_acc50", "ref_acc", "seg_miou", "seg_miou_px", "cd_f1", "cap_bleu4",
           "ccd_bleu4", "gsd_mae_log10")


def _scores():
    return {**dict.fromkeys(METRICS, 0.9), "gsd_mae_log10": 0.15, "seed": 1, "n_per_task": 10, "quant": "int8",
            "vqa_by_kind": {"count": 0.7}, "spoof": dict.fromkeys(SPOOF_FACTORS, 0.5),
            "seg_iou_per_class": {"water": 0.8}, "real": {}}


def test_the_old_card_records_each_run_its_commands_and_minutes():
    rec = Recorded.from_card(OLD_CARD)
    assert rec.minutes == 589 and rec.batch == 12
    assert list(rec.commands) == ["tiny", "tiny_ft"]
    assert len(rec.stages["tiny"]) == 2 and len(rec.stages["tiny_ft"]) == 1
    assert rec.commands["tiny_ft"].endswith("--init-from runs/tiny/final")


def test_a_continued_chain_keeps_the_record_and_adds_the_new_run(tmp_path):
    new = tmp_path / "runs" / "tiny_ft2"
    new.mkdir(parents=True)
    cfg = TrainConfig(out="runs/tiny_ft2", seed=2, stage2_steps=3, init_from="weights/rsapp-tiny", colour_cast=0.5)
    (new / "train_config.json").write_text(json.dumps(asdict(cfg)))
    (new / "stage2_log.jsonl").write_text("".join(
        json.dumps({"step": i, "lm_loss": 1.0 - 0.1 * i, "elapsed_s": 10.0 * i}) + "\n" for i in (1, 2, 3)))
    runs = [tmp_path / "runs" / "tiny", tmp_path / "runs" / "tiny_ft", new]
    nodata = {**_scores(), "vqa_acc": 0.42}
    card = write_card(tmp_path, runs, _scores(), {}, 600.0, "a test machine", notes={"tiny_ft2": "more steps"},
                      recorded=Recorded.from_card(OLD_CARD), nodata=nodata).read_text()
    lines = card.splitlines()
    assert "600 minutes in all" in card
    stage_lines = [x for x in lines if x.startswith("- `tiny")]
    assert [x.split("`")[1] for x in stage_lines] == ["tiny", "tiny", "tiny_ft", "tiny_ft2"]
    assert "more steps" in stage_lines[-1] and "3 steps" in stage_lines[-1]
    assert "50% of samples under a random colour cast" in stage_lines[-1]
    assert "colour cast" not in stage_lines[-2]
    commands = [x for x in lines if x[:1].isdigit() and "rsapp train" in x]
    assert [c.split("--out ")[1].split()[0] for c in commands] == ["runs/tiny", "runs/tiny_ft", "runs/tiny_ft2"]
    assert commands[-1].startswith("3. ") and "--init-from weights/rsapp-tiny" in commands[-1]
    assert "--colour-cast 0.5" in commands[-1] and "--colour-cast" not in commands[-2]
    assert "Status: meets the issue's minimum scores." in card
    assert "Chips with no-data (seed 1, 10 samples per task" in card and "vqa_acc 0.420" in card


def test_a_run_neither_on_disk_nor_on_record_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="tiny_ft9"):
        write_card(tmp_path, [tmp_path / "tiny_ft9"], _scores(), {}, 1.0, "m", recorded=Recorded.from_card(OLD_CARD))


def test_a_chain_all_on_record_is_rescored_with_its_record(tmp_path):
    runs = [tmp_path / "runs" / "tiny", tmp_path / "runs" / "tiny_ft"]
    card = write_card(tmp_path, runs, _scores(), {}, 589.0, "a test machine",
                      recorded=Recorded.from_card(OLD_CARD)).read_text()
    assert "Batch 12, AdamW" in card and "589 minutes in all" in card
    assert "Chips with no-data" not in card
    assert Recorded.from_card(card).commands == Recorded.from_card(OLD_CARD).commands
