"""Training of v2: stage A (tower + heads), the SSE-U fit, stage B (projector + LM adapters). Settings come
from run files (configs/runs/*.json); never imported by the UI."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm import tqdm


def read_run(cls, path: str | Path):
    """A run dataclass from its JSON file (lists become tuples where the field is a tuple); unknown keys fail."""
    data = json.loads(Path(path).read_text())
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {sorted(unknown)} for {cls.__name__}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def vision_state(folder: str | Path) -> dict[str, torch.Tensor]:
    """The visual half's tensors of a vision run (vision.safetensors) or of a release folder (its vision half as
    RsappVLM.load assembles it, over the pretrained backbone), to fit a head on that tower."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if (folder / "vision.safetensors").exists():
        return load_file(str(folder / "vision.safetensors"))
    return vision_model(folder).state_dict()


def vision_model(folder: str | Path, fresh: tuple[str, ...] = ()):
    """The visual half of a vision run (the default config with the run's tensors, except those of the `fresh`
    heads, whose architecture may have changed since the run; a head the run lacks keeps its fresh start too) or
    of a release folder (as RsappVLM.load assembles it), to fit a head on its tower."""
    from safetensors.torch import load_file

    from rsapp.model.vision_model import VisionConfig, VisionModel
    from rsapp.model.vlm import RsappVLM

    folder = Path(folder)
    if (folder / "vision.safetensors").exists():
        model = VisionModel(VisionConfig())
        state = load_file(str(folder / "vision.safetensors"))
        model.load_state_dict({k: v for k, v in state.items() if k.split(".")[0] not in fresh}, strict=False)
        return model
    return RsappVLM.load(folder).vision


def start_run(out: Path, seed: int) -> np.random.Generator:
    """Make the run's folder, seed torch, and return the run's numpy generator."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def lr_factor(step: int, steps: int, warmup: int = 50) -> float:
    """Linear warm-up over `warmup` steps, then a cosine from 1 to 0 over the run."""
    return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))


def optimizer_step(opt: torch.optim.Optimizer, params, loss: torch.Tensor) -> float:
    """Backpropagate `loss`, clip the gradients of `params` at norm 2, step; the loss as a float."""
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 2.0)
    opt.step()
    return loss.item()


def save_vision_run(model, run, out: Path, t0: float, **extra) -> None:
    """A run of the visual half: its state (vision.safetensors) and run.json (the run's settings, the model's
    config, anything in `extra`, and the minutes since t0)."""
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "vision.safetensors"))
    (out / "run.json").write_text(json.dumps({"run": dataclasses.asdict(run), "config": model.cfg.to_dict(), **extra,
                                              "minutes": round((time.time() - t0) / 60, 1)}, indent=1))


def fit_head(model, head: torch.nn.Module, run, out: Path, name: str, loss_of_step,
             also: tuple[tuple[torch.nn.Module, float], ...] = ()) -> Path:
    """Fit one head of `model` on its frozen tower: AdamW (run.lr, run.weight_decay) warmed up then cosine over
    run.steps, loss_of_step() each step; the mean loss printed every 50 steps as `name`, the run saved every 250.
    `also`: other modules that learn with it, each at its own learning rate (they stay in eval mode: a copy of
    tower blocks keeps its batch-norm statistics)."""
    model.eval()
    head.train()
    groups = [(head, run.lr), *also]
    opt = torch.optim.AdamW([{"params": m.parameters(), "lr": lr} for m, lr in groups], weight_decay=run.weight_decay)
    params = [p for m, _ in groups for p in m.parameters()]
    log, t0 = [], time.time()
    for step in tqdm(range(run.steps), desc=f"{name} head", mininterval=30):
        for g, (_, lr) in zip(opt.param_groups, groups):
            g["lr"] = lr * lr_factor(step, run.steps)
        log.append(optimizer_step(opt, params, loss_of_step()))
        if step % 50 == 0 or step == run.steps - 1:
            print(json.dumps({"step": step, name: round(float(np.mean(log[-50:])), 4),
                              "s": round(time.time() - t0, 1)}), flush=True)
        if (step + 1) % 250 == 0 or step == run.steps - 1:
            save_vision_run(model, run, out, t0)
    return out
