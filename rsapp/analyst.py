"""Analyst.ask(scenes, prompt, aoi) → Answer: the one entry point the CLI and the app share."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import shapely

from rsapp.answer import Answer
from rsapp.errors import RsappError
from rsapp.geo import Chip, Scene, make_chip, make_pair
from rsapp.geo.chips import make_detail_chip, native_area, native_side, picture_box
from rsapp.geo.aoi import aoi_to_scene
from rsapp.model.counting import speckless_regions, without_specks
from rsapp.model.trained_range import TRAINED_MAX_GSD_M, TRAINED_MIN_GSD_M, coarser_than_trained, finer_than_trained
from rsapp.tasks.boxes import boxes_to_text, text_to_boxes
from rsapp.tasks.descriptors import grid_from_mask, mask_to_text
from rsapp.tasks.mask_sentences import (COMPOSITION_MIN_SHARE, class_shares, comparison, composition, count_sentence,
                                        counted_things, mask_summary, presence, share_of_area, where_box_is,
                                        where_in_image)
from rsapp.tasks.tokens import TASKS, Route, route
from rsapp.tasks.vocabulary import (DENSE_CLASSES, NO_CHANGE, SCENE_PHRASES, asks_average, asks_how_many,
                                    asks_location, asks_which_way, change_caption, change_verdict, dense_class_of,
                                    grounding_selection, listed_classes, measured_question, named_part, option_answer,
                                    scene_holds, scene_options, scene_verdict, selected_phrase, selection_of,
                                    unclear_change, unknown_thing, unlearned_sentence, unmeasured_sentence,
                                    unresolved_relation, water_kind)

# What the runtime returns for a [VQA] question answered from the heads (rsapp.tasks.vocabulary.measured_question);
# "is this an airport?" is asked as [CLS] and its label judged against the kind of scene named
MEASURED_OUTPUT = {"count": "count", "cover": "mask", "size": "boxes", "where": "mask", "presence": "mask",
                   "gsd": "gsd", "scene": "text", "scene inside": "text", "composition": "mask", "compare": "mask",
                   "unmeasured": "gsd",  # a length, height, colour or unlearned thing: not measured, said so
                   "unlearned": "gsd"}  # a question about one image the language model never learned: said so

WEIGHTS_ROOT = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_MODEL = "rsapp-v2"
# Chip side used to check the geometry of a request when no model is loaded to say its own input size.
DEFAULT_CHIP_PX = 256
# GSDs outside this range are not imagery of the Earth's surface anyone would mean (1 cm .. 1 km).
GSD_RANGE_M = (0.01, 1000.0)
# A [REF] box is shown with this much surrounding context (chip side / box side).
REF_CONTEXT = 3.0
# Pixel answers (masks, change maps, boxes, counts) read an area up to this many pixels across at its native
# resolution, in tiles, without being asked (4096² in about 11 s on 2 cores); --detail goes up to DETAIL_MAX_PX
# for any task.
AUTO_NATIVE_PX = 4096
# An area smaller than the model's chip is shown at its own size (not letterboxed into a black frame the model
# never trained on: UC Merced's 256 px scenes framed in 512 px chips lost 8 points of [CLS]), down to this side.
MIN_CHIP_PX = 64
DETAIL_MAX_PX = 8192


def default_weights() -> Path:
    return WEIGHTS_ROOT / DEFAULT_MODEL


class Analyst:
    """Holds the loaded model (lazily) and answers prompts about one scene or a two-date pair."""

    def __init__(self, weights: str | Path | None = None, quant: str = "auto", runtime=None):
        self.weights = Path(weights) if weights else default_weights()
        self.quant = quant
        self._runtime = runtime
        self._loading = threading.Lock()

    @property
    def runtime(self):
        with self._loading:  # the app preloads in a thread while the first question may already ask
            return self._load()

    def _load(self):
        if self._runtime is None:
            if not (self.weights / "config.json").exists():
                raise RsappError(
                    f"model not available: no weights in {self.weights} (train them with `python -m rsapp train`)")
            from rsapp.model.inference import Runtime  # torch is imported only when a model is really needed

            self._runtime = Runtime.load(self.weights, quant=self.quant)
        return self._runtime

    def available(self) -> bool:
        return self._runtime is not None or (self.weights / "config.json").exists()

    def ask(self, scenes: list[Scene], prompt: str, aoi: shapely.Geometry | None = None, gsd: float | None = None,
            task: str | None = None, detail: bool = False, window=None, turns: bool = True) -> Answer:
        """Route the prompt, cut the chip(s) the AOI asks for, run the model, decode its text into geometry.

        detail=True shows the model the AOI at native resolution, up to DETAIL_MAX_PX, through the GeoLLaVA-8K
        token budget, instead of resampling it to the chip size (pixel answers do so by themselves up to
        AUTO_NATIVE_PX). window (a rasterio Window of the first scene, one image) asks about that pixel window
        instead of the AOI's, which then only masks (batch tiles). The geometry is checked before the
        model is needed, so a bad AOI or pair is reported as such even when no weights are installed.
        """
        size = self.runtime.image_size if self.available() else DEFAULT_CHIP_PX  # loads the model once, untimed
        t0 = time.perf_counter()
        if not scenes or len(scenes) > 2:
            raise RsappError("give one image, or two dates of the same place")
        if gsd is not None and not (math.isfinite(gsd) and GSD_RANGE_M[0] <= gsd <= GSD_RANGE_M[1]):
            raise RsappError(f"GSD override {gsd} m is outside {GSD_RANGE_M[0]}–{GSD_RANGE_M[1]} m")
        r = route(prompt, n_images=len(scenes), force=task)
        if r.later_date:  # a question about one picture asked of two dates ("which building is the largest?")
            scenes = scenes[1:]
        if window is not None and len(scenes) != 1:
            raise RsappError("a pixel window is asked of one image")
        measured = measured_question(r.question) if r.token == "[VQA]" else None  # (kind, class) from the heads
        if measured is None and r.token == "[VQA]" and len(scenes) == 1 and not asks_location(r.question):
            measured = ("unlearned", None)  # of one image the language model learned only RSIVQA's location questions
        # a part of the picture named for [REF] ("what is in the top left?"): its name and its box
        part = named_part(r.question) if r.token == "[REF]" and aoi is None and "[" not in r.question else None
        chips, question, ref_box = self._chips(scenes, r, measured, aoi, size, detail, window, part)
        valid = np.logical_and.reduce([c.valid for c in chips])
        if not valid.any():
            raise RsappError("the area asked about has no valid pixels (all no-data"
                             f"{' on at least one date' if len(chips) == 2 else ''})")
        t_chip = time.perf_counter()
        rt = self.runtime
        chip_gsd, source, s = self._scale(chips[0], gsd)
        req = replace(self._request(r, measured, question, s, ref_box, chips[0].size), turns=turns)
        picture = chips[0].picture if len(chips) == 1 else picture_box(valid)  # a pair: where both dates are
        native_gsd = self._native_gsd(scenes[0], aoi, window, chips[0]) if source == "predicted" else None
        gen = rt.generate([c.rgb for c in chips], req, picture=picture, native_gsd=native_gsd)
        if source == "predicted":  # SSE-U read the chip
            chip_gsd = 10 ** gen.s_mu
        answer = Answer(
            task=r.token, expert=r.expert, text=gen.text, raw_text=gen.text, prompt=prompt.strip(), model=rt.name,
            sources=[c.source for c in chips], transform=chips[0].transform, crs=chips[0].crs,
            chip_size=chips[0].size, chip_gsd_m=chip_gsd, gsd_source=source, gsd_m=chip_gsd / chips[0].scale,
            gsd_sigma_log10=gen.s_sigma if source == "predicted" else None, tokens_total=gen.tokens_total,
            tokens_kept=gen.tokens_kept, language_model=gen.language_model, quant=rt.quant, aoi_box_px=ref_box)
        if part is not None:  # "the top left: road (43% of it)"
            answer.text = answer.raw_text = f"{part[0]}: {gen.text.replace('of the box', 'of it')}"
        if r.inferred:
            answer.warnings.append(f"no task token given: used {r.token}")
        if r.later_date:
            answer.warnings.append(f"{r.token} reads one image: answered on the second date ({scenes[0].name})")
        self._decode(answer, r, measured, req, chips, gen)
        if len(chips) == 1 and req.output in ("mask", "boxes", "count") and answer.chip_gsd_m:
            classes = answered_classes(answer, req, measured, valid)
            answer.warnings += [w for w in (beyond_training(classes, answer.chip_gsd_m), thinly_labelled(classes)) if w]
        answer.timings_s = {"chip": t_chip - t0, **gen.timings_s, "total": time.perf_counter() - t0}
        return answer

    # --- steps ----------------------------------------------------------------------------------------------
    def _chips(self, scenes, r: Route, measured, aoi, size, detail=False, window=None, part=None
               ) -> tuple[list[Chip], str, tuple | None]:
        """The chip(s) the model sees, the question (a [REF] drawn box, or the box of `part`, a named part of the
        picture from named_part, is written into it), and that box.

        An area larger than the model's input is resampled to it, except for pixel answers up to
        AUTO_NATIVE_PX across and anything asked with detail: those are read at native resolution."""
        side = native_side(scenes[0], aoi, window)
        pixels = len(scenes) == 2 or r.task.output in ("mask", "boxes") or (
            measured is not None and MEASURED_OUTPUT[measured[0]] in ("mask", "boxes", "count"))
        native = r.token != "[REF]" and side > size and (detail or (pixels and side <= AUTO_NATIVE_PX))
        if native and side > DETAIL_MAX_PX:
            raise RsappError(f"the area is {side} px across, more than the {DETAIL_MAX_PX} px detail limit: "
                             "draw a smaller AOI, or ask without detail")
        fit = min(size, max(side, MIN_CHIP_PX))
        if len(scenes) == 2:
            return list(make_pair(scenes[0], scenes[1], aoi, side if native else fit)), r.question, None
        if native:
            return [make_detail_chip(scenes[0], aoi, DETAIL_MAX_PX, window)], r.question, None
        if r.token == "[REF]" and aoi is not None and "[" not in r.question:
            around = min(size, max(math.ceil(side * REF_CONTEXT), MIN_CHIP_PX))
            chip = make_chip(scenes[0], aoi, around, context=REF_CONTEXT, mask_outside_aoi=False)
            x0, y0, x1, y1 = aoi_to_scene(aoi, scenes[0]).bounds
            cols, rows = zip(*((~chip.transform) @ (x, y) for x, y in ((x0, y0), (x1, y1))))
            box = (min(cols), min(rows), max(cols), max(rows))
            question = f"{r.question} {boxes_to_text([box], chip.size)}".strip()
            return [chip], question, box
        chip = make_chip(scenes[0], aoi, fit, window=window)
        if part is not None:  # [REF] of a named part of the picture: its third of the picture is the box
            row0, row1, col0, col1 = chip.picture or (0, chip.size, 0, chip.size)
            fx0, fy0, fx1, fy1 = part[1]
            box = (col0 + fx0 * (col1 - col0), row0 + fy0 * (row1 - row0), col0 + fx1 * (col1 - col0),
                   row0 + fy1 * (row1 - row0))
            return [chip], f"{r.question} {boxes_to_text([box], chip.size)}", box
        if r.token == "[REF]" and "[" not in r.question:
            raise RsappError("[REF] needs a box: draw a rectangle on the map, write [x1, y1, x2, y2] (0–100) or name "
                             "a part of the picture (the top left, the centre)")
        return [chip], r.question, None

    @staticmethod
    def _scale(chip: Chip, override: float | None) -> tuple[float | None, str, float | None]:
        """(the chip's GSD, source, its log10 for CS-HLoRA or None to let SSE-U predict it), in DESIGN.md's order.
        A given GSD is the image's: the chip's pixels are chip.scale times coarser."""
        if override is not None:
            chip_gsd = override * chip.scale
            return chip_gsd, "user", math.log10(chip_gsd)
        if chip.gsd_m is not None:
            return chip.gsd_m, "metadata", math.log10(chip.gsd_m)
        return None, "predicted", None

    def _native_gsd(self, scene: Scene, aoi, window, chip: Chip) -> tuple[float, float] | None:
        """SSE-U's (log10 GSD, variance) of the native tiles of an area resampled into the chip from more than
        NATIVE_GSD_ABOVE chips across, brought to the chip's pixels; None otherwise (an area read at native
        resolution has the runtime read its own tiles)."""
        from rsapp.model.vision_model import reads_native_gsd

        size = self.runtime.image_size
        if chip.scale <= 1 or not reads_native_gsd(native_side(scene, aoi, window), size):
            return None
        mu, var = self.runtime.model.vision.native_gsd(native_area(scene, aoi, window), size)
        return mu + math.log10(chip.scale), var

    def _request(self, r: Route, measured, question: str, log10_gsd: float | None, ref_box, chip_px: int):
        """What the runtime needs to know of the request, from the task registry and the vocabulary."""
        from rsapp.model.inference import Request

        task = r.task
        if r.token == "[REF]":
            box = ref_box
            if box is None:  # written in the question as [x1, y1, x2, y2] on 0–100
                boxes, _ = text_to_boxes(question, chip_px)
                box = boxes[0] if boxes else None
            return Request(r.token, question, r.expert, "region", box_px=box)
        if measured is not None and measured[0] in ("scene", "scene inside"):  # the label, read as [CLS] reads it
            return Request("[CLS]", "", TASKS["[CLS]"].expert, "text", labels=self.runtime.config.vision.scene_labels,
                           log10_gsd=log10_gsd)
        if measured is not None and measured[0] == "compare":  # the all-classes map, and counts when compared by them
            cmp = measured[1]
            return Request(r.token, question, r.expert, "mask", log10_gsd=log10_gsd,
                           counted=(cmp.first, cmp.second) if cmp.by == "count" else ())
        if measured is not None:  # a count or a size of the instances, a class mask's share or place, the GSD
            kind, name = measured
            select = selection_of(question)  # a size is the largest instance's unless the question picks another
            output = "boxes" if kind == "where" and select != "all" else MEASURED_OUTPUT[kind]  # where one of them is
            if kind == "size" and select == "all":  # every instance for their average, else the largest
                select = "all" if asks_average(question) else "largest"
            return Request(r.token, question, r.expert, output, dense_class=name, log10_gsd=log10_gsd, select=select)
        if r.token == "[CCD]":  # the change map, and its sentence written from it (_decode)
            return Request(r.token, question, r.expert, "mask", log10_gsd=log10_gsd)
        labels = self.runtime.config.vision.scene_labels if r.token == "[CLS]" else ()  # its label set, or
        options = scene_options(question, labels) if r.token == "[CLS]" else ()
        if any(o.labels for o in options):
            labels = tuple(dict.fromkeys(lb for o in options for lb in o.labels))  # those of the options it lists
        listed = listed_classes(question) if r.token == "[SEG]" and task.asks_class else []
        several = tuple(listed) if len(listed) > 1 else ()  # "segment the roads and buildings": a map of those
        return Request(r.token, question, r.expert, task.output,
                       dense_class=dense_class_of(question) if task.asks_class and not several else None,
                       dense_classes=several,
                       counted=tuple(c for c in several if self.runtime.counted_by(c) != "regions"),
                       log10_gsd=log10_gsd, labels=labels,
                       select=grounding_selection(question),
                       scene_expert=TASKS["[CLS]"].expert if r.token == "[CAP]" else None)  # of the class [CLS] says

    def _decode(self, answer: Answer, r: Route, measured, req, chips: list[Chip], gen) -> None:
        """The runtime's boxes / mask on the chip grid; their text in the DESIGN.md codecs; problems become
        warnings, never exceptions."""
        size, question = chips[0].size, req.question
        valid = np.logical_and.reduce([c.valid for c in chips])
        if r.token == "[VG]":
            answer.boxes_px = clip_boxes(gen.boxes_px, valid)
            answer.box_scores = list(gen.box_scores[:len(answer.boxes_px)])
            # each box's label: what it is ("the largest building", "building"), else the phrase as asked
            named = req.dense_class and (selected_phrase(req.select, req.dense_class) if req.select != "all"
                                         else req.dense_class)
            answer.box_labels = [named or question] * len(answer.boxes_px)
            answer.raw_text = boxes_to_text(answer.boxes_px, size) if answer.boxes_px else ""
            if r.task.asks_class and dense_class_of(question) is None:
                answer.warnings.append("the phrase names no class the model knows "
                                       f"({', '.join(DENSE_CLASSES)})")
            answer.warnings += [w for w in [relation_note(req, question, len(answer.boxes_px))] if w]
            answer.text = f"{len(answer.boxes_px)} found: {answer.raw_text}" if answer.boxes_px else "none found"
        elif r.token == "[VQA]" and req.output == "boxes":  # how big one instance is, or where, boxed on the map
            answer.boxes_px = clip_boxes(gen.boxes_px[:None if req.select == "all" else 1], valid)
            picked = selected_phrase(req.select, req.dense_class)
            if not answer.boxes_px:
                answer.text = f"no {req.dense_class} found"
            elif req.select == "all":  # their average size: every instance boxed
                n = len(gen.box_areas_m2)
                answer.box_labels = [req.dense_class] * len(answer.boxes_px)
                answer.text = (f"about {round_area(sum(gen.box_areas_m2) / n)} m² on average "
                               f"({counted_things(n, req.dense_class)}, boxed on the map)")
            elif measured[0] == "where":
                answer.box_labels = [picked]
                answer.text = f"{picked}: {where_box_is(answer.boxes_px[0], valid)} of the image (boxed on the map)"
            else:
                area = f"about {round_area(gen.box_areas_m2[0])} m²"
                answer.box_labels = [f"{req.dense_class} ({area})"]  # the layer's box: the class and its area
                answer.text = f"{area} ({picked}, boxed on the map)"
            answer.raw_text = answer.text
        elif measured is not None and measured[0] in ("unmeasured", "unlearned"):
            answer.text = answer.raw_text = (unmeasured_sentence if measured[0] == "unmeasured" else
                                             unlearned_sentence)(question)
        elif req.output == "gsd":
            answer.text = answer.raw_text = gsd_sentence(answer)
        elif req.output == "count":  # "21", and the 21 boxed on the map
            answer.text = count_sentence(int(gen.text), req.dense_class,
                                         self.runtime.counted_by(req.dense_class) == "regions")
            answer.boxes_px, answer.box_scores = list(gen.boxes_px), list(gen.box_scores)
            answer.box_labels = [req.dense_class] * len(answer.boxes_px)
        elif r.token == "[CLS]" and (options := scene_options(question, self.runtime.config.vision.scene_labels)):
            self._choose_option(answer, options, gen)
        elif measured is not None and measured[0] in ("scene", "scene inside"):
            answer.text = scene_verdict(measured[1], gen.text, inside=measured[0] == "scene inside")
        elif gen.mask is not None:
            mask = gen.mask
            mask[~valid] = 0
            if len(chips) == 2 and r.token == "[SEG]":  # a class's change, without the specks (44 vegetation
                mask[~without_specks(mask > 0)] = 0     # "regions" on LEVIR-CD test_1 covering 0.1 % of it)
            answer.mask, answer.mask_labels, answer.is_change = mask, gen.mask_labels, len(chips) == 2
            grid = grid_from_mask(mask, self.runtime.config.seg_grid)
            answer.counts = dict(gen.counts)  # every drawn mask's layer counts instances as the model does
            if r.token == "[SEG]":
                answer.raw_text = mask_to_text(grid, answer.mask_labels)
                answer.text = mask_summary(mask, answer.mask_labels, valid, answer.chip_gsd_m, answer.is_change,
                                           answer.counts)
                if answer.is_change and not asks_which_way(question):  # "has the vegetation changed?": yes or no
                    answer.text = change_verdict(question, int(answer.mask.any()), None) + answer.text
                if len(chips) == 1 and (thing := unknown_thing(question)):  # "segment the airplanes"
                    answer.warnings.append(f"the model has not learned to draw {thing}: drawn is every class it knows "
                                           f"({', '.join(DENSE_CLASSES)})")
            elif r.token == "[VQA]" and req.output == "mask":  # how much of the area a class covers, where, or whether
                label = answer.mask_labels[1]
                if measured[0] == "composition":  # every class's share, the all-classes map drawn
                    answer.text = composition(mask, answer.mask_labels, valid, answer.chip_gsd_m)
                elif measured[0] == "compare":
                    regions = tuple(c for c in answer.counts if self.runtime.counted_by(c) == "regions")
                    answer.text = comparison(mask, answer.mask_labels, valid, measured[1], answer.counts, regions)
                elif measured[0] == "where":
                    answer.text = where_in_image(mask, label, valid)
                elif measured[0] == "presence":
                    answer.text = presence(mask, label, valid, answer.chip_gsd_m)
                    if not answer.text.startswith("yes") and label in scene_holds(gen.scene_label):  # a river scene
                        share = (mask > 0).sum() / max(int(valid.sum()), 1)
                        drawn = "none" if not share else "under 0.1 %" if share < 1e-3 else f"{100 * share:.1f} %"
                        answer.text = (f"yes: it looks like {SCENE_PHRASES.get(gen.scene_label, gen.scene_label)} "
                                       f"(the mask draws {drawn} of the area as {label})")
                else:
                    answer.text = share_of_area(mask, label, valid, answer.chip_gsd_m)
                answer.raw_text = answer.text
                named_water = measured[0] not in ("composition", "compare") and label == "water"
                if named_water and (kind := water_kind(question)) and (mask > 0).any():  # "is there a lake?"
                    answer.warnings.append(f"the model maps water of every kind: it does not tell a {kind} from other "
                                           "water")
            else:  # [CCD]: the sentence, and its change map beside it, without the specks the sentence does not
                regions, n = speckless_regions(mask > 0)  # count: its layer and export hold the regions it counts
                mask[regions == 0] = 0
                answer.counts = {"change": n}
                answer.raw_text = change_sentence(n, gen.building_gain, asks_how_many(question))
                answer.text = (f"{change_verdict(question, n, built_by(gen.building_gain))}{answer.raw_text} "
                               f"({mask_summary(mask, answer.mask_labels, valid, answer.chip_gsd_m, True)})")

    @staticmethod
    def _choose_option(answer: Answer, options, gen) -> None:
        """A [CLS] question listing the kinds of scene to choose among: the answer in the question's own word
        (the runtime chose among the labels they cover); options no label covers are said, and not chosen."""
        unknown = [o.word for o in options if not o.labels]
        if len(unknown) == len(options):
            answer.text = (f"cannot say: the model knows no {' or '.join(unknown)} scenes; it looks like "
                           f"{SCENE_PHRASES.get(gen.text, gen.text)}")
            return
        answer.text = option_answer(gen.text, options, gen.scene_label)
        if unknown:
            answer.warnings.append(f"the model knows no {' or '.join(unknown)} scenes: "
                                   f"{'that option was' if len(unknown) == 1 else 'those options were'} not chosen")

# Classes the real train splits label on fewer than THIN_LABEL_PX pixels in all, with that number: an answer about
# them is unreliable at any GSD (cars: one ISPRS panel's; the car mask finds none of the Las Vegas sample's cars, and
# scores IoU 0.11 on the panel it trained on). tests/data/test_real_sets.py recounts them.
THIN_LABEL_PX = 10_000
THINLY_LABELLED = {"car": 1185}


def answered_classes(answer: Answer, req, measured, valid: np.ndarray) -> list[str]:
    """The classes a pixel answer is about: the one asked for; the two a comparison compares; or those an
    all-classes map draws on at least COMPOSITION_MIN_SHARE of the picture (a few stray "ship" pixels on a street are
    not what it is about)."""
    if req.dense_class:
        return [req.dense_class]
    if req.dense_classes:
        return list(req.dense_classes)
    if measured is not None and measured[0] == "compare":
        return [measured[1].first, measured[1].second]
    if answer.mask is None:
        return []
    share = class_shares(answer.mask, answer.mask_labels, valid)
    return [name for name, sh in zip(answer.mask_labels[1:], share[1:]) if sh >= COMPOSITION_MIN_SHARE]


def relation_note(req, question: str, n_boxes: int) -> str | None:
    """A warning when a [VG] phrase picks by distance and the answer could not: the class it is measured from is
    not in the picture (the runtime then boxes every instance), or it names nothing the model finds."""
    reference = req.select.partition(" ")[2]
    if reference and reference != "centre" and n_boxes > 1:
        return f"no {reference} found to measure from: every {req.dense_class} shown"
    if unresolved_relation(question):
        return ("the phrase picks by distance to something the model does not find (it measures from "
                f"{', '.join(DENSE_CLASSES)} or the centre): every one shown")
    return None


def change_sentence(n: int, building_gain: float | None, exact: bool = False) -> str:
    """What changed, in the sentences the model was trained to write (change_caption), from its change map's n
    regions (instance_count): one changed building per region, built where the building probability rose clearly
    over the changed pixels, demolished where it fell clearly, changed areas where it did neither (built_by); "no
    change" exactly when the map holds no region; more than nine are "many" unless `exact` (the question asked how
    many). (The language model, choosing among those sentences, followed the question: "were any buildings
    demolished?" got "many buildings were demolished" on a pair where every change is a new building.)"""
    if not n:
        return NO_CHANGE
    built = built_by(building_gain)
    return unclear_change(n, exact) if built is None else change_caption(n, built, exact)


# A change map's buildings were built when the building probability rose over its pixels by at least BUILT_MIN_GAIN,
# demolished when it fell by DEMOLISHED_MAX_GAIN or more. On the train pairs through the CLI (int8), the new
# buildings of LEVIR-CD test_4 / test_5 and Beijing A rose +0.50 to +0.58, the same pairs' dates swapped fell -0.13
# to -0.67, and the flooded xBD pairs without building change (either way round) lay between -0.06 and +0.31 (the
# sentence had said "6 buildings were built" of one); each limit sits midway across its gap.
BUILT_MIN_GAIN = 0.4
DEMOLISHED_MAX_GAIN = -0.1


def built_by(building_gain: float | None) -> bool | None:
    """Whether a change map's buildings were built (the building probability rose clearly over it: True) or
    demolished (fell clearly: False); None when it did neither, or the model has no building class to read."""
    if building_gain is None or DEMOLISHED_MAX_GAIN < building_gain < BUILT_MIN_GAIN:
        return None
    return building_gain >= BUILT_MIN_GAIN


def thinly_labelled(classes: list[str]) -> str | None:
    """A warning when a pixel answer is about a class the model saw too few labelled pixels of (THINLY_LABELLED)."""
    thin = [c for c in classes if c in THINLY_LABELLED]
    if not thin:
        return None
    seen = ", ".join(f"{c} on {THINLY_LABELLED[c]:,} labelled pixels" for c in thin)
    return f"the model learned {seen} of real imagery; this answer is unreliable"


def beyond_training(classes: list[str], gsd_m: float) -> str | None:
    """A warning when a pixel answer is about classes the model never saw as coarse as gsd_m (at 30 m its
    land-cover masks mark forest as water) or as fine (at 0.3 m it finds no boats); rsapp.model.trained_range says
    by how much. None when it is within what it was trained on."""
    if coarse := coarser_than_trained(classes, gsd_m):
        trained = max(TRAINED_MAX_GSD_M[c] for c in coarse)
        return (f"the model learned {', '.join(coarse)} on imagery of at most ~{trained:g} m a pixel; at "
                f"{gsd_m:.3g} m this answer is unreliable")
    if fine := finer_than_trained(classes, gsd_m):
        trained = min(TRAINED_MIN_GSD_M[c] for c in fine)
        return (f"the model learned {', '.join(fine)} on imagery of at least ~{trained:g} m a pixel; at "
                f"{gsd_m:.3g} m this answer is unreliable")
    return None


def clip_boxes(boxes, valid: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Boxes cut to the bounding box of the chip's valid pixels (the image inside the AOI); empty ones dropped."""
    rows, cols = np.nonzero(valid)
    if not len(rows):
        return []
    x0, y0, x1, y1 = cols.min(), rows.min(), cols.max() + 1, rows.max() + 1
    out = []
    for bx0, by0, bx1, by1 in boxes:
        c = (max(bx0, x0), max(by0, y0), min(bx1, x1), min(by1, y1))
        if c[2] - c[0] >= 1 and c[3] - c[1] >= 1:
            out.append(tuple(float(v) for v in c))
    return out


def round_area(m2: float) -> str:
    """An area in m² as a person writes it: '1,260', '37', '4.2'."""
    return f"{float(f'{m2:.3g}'):,.0f}" if m2 >= 10 else f"{m2:.2g}"


def gsd_sentence(answer: Answer) -> str:
    """'0.27 m a pixel (from the file)': the image's GSD, and where it came from (the file's georeference, the
    user, or SSE-U's estimate from the pixels with its uncertainty)."""
    if answer.gsd_source == "predicted":
        return (f"about {answer.gsd_m:.2g} m a pixel (estimated from the pixels, within ×/÷ "
                f"{10 ** answer.gsd_sigma_log10:.2f})")
    return f"{answer.gsd_m:.3g} m a pixel ({'as given' if answer.gsd_source == 'user' else 'from the file'})"
