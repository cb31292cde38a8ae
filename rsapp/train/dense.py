"""The mask head: the dense head refitted on the frozen tower with the real land-cover sets' labels and UC Merced
scenes whose class rules dense classes out (rsapp.data.real_sets.SCENE_RULES_OUT: a forest holds no building, a
dense residential block no bare land), labelled absent on every pixel. BCE + Dice over labelled pixels, as stage A;
with present_per_step, also UC Merced scenes whose class holds a dense class somewhere (SCENE_HOLDS: a river holds
water), whose most likely pixels of it are pushed to it (multiple-instance: the scene says it is there, not where).

Stage A's head had seen only the land-cover sets' own collections; on UC Merced's USGS orthophotos it painted roofs,
lawns and tarmac as bare land and grass as water. The refit is a second head beside the dense head (the release's
mask head, or a copy of its dense head when it has none, is where it starts): the dense head stays as stage A left
it because the tag the language model reads is of its maps, and so does the tower, so the language model's tokens
do not move. tools/ship_model.py grafts the mask head into the release with the share of it pixel answers read
(VisionConfig.mask_head_share); tools/choose_thresholds.py then chooses the thresholds again.

With tail_lr, the mask head reads its own copy of the tower's stride-16 and stride-32 blocks
(rsapp.model.efficientnet.PyramidTail: the release's, else a copy of the tower's), tuned with it at that learning
rate, batch-norm statistics kept (v2_dense3.json). The tower every other head and the language model read stays
frozen; the copy is what lets land cover reshape the deep features the frozen ImageNet tower gives.

With pond_share, that share of the labelled chips gets a pond of real water pasted in (rsapp.data.real_chips.paste_pond:
a window of a train tile that is all water, in a pond's outline, labelled water and nothing else): the labelled water
is sea and creek seen with its shore, and a still pond alone on dry ground was read at the threshold (v2_dense4.json).
With shadow_share, that share gets a shadow cast (cast_shadow: ground darkened in place, labelled not water): taught
ponds alone, the head painted shadows as water (v2_dense5.json; docs/EXPERIMENTS.md). With shadow_beside, that share
of the shadows is the one the chip's labelled buildings and trees throw beside them (shadow_beside): the Las Vegas
street's false water was thin strips along its roofs (v2_dense6.json). With crowns_per_step, NEON's 0.1 m tree crowns
are vegetation (add_crowns): the head had read a fifth of the held-out crowns as vegetation (v2_dense8.json). With
look, that share of the labelled chips is seen as another sensor would deliver it (rsapp.data.real_chips.dense_chip:
blurred, sharpened or JPEG-compressed at its own pixels, then recoloured or hazed): held-out roads blurred by 1.5 px
and land cover recoloured lost up to half their IoU (v2_dense9.json; not shipped: docs/EXPERIMENTS.md). With
look_everywhere, the ruled-out scenes and the crowns are seen so at the same share (v2_dense10.json).

With only_classes, a refit learns those classes alone: either only their rows of the head's 1×1 read-out (every
other class's map stays exactly), or, with anchor, the whole head, the other classes' maps held to the starting
head's by a BCE (the release's water was refitted so, v2_dense2.json).

    python -m rsapp train dense --run configs/runs/v2_dense.json --out runs/v2d
    python -m rsapp train dense --run configs/runs/v2_dense2.json --out runs/v2d6  # water, from the release
    python -m rsapp train dense --run configs/runs/v2_dense3.json --out runs/v2d10  # with its own deep blocks
    python -m rsapp train dense --run configs/runs/v2_dense4.json --out runs/v2d14  # + water scenes, ponds
    python -m rsapp train dense --run configs/runs/v2_dense5.json --out runs/v2d16  # + shadows
    python -m rsapp train dense --run configs/runs/v2_dense6.json --out runs/v2d17  # + shadows beside roofs, trees
    python -m rsapp train dense --run configs/runs/v2_dense7.json --out runs/v2d18  # longer, half the lr
    python -m rsapp train dense --run configs/runs/v2_dense8.json --out runs/v2d19  # + NEON's crowns
    python -m rsapp train dense --run configs/runs/v2_dense9.json --out runs/v2d20  # other sensors' looks, not shipped
    python -m rsapp train dense --run configs/runs/v2_dense10.json --out runs/v2d21  # looks on every chip
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rsapp.data.real_chips import scene_chip, water_windows
from rsapp.data.real_sets import DENSE_INDEX, holding_scenes, ruled_out_scenes, split
from rsapp.model.efficientnet import PyramidTail
from rsapp.train import fit_head, read_run, start_run, vision_model
from rsapp.train.batch import Batch, add_crowns, add_dense, pick, to_tensor
from rsapp.train.losses import pixel_loss, present_loss


@dataclass
class DenseRun:
    vision: str  # release whose tower the head reads and whose mask head (else dense head) it continues from
    steps: int = 2000
    chips_per_step: int = 12  # from the land-cover sets (set-balanced)
    ruled_out_per_step: int = 4  # UC Merced scenes whose class rules dense classes out (class-balanced)
    present_per_step: int = 0  # UC Merced scenes whose class holds a dense class somewhere (class-balanced)
    present_top: float = 0.05  # the share of such a scene's pixels pushed to the class it holds
    pond_share: float = 0.0  # the share of labelled chips that get a pond of real water pasted (paste_pond)
    shadow_share: float = 0.0  # the share of labelled chips that get a shadow cast, labelled not water (cast_shadow)
    shadow_beside: float = 0.0  # the share of those shadows thrown beside the chip's buildings and trees
    only_classes: tuple[str, ...] = ()  # fit only these classes' output rows (the rest of the head stays exactly)
    anchor: float = 0.0  # with only_classes: the whole head learns those classes, and the other classes' maps are
    # held to the starting head's by a BCE of this weight, instead of freezing all but those rows
    tail_lr: float = 0.0  # > 0: the mask head's own copy of the deep blocks learns with it at this rate
    crowns_per_step: int = 0  # chips of the tree-crown sets (NEON, 0.1 m): their crowns are vegetation (add_crowns)
    look: float = 0.0  # the share of labelled chips seen as another sensor delivers them (dense_chip)
    look_everywhere: bool = False  # that share of the ruled-out scenes and the crowns too: a look then says nothing
    # of what a chip holds (with labelled chips alone seen so, a hazy or blurred look came with water and roads)
    chip: int = 256
    lr: float = 3e-4
    weight_decay: float = 1e-4
    seed: int = 7


def train_dense(run: DenseRun, out: Path) -> Path:
    rng = start_run(out, run.seed)
    model = vision_model(run.vision)
    if not hasattr(model, "mask_head"):
        model.mask_head = copy.deepcopy(model.dense_head)
    classes = len(model.cfg.dense_classes)
    head, start = model.mask_head, None
    rows = torch.ones(classes)
    if run.only_classes:
        rows = torch.zeros(classes)
        rows[[model.cfg.dense_classes.index(c) for c in run.only_classes]] = 1
    if run.only_classes and run.anchor:
        start = copy.deepcopy(model.mask_head).eval().requires_grad_(False)
    elif run.only_classes:  # only the classes' rows of the 1×1 read-out learn: every other class's map stays as it was
        if run.weight_decay:
            raise ValueError("only_classes needs weight_decay 0 (decay would move the other rows)")
        head = model.mask_head.out
        model.mask_head.decoder.requires_grad_(False)
        head.weight.register_hook(lambda g: g * rows[:, None, None, None])
        head.bias.register_hook(lambda g: g * rows)
    others = rows == 0
    also = ()
    if run.tail_lr:
        if run.only_classes:
            raise ValueError("tail_lr tunes the deep blocks for every class: it does not go with only_classes")
        if not hasattr(model, "mask_tail"):
            model.mask_tail = PyramidTail.copy_of(model.tower.backbone)
            model.cfg.mask_tail = True
        also = ((model.mask_tail, run.tail_lr),)
    elif hasattr(model, "mask_tail"):  # the release's copy of the deep blocks is read as it is
        model.mask_tail.requires_grad_(False)

    def read(levels) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's logits, and the anchor loss holding the other classes to the starting head's (0 without)."""
        levels = model.mask_levels(levels)
        raw = model.mask_head(levels)
        if start is None:
            return raw, raw.new_zeros(())
        with torch.no_grad():
            ref = torch.sigmoid(start(levels)[:, others])
        return raw, run.anchor * F.binary_cross_entropy_with_logits(raw[:, others], ref)

    train = split(held_out=False)
    labelled = [r for r in train if r.dense is not None]
    ruled_out = ruled_out_scenes(train)
    holding = holding_scenes(train)
    ponds = water_windows(labelled) if run.pond_share else []
    crowns = [r for r in train if r.instance_class == "vegetation"]

    def loss_of_step() -> torch.Tensor:
        batch = Batch()
        add_dense(batch, labelled, run.chips_per_step, run.chip, classes, rng, ponds, run.pond_share,
                  run.shadow_share, run.shadow_beside, look=run.look)
        look = run.look if run.look_everywhere else 0.0
        if run.crowns_per_step:
            add_crowns(batch, crowns, run.crowns_per_step, run.chip, classes, rng, look=look)
        if run.ruled_out_per_step:
            add_dense(batch, ruled_out, run.ruled_out_per_step, run.chip, classes, rng, look=look)
        with torch.no_grad():
            levels = model.tower.pyramid(batch.pixels())
        raw, loss = read(levels)
        logits = F.interpolate(raw, size=(run.chip, run.chip), mode="bilinear", align_corners=False)
        weights = torch.from_numpy(np.stack(batch.dense_weights)) * rows[:, None, None]  # the classes that learn
        loss = loss + pixel_loss(logits, torch.from_numpy(np.stack(batch.dense_targets)), weights)
        if run.present_per_step:
            scenes = [pick(holding, rng) for _ in range(run.present_per_step)]
            with torch.no_grad():
                levels = model.tower.pyramid(to_tensor([scene_chip(r, rng, run.chip)[0] for r in scenes]))
            held = [tuple(DENSE_INDEX[name] for name in r.known) for r in scenes]
            raw, anchored = read(levels)
            loss = loss + anchored + present_loss(raw, held, run.present_top)
        return loss

    return fit_head(model, head, run, out, "dense", loss_of_step, also)


if __name__ == "__main__":  # python -m rsapp.train.dense RUN.json OUT_DIR
    import sys

    train_dense(read_run(DenseRun, sys.argv[1]), Path(sys.argv[2]))
