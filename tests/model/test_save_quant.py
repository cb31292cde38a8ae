import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rsapp.analyst import default_weights
from rsapp.model.modeling import RsappVLM
from rsapp.model.quant import choose_path, linear_bytes
from rsapp.model.runtime import Runtime


def test_saved_model_reloads_bit_identical(tmp_path, toy_model):
    with torch.no_grad():  # make the zero-initialised parts non-trivial so they are really checked
        for p in toy_model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    toy_model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    again = RsappVLM.from_pretrained(tmp_path).eval()
    a, b = toy_model.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert again.config.to_dict()["hlora_tau"] == toy_model.config.to_dict()["hlora_tau"]
    x = torch.rand(1, 1, 3, 64, 64)
    ids = torch.tensor([[3, 5, 9, 4]])
    kw = dict(g=torch.tensor([2]), s=torch.tensor([0.5]))
    with torch.no_grad():
        assert torch.equal(toy_model(x, ids, torch.ones_like(ids), **kw)["logits"],
                           again(x, ids, torch.ones_like(ids), **kw)["logits"])
    assert set(load_file(tmp_path / "model.safetensors")) == set(a)


def test_quant_path_choice_and_sizes(toy_model):
    assert choose_path("auto") == ("nf4" if torch.cuda.is_available() else "int8")
    assert choose_path("fp32") == "fp32"
    with pytest.raises(ValueError):
        choose_path("int3")
    fp32, int8, nf4 = (linear_bytes(toy_model, p) for p in ("fp32", "int8", "nf4"))
    assert nf4 < int8 < fp32


@pytest.mark.parametrize("path", ["int8", "nf4"])
def test_quantized_model_decodes_like_fp32(path):
    """On the shipped weights: the same greedy tokens from the quantized path as from fp32."""
    weights = default_weights()
    if not (weights / "config.json").exists():
        pytest.skip("no shipped weights yet")
    from rsapp.data.samples import make_sample
    from rsapp.tasks.prompts import build_prompt
    from rsapp.tasks.tokens import TASKS

    fp32 = Runtime.load(weights, quant="fp32")
    quant = Runtime.load(weights, quant=path)
    assert quant.quant == path
    rng = np.random.default_rng(2024)
    agree = 0
    for task in ("[VQA]", "[CLS]", "[VG]", "[CAP]"):
        s = make_sample(rng, task, fp32.config.chip_size)
        prompt = build_prompt(s.token, s.question, 1)
        a = fp32.generate(s.images, prompt, TASKS[task][0], np.log10(s.gsd_m), max_new_tokens=12)
        b = quant.generate(s.images, prompt, TASKS[task][0], np.log10(s.gsd_m), max_new_tokens=12)
        agree += a.text == b.text
    assert agree >= 3  # quantization noise may flip a near-tie, not the answers


def test_runtime_loads_a_checkpoint_of_another_size(tmp_path, toy_config):
    """The same code loads any size of the architecture: here a toy checkpoint with its own tokenizer."""
    from rsapp.model.tokenizer import save_tokenizer, train_tokenizer
    from rsapp.tasks.tokens import TASK_TOKENS

    tok = train_tokenizer(["<image>[VG] the pond<ans>[1, 2, 3, 4]<eos>"] * 20, 300, list(TASK_TOKENS))
    toy_config.vocab_size = tok.get_vocab_size()
    toy_config.hidden_size, toy_config.num_layers, toy_config.hlora_rank = 48, 3, 12
    RsappVLM(toy_config).save_pretrained(tmp_path)
    save_tokenizer(tok, tmp_path)
    rt = Runtime.load(tmp_path, quant="int8")
    assert rt.config.hidden_size == 48 and rt.config.num_layers == 3 and rt.quant == "int8"
    img = np.zeros((64, 64, 3), np.uint8)
    gen = rt.generate([img], "<image>[VG] the pond<ans>", 1, None, max_new_tokens=4)
    assert gen.s_sigma > 0 and gen.tokens_kept == toy_config.grid ** 2 + toy_config.local_token_budget
