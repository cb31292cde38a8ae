"""The packed language model (what the runtime answers with): the same arithmetic as SmolLM in fp32, SmolLM2's Q4_1
weights re-encoded in int4 without loss, only the routed expert reaching the output, label scoring on a shared
prefix equal to scoring each label alone."""

import pytest
import torch

from rsapp.model import pretrained
from rsapp.model.packed_lm import PackedLM, PackedMatrix
from rsapp.model.smollm import LMConfig
from tests.model.lms import seeded_lm

# head_dim 64 and widths that are multiples of 64, so every packed format can be used
PACKABLE = LMConfig(vocab_size=128, hidden_size=128, ffn_size=256, layers=3, heads=2, kv_heads=1, extra_tokens=4,
                    hlora_rank=8, expert_rank=4, inject_layers=(1,), visual_dim=128)


@pytest.fixture
def lm():
    return seeded_lm(PACKABLE, trained_adapters=True)


def _run(model, ids, s, expert, visual, steps=3):
    """Prefill, then greedy steps with the cache: every step's logits."""
    with torch.no_grad():
        cache = model.new_cache()
        hidden = model(model.embed(ids), s, expert, cache, visual)
        out = [model.logits(hidden[0, -1])]
        for _ in range(steps):
            nxt = out[-1].argmax().view(1, 1)
            out.append(model.logits(model(model.embed(nxt), s, expert, cache, visual)[0, -1]))
    return torch.stack(out)


def test_packed_fp32_is_the_same_model(lm):
    ids = torch.cat([torch.randint(0, 128, (1, 7)), torch.tensor([[128 + 2]])], 1)  # an added token too
    visual = torch.randn(1, 5, 128)
    s = torch.tensor([0.4])
    for expert in (0, 2):
        ours = _run(PackedLM(lm, 32, 32), ids, s, expert, visual)
        assert torch.allclose(ours, _run(lm, ids, s, expert, visual), atol=1e-4)


def test_packed_int8_stays_close_to_fp32(lm):
    ids = torch.randint(0, 128, (1, 9))
    s = torch.tensor([0.4])
    ref = _run(lm, ids, s, 1, None, steps=0)
    packed = _run(PackedLM(lm, 8, 8), ids, s, 1, None, steps=0)
    assert (packed - ref).norm() / ref.norm() < 0.03


def test_only_the_routed_expert_reaches_the_output(lm):
    ids = torch.randint(0, 128, (1, 6))
    s = torch.tensor([0.0])
    before = [_run(PackedLM(lm, 32, 32), ids, s, e, None, steps=0) for e in (0, 2)]
    with torch.no_grad():
        for layer in lm.layers:
            layer.mlp.up_proj.expert_B[2].add_(0.5)
    after = [_run(PackedLM(lm, 32, 32), ids, s, e, None, steps=0) for e in (0, 2)]
    assert torch.equal(before[0], after[0])
    assert not torch.allclose(before[1], after[1], atol=1e-3)


def test_labels_scored_on_a_shared_prefix_equal_each_alone(lm):
    packed = PackedLM(lm, 32, 32)
    prefix, labels = torch.randint(0, 128, (1, 6)), torch.randint(0, 128, (3, 4))
    s = torch.tensor([0.2])
    with torch.no_grad():
        cache = packed.new_cache()
        packed(packed.embed(prefix), s, 0, cache)
        together = packed(packed.embed(labels), s.expand(3), 0, cache.expand(3))
        for i in range(3):
            alone = packed(packed.embed(torch.cat([prefix, labels[i:i + 1]], 1)), s, 0)[0, 6:]
            assert torch.allclose(together[i], alone, atol=1e-5)


def test_smollm2_weights_reencode_in_int4_without_loss():
    """SmolLM2's linear weights come as Q4_1 (16 levels per block of 32): int4 groups of 32 hold them exactly, so
    the packed matrix differs from fp32 only by the bf16 rounding of the activations; the same format on a matrix
    that is not 4-bit already loses an order of magnitude more."""
    w = pretrained.lm_state_dict()["layers.0.mlp.gate_proj.base.weight"]
    x = torch.randn(4, w.shape[1])

    def error(weight):
        ref = x.to(torch.bfloat16).float() @ weight.t()
        return float((PackedMatrix(weight, 4)(x) - ref).norm() / ref.norm())

    assert PackedMatrix(w, 4).bits == 4
    smollm2, gaussian = error(w), error(torch.randn_like(w) * w.std())
    assert smollm2 < 0.005 and gaussian > 10 * smollm2, (smollm2, gaussian)


def test_greedy_screen_picks_the_int8_heads_token_and_breaks_ties_as_argmax(lm):
    """The int4 screen of the output head passes its best 16 to the int8 head's own arithmetic: the token is the
    full int8 logits' argmax, the first of equal logits included (bf16 logits tie, and argmax takes the first)."""
    with torch.no_grad():
        lm.embed_tokens.weight[90] = lm.embed_tokens.weight[7]  # two tokens with the same output row
    packed = PackedLM(lm, 4, 8)
    assert packed.screen is not None and PackedLM(lm, 32, 32).screen is None
    hidden = torch.randn(64, lm.cfg.hidden_size) * 3
    hidden[0] = packed.embedding.rows(torch.tensor([7]))[0] * 4  # 7 and 90 tie at the top
    for h in hidden:
        assert packed.greedy(h) == int(packed.logits(h).argmax())
    assert packed.greedy(hidden[0]) == 7
