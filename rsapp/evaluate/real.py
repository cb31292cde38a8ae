"""`evaluate --real`: scores on the held-out part of every real set (rsapp.data.real_sets.SPLITS).

Per set: scene top-1 (UC Merced; the land-cover scenes of the Dubai tiles, set dubai-cover), IoU per dense class
(land cover, buildings, roads, ships), change F1 (LEVIR-CD, Beijing, Taizhou), the relative count error and the F1 of
instance boxes at IoU 0.5 (sets labelling instances), the relative error of counts asked in words (RSIVQA's "how many
cars in the picture?" on UC Merced, answered from the instances as the analyst answers a counting question), and
the abs log10 error of the GSD predicted from pixels where the set's GSD is known; the sets of one example each
(DIOR-RSVG's phrase, RSICD's and LEVIR-CC's captions) are asked through the analyst (asked_examples), and so are
[VG] phrases made from the instance labels ("the largest building": referring_phrases, acc@0.5 of the first box).
Images are read at their native resolution, in tiles when larger than the model's chip (VisionModel.encode_tiled),
as the app reads pixel answers.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
from tqdm import tqdm

from rsapp.data.real_sets import IGNORE, SINGLE_EXAMPLE_SETS, Raster, cover_scenes, split
from rsapp.data.real_text import count_of
from rsapp.evaluate.metrics import F1Accumulator, bleu4_refs, boxes_of, matched_boxes
from rsapp.evaluate.thresholds import overlaps
from rsapp.tasks.boxes import iou
from rsapp.tasks.vocabulary import counted_class

TILE = 512
# Classes whose counting questions are scored (things counted one by one; RSIVQA's few questions about trees, roads
# and pools are left out), and question words that count only some of them.
INSTANCE_COUNTED = ("building", "car", "ship")
QUALIFIED = re.compile(r"\b(red|yellow|white|black|blue|green|grey|gray|small|large|big)\b", re.IGNORECASE)
# [VG] phrases made from a held-out set's instance labels (the "the largest building" of the box sets), each
# asked only where the labels name one instance clearly: the largest at least REFERENT_AREA_RATIO × the next one's
# area, the leftmost's (…) or the most central's box centre at least REFERENT_GAP of the image's side ahead of the
# next. Only sets labelling things one by one (footprints, boxes): Dubai's and ISPRS' building regions draw a
# compound or a terrace as one, which no one would call "the largest building".
REFERRING = (("largest", "the largest {}"), ("leftmost", "the leftmost {}"), ("rightmost", "the rightmost {}"),
             ("topmost", "the {} at the top"), ("bottommost", "the {} at the bottom"),
             ("central", "the {} nearest the centre"))
REFERRING_SETS = ("spacenet-atlanta", "xbd-buildings", "vegas-buildings", "neon-trees", "sen2ships")
REFERENT_AREA_RATIO = 1.25
REFERENT_GAP = 0.05
INSTANCE_WORD = {"building": "building", "vegetation": "tree", "ship": "ship"}  # the labelled class, as people say it


class Predictor(Protocol):
    dense_classes: tuple[str, ...]

    def dense(self, rgb: np.ndarray) -> np.ndarray: ...  # (K, H, W) probabilities

    def threshold(self, name: str) -> float: ...  # a class is drawn where its probability exceeds this

    # (H, W) probability of the change answer's map, at the pair's GSD (None: as the model reads it)
    def change(self, before: np.ndarray, after: np.ndarray, gsd_m: float | None) -> np.ndarray: ...

    def scene(self, rgb: np.ndarray) -> str: ...

    def log10_gsd(self, rgb: np.ndarray) -> float: ...
    def log10_gsd_whole(self, rgb: np.ndarray) -> float: ...  # as the analyst reads a whole image

    def instances(self, rgb: np.ndarray, name: str, gsd_m: float | None) -> list: ...  # [(box px, area, score)]


def evaluate_real(predictor: Predictor, sets: tuple[str, ...] | None = None, progress: bool = True,
                  text_n: int = 0, ask: Callable | None = None) -> dict:
    """Scores per held-out set. text_n > 0 also asks the language model (predictor.text) [CLS], [CAP] and [VQA]
    on up to text_n scenes per set (spread over the classes), through its own answer. `ask` (asking(analyst)) asks
    the sets of one example each as the CLI asks (asked_examples)."""
    held = split(held_out=True)
    held = [r for r in held + cover_scenes(held) if sets is None or r.set in sets]
    inter, union = defaultdict(float), defaultdict(float)
    f1s: dict[str, F1Accumulator] = defaultdict(F1Accumulator)
    hits, counts = defaultdict(int), defaultdict(int)
    gsd_err, gsd_whole_err = defaultdict(list), defaultdict(list)
    box_hits = defaultdict(lambda: np.zeros(4))  # boxes matched, predicted, true; |predicted − true count|
    asked = defaultdict(lambda: np.zeros(2))  # per (set, class) of counting questions: Σ |counted − said|, Σ said
    for r in tqdm(held, desc="real held-out", disable=not progress, mininterval=10):
        if r.scene is not None:
            counts[r.set] += 1
            hits[r.set] += predictor.scene(r.rgb) == r.scene
        if r.dense is not None:
            probs = predictor.dense(r.rgb)
            for name, ((i, u),) in overlaps(probs, r, predictor.dense_classes,
                                            lambda name: [predictor.threshold(name)]).items():
                inter[(r.set, name)] += i
                union[(r.set, name)] += u
        if r.instances is not None:
            truth = boxes_of(r.instances)
            found = [box for box, _, _ in predictor.instances(r.rgb, r.instance_class, r.gsd_m)]
            box_hits[r.set] += (matched_boxes(found, truth), len(found), len(truth), abs(len(found) - len(truth)))
        counted: dict[str, int] = {}  # each class's instances found once, however many questions count them
        for name, n in counting_questions(r):
            if name not in counted:
                counted[name] = len(predictor.instances(r.rgb, name, r.gsd_m))
            asked[(r.set, name)] += (abs(counted[name] - n), n)
        if r.change is not None:
            prob = predictor.change(r.rgb, r.after, r.gsd_m)
            f1s[r.set].add(prob > 0.5, r.change == 1, r.change != IGNORE)
        if r.gsd_m is not None and r.set != "landsat-taizhou":
            # GSD from pixels: on a 256 px centre crop of a sub-metre scene, as issue #21's check does
            side = min(256, *r.rgb.shape[:2])
            crop = r.rgb[:side, :side]
            gsd_err[r.set].append(abs(predictor.log10_gsd(crop) - math.log10(r.gsd_m)))
            # and of the whole image as the analyst reads it (resampled into the chip, brought back to its pixels)
            gsd_whole_err[r.set].append(abs(predictor.log10_gsd_whole(r.rgb) - math.log10(r.gsd_m)))
    out: dict[str, dict] = defaultdict(dict)
    for s in counts:
        out[s]["cls_top1"] = round(hits[s] / counts[s], 4)
        out[s]["n_scenes"] = counts[s]
    for (s, name), u in union.items():
        out[s].setdefault("seg_iou", {})[name] = round(inter[(s, name)] / u, 4) if u else None
    for s, acc in f1s.items():
        if acc.labelled_positive:  # a set of unchanged pairs has no F1, only false alarms
            out[s]["change_f1"] = round(acc.f1(), 4)
        out[s]["change_false_alarm"] = round(acc.false_alarm(), 5)
    for s, (matched, predicted, true, miscount) in box_hits.items():
        out[s]["count_rel_err"] = round(miscount / max(true, 1), 4)  # Σ |counted − true| / Σ true over images
        out[s]["box_f1"] = round(2 * matched / max(predicted + true, 1), 4)  # boxes matched at IoU ≥ 0.5
    for (s, name), (miss, said) in asked.items():
        out[s].setdefault("vqa_count_rel_err", {})[name] = round(miss / max(said, 1), 4)
    for s, errs in gsd_err.items():
        out[s]["gsd_abs_log10_err"] = round(float(np.mean(errs)), 4)
        out[s]["gsd_whole_abs_log10_err"] = round(float(np.mean(gsd_whole_err[s])), 4)
    if text_n:
        for name, scores in text_scores(predictor, [r for r in held if r.scene is not None], text_n, progress).items():
            out[name].update(scores)
    if ask is not None:
        for name, scores in asked_examples(ask, [r for r in held if r.set in SINGLE_EXAMPLE_SETS]).items():
            out[name].update(scores)
        for name, scores in referred_scores(ask, held).items():
            out[name].update(scores)
    return dict(out)


def asked_examples(ask: Callable, rasters: list[Raster]) -> dict[str, dict]:
    """The sets of one example each (evaluation only), asked as the CLI asks them: a referring phrase as [VG] (acc@0.5
    of its first box, and that box's IoU), a captioned pair as [CCD] and a captioned image as [CAP] (BLEU-4 of the
    answer's sentence against all the captions); each with the answer itself, to read."""
    out: dict[str, dict] = {}
    for r in rasters:
        if r.referred is not None:
            phrase, truth = r.referred
            answer = ask([r.rgb], f"[VG] {phrase}")
            first = first_box_iou(answer, truth)
            out[r.set] = {"vg_acc50": float(first >= 0.5), "vg_iou": round(first, 4), "n_boxes": len(answer.boxes_px)}
        elif r.captions:  # a pair's captions are of its change
            images, prompt = (([r.rgb, r.after], "[CCD] what changed?") if r.after is not None
                              else ([r.rgb], "[CAP] describe the image"))
            answer = ask(images, prompt)
            out[r.set] = {"cap_bleu4": round(bleu4_refs([answer.raw_text or answer.text], [r.captions]), 4)}
        else:
            continue
        out[r.set].update(n_examples=1, answer=answer.text)
    return out


def referring_phrases(r: Raster) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(phrase, the named instance's box in image pixels) of each REFERRING phrase the raster's instance labels
    answer clearly; none for a raster without instances or with fewer than two."""
    if r.set not in REFERRING_SETS or r.instances is None or r.instance_class not in INSTANCE_WORD:
        return []
    ids = np.maximum(r.instances, 0)
    boxes = boxes_of(ids)
    if len(boxes) < 2:
        return []
    areas = np.bincount(ids.ravel())[1:]
    areas = areas[areas > 0]
    centres = np.array([((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in boxes])
    h, w = ids.shape
    # each measure's values (the first in sorted order is the one named) and whether the first is clear of the next
    measures = {"largest": (-areas, lambda best, next_: best <= REFERENT_AREA_RATIO * next_),
                "leftmost": (centres[:, 0], lambda best, next_: next_ - best >= REFERENT_GAP * w),
                "rightmost": (-centres[:, 0], lambda best, next_: next_ - best >= REFERENT_GAP * w),
                "topmost": (centres[:, 1], lambda best, next_: next_ - best >= REFERENT_GAP * h),
                "bottommost": (-centres[:, 1], lambda best, next_: next_ - best >= REFERENT_GAP * h),
                "central": (np.hypot(centres[:, 0] - w / 2, centres[:, 1] - h / 2),
                            lambda best, next_: next_ - best >= REFERENT_GAP * max(h, w))}
    out = []
    for name, phrase in REFERRING:
        value, clear = measures[name]
        first, second = np.argsort(value, kind="stable")[:2]
        if clear(value[first], value[second]):
            out.append((phrase.format(INSTANCE_WORD[r.instance_class]), boxes[first]))
    return out


def referred_scores(ask: Callable, rasters: list[Raster]) -> dict[str, dict]:
    """acc@0.5 of the first box the analyst answers each raster's referring_phrases with, asked as [VG] as the CLI
    asks, per set (vg_acc50, over vg_phrases phrases)."""
    hits, asked = defaultdict(int), defaultdict(int)
    for r in rasters:
        for phrase, truth in referring_phrases(r):
            hits[r.set] += first_box_iou(ask([r.rgb], f"[VG] {phrase}"), truth) >= 0.5
            asked[r.set] += 1
    return {s: {"vg_acc50": round(hits[s] / n, 4), "vg_phrases": n} for s, n in asked.items()}


def first_box_iou(answer, truth: tuple[float, float, float, float]) -> float:
    """IoU of a [VG] answer's first box (read back to the image's pixels) with the true box; 0 without a box."""
    return iou(image_box(answer, answer.boxes_px[0]), truth) if answer.boxes_px else 0.0


def image_box(answer, box_px) -> tuple[float, float, float, float]:
    """An answer's box in chip pixels as pixels of the image it was asked of (a file without georeference: its
    pixel grid is its coordinates)."""
    (x0, y0), (x1, y1) = answer.transform * box_px[:2], answer.transform * box_px[2:]
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def asking(analyst) -> Callable:
    """ask(images, prompt) → the analyst's Answer about the images (uint8 RGB arrays), written to PNG files and opened
    as the CLI opens files."""
    from PIL import Image

    from rsapp.geo import Scene

    def ask(images: list[np.ndarray], prompt: str):
        with tempfile.TemporaryDirectory() as folder, ExitStack() as opened:
            scenes = []
            for i, rgb in enumerate(images):
                path = Path(folder) / f"date{i + 1}.png"
                Image.fromarray(rgb).save(path)
                scenes.append(opened.enter_context(Scene(path)))
            return analyst.ask(scenes, prompt)
    return ask


def counting_questions(r: Raster) -> list[tuple[str, int]]:
    """(class, number) of a raster's counting questions about a class the model counts as instances (buildings,
    cars, ships and their words), where the answer is a number and the question counts every one of them (not
    "how many red cars")."""
    out = []
    for q, a in r.qa:
        name, n = counted_class(q), count_of(a)
        if name in INSTANCE_COUNTED and n is not None and not QUALIFIED.search(q):
            out.append((name, n))
    return out


def text_scores(predictor, scenes: list[Raster], n: int, progress: bool) -> dict[str, dict]:
    """[CLS] top-1, [CAP] BLEU-4 (against all five references), [VQA] exact-match accuracy, per set."""
    from rsapp.data.real_text import digits
    from rsapp.evaluate.metrics import exact

    by_set: dict[str, list[Raster]] = defaultdict(list)
    for r in scenes:
        by_set[r.set].append(r)
    out = {}
    for name, rs in by_set.items():
        picked = [rs[i] for i in np.linspace(0, len(rs) - 1, min(n, len(rs))).round().astype(int)]
        cls_hits, caps, refs, vqa = 0, [], [], []
        for r in tqdm(picked, desc=f"{name} text", disable=not progress, mininterval=10):
            cls_hits += predictor.text([r.rgb], "[CLS]", "") == r.scene
            if r.captions:
                caps.append(predictor.text([r.rgb], "[CAP]", ""))
                refs.append(r.captions)
            for q, a in r.qa[:1]:
                vqa.append(exact(predictor.text([r.rgb], "[VQA]", q), digits(a)))
        scores = {"cls_top1_lm": round(cls_hits / len(picked), 4), "n_text": len(picked)}
        if caps:
            scores["cap_bleu4"] = round(bleu4_refs(caps, refs), 4)
        if vqa:
            scores["vqa_acc"] = round(float(np.mean(vqa)), 4)
        out[name] = scores
    return out


class VisionPredictor:
    """The visual half of v2 (tower + heads) as a Predictor: what stage A trains is scored on its own."""

    def __init__(self, model):
        self.model = model.eval()
        self.dense_classes = tuple(model.cfg.dense_classes)
        self.threshold = model.cfg.threshold
        self._last: tuple[list, object] | None = None  # the images last encoded (held, so `is` is safe), and theirs

    def _encode(self, images: list[np.ndarray]):
        """The images' encoding; the same images asked again (a raster's classes, then its instances) reuse it."""
        if self._last is not None and len(self._last[0]) == len(images) and all(
                a is b for a, b in zip(self._last[0], images)):
            return self._last[1]
        # with the instance cores (a raster's instances reuse this encoding), one image's maps and scene over quarter
        # turns (as a pixel answer reads the maps, and a question about the scene the scene)
        views = self.model.cfg.dense_tta if len(images) == 1 else 1
        enc = self.model.read(images, TILE, cores=True, views=views, scene_views=views)
        self._last = (list(images), enc)
        return enc

    @staticmethod
    def _gsd(enc, rgb, gsd_m: float | None) -> float:
        """The set's GSD, or SSE-U's reading of the image as the analyst reads it where the set has none."""
        return gsd_m if gsd_m is not None else 10 ** enc.area_log10_gsd(max(rgb.shape[:2]), TILE)

    def dense(self, rgb):
        from rsapp.model.vision_model import upsample

        return np.stack([upsample(p, rgb.shape[:2]) for p in self._encode([rgb]).dense[0].numpy()])

    def change(self, before, after, gsd_m):
        """The change answer's map (building_change), at the pair's GSD (SSE-U's where unknown), as [CCD] draws it."""
        from rsapp.model.vision_model import building_change, upsample

        enc = self._encode([before, after])
        return upsample(building_change(enc, self.model.cfg, self._gsd(enc, before, gsd_m)), before.shape[:2])

    def scene(self, rgb):
        return self.model.cfg.scene_name(self._encode([rgb]))

    def log10_gsd(self, rgb):
        return float(self._encode([rgb]).s_mu[0])

    def log10_gsd_whole(self, rgb):
        """SSE-U as the analyst reads a whole image: its global view (resampled into the chip) brought back to its own
        pixels, combined with its native tiles' reading when it is more than two chips across."""
        return self._encode([rgb]).area_log10_gsd(max(rgb.shape[:2]), TILE)

    def instances(self, rgb, name, gsd_m):
        """Instances of a dense class as the runtime counts them, at the set's GSD (SSE-U's where unknown)."""
        from rsapp.model.counting import NETWORK_CLASSES, mask_instances

        enc = self._encode([rgb])
        gsd = self._gsd(enc, rgb, gsd_m)
        prob = enc.dense[0, self.dense_classes.index(name)].numpy()
        return mask_instances(prob, self.threshold(name), gsd, rgb.shape[0], enc.core(name), NETWORK_CLASSES.get(name))


class RuntimePredictor(VisionPredictor):
    """A loaded v2 Runtime: its heads for pixels, scenes and GSD, its language model for text answers."""

    def __init__(self, runtime):
        super().__init__(runtime.model.vision)
        self.runtime = runtime

    def text(self, images: list[np.ndarray], token: str, question: str) -> str:
        from rsapp.model.inference import Request
        from rsapp.tasks.tokens import TASKS

        labels = self.runtime.config.vision.scene_labels if token == "[CLS]" else ()
        req = Request(token, question, TASKS[token].expert, "text", labels=labels,
                      scene_expert=TASKS["[CLS]"].expert if token == "[CAP]" else None)  # as the analyst asks
        return self.runtime.generate(images, req).text
