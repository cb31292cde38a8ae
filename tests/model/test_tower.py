"""GeoLLaVA-8K's token budget and FUSE fusion on the tower's grid."""

import torch

from rsapp.model.tower import MultiScaleFusion, prune, token_budget


def test_budget_keeps_the_objects_and_drops_the_background():
    torch.manual_seed(0)
    sea = torch.randn(1, 32) * 0.05 + torch.ones(1, 32)
    grid = sea.expand(256, 32).clone() + torch.randn(256, 32) * 0.01  # one uniform background
    objects = [3, 77, 140, 201, 255]
    for i in objects:
        grid[i] = torch.randn(32) * 3  # five distinct objects
    vt = token_budget(grid.t().reshape(1, 32, 16, 16), budget=16, clusters=4, background_share=0.25)
    assert vt.tokens.shape == (1, 16, 32) and vt.total == 256
    kept_rows = {tuple(p) for p in (vt.positions[0] * 15).round().int().tolist()}
    assert all((i // 16, i % 16) in kept_rows for i in objects)
    assert ((vt.positions >= 0) & (vt.positions <= 1)).all()


def test_small_grids_pass_whole_and_large_sets_stay_bounded():
    grid = torch.randn(2, 8, 4, 4)
    vt = token_budget(grid, budget=64, clusters=4, background_share=0.25)
    assert vt.tokens.shape == (2, 16, 8)
    tokens, pos = prune(torch.randn(20000, 8), torch.rand(20000, 2), 64, 4, 0.25)
    assert tokens.shape == (64, 8) and pos.shape == (64, 2)


def test_fusion_puts_every_scale_on_the_coarsest_grid():
    levels = [torch.randn(1, c, 64 // s, 64 // s) for c, s in ((24, 1), (40, 2), (112, 4), (320, 8))]
    fusion = MultiScaleFusion(16)
    fused = fusion(levels)
    assert fused.shape == (1, 16, 8, 8)
    levels[1] = levels[1] * 0  # the stride-8 detail reaches the fused tokens
    assert not torch.allclose(fusion(levels), fused)


def test_a_foreground_larger_than_the_budget_fills_it_alone():
    torch.manual_seed(0)
    background = torch.ones(1, 16) + torch.randn(3000, 16) * 0.01
    objects = torch.randn(100, 16) * 3  # a hundred distinct objects (each its own small share of the clusters)
    tokens = torch.cat([background, objects])
    kept, pos = prune(tokens, torch.rand(3100, 2), budget=40, clusters=8, background_share=0.25)
    assert kept.shape == (40, 16)
    assert (kept.norm(dim=1) > 2).all()  # every kept token is an object, none the background
