"""What a training step of the visual half reads: one Batch, sampled from the real sets' train splits.

Stage A fills every part (dense chips with their targets, scene chips with their labels, change pairs with their
masks); the change head's own stage fills only the pairs. The tower reads all chips of a batch in one tensor, in the
order of Batch.pixels(); Batch.parts() says which rows are which.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rsapp.data.real_chips import (cast_shadow, change_chip, dense_chip, instance_chip, paste_pond, scene_chip,
                                   synthetic_change)
from rsapp.data.real_sets import DENSE_INDEX, NONE_OF_KNOWN


@dataclass
class Batch:
    dense: list[np.ndarray] = field(default_factory=list)  # (H, W, 3) uint8 chips
    dense_targets: list[np.ndarray] = field(default_factory=list)  # (K, H, W) 0/1 per dense class
    dense_weights: list[np.ndarray] = field(default_factory=list)  # (K, H, W) 1 where the chip's set labels it
    scenes: list[np.ndarray] = field(default_factory=list)
    scene_labels: list[int] = field(default_factory=list)  # index into the scene classes
    before: list[np.ndarray] = field(default_factory=list)
    after: list[np.ndarray] = field(default_factory=list)
    change: list[np.ndarray] = field(default_factory=list)  # (H, W): 1 changed, 0 not, IGNORE unlabelled
    gsd_m: list[float | None] = field(default_factory=list)  # of the dense chips, then the scene chips

    def pixels(self) -> torch.Tensor:
        """Every chip as one (N, 3, H, W) tensor in [0, 1]: dense, scenes, before, after."""
        return to_tensor(self.dense + self.scenes + self.before + self.after)

    def parts(self) -> dict[str, slice]:
        """Rows of pixels() per part."""
        nd, ns, nc = len(self.dense), len(self.scenes), len(self.before)
        return {"dense": slice(0, nd), "scenes": slice(nd, nd + ns), "before": slice(nd + ns, nd + ns + nc),
                "after": slice(nd + ns + nc, nd + ns + 2 * nc)}


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


def pick(rasters: list, rng):
    """A set uniformly, then one of its rasters: a set of one large scene weighs as much as one of 56 tiles."""
    sets = sorted({r.set for r in rasters})
    chosen = sets[int(rng.integers(len(sets)))]
    members = [r for r in rasters if r.set == chosen]
    return members[int(rng.integers(len(members)))]


def dense_targets(labels: np.ndarray, known: tuple[str, ...], classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) class-index labels of a set that labels `known` → (K, H, W) 0/1 targets and (K, H, W) weights."""
    target = np.zeros((classes,) + labels.shape, np.float32)
    weight = np.zeros_like(target)
    for name in known:
        k = DENSE_INDEX[name]
        labelled = (labels < classes) | (labels == NONE_OF_KNOWN)
        target[k] = labels == k
        weight[k] = labelled
    return target, weight


LAND = {"building", "road", "vegetation", "bare land"}  # a set labelling one of these labels land, where shadows fall


def add_dense(batch: Batch, rasters: list, n: int, chip: int, classes: int, rng, ponds: list | None = None,
              pond_share: float = 0.0, shadow_share: float = 0.0, shadow_beside: float = 0.0, look: float = 0.0
              ) -> None:
    """n dense chips (set-balanced); with probability pond_share a chip also gets a pond of real water from `ponds`
    (rsapp.data.real_chips.paste_pond), labelled water and no other class on every one of its pixels; with
    probability shadow_share a shadow (cast_shadow; that share of them thrown beside the chip's buildings and trees),
    whose ground keeps its labels and is not water; with probability look a chip is seen through another sensor
    (rsapp.data.real_chips.dense_chip)."""
    for _ in range(n):
        r = pick(rasters, rng)
        rgb, labels, gsd = dense_chip(r, rng, chip, look)
        target, weight = dense_targets(labels, r.known, classes)
        if ponds and rng.random() < pond_share:
            rgb, pond = paste_pond(rgb, labels, ponds, rng)
            target[:, pond], weight[:, pond] = 0.0, 1.0
            target[DENSE_INDEX["water"], pond] = 1.0
            labels = np.where(pond, DENSE_INDEX["water"], labels)  # no shadow is cast on it below
        if set(r.known) & LAND and rng.random() < shadow_share:  # not on a sea a set leaves unlabelled (ships)
            rgb, shade = cast_shadow(rgb, labels, rng, shadow_beside)
            target[DENSE_INDEX["water"], shade], weight[DENSE_INDEX["water"], shade] = 0.0, 1.0
        batch.dense.append(rgb), batch.dense_targets.append(target), batch.dense_weights.append(weight)
        batch.gsd_m.append(gsd)


def add_crowns(batch: Batch, rasters: list, n: int, chip: int, classes: int, rng, look: float = 0.0) -> None:
    """n chips of the tree-crown sets (NEON's boxes, as the ellipses they hold): a crown's pixels are vegetation and
    no other land class; the ground between crowns is unlabelled (grass is vegetation too). With probability look
    a chip is seen through another sensor (instance_chip)."""
    for _ in range(n):
        rgb, ids, _, gsd = instance_chip(pick(rasters, rng), rng, chip, look=look)
        crown = ids > 0
        target = np.zeros((classes,) + crown.shape, np.float32)
        weight = np.zeros_like(target)
        for name in LAND | {"water"}:
            weight[DENSE_INDEX[name], crown] = 1.0
        target[DENSE_INDEX["vegetation"], crown] = 1.0
        batch.dense.append(rgb), batch.dense_targets.append(target), batch.dense_weights.append(weight)
        batch.gsd_m.append(gsd)


def add_scenes(batch: Batch, rasters: list, n: int, chip: int, scene_classes: tuple[str, ...], rng) -> None:
    for _ in range(n):
        r = rasters[int(rng.integers(len(rasters)))]
        rgb, gsd = scene_chip(r, rng, chip)
        batch.scenes.append(rgb), batch.scene_labels.append(scene_classes.index(r.scene)), batch.gsd_m.append(gsd)


def add_change(batch: Batch, pairs: list, buildings: list, n: int, made_share: float, chip: int, rng,
               paste: float = 0.0, distractor: float = 0.0) -> None:
    """n change pairs: real ones (set-balanced), and with probability made_share ones made from single-date
    building labels (instances inpainted away on one date, or pasted with probability `paste`; changes that are
    not building change with probability `distractor`; the mask exact by construction: synthetic_change)."""
    while len(batch.before) < n:
        if rng.random() < made_share:
            made = synthetic_change(pick(buildings, rng), rng, chip, paste, distractor)
        else:
            made = change_chip(pick(pairs, rng), rng, chip)
        if made is not None:
            batch.before.append(made[0]), batch.after.append(made[1]), batch.change.append(made[2])
