import torch

from rsapp.model.cs_hlora import CSHLoRALinear, ScaleGate
from rsapp.model.sse_u import SIGNATURE_BLOCKS, SSEU, contrast_signature


def test_experts_are_distinct_parameters_and_only_the_chosen_one_runs(toy_model):
    ffn = toy_model.layers[0].ffn
    ids = [{id(p) for p in e.parameters()} for e in ffn.experts]
    assert len(ffn.experts) == 3 and not (ids[0] & ids[1]) and not (ids[1] & ids[2])
    calls = [0, 0, 0]
    hooks = [e.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
             for i, e in enumerate(ffn.experts)]
    x = torch.randn(2, 5, toy_model.config.hidden_size)
    ffn(x, torch.tensor([2, 2]), None)
    assert calls == [0, 0, 1]
    ffn(x, torch.tensor([0, 1]), None)  # a mixed batch runs each expert on its own rows only
    assert calls == [1, 1, 1]
    for h in hooks:
        h.remove()
    with torch.no_grad():
        ffn.experts[1].down.base.weight.add_(1.0)
    assert not torch.allclose(ffn(x, torch.tensor([0, 0]), None), ffn(x, torch.tensor([1, 1]), None))


def test_scale_gate_is_monotone_decreasing_per_tier(toy_config):
    gate = ScaleGate(toy_config.hlora_tiers, toy_config.hlora_tau, toy_config.hlora_a, True)
    s = torch.linspace(-1.5, 2.0, 50)
    h = gate.tier_gates(s)
    assert h.shape == (50, 3)
    assert (h[1:] <= h[:-1] + 1e-7).all(), "finer imagery (smaller s) must open each tier at least as much"
    assert (h[0] > 0.9).all() and h[-1, 0] < 0.05  # 3 cm: every tier open; 100 m: the object tier closed
    full = gate(s)
    assert full.shape == (50, toy_config.hlora_rank)
    for k, (a, b) in enumerate(toy_config.hlora_tiers):
        assert torch.equal(full[:, a:b], h[:, k:k + 1].expand(-1, b - a))


def test_cs_hlora_update_starts_at_zero_and_then_depends_on_scale():
    torch.manual_seed(0)
    layer = CSHLoRALinear(16, 8, rank=8, alpha=8.0)
    gate = ScaleGate([(0, 2), (2, 5), (5, 8)], [0.0, 0.7, 1.7], 4.0, True)
    x = torch.randn(2, 3, 16)
    fine, coarse = gate(torch.tensor([-1.0, -1.0])), gate(torch.tensor([1.5, 1.5]))
    assert torch.equal(layer(x, fine), layer.base(x))  # B = 0: ΔW(s) = 0 for every s
    with torch.no_grad():
        layer.lora_B.normal_()
    assert not torch.allclose(layer(x, fine), layer(x, coarse))
    assert torch.equal(layer(x, None), layer.base(x))


def test_sse_u_gives_finite_mean_and_positive_variance():
    head = SSEU(32, 16)
    with torch.no_grad():
        head.signature.weight.normal_()
    for scale in (1e-3, 1.0, 1e3):
        mu, logvar = head(torch.randn(4, 32) * scale, torch.randn(4, 3, 64, 64) * scale)
        assert torch.isfinite(mu).all() and torch.isfinite(logvar).all() and (torch.exp(logvar) > 0).all()
    loss = SSEU.nll(mu, logvar, torch.zeros(4))
    loss.backward()
    assert torch.isfinite(loss)


def test_contrast_signature_follows_the_size_of_parts():
    """Parts 4 px across keep their contrast when the image is averaged in 2 × 2 blocks; parts of one pixel lose
    it: the profile tells the two scales apart although both images vary as much from pixel to pixel."""
    g = torch.Generator().manual_seed(0)
    fine = torch.randn(1, 1, 64, 64, generator=g).expand(1, 3, 64, 64)
    coarse = torch.randn(1, 1, 16, 16, generator=g).repeat_interleave(4, 2).repeat_interleave(4, 3).expand(1, 3, 64, 64)
    sig_fine, sig_coarse = contrast_signature(fine)[0], contrast_signature(coarse)[0]
    assert sig_fine.shape == (len(SIGNATURE_BLOCKS),)
    drop = lambda sig: float(sig[0] - sig[1])  # noqa: E731  (log contrast lost by averaging 2 × 2)
    assert drop(sig_fine) > drop(sig_coarse) + 0.5


def test_sse_u_reads_the_image_only_once_trained_to():
    """The signature branch starts at zero: weights trained before it predict what they did, whatever the image."""
    head = SSEU(32, 16)
    with torch.no_grad():
        head.net[-1].weight.normal_()
    pooled = torch.randn(2, 32)
    a = head(pooled, torch.randn(2, 3, 64, 64))
    b = head(pooled, torch.zeros(2, 3, 64, 64))
    assert torch.equal(a[0], b[0])
    with torch.no_grad():
        head.signature.weight.normal_()
    assert not torch.allclose(head(pooled, torch.randn(2, 3, 64, 64))[0], head(pooled, torch.zeros(2, 3, 64, 64))[0])
