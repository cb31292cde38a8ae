import numpy as np
import torch

from rsapp.model.runtime import Runtime, iter_tiles
from rsapp.model.tokenizer import train_tokenizer
from rsapp.tasks.tokens import TASK_TOKENS


def test_token_count_is_fixed_whatever_the_chip_size(toy_model):
    cfg = toy_model.config
    per_view = cfg.grid ** 2
    small = toy_model.vision(torch.rand(1, 3, cfg.chip_size, cfg.chip_size))
    assert small.tokens_kept == per_view + cfg.local_token_budget
    assert small.tokens_total == per_view + 4 * per_view  # 2×2 local tiles
    big = np.random.default_rng(0).integers(0, 255, (320, 320, 3), dtype=np.uint8)  # 10×10 tiles of 32 px
    glob = torch.nn.functional.interpolate(torch.from_numpy(big).permute(2, 0, 1)[None].float() / 255, size=32)
    box = torch.nn.functional.interpolate(torch.from_numpy(big).permute(2, 0, 1)[None].float() / 255, size=cfg.chip_size)
    vt = toy_model.vision.forward_stream(glob, box, iter_tiles(big, 32, 10), 10)
    assert vt.tokens_total == per_view + 100 * per_view
    assert vt.tokens_kept == per_view + cfg.local_token_budget


def test_streaming_selects_the_same_tokens_as_one_pass(toy_model):
    cfg = toy_model.config
    chip = torch.rand(1, 3, cfg.chip_size, cfg.chip_size)
    whole = toy_model.vision(chip)
    rgb = (chip[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    chip_q = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    whole = toy_model.vision(chip_q)
    glob = toy_model.vision.global_view(chip_q)
    import rsapp.model.runtime as rt

    old, rt.TILE_BATCH = rt.TILE_BATCH, 1  # one tile at a time: the running top-k must not change the result
    try:
        streamed = toy_model.vision.forward_stream(glob, chip_q, iter_tiles(rgb, cfg.image_size, 2), 2)
    finally:
        rt.TILE_BATCH = old
    torch.testing.assert_close(streamed.tokens, whole.tokens, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(streamed.local_grid, whole.local_grid, atol=1e-5, rtol=1e-4)  # the box head's inputs
    torch.testing.assert_close(streamed.box_view, whole.box_view)


def test_background_pruning_and_anchors_keep_the_ship_not_the_sea(toy_config):
    from rsapp.model.uhr import TokenBudget

    toy_config.local_token_budget = 6
    budget = TokenBudget(toy_config)
    g = torch.Generator().manual_seed(0)
    sea, ship = torch.randn(32, generator=g), torch.randn(32, generator=g)
    noise = lambda n: 0.05 * torch.randn(n, 32, generator=g)  # noqa: E731
    glob = torch.cat([sea + noise(60), ship + noise(4)])[None]  # the scene: mostly sea, one ship
    state = budget.start(glob)
    assert state.prototype_is_background.any()
    local = torch.cat([sea + noise(200), ship + noise(6)])[None]  # 206 candidates, 6 of them on the ship
    xy = torch.rand(1, 206, 2, generator=g)
    budget.update(state, local[:, :100], xy[:, :100])  # streamed in two batches
    budget.update(state, local[:, 100:], xy[:, 100:])
    kept, kept_xy = budget.result(state)
    assert state.seen == 206 and kept.shape == (1, 6, 32)
    assert torch.allclose(torch.sort(kept_xy[0, :, 0]).values, torch.sort(xy[0, 200:, 0]).values)
    order = kept_xy[0, :, 1] * 1e4 + kept_xy[0, :, 0]
    assert (order[1:] >= order[:-1]).all(), "kept tokens come back in raster order"


def test_runtime_generates_with_kv_cache_like_full_recompute(toy_config):
    from rsapp.model.modeling import RsappVLM

    tok = train_tokenizer(["[VQA] how many ships?<ans>3<eos>"] * 10, 300, list(TASK_TOKENS))
    toy_config.vocab_size = tok.get_vocab_size()
    torch.manual_seed(0)
    toy_model = RsappVLM(toy_config).eval()
    rt = Runtime.from_model(toy_model, tok, "fp32")
    img = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    prompt = "<image>[VQA] how many ships?<ans>"
    gen = rt.generate([img], prompt, 0, 0.3, max_new_tokens=6)
    ids = rt.prompt_ids(prompt)
    images = torch.from_numpy(img).permute(2, 0, 1)[None, None].float() / 255
    expected = []
    for _ in range(gen.timings_s["new_tokens"]):
        full = torch.cat([ids, torch.tensor([expected], dtype=torch.long)], 1) if expected else ids
        with torch.no_grad():
            logits = toy_model(images, full, torch.ones_like(full), g=torch.tensor([0]), s=torch.tensor([0.3]))["logits"]
        expected.append(int(logits[0, -1].argmax()))
    assert rt.tokenizer.decode(expected, skip_special_tokens=True).strip() == gen.text
    assert gen.tokens_kept == toy_model.config.grid ** 2 + toy_model.config.local_token_budget
