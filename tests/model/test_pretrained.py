"""The pretrained bases really load: EfficientNet-Lite0 from its wheel, SmolLM2 from its GGUF, checked by sha256."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from rsapp.errors import RsappError
from rsapp.model import pretrained
from rsapp.model.efficientnet import EfficientNetLite
from tests.conftest import REAL

# Recorded once from the ImageNet checkpoint: pyramid means / stds on torch.rand(1, 3, 64, 64) of seed 0.
REFERENCE_MEANS = [-0.38562, -0.98785, -0.31084, -0.12874]
REFERENCE_STDS = [12.51278, 8.77165, 7.73774, 1.68377]


@pytest.fixture(scope="module")
def backbone():
    m = EfficientNetLite()
    m.load_state_dict(pretrained.vision_state_dict(), strict=True)
    return m.eval()


def test_tower_features_match_the_recorded_reference(backbone):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        levels = backbone.pyramid(x)
    assert [tuple(lv.shape[1:]) for lv in levels] == [(24, 16, 16), (40, 8, 8), (112, 4, 4), (320, 2, 2)]
    assert [float(lv.mean()) for lv in levels] == pytest.approx(REFERENCE_MEANS, abs=1e-3)
    assert [float(lv.std()) for lv in levels] == pytest.approx(REFERENCE_STDS, rel=1e-3)


def test_the_frozen_inference_pyramid_gives_the_eager_features(backbone):
    # the runtime's oneDNN graph (batch norms folded, traced on 64²) on another size and batch
    frozen = copy.deepcopy(backbone)
    held = frozen.freeze_for_inference()
    x = torch.rand(2, 3, 200, 152, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        eager, fast = backbone.pyramid(x), frozen.pyramid(x)
    assert [f.shape for f in fast] == [e.shape for e in eager]
    for e, f in zip(eager, fast):
        assert torch.allclose(f, e, rtol=1e-4, atol=1e-4 * float(e.abs().max()))
    assert 4 * 2_500_000 < held < 4 * 3_500_000  # the pyramid's convolutions, fp32 (not the 1280-channel head)


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_imagenet_head_sees_an_airplane_in_an_aerial_airplane(backbone):
    path = sorted((REAL / "scenes" / "ucmerced" / "images" / "airplane").iterdir())[0]
    rgb = np.asarray(Image.open(path).convert("RGB").resize((224, 224)))
    with torch.no_grad():
        top = backbone(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255).topk(3).indices[0]
    assert {895, 404, 908} & set(top.tolist())  # warplane, airliner, wing


def test_a_different_base_file_is_refused(monkeypatch, tmp_path):
    fake = pretrained.Base("fake", "fake==1", "rsapp", "errors.py", "0" * 64)
    with pytest.raises(RsappError, match="sha256"):
        fake.checked_path()
    missing = pretrained.Base("missing", "missing-package==1", "no_such_module_here", "x", "0" * 64)
    with pytest.raises(RsappError, match="pip install missing-package"):
        missing.checked_path()


def test_the_converted_lm_is_cached_bit_identically_and_read_back_without_the_gguf(tmp_path, monkeypatch):
    import gguf

    monkeypatch.setenv("RSAPP_CACHE", str(tmp_path))
    first = pretrained.lm_state_dict()
    assert len(list(tmp_path.glob("smollm2-*.safetensors"))) == 1

    def no_gguf(*_, **__):
        raise AssertionError("the GGUF was parsed again")

    monkeypatch.setattr(gguf, "GGUFReader", no_gguf)
    again = pretrained.lm_state_dict()
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    cached = next(tmp_path.glob("smollm2-*.safetensors"))
    cached.write_bytes(b"broken")  # a damaged cache is converted again, not trusted
    monkeypatch.undo()
    monkeypatch.setenv("RSAPP_CACHE", str(tmp_path))
    assert torch.equal(pretrained.lm_state_dict()["norm.weight"], first["norm.weight"])
