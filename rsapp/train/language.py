"""Stage B of v2: the language side learns to read the visual tokens. The tower and its heads (stage A) and
SmolLM2's base weights stay frozen; the projector, the added token embeddings, CS-HLoRA, the G-MoE expert
deltas and the re-injection layers train on real text answers (rsapp.data.real_text), answer tokens only.
Settings come from a run file (JSON of LanguageRun)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tqdm import tqdm

from rsapp.data.real_sets import split
from rsapp.data.real_text import TextSample, change_sample, dense_sample, scene_sample
from rsapp.model.vision_model import to_tensor
from rsapp.model.vlm import IM_END, RsappVLM, VLMConfig, chat_prompt, make_tokenizer
from rsapp.tasks.tokens import TASKS
from rsapp.train import lr_factor, read_run, start_run


@dataclass
class LanguageRun:
    vision: str  # stage-A folder (vision.safetensors)
    steps: int = 400
    batch: int = 4
    chip: int = 256
    mix: tuple[float, float, float] = (0.6, 0.25, 0.15)  # scenes (UC Merced), dense-label questions, change
    lr: float = 1e-3
    lr_lora: float = 3e-4
    seed: int = 0
    init: str | None = None  # a previous stage-B folder to continue from



def batch_loss(model: RsappVLM, tok, samples: list[TextSample]) -> torch.Tensor:
    """Mean cross-entropy of the answers (and their end-of-turn) given the images and the questions. Samples of
    one batch take the same number of images and the same expert; sequences are right-padded (causal attention
    never looks at the padding, and the loss skips it)."""
    seqs, targets, s_used, visual = [], [], [], []
    for s in samples:
        with torch.no_grad():
            enc = model.vision.encode([to_tensor(im) for im in s.images])
        blocks = model.visual_embeds(enc)
        prompt = tok.encode(chat_prompt(f"{s.token} {s.question}".strip(), len(s.images))).ids
        answer = tok.encode(s.answer + IM_END).ids
        seqs.append(model.embed_prompt(prompt + answer, blocks)[0])
        targets.append(answer)
        s_used.append(math.log10(s.gsd_m) if s.gsd_m else float(enc.s_mu[0]))
        visual.append(torch.cat(blocks))
    longest = max(x.shape[0] for x in seqs)
    embeds = torch.stack([F.pad(x, (0, 0, 0, longest - x.shape[0])) for x in seqs])
    hidden = model.lm(embeds, torch.tensor(s_used), TASKS[samples[0].token].expert, visual=torch.stack(visual))
    losses = []
    for i, (x, answer) in enumerate(zip(seqs, targets)):
        end, n = x.shape[0], len(answer)
        losses.append(F.cross_entropy(model.lm.logits(hidden[i, end - n - 1:end - 1]), torch.tensor(answer)))
    return torch.stack(losses).mean()


def trainable(model: RsappVLM) -> list[tuple[str, torch.nn.Parameter]]:
    out = []
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(("projector.", "lm.")) and not model.is_base(name))
        if p.requires_grad:
            out.append((name, p))
    return out


def train_language(run: LanguageRun, out: Path) -> Path:
    rng = start_run(out, run.seed)
    model = RsappVLM(VLMConfig())
    model.load_bases()
    model.vision.load_state_dict(load_file(str(Path(run.vision) / "vision.safetensors")), strict=True)
    if run.init:
        model.load_trained(load_file(str(Path(run.init) / "model.safetensors")))
    model.vision.eval()
    tok = make_tokenizer(model.cfg.added_tokens)
    params = trainable(model)
    lora = [p for n, p in params if "lora_" in n or "expert_" in n]
    rest = [p for n, p in params if not ("lora_" in n or "expert_" in n)]
    opt = torch.optim.AdamW([{"params": rest, "lr": run.lr}, {"params": lora, "lr": run.lr_lora}], weight_decay=0.0)
    base_lrs = [g["lr"] for g in opt.param_groups]
    train = split(held_out=False)
    scenes = [r for r in train if r.scene is not None]
    dense = [r for r in train if r.dense is not None]
    buildings = [r for r in dense if "building" in r.known]
    pairs = [r for r in train if r.change is not None and r.set == "levir-cd"]
    t0, log = time.time(), []
    for step in tqdm(range(run.steps), desc="stage B", mininterval=30):
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * lr_factor(step, run.steps, warmup=30)
        model.lm.train()
        model.projector.train()
        opt.zero_grad()
        kind = rng.choice(3, p=run.mix)  # one kind per batch: the same number of images in every sample
        if kind == 0:
            batch = [scene_sample(scenes[int(rng.integers(len(scenes)))], rng, run.chip) for _ in range(run.batch)]
        elif kind == 1:
            batch = [dense_sample(dense[int(rng.integers(len(dense)))], rng, run.chip) for _ in range(run.batch)]
        else:
            batch = [change_sample(pairs, buildings, rng, run.chip) for _ in range(run.batch)]
        loss = batch_loss(model, tok, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
        opt.step()
        log.append(loss.item())
        if step % 25 == 0 or step == run.steps - 1:
            print(json.dumps({"step": step, "loss": round(float(np.mean(log[-25:])), 4),
                              "min": round((time.time() - t0) / 60, 1)}), flush=True)
        if (step + 1) % 100 == 0 or step == run.steps - 1:
            model.save(out)
            tok.save(str(out / "tokenizer.json"))
            (out / "run.json").write_text(json.dumps({"run": asdict(run), "minutes": round((time.time() - t0) / 60, 1)},
                                                     indent=1))
    return out


if __name__ == "__main__":  # python -m rsapp.train.language RUN.json OUT_DIR
    import sys

    train_language(read_run(LanguageRun, sys.argv[1]), Path(sys.argv[2]))
