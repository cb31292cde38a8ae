"""Small SmolLMs for the language-model tests, with weights that make their checks bite."""

import torch

from rsapp.model.smollm import LMConfig, SmolLM


def seeded_lm(cfg: LMConfig, trained_adapters: bool = False) -> SmolLM:
    """A SmolLM of seed 0 whose norms are not all ones; trained_adapters also gives the adapters' B factors (zero
    at the start of training) and the re-injection gates trained-looking values."""
    torch.manual_seed(0)
    lm = SmolLM(cfg).eval()
    with torch.no_grad():
        for name, p in lm.named_parameters():
            if "layernorm" in name or name == "norm.weight":
                p.uniform_(0.5, 1.5)
            elif trained_adapters and ("lora_B" in name or "expert_B" in name):
                p.normal_(0, 0.05)
            elif trained_adapters and name.endswith("reinject.gate"):
                p.fill_(0.5)
    return lm
