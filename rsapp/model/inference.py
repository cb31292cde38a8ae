"""Runtime for v2: load a checkpoint on its pretrained bases, quantize, answer one request.

Knows nothing about maps, files or task codecs: images come in as uint8 arrays, the request as plain fields the
analyst filled from the task registry. Pixel answers ([SEG], the [CCD] change map) come straight from the
dense and change heads, at the resolution of the chip (an area larger than the model's input is read in native-
resolution tiles, VisionModel.encode_tiled); text answers are written by the language model, greedily with a KV
cache; a [CLS] answer is the label the LM scores highest (with the scene head's probability: both scores summed),
a [CAP] answer the caption of that label's class it scores highest (VLMConfig.captions), where the release has
them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from rsapp.model.counting import NETWORK_CLASSES, counting_method, mask_instances
from rsapp.model.quant import choose_path, held_bytes, nf4_bytes, quantize, shipped_bytes
from rsapp.model.vlm import IM_END, RsappVLM, chat_prompt, load_tokenizer
from rsapp.model.vision_model import VisionOutput, building_change, upsample

MAX_NEW_TOKENS = 48
# Requests answered from the pixel heads alone (no language model)
PIXEL_OUTPUTS = ("mask", "boxes", "count", "region")


@dataclass(frozen=True)
class Request:
    token: str  # task token, e.g. "[VQA]"
    question: str
    expert: int  # G-MoE expert the router chose
    output: str  # "text", "mask", "boxes" (the task's codec), "count" (instances of dense_class), "region"
    # ([REF]: say what is in box_px) or "gsd" (SSE-U alone: what is the image's GSD)
    dense_class: str | None = None  # the class the question names, if any
    dense_classes: tuple[str, ...] = ()  # [SEG] naming several classes ("the roads and buildings"): a map of those
    log10_gsd: float | None = None  # None: SSE-U's prediction gates CS-HLoRA
    labels: tuple[str, ...] = ()  # answer with one of these ([CLS] labels; empty: free text)
    select: str = "all"  # [VG]: which instances (all, largest, smallest, leftmost, rightmost, topmost, …)
    box_px: tuple[float, float, float, float] | None = None  # [REF]: the box asked about, chip pixels
    turns: bool = True  # a pixel answer averages dense_tta quarter turns (False: batch_tta, a batch's tile)
    counted: tuple[str, ...] = ()  # a mask answer of one image also counts these classes' instances (gen.counts)
    # [CAP]: the caption is of the class [CLS] answers, read with this expert (None: the scene head's own label)
    scene_expert: int | None = None


@dataclass
class Generation:
    text: str
    s_mu: float
    s_sigma: float
    s_used: float
    tokens_total: int
    tokens_kept: int
    mask: np.ndarray | None = None  # (H, W) uint8 label index, 0 = background
    mask_labels: list[str] = field(default_factory=lambda: ["others"])
    boxes_px: list[tuple[float, float, float, float]] = field(default_factory=list)
    box_scores: list[float] = field(default_factory=list)
    box_areas_m2: list[float] = field(default_factory=list)  # each box's instance area on the ground
    counts: dict[str, int] = field(default_factory=dict)  # instances of a mask's class, where the model counts
    # them by its instance cores (the count a [VQA] "how many" gets)
    language_model: bool = False  # the language model wrote or chose the text (else the heads' maps answered)
    building_gain: float | None = None  # two dates' change map: the mean rise of the building probability from the
    # first date to the second over its changed pixels (> 0: buildings built; < 0: demolished)
    # the scene head's own label: of a [CLS] answer among given labels (free of them), and of a mask answer of one
    # image (a presence question reads whether the scene holds the class: rsapp.tasks.vocabulary.scene_holds)
    scene_label: str | None = None
    timings_s: dict[str, float] = field(default_factory=dict)


def picture_edges_held(prob: np.ndarray, r0: float, r1: float, c0: float, c1: float) -> np.ndarray:
    """A class's map cut to the cells of the picture (r0:r1, c0:c1 in cells, fractional where a cell is part frame),
    each part-frame cell on its edge held to at most its inner neighbour's probability: it reads the frame, so it
    only continues what the picture holds (a strip along a letterboxed picture's side was counted "4 water bodies"
    on the bundled street, whose water mask holds 7 m²), while a building the edge cuts keeps its cells."""
    out = prob.copy()
    for axis, start, stop in ((0, r0, r1), (1, c0, c1)):
        lines = np.moveaxis(out, axis, 0)  # a view: rows, then columns
        if len(lines) > 1:
            for edge, inner, part in ((0, 1, start % 1), (-1, -2, stop % 1)):
                if part:
                    lines[edge] = np.minimum(lines[edge], lines[inner])
    return out


class Runtime:
    def __init__(self, model: RsappVLM, tokenizer, quant: str, name: str, sizes: dict[str, int]):
        self.model = model
        self.tokenizer = tokenizer
        self.quant = quant
        self.name = name
        self.sizes = sizes  # bytes_fp32 / bytes_quantized: the whole model; shipped_*: what weights/ holds
        self.end_id = tokenizer.token_to_id(IM_END)

    @classmethod
    def load(cls, folder: str | Path, quant: str = "auto") -> "Runtime":
        folder = Path(folder)
        path = choose_path(quant)  # an unknown path is said before the weights are read
        model = RsappVLM.load(folder).eval()
        sizes = {"bytes_fp32": held_bytes(model), "shipped_bytes_fp32": shipped_bytes(model, "fp32"),
                 "shipped_bytes_quantized": shipped_bytes(model, path)}
        if path == "nf4":
            sizes["bytes_quantized"] = nf4_bytes(model)
        model = quantize(model, path)
        sizes.setdefault("bytes_quantized", held_bytes(model))
        return cls(model, load_tokenizer(folder), path, folder.name, sizes)

    @property
    def config(self):
        return self.model.cfg

    @property
    def image_size(self) -> int:
        return self.config.chip_size

    # --- the request ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, images: list[np.ndarray], req: Request, picture: tuple[int, int, int, int] | None = None,
                 native_gsd: tuple[float, float] | None = None) -> Generation:
        """The answer to req about one chip or a pair. picture (row0, row1, col0, col1): the part of the chip that is
        picture (rsapp.geo.chips.picture_box); pixel answers read their maps from it alone, not the frame.
        native_gsd: SSE-U's (log10 GSD, variance) of the native tiles of the area the chip was resampled from,
        brought to the chip's pixels (VisionModel.native_gsd), which the GSD estimate then combines."""
        t0 = time.perf_counter()
        # the instance head runs only for a request that counts a class it knows (a count, boxes, a class's mask)
        known = self.config.vision.instance_classes
        cores = (req.dense_class in known and (req.output in ("count", "boxes") or (
            req.output == "mask" and len(images) == 1))) or (len(images) == 1 and any(c in known for c in req.counted))
        # a pixel answer of one image averages its maps over quarter turns; text answers read one view
        turns = self.config.vision.dense_tta if req.turns else self.config.vision.batch_tta
        views = turns if len(images) == 1 and req.output in PIXEL_OUTPUTS else 1
        pixels = req.output in PIXEL_OUTPUTS or len(images) == 2  # a change question draws its change map too
        # a question about the scene ([CLS] and its labels, [CAP] and its class) reads the scene head over quarter turns
        scene_views = self.config.vision.dense_tta if req.labels or req.token == "[CAP]" else 1
        enc = self.model.vision.read(images, self.image_size, cores=cores, views=views,  # native tiles above the chip
                                     picture=picture if pixels else None, scene_views=scene_views)
        t1 = time.perf_counter()
        if native_gsd is not None:
            enc.native_gsd = native_gsd
        # SSE-U read the chip (or a tiled area's global view, and native tiles of a large area): its log10 GSD,
        # brought to the chip's own pixels
        mu, sigma = enc.area_gsd(max(images[0].shape[:2]), self.image_size)
        s = mu if req.log10_gsd is None else float(req.log10_gsd)
        gen = Generation(text="", s_mu=mu, s_sigma=sigma, s_used=s, tokens_total=enc.tokens.total,
                         tokens_kept=enc.tokens.tokens.shape[1] * len(images))
        n_new = 0
        if req.output == "mask":
            # [CCD]: the change answer's map, building change at the chip's GSD (its sentence says built or demolished)
            ccd = len(images) == 2 and req.dense_class is None and not req.dense_classes
            change = building_change(enc, self.config.vision, 10 ** s) if ccd else None
            gen.mask, gen.mask_labels = self.mask(enc, req.dense_class, len(images), images[0].shape[:2], change,
                                                  req.dense_classes)
            gen.scene_label = self.config.vision.scene_name(enc) if len(images) == 1 else None
            if len(images) == 1 and self.counted_by(req.dense_class) != "regions":
                gen.counts = {req.dense_class: len(self.instances(enc, req.dense_class, s, images[0].shape[0],
                                                                  picture))}
            if len(images) == 1:
                gen.counts.update({c: len(self.instances(enc, c, s, images[0].shape[0], picture)) for c in req.counted})
            elif ccd:
                gen.building_gain = self.building_gain(enc, change)
        elif req.output == "boxes":
            gen.boxes_px, gen.box_scores, gen.box_areas_m2 = self.boxes(enc, req.dense_class, req.select, s,
                                                                        images[0].shape[0], picture)
        elif req.output == "count":  # the number, and the instances counted, to be drawn
            found = self.instances(enc, req.dense_class, s, images[0].shape[0], picture)
            gen.text = str(len(found))
            gen.boxes_px, gen.box_scores = [b for b, _, _ in found], [score for *_, score in found]
        elif req.output == "gsd":  # the analyst writes it from the GSD it reports (metadata, given, or SSE-U's)
            pass
        elif req.output == "region":
            gen.text = self.describe_region(enc, req.box_px)
        else:
            ids = self.decode(enc, req, s)
            n_new = len(ids)
            gen.language_model = self.cover_answer(enc, req) is None and not self.cover_only(req)
            if req.labels:
                gen.scene_label = self.config.vision.scene_name(enc)
            gen.text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        gen.timings_s = {"encode": t1 - t0, "decode": time.perf_counter() - t1, "new_tokens": n_new}
        return gen

    def building_gain(self, enc: VisionOutput, change: np.ndarray) -> float | None:
        """The mean rise of the building probability from the first date to the second over the pixels the change
        answer's map (`change`, building_change's) marks (None when nothing is marked): the change sentence's built
        or demolished."""
        changed = change > 0.5
        if not changed.any() or "building" not in self.config.vision.dense_classes:
            return None
        k = self.config.vision.dense_classes.index("building")
        rise = enc.dense_after[0, k].numpy() - enc.dense[0, k].numpy()
        return float(rise[changed].mean())

    def mask(self, enc: VisionOutput, name: str | None, n_images: int, chip_shape: tuple[int, int],
             change: np.ndarray | None = None, among: tuple[str, ...] = ()) -> tuple[np.ndarray, list[str]]:
        """The pixel answer on the chip's grid: the named class (one image), every class where it wins (none
        named), those classes `among` where each wins among them (several named), or the change (two dates: of the
        named class or classes when named, each changed pixel labelled with the likeliest of them either date shows;
        else `change`, the change answer's map: building_change's). Maps of a tiled area (stride 4) are resampled
        bilinearly; a label map of one image is taken at the map's stride and repeated."""
        vision = self.config.vision
        classes = list(vision.dense_classes)
        at_chip = lambda prob, t=0.5: upsample(prob, chip_shape) > t  # noqa: E731
        shown = [c for c in among if c in classes] or ([name] if name in classes else [])
        if n_images == 2:
            if not shown:
                return at_chip(change).astype(np.uint8), ["others", "change"]
            changed = at_chip(enc.change[0].numpy())
            likeliest, label = np.full(chip_shape, -1.0), np.zeros(chip_shape, np.uint8)
            for j, c in enumerate(shown, 1):
                k, t = classes.index(c), vision.threshold(c)
                before, after = (upsample(d[0, k].numpy(), chip_shape) for d in (enc.dense, enc.dense_after))
                p = np.where((before > t) | (after > t), np.maximum(before, after), -1.0)
                label[p > likeliest] = j
                likeliest = np.maximum(p, likeliest)
            return np.where(changed, label, 0).astype(np.uint8), ["others", *shown]
        if len(shown) == 1:
            one = shown[0]
            return (at_chip(enc.dense[0, classes.index(one)].numpy(), vision.threshold(one)).astype(np.uint8),
                    ["others", one])
        shown = shown or classes
        k = [classes.index(c) for c in shown]
        labels = winning_class(enc.dense[0].numpy()[k], vision.thresholds()[k])
        if labels.shape != tuple(chip_shape):
            rows = np.minimum(np.arange(chip_shape[0]) * labels.shape[0] // chip_shape[0], labels.shape[0] - 1)
            cols = np.minimum(np.arange(chip_shape[1]) * labels.shape[1] // chip_shape[1], labels.shape[1] - 1)
            labels = labels[rows[:, None], cols[None, :]]
        return labels, ["others", *shown]

    def counted_by(self, name: str | None) -> str:
        """How this model counts a dense class's instances: 'cores', 'network' or 'regions'
        (rsapp.model.counting.counting_method)."""
        return counting_method(name, self.config.vision.instance_classes)

    def instances(self, enc: VisionOutput, name: str | None, log10_gsd: float, chip_px: int,
                  picture: tuple[int, int, int, int] | None = None) -> list:
        """Instances of a dense class (rsapp.model.counting.mask_instances): its mask split by its instance cores
        when the model has them for the class, a network class's pieces bridged over small gaps, else connected
        regions of its mask; found in the picture's part of
        the maps (a building at the picture's edge ends there, as in an image read without a frame)."""
        classes = list(self.config.vision.dense_classes)
        if name not in classes:
            return []
        prob, core = enc.dense[0, classes.index(name)].numpy(), enc.core(name)
        per_px = prob.shape[0] / chip_px  # map cells per chip pixel: 1, or 1/4 for a tiled area
        r0, r1, c0, c1 = picture or (0, chip_px, 0, chip_px)
        cells = np.s_[int(r0 * per_px):math.ceil(r1 * per_px), int(c0 * per_px):math.ceil(c1 * per_px)]
        prob, core = picture_edges_held(prob[cells], r0 * per_px, r1 * per_px, c0 * per_px, c1 * per_px), (
            None if core is None else core[cells])
        dx, dy = cells[1].start / per_px, cells[0].start / per_px
        return [((x0 + dx, y0 + dy, x1 + dx, y1 + dy), area, score) for (x0, y0, x1, y1), area, score in
                mask_instances(prob, self.config.vision.threshold(name), 10 ** log10_gsd, prob.shape[0] / per_px,
                               core, NETWORK_CLASSES.get(name))]

    def boxes(self, enc: VisionOutput, name: str | None, select: str, log10_gsd: float, chip_px: int,
              picture: tuple[int, int, int, int] | None = None) -> tuple[list, list, list]:
        """[VG]: the instances of the named class, then the selection the phrase asks for (largest, …): their boxes,
        scores and areas in m²."""
        found = self.instances(enc, name, log10_gsd, chip_px, picture)
        how, _, reference = select.partition(" ")  # "nearest road", "farthest centre": by distance
        picked = self.by_distance(enc, found, how, reference, chip_px, picture) if reference else select_instances(
            found, select)
        map_px_m2 = (10 ** log10_gsd * chip_px / enc.dense.shape[-2]) ** 2  # one cell of the maps, on the ground
        return ([b for b, _, _ in picked], [round(sc, 3) for _, _, sc in picked],
                [area * map_px_m2 for _, area, _ in picked])

    def by_distance(self, enc: VisionOutput, found: list, how: str, reference: str, chip_px: int,
                    picture: tuple[int, int, int, int] | None = None) -> list:
        """The one instance of `found` nearest to (how 'nearest') or farthest from ('farthest') the reference: a
        dense class's mask (the distance from each instance's box to its nearest pixel) or 'centre' (the picture's
        centre); all of them when the reference class is nowhere in the picture (the analyst says so)."""
        if not found:
            return []
        r0, r1, c0, c1 = picture or (0, chip_px, 0, chip_px)
        if reference == "centre":
            cy, cx = (r0 + r1) / 2, (c0 + c1) / 2
            dist = [math.hypot((y0 + y1) / 2 - cy, (x0 + x1) / 2 - cx) for (x0, y0, x1, y1), _, _ in found]
        else:
            classes = list(self.config.vision.dense_classes)
            ref = enc.dense[0, classes.index(reference)].numpy() > self.config.vision.threshold(reference)
            per_px = ref.shape[0] / chip_px
            inside = np.zeros_like(ref)  # map cells wholly of the picture (a cell half frame reads the frame)
            inside[math.ceil(r0 * per_px):int(r1 * per_px), math.ceil(c0 * per_px):int(c1 * per_px)] = True
            if (ref & inside).sum() <= REFERENCE_MIN_SHARE * inside.sum():  # a speck is no road to measure from
                return select_instances(found, "all")
            away = ndimage.distance_transform_edt(~(ref & inside))
            dist = [float(away[int(y0 * per_px):max(math.ceil(y1 * per_px), int(y0 * per_px) + 1),
                               int(x0 * per_px):max(math.ceil(x1 * per_px), int(x0 * per_px) + 1)].min())
                    for (x0, y0, x1, y1), _, _ in found]
        pick = min if how == "nearest" else max
        return [found[pick(range(len(found)), key=dist.__getitem__)]]

    def describe_region(self, enc: VisionOutput, box) -> str:
        """[REF]: the dense class covering most of the box, with how much of it."""
        if box is None:
            return "no box given"
        dense = enc.dense[0].numpy() > self.config.vision.thresholds()
        h, w = dense.shape[1:]
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        x0, x1 = max(0, min(x0, w - 1)), max(1, min(x1, w))
        y0, y1 = max(0, min(y0, h - 1)), max(1, min(y1, h))
        share = dense[:, y0:y1, x0:x1].mean((1, 2))
        if share.max() < 0.1:
            return "nothing the model recognises"
        k = int(share.argmax())
        return f"{self.config.vision.dense_classes[k]} ({share[k]:.0%} of the box)"

    # --- text -----------------------------------------------------------------------------------------------
    def prefill(self, enc: VisionOutput, req: Request, s: float):
        """The prompt through the LM: (last hidden state, KV cache, gate s, visual tokens for re-injection)."""
        model = self.model
        n_images = 2 if enc.tokens_after is not None else 1
        blocks = model.visual_embeds(enc)
        prompt = self.tokenizer.encode(chat_prompt(f"{req.token} {req.question}".strip(), n_images)).ids
        visual = torch.cat(blocks)[None]
        cache = model.lm.new_cache()
        gate_s = torch.tensor([s])
        hidden = model.lm(model.embed_prompt(prompt, blocks), gate_s, req.expert, cache, visual)
        return hidden[0, -1], cache, gate_s, visual

    def decode(self, enc: VisionOutput, req: Request, s: float) -> list[int]:
        """Greedy answer with the KV cache; with req.labels, the label the LM and the scene head agree on."""
        if req.labels:
            return self.tokenizer.encode(self.choose_label(enc, req, s)).ids
        if req.token == "[CAP]" and self.config.captions and (
                bank := self.config.captions.get(self.caption_class(enc, req, s))):
            return self.tokenizer.encode(self.choose_caption(enc, req, s, bank)).ids
        model = self.model
        last, cache, gate_s, visual = self.prefill(enc, req, s)
        out: list[int] = []
        for _ in range(MAX_NEW_TOKENS):
            nxt = model.lm.greedy(last)
            if nxt == self.end_id:
                break
            out.append(nxt)
            last = model.lm(model.lm.embed(torch.tensor([[nxt]])), gate_s, req.expert, cache, visual)[0, -1]
        return out

    def choose_label(self, enc: VisionOutput, req: Request, s: float) -> str:
        """The label with the best label_scores: the LM's log-likelihood plus cfg.scene_head_weight times the scene
        head's log-probability (a product of the two experts, the head's raised to that power).
        A land-cover word (cfg.cover_scenes) is the answer when the scene head names it (VisionConfig.cover_scene):
        the language model never learned to write those."""
        cover = self.cover_answer(enc, req)
        if cover is not None:
            return cover
        if self.cover_only(req):  # land-cover words only: the head's likeliest of them
            names = list(self.config.vision.scene_labels)
            return max(req.labels, key=lambda lb: float(enc.labels[0, names.index(lb)]))
        labels, written, head = self.label_scores(enc, req, s)
        return labels[int((written + self.config.vision.scene_head_weight * head).argmax())]

    def caption_class(self, enc: VisionOutput, req: Request, s: float) -> str:
        """The scene class a [CAP] answer describes: the [CLS] answer (with req.scene_expert), else the scene head's."""
        vision = self.config.vision
        if req.scene_expert is None:
            return vision.scene_name(enc)
        return self.choose_label(enc, Request("[CLS]", "", req.scene_expert, "text", labels=vision.scene_labels), s)

    def choose_caption(self, enc: VisionOutput, req: Request, s: float, bank: list[str]) -> str:
        """The caption of `bank` (the [CLS] label's) the LM writes most readily, per token: the LM's greedy
        caption contradicted the scene head (0.95 top-1) on most held-out scenes it got wrong ("a straight runway"
        for a freeway, "two tennis courts in the golf course" for a block of buildings)."""
        written, lengths = self.written_scores(enc, req, s, bank)
        return bank[int((written / lengths).argmax())]

    def cover_only(self, req: Request) -> bool:
        """A [CLS] request whose labels are all land-cover words: the scene head chooses among them alone."""
        return bool(req.labels) and set(req.labels) <= set(self.config.vision.cover_scenes)

    def cover_answer(self, enc: VisionOutput, req: Request) -> str | None:
        """The land-cover word a [CLS] request is answered with without the language model, or None."""
        cover = self.config.vision.cover_scene(enc.labels[0])
        return cover if req.labels and cover in req.labels else None

    def label_scores(self, enc: VisionOutput, req: Request, s: float) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        """(req's labels but the land-cover words, the LM's log-likelihood of writing each and ending the turn, the
        scene head's log-probability of each scene label, 0 for another label); one batched pass over the labels."""
        vision = self.config.vision
        labels = [lb for lb in req.labels if lb not in vision.cover_scenes]
        written, _ = self.written_scores(enc, req, s, labels)
        scenes = list(vision.scene_classes)
        head = enc.scene[0].log()
        return labels, written, torch.tensor([float(head[scenes.index(lb)]) if lb in scenes else 0.0 for lb in labels])

    def written_scores(self, enc: VisionOutput, req: Request, s: float, texts: list[str]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the LM's log-likelihood of answering req with each text and ending the turn, each one's length in
        tokens); one batched pass over the texts from the prompt's KV cache."""
        model = self.model
        last, cache, gate_s, visual = self.prefill(enc, req, s)
        seqs = [self.tokenizer.encode(text + IM_END).ids for text in texts]
        width = max(len(q) for q in seqs)
        ids = torch.tensor([q + [self.end_id] * (width - len(q)) for q in seqs])
        n = len(seqs)
        cache = cache.expand(n)
        hidden = model.lm(model.lm.embed(ids), gate_s.expand(n), req.expert, cache, visual.expand(n, -1, -1))
        logp = torch.cat([model.lm.logits(last).log_softmax(-1).expand(n, -1)[:, None],
                          model.lm.logits(hidden[:, :-1]).log_softmax(-1)], 1)  # (n, width, vocab)
        picked = logp.gather(2, ids[..., None])[..., 0]
        lengths = torch.tensor([len(q) for q in seqs])
        return (picked * (torch.arange(width)[None] < lengths[:, None])).sum(1), lengths.float()


def winning_class(dense: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(K, h, w) class probabilities → (h, w) uint8 label map: 1 + the most probable class among those above
    their threshold ((K, 1, 1)), 0 where none is."""
    above = dense > thresholds
    return np.where(above.any(0), np.where(above, dense, -1.0).argmax(0) + 1, 0).astype(np.uint8)


# A class a [VG] phrase measures distance from ("the tree nearest the road") is there when its mask covers more than
# this share of the picture: the share a presence answer calls there (rsapp.tasks.mask_sentences.PRESENT_MIN_SHARE).
REFERENCE_MIN_SHARE = 0.005

SELECTORS = {
    "largest": lambda f: max(f, key=lambda x: x[1]),
    "smallest": lambda f: min(f, key=lambda x: x[1]),
    "leftmost": lambda f: min(f, key=lambda x: x[0][0] + x[0][2]),
    "rightmost": lambda f: max(f, key=lambda x: x[0][0] + x[0][2]),
    "topmost": lambda f: min(f, key=lambda x: x[0][1] + x[0][3]),
    "bottommost": lambda f: max(f, key=lambda x: x[0][1] + x[0][3]),
}


def select_instances(found: list, select: str) -> list:
    if not found:
        return []
    if select in SELECTORS:
        return [SELECTORS[select](found)]
    return sorted(found, key=lambda x: (x[0][1], x[0][0]))
