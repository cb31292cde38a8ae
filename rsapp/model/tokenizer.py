"""A real HF `tokenizers` BPE tokenizer trained on the corpus text, saved as tokenizer.json.

Byte-level, so any prompt encodes and decodes losslessly; the control tokens and the task tokens are special
tokens with fixed ids (0 pad, 1 bos, 2 eos, 3 <image>, 4 <ans>, then the task tokens in the order given).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

CONTROL_TOKENS = ["<pad>", "<bos>", "<eos>", "<image>", "<ans>"]
TOKENIZER_FILE = "tokenizer.json"


def train_tokenizer(texts: Iterable[str], vocab_size: int, task_tokens: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=CONTROL_TOKENS + list(task_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def load_tokenizer(folder: str | Path) -> Tokenizer:
    return Tokenizer.from_file(str(Path(folder) / TOKENIZER_FILE))


def save_tokenizer(tok: Tokenizer, folder: str | Path) -> Path:
    path = Path(folder) / TOKENIZER_FILE
    tok.save(str(path))
    return path
