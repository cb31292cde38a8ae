"""The training stages run end to end on the real sets and leave checkpoints that load strictly."""

import pytest
from safetensors.torch import load_file

from tests.conftest import REAL

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")]


def test_stage_a_then_stage_b_give_a_loadable_model(tmp_path):
    from rsapp.model.vision_model import VisionConfig, VisionModel
    from rsapp.model.vlm import RsappVLM
    from rsapp.train.language import LanguageRun, train_language
    from rsapp.train.vision import VisionRun, train_vision

    a = train_vision(VisionRun(steps=2, dense_per_step=1, scene_per_step=1, change_per_step=1), tmp_path / "a")
    VisionModel(VisionConfig()).load_state_dict(load_file(str(a / "vision.safetensors")), strict=True)
    b = train_language(LanguageRun(vision=str(a), steps=1, batch=1), tmp_path / "b")
    model = RsappVLM.load(b)
    assert {"projector.tag.0.weight", "lm.extra_embed"} <= set(model.trained_state())
