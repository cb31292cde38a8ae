"""A tiny training run: the loss must fall. Scores are never asserted against a model trained here."""

import json

import pytest

from rsapp.train.loop import TrainConfig, train
from tests.model.conftest import TOY


@pytest.mark.slow
def test_two_stage_training_lowers_the_loss_and_resumes(tmp_path):
    overrides = {k: v for k, v in TOY.items() if k != "vocab_size"} | {"vocab_size": 400}
    cfg = TrainConfig(out=str(tmp_path / "run"), stage1_steps=60, stage2_steps=6, batch_size=6, warmup=5,
                      tokenizer_samples=80, save_every=20, workers=0, lr=3e-3, model_overrides=overrides)
    final = train(cfg)
    assert (final / "model.safetensors").exists() and (final / "tokenizer.json").exists()
    log = [json.loads(line) for line in (tmp_path / "run" / "stage1_log.jsonl").read_text().splitlines()]
    first = sum(r["lm_loss"] for r in log[:8]) / 8
    last = sum(r["lm_loss"] for r in log[-8:]) / 8
    assert last < 0.7 * first, (first, last)
    stage2 = [json.loads(line) for line in (tmp_path / "run" / "stage2_log.jsonl").read_text().splitlines()]
    assert all(r["sse_loss"] == r["sse_loss"] for r in stage2)  # SSE-U is trained in stage 2 (not NaN)
    # Resume: asking for more stage-2 steps continues from the checkpoint instead of starting over.
    cfg.stage2_steps = 8
    train(cfg)
    stage2 = [json.loads(line) for line in (tmp_path / "run" / "stage2_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in stage2] == list(range(1, 9))
