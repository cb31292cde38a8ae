"""A mask head beside the dense head: pixel answers read the two heads' probabilities mixed by mask_head_share,
and the tag the language model reads stays of the dense head alone (as stage B trained it) in one pass, over a
framed picture, for a pair and in tiles."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rsapp.model.vision_model import VisionConfig, VisionModel, to_tensor


@pytest.fixture(scope="module")
def models():
    """(without a mask head, with one read at half share): the same tower and heads, the mask head another."""
    torch.manual_seed(0)
    plain = VisionModel(VisionConfig()).eval()
    mixed = VisionModel(VisionConfig(mask_head_share=0.5)).eval()
    missing, _ = mixed.load_state_dict(plain.state_dict(), strict=False)
    assert missing and all(k.startswith("mask_head.") for k in missing)
    with torch.no_grad():
        mixed.mask_head.out.bias.add_(torch.linspace(-3, 3, len(mixed.cfg.dense_classes)))  # far from the dense head
    return plain, mixed


def _rgb(side: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)


def test_pixel_answers_mix_the_heads_and_the_tag_reads_the_dense_head(models):
    plain, mixed = models
    x = to_tensor(_rgb(256))
    alone, both = plain.encode([x], views=2), mixed.encode([x], views=2)
    with torch.no_grad():
        levels = mixed.tower.pyramid(x)
        turned = mixed.tower.pyramid(torch.rot90(x, 1, (2, 3)))
        masks = [torch.rot90(mixed.mask_head(lv), -k, (2, 3)) for k, lv in ((0, levels), (1, turned))]
    mask = sum(torch.sigmoid(F.interpolate(m, size=(256, 256), mode="bilinear", align_corners=False))
               for m in masks) / 2
    assert torch.allclose(both.dense, 0.5 * alone.dense + 0.5 * mask, atol=1e-5)
    assert (both.dense - alone.dense).abs().max() > 0.1
    assert torch.equal(both.tag(), alone.tag())
    assert not torch.equal(replace(both, tag_dense=None).tag(), alone.tag())  # the mixed maps would say otherwise


def test_the_tag_reads_the_dense_head_over_a_picture_for_a_pair_and_in_tiles(models):
    plain, mixed = models
    pair = [_rgb(256, 2), _rgb(256, 3)]
    for images, chip, picture in (([_rgb(256)], 256, (0, 200, 16, 256)), (pair, 256, None),
                                  ([_rgb(1024)], 512, None)):
        alone = plain.read(images, chip, picture=picture)
        both = mixed.read(images, chip, picture=picture)
        assert both.dense.shape == alone.dense.shape and (both.dense.float() - alone.dense.float()).abs().max() > 0.1
        assert torch.equal(both.tag(), alone.tag())
        if len(images) == 2:
            assert torch.equal(both.tag(after=True), alone.tag(after=True))
            assert (both.dense_after.float() - alone.dense_after.float()).abs().max() > 0.1


def test_a_mask_head_with_its_own_deep_blocks_reads_them_and_the_tag_does_not(models):
    """With mask_tail, the mask head reads C4 and C5 of its own copy of the tower's deep blocks: an untuned copy gives
    the same answers as the shared tower; a tuned one moves the pixel answers and never the tag."""
    from rsapp.model.efficientnet import PyramidTail

    _, mixed = models
    tailed = VisionModel(VisionConfig(mask_head_share=0.5, mask_tail=True)).eval()
    missing, _ = tailed.load_state_dict(mixed.state_dict(), strict=False)
    assert missing and all(k.startswith("mask_tail.") for k in missing)
    tailed.mask_tail = PyramidTail.copy_of(tailed.tower.backbone).eval()
    x = to_tensor(_rgb(256, 4))
    same, before = tailed.encode([x], views=2), mixed.encode([x], views=2)
    assert torch.allclose(same.dense, before.dense, atol=1e-5)
    with torch.no_grad():
        torch.manual_seed(1)
        for p in tailed.mask_tail.parameters():
            p.add_(0.2 * torch.randn_like(p))
    tuned = tailed.encode([x], views=2)
    assert (tuned.dense - before.dense).abs().max() > 0.01
    assert torch.equal(tuned.tag(), before.tag())
    for images, chip in (([_rgb(1024, 5)], 512), ([_rgb(256, 6), _rgb(256, 7)], 256)):
        assert torch.equal(tailed.read(images, chip).tag(), mixed.read(images, chip).tag())
