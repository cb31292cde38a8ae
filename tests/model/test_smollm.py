"""The language model: ours equals transformers' Llama on the same weights, the KV cache changes nothing, the
router's expert is the only one that runs, CS-HLoRA's gates fall with GSD, the adapters start as no-ops."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from rsapp.model import pretrained
from rsapp.model.smollm import LMConfig, SmolLM
from tests.model.lms import seeded_lm

TINY = LMConfig(vocab_size=97, hidden_size=48, ffn_size=64, layers=3, heads=6, kv_heads=2, extra_tokens=4,
                hlora_rank=8, expert_rank=4, inject_layers=(1,), visual_dim=48)


def hf_twin(lm: SmolLM, state: dict) -> LlamaForCausalLM:
    c = lm.cfg
    hf = LlamaForCausalLM(LlamaConfig(vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.ffn_size,
                                      num_hidden_layers=c.layers, num_attention_heads=c.heads,
                                      num_key_value_heads=c.kv_heads, rope_theta=c.rope_theta, rms_norm_eps=c.rms_eps,
                                      tie_word_embeddings=True)).eval()
    mapped = {"model." + k.replace(".base.weight", ".weight"): v for k, v in state.items()}
    hf.load_state_dict(mapped | {"lm_head.weight": mapped["model.embed_tokens.weight"]}, strict=True)
    return hf


def base_state(lm: SmolLM) -> dict:
    return {k: v for k, v in lm.state_dict().items()
            if k.endswith((".base.weight", "layernorm.weight")) or k in ("embed_tokens.weight", "norm.weight")}


@pytest.fixture
def tiny():
    return seeded_lm(TINY)


def test_matches_transformers_llama_on_the_same_weights(tiny):
    ids = torch.randint(0, 97, (1, 11))
    hf = hf_twin(tiny, base_state(tiny))
    with torch.no_grad():
        ours = tiny.logits(tiny(tiny.embed(ids), None, 0))
        theirs = hf(ids).logits
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_kv_cache_gives_the_same_states_as_one_pass(tiny):
    ids = torch.randint(0, 97, (1, 9))
    s = torch.tensor([0.3])
    with torch.no_grad():
        full = tiny(tiny.embed(ids), s, 1)
        cache = tiny.new_cache()
        parts = [tiny(tiny.embed(ids[:, :6]), s, 1, cache)]
        parts += [tiny(tiny.embed(ids[:, i:i + 1]), s, 1, cache) for i in range(6, 9)]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


def test_only_the_routed_expert_runs_and_experts_differ(tiny):
    with torch.no_grad():
        for name, p in tiny.named_parameters():
            if "expert_B" in name:
                p.normal_(0, 0.5)
    used = []
    mlp = tiny.layers[0].mlp.gate_proj
    original = mlp.forward

    def spy(x, gate, expert=None):
        used.append(expert)
        return original(x, gate, expert)

    mlp.forward = spy
    ids = torch.randint(0, 97, (1, 5))
    with torch.no_grad():
        outs = [tiny(tiny.embed(ids), None, e) for e in range(3)]
    assert used == [0, 1, 2]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])


def test_adapters_start_as_no_ops_and_gates_fall_with_gsd(tiny):
    ids = torch.randint(0, 97, (1, 5))
    with torch.no_grad():
        plain = tiny(tiny.embed(ids), None, 0)
        gated = tiny(tiny.embed(ids), torch.tensor([-0.5]), 2)
    assert torch.allclose(plain, gated, atol=1e-6)  # B = 0 and expert deltas = 0 at the start (upcycling)
    s = torch.linspace(-1.5, 1.5, 13)
    gates = tiny.scale_gate.tier_gates(s)
    assert (gates[1:] <= gates[:-1]).all()  # a finer image opens more tiers


def test_smollm2_from_the_wheel_matches_transformers():
    state = pretrained.lm_state_dict()
    lm = SmolLM(LMConfig()).eval()
    lm.load_state_dict(state, strict=False)
    hf = hf_twin(lm, state)
    ids = torch.tensor([[1, 4093, 198, 1780, 1072, 253, 8304, 2443, 282, 253, 2, 198]])
    with torch.no_grad():
        ours = lm.logits(lm(lm.embed(ids), None, 0))
        theirs = hf(ids).logits
    assert torch.allclose(ours, theirs, atol=1e-3)
    assert int(ours[0, -1].argmax()) == int(theirs[0, -1].argmax())
