"""Two-stage training on the generated corpus (RSUniVLM stages, ScaleEarth's scale-conditioned second stage).

Stage 1: every parameter on the whole mix, one FFN (expert 0 for all tasks), no CS-HLoRA, no SSE-U.
Stage 2: the FFN is duplicated into the three G-MoE experts, CS-HLoRA and SSE-U join; the router's granularity
picks the expert, s = log10(GSD) gates the LoRA tiers, SSE-U learns with Gaussian NLL.
Checkpoints are safetensors (model and optimizer) + a JSON of the step, so a run resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from rsapp.data.colour import colour_cast
from rsapp.data.real import real_sample
from rsapp.data.samples import SEG_GRID, TASK_WEIGHTS, Sample, make_sample
from rsapp.model.boxes import level_targets
from rsapp.model.config import PRESETS, RsappConfig
from rsapp.model.modeling import NO_CURSOR, RsappVLM
from rsapp.model.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer
from rsapp.data.world import CLASSES
from rsapp.tasks.descriptors import descriptor_cursor, seg_class
from rsapp.tasks.prompts import build_prompt, training_text
from rsapp.tasks.tokens import ASKS_CLASS, TASK_TOKENS, TASKS

FRESH_MODULES = ("box_",)  # the newest modules, the ones fresh_lr_scale applies to (earlier runs: cursor_, class_hint)
# Trains on CPU; a lent GPU is used when present (the same steps, much faster; checkpoints are saved on the CPU).
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
MAX_TOKENS = 420  # text tokens per sample; longer answers are cut (their end is lost, the rest still teaches)


@dataclass
class TrainConfig:
    preset: str = "tiny"
    out: str = "runs/tiny"
    seed: int = 0
    batch_size: int = 16
    pair_share: float = 0.18  # share of batches that are two-date pairs ([CCD], change [SEG])
    stage1_steps: int = 3000
    stage2_steps: int = 3000
    lr: float = 1.5e-3
    lr_stage2: float = 8e-4
    warmup: int = 200
    weight_decay: float = 0.05
    clip: float = 1.0
    predicted_s_share: float = 0.2  # stage 2: share of rows gated by SSE-U's (detached) prediction, not the truth
    sse_weight: float = 0.5
    tokenizer_samples: int = 3000
    save_every: int = 250
    threads: int = 2
    workers: int = 1
    model_overrides: dict | None = None  # config fields over the preset (tests use a toy size)
    dense_weight: float = 0.5  # the vision tower's dense auxiliary loss (DenseHead)
    number_weight: float = 0.15  # soft (Gaussian) loss on [VG] box-corner numbers, averaged over those tokens only
    box_weight: float = 0.5  # the box head's centre focal + edge loss (instances, rsapp.model.boxes)
    select_weight: float = 0.5  # the selector's BCE over the proposals of [VG] rows
    task_weights: dict | None = None  # task mix over TASK_WEIGHTS (single-image tasks; pairs use pair_share)
    real_share: float = 0.0  # share of samples drawn from real labelled imagery (rsapp.data.real)
    real_from_step: int = 0  # real samples join from this step of the stage on
    colour_cast: float = 0.0  # share of samples put under a random colour cast (rsapp.data.colour)
    nodata_share: float = 0.0  # share of one-image synthetic samples whose chip has no-data (rsapp.data.nodata)
    fresh_lr_scale: float = 1.0  # lr multiplier of the newest modules (FRESH_MODULES)
    stop_at: int | None = None  # end the stage at this step, keeping the schedule of the full stage (chained runs)
    init_from: str | None = None  # a trained model folder to continue from: stage 1 is skipped, stage 2 starts there
    train_only: str | None = None  # comma-separated parameter-name prefixes: only these train, the rest is frozen
    select_missed: bool = True  # the selector's candidates include the instances the box head missed


# --- data ------------------------------------------------------------------------------------------------------
class Batches(torch.utils.data.IterableDataset):
    """Endless homogeneous batches (all single images or all pairs), seeded per worker and start step."""

    def __init__(self, cfg: TrainConfig, chip_px: int, start_step: int):
        self.cfg = cfg
        self.chip_px = chip_px
        self.start = start_step

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        rng = np.random.default_rng([self.cfg.seed, wid, self.start])
        weights = TASK_WEIGHTS | (self.cfg.task_weights or {})
        singles = ["[VQA]", "[CAP]", "[CLS]", "[VG]", "[REF]", "[SEG]"]
        p = np.array([weights[t] for t in singles])
        pairs = ["[CCD]", "[SEG2]"]
        q = np.array([weights[t] for t in pairs])
        step = self.start
        while True:
            paired = rng.random() < self.cfg.pair_share
            if paired:
                tasks = rng.choice(pairs, self.cfg.batch_size, p=q / q.sum())
            else:
                tasks = rng.choice(singles, self.cfg.batch_size, p=p / p.sum())
            real = self.cfg.real_share if step >= self.cfg.real_from_step else 0.0
            batch = [real_sample(rng, self.chip_px, paired) if real and rng.random() < real
                     else make_sample(rng, str(t), self.chip_px, nodata_share=self.cfg.nodata_share) for t in tasks]
            if self.cfg.colour_cast:
                batch = [colour_cast(s, rng) if rng.random() < self.cfg.colour_cast else s for s in batch]
            yield batch
            step += 1


def answer_cursor(tok, full: list[int], prompt_len: int, n_grid: int) -> list[tuple[int, int]]:
    """Descriptor cursor of every position of one [SEG] sequence: NO_CURSOR over the prompt, (0, 0) on its last
    token, then the cell the next run starts at after each answer token (as Runtime.generate computes it)."""
    out = [(NO_CURSOR, NO_CURSOR)] * (prompt_len - 1) + [(0, 0)]
    text = ""
    for i in full[prompt_len:]:
        text += tok.decode([i], skip_special_tokens=True)
        out.append(descriptor_cursor(text, n_grid))
    return out


def instance_batch(samples: list[Sample], n_grid: int, k: int) -> tuple[dict, list]:
    """BoxHead targets per level, stacked (B, n_images, ...), and per row the selector's (instances of the asked
    class, answer boxes) as chip fractions for [VG] rows whose instances are known (None otherwise)."""
    per_sample, select = [], []
    for s in samples:
        chip = s.images[0].shape[0]
        known = s.instance_classes if s.instances else ()
        lists = s.instances or [[] for _ in s.images]
        per_sample.append([level_targets(inst, known, n_grid, k, chip) for inst in lists])
        asked = seg_class(s.question) if s.token == "[VG]" else None
        if asked is None or not s.instances or (known is not None and CLASSES.index(asked) not in known):
            select.append(None)
            continue
        cls = CLASSES.index(asked)
        frac = lambda b: tuple(v / chip for v in b)  # noqa: E731
        select.append(([frac(i[1:]) for i in s.instances[0] if i[0] == cls], [frac(b) for b in s.target["boxes"]]))
    stacked = [{key: torch.from_numpy(np.stack([np.stack([t[level][key] for t in ts]) for ts in per_sample]))
                for key in per_sample[0][0][level]} for level in range(len(per_sample[0][0]))]
    return stacked, select


def encode_batch(samples: list[Sample], tok) -> dict:
    """Samples → padded ids, labels (answer tokens only), descriptor cursor, images, dense and instance targets,
    expert, true log10 GSD."""
    ids, labels, cursors = [], [], []
    for s in samples:
        n = len(s.images)
        prompt = tok.encode(build_prompt(s.token, s.question, n)).ids
        full = tok.encode(training_text(s.token, s.question, n, s.answer)).ids[:MAX_TOKENS]
        ids.append(full)
        labels.append([-100] * len(prompt) + full[len(prompt):])
        cursors.append(answer_cursor(tok, full, len(prompt), SEG_GRID) if s.token == "[SEG]"
                       else [(NO_CURSOR, NO_CURSOR)] * len(full))
    width = max(map(len, ids))
    pad = lambda seqs, v: torch.tensor([q + [v] * (width - len(q)) for q in seqs])  # noqa: E731
    n_img = len(samples[0].images)
    boxes, select = instance_batch(samples, SEG_GRID, len(CLASSES))
    images = torch.from_numpy(np.stack([np.stack(s.images) for s in samples])).permute(0, 1, 4, 2, 3)
    return {
        "images": images.float() / 255.0,
        "input_ids": pad(ids, 0),
        "attention_mask": pad([[1] * len(q) for q in ids], 0),
        "labels": pad(labels, -100),
        "cursor": pad(cursors, (NO_CURSOR, NO_CURSOR))[:, n_img:],
        "seg_class": torch.tensor([CLASSES.index(c) if s.token in ASKS_CLASS and (c := seg_class(s.question)) else -1
                                   for s in samples]),
        "soft_numbers": torch.tensor([s.token == "[VG]" for s in samples]),
        "dense": torch.from_numpy(np.stack([np.stack(s.dense) for s in samples])) if samples[0].dense else None,
        "boxes": boxes,
        "select": select,
        "g": torch.tensor([TASKS[s.token][0] for s in samples]),
        "s_true": torch.tensor([math.log10(s.gsd_m) for s in samples], dtype=torch.float32),
    }


def corpus_texts(n: int, seed: int, chip_px: int) -> list[str]:
    rng = np.random.default_rng([seed, 999])
    out = []
    for _ in tqdm(range(n), desc="tokenizer corpus", leave=False):
        s = make_sample(rng, None, chip_px)
        out.append(training_text(s.token, s.question, len(s.images), s.answer))
    return out


# --- checkpoints -----------------------------------------------------------------------------------------------
def save_checkpoint(folder: Path, model: RsappVLM, opt: torch.optim.Optimizer, state: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder / "model")
    tensors, meta = {}, {"param_groups": opt.state_dict()["param_groups"], **state}
    for pid, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous() if torch.is_tensor(v) else torch.tensor(v)
    save_file(tensors, str(folder / "optimizer.safetensors"))
    (folder / "trainer_state.json").write_text(json.dumps(meta, indent=1))


def load_optimizer(folder: Path, opt: torch.optim.Optimizer) -> dict:
    meta = json.loads((folder / "trainer_state.json").read_text())
    flat = load_file(str(folder / "optimizer.safetensors"))
    state: dict = {}
    for key, v in flat.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return meta


# --- stages ----------------------------------------------------------------------------------------------------
def split_experts(model: RsappVLM) -> None:
    """Stage 1 → 2: every expert starts as a copy of the single FFN trained in stage 1."""
    with torch.no_grad():
        for layer in model.layers:
            first = layer.ffn.experts[0].state_dict()
            for e in layer.ffn.experts[1:]:
                e.load_state_dict(first)


def stage_parameters(model: RsappVLM, stage: int, only: str | None = None) -> list[torch.nn.Parameter]:
    """Stage 1 leaves out the (still unused) LoRA factors, gate, spare experts and SSE-U; `only` (prefixes,
    comma-separated) keeps just those parameters and freezes the rest."""
    prefixes = tuple(only.split(",")) if only else None
    params = []
    for name, p in model.named_parameters():
        new_in_stage2 = ("lora_" in name or name.startswith("scale_gate") or name.startswith("sse_u")
                         or any(f"experts.{i}." in name for i in range(1, model.config.num_experts)))
        if prefixes is not None and not name.startswith(prefixes):
            p.requires_grad_(False)
        elif (stage == 2 or not new_in_stage2) and p.requires_grad:
            params.append(p)
    return params


def continue_from(folder: Path) -> RsappVLM:
    """A trained model as the start of more training (modules newer than it start fresh)."""
    model = RsappVLM.load(folder)
    if model.missing_modules:
        tqdm.write(f"continuing from {folder}; new modules start fresh: {model.missing_modules}")
    return model


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup)))) + peak * 0.02


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) both stages; the final model + tokenizer land in cfg.out/final."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))
    model_cfg = RsappConfig(**(PRESETS[cfg.preset] | (cfg.model_overrides or {})))
    if cfg.init_from:
        tok = load_tokenizer(Path(cfg.init_from))
        if not (out / "tokenizer.json").exists():
            save_tokenizer(tok, out)
    elif (out / "tokenizer.json").exists():
        tok = load_tokenizer(out)
    else:
        tok = train_tokenizer(corpus_texts(cfg.tokenizer_samples, cfg.seed, model_cfg.chip_size),
                              model_cfg.vocab_size, list(TASK_TOKENS))
        save_tokenizer(tok, out)
    model_cfg.vocab_size = tok.get_vocab_size()
    model_cfg.seg_grid = SEG_GRID
    stages = ((2, cfg.stage2_steps, cfg.lr_stage2),) if cfg.init_from else \
        ((1, cfg.stage1_steps, cfg.lr), (2, cfg.stage2_steps, cfg.lr_stage2))
    for stage, steps, peak in stages:
        ckpt = out / f"stage{stage}"
        done = ckpt / "trainer_state.json"
        if done.exists() and json.loads(done.read_text())["step"] >= min(steps, cfg.stop_at or steps):
            continue
        if done.exists():
            model = RsappVLM.load(ckpt / "model")
        elif cfg.init_from:
            model = continue_from(Path(cfg.init_from))
        elif stage == 2:
            model = RsappVLM.load(out / "stage1" / "model")
            split_experts(model)
        else:
            model = RsappVLM(model_cfg)
        model.set_number_tokens(tok)
        model.to(DEVICE).train()
        params = stage_parameters(model, stage, cfg.train_only)
        fresh = {id(p) for n, p in model.named_parameters() if n.startswith(FRESH_MODULES)}
        opt = torch.optim.AdamW([{"params": [p for p in params if id(p) not in fresh], "lr_scale": 1.0},
                                 {"params": [p for p in params if id(p) in fresh], "lr_scale": cfg.fresh_lr_scale}],
                                lr=peak, weight_decay=cfg.weight_decay)
        start = load_optimizer(ckpt, opt)["step"] if done.exists() else 0
        _run_stage(cfg, model, opt, tok, stage, start, steps, peak, ckpt)
    final = out / "final"
    model = RsappVLM.load(out / "stage2" / "model")
    model.save_pretrained(final)
    save_tokenizer(tok, final)
    return final


def _run_stage(cfg, model, opt, tok, stage, start, steps, peak, ckpt) -> None:
    loader = torch.utils.data.DataLoader(Batches(cfg, model.config.chip_size, start), batch_size=None,
                                         num_workers=cfg.workers, prefetch_factor=4 if cfg.workers else None)
    log = (ckpt.parent / f"stage{stage}_log.jsonl").open("a")
    bar = tqdm(total=steps, initial=start, desc=f"stage {stage}")
    t0, ema = time.time(), None
    end = min(steps, cfg.stop_at or steps)
    for step, samples in zip(range(start, end), loader):
        b = {k: v.to(DEVICE) if torch.is_tensor(v) else v for k, v in encode_batch(samples, tok).items()}
        b["boxes"] = [{k: v.to(DEVICE) for k, v in level.items()} for level in b["boxes"]]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, peak, cfg.warmup) * group.get("lr_scale", 1.0)
        if stage == 1:
            g, s, s_target = torch.zeros_like(b["g"]), None, None
        else:
            g, s_target = b["g"], b["s_true"]
            s = b["s_true"]
        use_pred = torch.rand(len(b["g"]), device=DEVICE) < cfg.predicted_s_share if stage == 2 else None
        outp = model(b["images"], b["input_ids"], b["attention_mask"], labels=b["labels"], g=g, s=s,
                     s_target=s_target, sse_weight=cfg.sse_weight, use_predicted_s=use_pred, cursor=b["cursor"],
                     dense=b["dense"], dense_weight=cfg.dense_weight, seg_class=b["seg_class"],
                     soft_numbers=b["soft_numbers"], number_weight=cfg.number_weight, boxes=b["boxes"],
                     box_weight=cfg.box_weight, select=b["select"], select_weight=cfg.select_weight,
                     select_missed=cfg.select_missed)
        opt.zero_grad(set_to_none=True)
        if outp["loss"].requires_grad:  # with train_only, a batch may have nothing those parameters learn from
            outp["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
        lm = float(outp["lm_loss"].detach())
        ema = lm if ema is None else 0.98 * ema + 0.02 * lm
        sse = float(outp["sse_loss"].detach()) if "sse_loss" in outp else float("nan")
        dense = float(outp["dense_loss"].detach()) if "dense_loss" in outp else float("nan")
        extra = {k: float(outp[k].detach()) if k in outp else float("nan")
                 for k in ("number_loss", "box_loss", "select_loss")}
        rec = {"step": step + 1, "lm_loss": lm, **extra, "sse_loss": sse, "dense_loss": dense,
               "lr": opt.param_groups[0]["lr"], "elapsed_s": time.time() - t0}
        log.write(json.dumps(rec) + "\n")
        bar.set_postfix(loss=f"{ema:.3f}", sse=f"{sse:.2f}", dense=f"{dense:.3f}", box=f"{extra['box_loss']:.2f}")
        bar.update(1)
        if (step + 1) % cfg.save_every == 0 or step + 1 == end:
            save_checkpoint(ckpt, model, opt, {"step": step + 1, "stage": stage})
            log.flush()
    bar.close()
    log.close()
