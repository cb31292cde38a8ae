import pytest
import torch

from rsapp.model.config import RsappConfig
from rsapp.model.modeling import RsappVLM

TOY = dict(image_size=32, patch_size=16, chip_size=64, vision_dim=32, vision_layers=1, vision_heads=2,
           hidden_size=32, num_layers=2, num_heads=2, ffn_size=64, hlora_rank=8, vocab_size=64,
           local_token_budget=4, inject_layers=(1,), sse_hidden=16)


@pytest.fixture
def toy_config() -> RsappConfig:
    return RsappConfig(**TOY)


@pytest.fixture
def toy_model(toy_config) -> RsappVLM:
    torch.manual_seed(0)
    return RsappVLM(toy_config).eval()
