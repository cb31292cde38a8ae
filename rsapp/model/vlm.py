"""rsapp v2: the visual half (pretrained EfficientNet-Lite tower + heads + SSE-U) and the language model
(pretrained SmolLM2 with G-MoE and CS-HLoRA), joined by a projector.

The prompt's `<image>` placeholder becomes, per image: a *tag token* (what the heads already know, projected:
scene probabilities, class shares and instance counts, the change for a second date — VisionOutput.tag) and
the budgeted visual tokens with their grid positions. Base weights come from the installed packages
(rsapp.model.pretrained); the checkpoint holds only what this project trained, and loading is strict.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from rsapp.errors import RsappError
from rsapp.model.pretrained import LM_BASE, VISION_BASE, lm_state_dict, vision_state_dict
from rsapp.model.smollm import LMConfig, SmolLM
from rsapp.model.tower import VisualTokens, position_features
from rsapp.model.vision_model import VisionConfig, VisionModel, VisionOutput, tag_dim

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
POSITION_BANDS = 6
# Tokens the project adds to SmolLM2's vocabulary (ids from its vocab_size up): the image placeholder and the
# task tokens. Order is part of the checkpoint.
ADDED_TOKENS = ("<image>", "[CAP]", "[CLS]", "[VQA]", "[CCD]", "[VG]", "[REF]", "[SEG]")
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
# The base layers' own tensors: loaded from the package, never shipped.
_BASE_SUFFIXES = (".base.weight", "input_layernorm.weight", "post_attention_layernorm.weight")


@dataclass
class VLMConfig:
    name: str = "rsapp-v2"
    chip_size: int = 512
    vision: VisionConfig = field(default_factory=VisionConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    added_tokens: tuple[str, ...] = ADDED_TOKENS
    # [SEG] is answered from the dense / change head's pixel probabilities (the Text4Seg text is written from
    # them); each class's threshold is vision.dense_thresholds'.
    seg_grid: int = 24  # Text4Seg descriptor grid the mask answers are also written in (DESIGN.md)
    # [CAP]: per scene class, the captions people wrote most for it (rsapp.data.real_text.caption_bank); a caption
    # is the one of the class [CLS] names that the LM scores highest. Empty, or a class without: the LM's greedy text
    # (a release before the bank).
    captions: dict[str, list[str]] = field(default_factory=dict)
    vision_base: str = VISION_BASE.package
    lm_base: str = LM_BASE.package

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VLMConfig":
        d = dict(d)
        d["vision"] = VisionConfig.from_dict(d.get("vision", {}))
        lm = dict(d.get("lm", {}))
        for k in ("hlora_tier_bounds", "hlora_tau", "inject_layers"):
            if k in lm:
                lm[k] = tuple(lm[k])
        d["lm"] = LMConfig(**lm)
        d["added_tokens"] = tuple(d.get("added_tokens", ADDED_TOKENS))
        return cls(**d)


class Projector(nn.Module):
    """Visual tokens (+ their grid position) → the LM's embedding space; the tag token likewise."""

    def __init__(self, token_dim: int, tag_dim: int, hidden: int):
        super().__init__()
        self.tokens = nn.Sequential(nn.Linear(token_dim + 4 * POSITION_BANDS, hidden), nn.GELU(),
                                    nn.Linear(hidden, hidden))
        self.tag = nn.Sequential(nn.Linear(tag_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))

    def forward(self, vt: VisualTokens, tag: torch.Tensor) -> torch.Tensor:
        """→ (B, 1 + K, hidden)."""
        feats = torch.cat([vt.tokens, position_features(vt.positions, POSITION_BANDS)], -1)
        return torch.cat([self.tag(tag)[:, None], self.tokens(feats)], 1)


class RsappVLM(nn.Module):
    def __init__(self, cfg: VLMConfig):
        super().__init__()
        self.cfg = cfg
        self.vision = VisionModel(cfg.vision)
        self.projector = Projector(cfg.vision.token_dim, tag_dim(cfg.vision), cfg.lm.hidden_size)
        self.lm = SmolLM(cfg.lm)

    # --- ids of the added tokens -----------------------------------------------------------------------------
    def token_id(self, token: str) -> int:
        return self.cfg.lm.vocab_size + self.cfg.added_tokens.index(token)

    @property
    def image_id(self) -> int:
        return self.token_id("<image>")

    # --- the sequence the LM reads ------------------------------------------------------------------------------
    def visual_embeds(self, out: VisionOutput) -> list[torch.Tensor]:
        """One (1 + K, d) block per image of the request."""
        blocks = [self.projector(out.tokens, out.tag())[0]]
        if out.tokens_after is not None:
            blocks.append(self.projector(out.tokens_after, out.tag(after=True))[0])
        return blocks

    def embed_prompt(self, ids: list[int], blocks: list[torch.Tensor]) -> torch.Tensor:
        """Token ids with one <image> per image → (1, T, d): each <image> replaced by that image's block."""
        parts, start, used = [], 0, 0
        for i, t in enumerate(ids):
            if t == self.image_id:
                if i > start:
                    parts.append(self.lm.embed(torch.tensor(ids[start:i])))
                parts.append(blocks[used])
                used += 1
                start = i + 1
        if start < len(ids):
            parts.append(self.lm.embed(torch.tensor(ids[start:])))
        return torch.cat(parts)[None]

    # --- weights ------------------------------------------------------------------------------------------------
    @staticmethod
    def is_base(name: str) -> bool:
        """Tensors that come from the installed pretrained packages, not from weights/."""
        return (name.startswith("lm.") and (name.endswith(_BASE_SUFFIXES) or name in ("lm.embed_tokens.weight",
                                                                                     "lm.norm.weight"))
                or name.startswith("vision.tower.backbone._fc."))

    def load_bases(self) -> None:
        missing = self.lm.load_state_dict(lm_state_dict(self.cfg.lm.heads, self.cfg.lm.kv_heads), strict=False
                                          ).missing_keys
        if not_loaded := [k for k in missing if self.is_base(f"lm.{k}")]:
            raise RsappError(f"the language model base lacks {len(not_loaded)} tensors ({', '.join(not_loaded[:3])}…)")
        self.vision.tower.backbone.load_state_dict(vision_state_dict(), strict=True)

    def trained_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not self.is_base(k)}

    def save(self, folder: str | Path, dtype: torch.dtype = torch.float16) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in self.trained_state().items()}
        save_file(state, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(self.cfg.to_dict(), indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> "RsappVLM":
        """Bases from the packages, then every trained tensor from the folder; a missing or extra one fails."""
        folder = Path(folder)
        cfg = VLMConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
        with _uninitialised():  # every parameter is then loaded: the bases', then the checkpoint's (strict)
            model = cls(cfg)
        model.load_bases()
        model.load_trained(load_file(str(folder / WEIGHTS_FILE)))
        return model

    def load_trained(self, state: dict[str, torch.Tensor]) -> None:
        want = set(self.trained_state())
        missing, extra = sorted(want - set(state)), sorted(set(state) - want)
        if missing or extra:
            raise RsappError(f"checkpoint does not match the model: {len(missing)} missing "
                             f"({', '.join(missing[:3])}…), {len(extra)} unexpected ({', '.join(extra[:3])}…)")
        own = self.state_dict()
        self.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in state.items()}}, strict=True)


_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
                   "xavier_normal_", "zeros_", "ones_", "constant_")


@contextmanager
def _uninitialised():
    """Modules built inside keep their parameters as allocated (random init of 135 M weights takes ~0.8 s, and
    loading overwrites every one of them)."""
    saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS}
    keep = lambda tensor, *args, **kwargs: tensor  # noqa: E731
    for name in _INIT_FUNCTIONS:
        setattr(nn.init, name, keep)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)


TOKENIZER_FILE = "tokenizer.json"


def make_tokenizer(added: tuple[str, ...] = ADDED_TOKENS):
    """SmolLM2's tokenizer with the project's tokens appended as special tokens (ids from its vocab size up)."""
    from tokenizers import AddedToken

    from rsapp.model.pretrained import lm_tokenizer

    tok = lm_tokenizer()
    base = tok.get_vocab_size()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in added])
    if [tok.token_to_id(t) for t in added] != list(range(base, base + len(added))):
        raise RuntimeError("added tokens did not get consecutive ids after the base vocabulary")
    return tok


def load_tokenizer(folder: str | Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(folder) / TOKENIZER_FILE))


def chat_prompt(task_and_question: str, n_images: int) -> str:
    """SmolLM2's chat template (no system turn: the task token says what is asked) with one <image> per image."""
    return f"{IM_START}user\n{'<image>' * n_images}{task_and_question}{IM_END}\n{IM_START}assistant\n"
