"""Text answers about real imagery for the language model (stage B of v2): scene classes, captions and
questions from UC Merced; counts, presence and cover from the land-cover / building / road / ship labels;
change captions from real pairs and from pairs made of single-date buildings. Questions come in the
paraphrases people use; answers are the words a person would say."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from rsapp.data.real_chips import change_chip, dense_chip, nuisance, scene_chip, synthetic_change
from rsapp.data.real_sets import DENSE_INDEX, Raster
from rsapp.tasks.vocabulary import change_caption

CLS_QUESTIONS = ("", "what kind of scene is this?", "classify this image", "what is the scene class?",
                 "which land-use category is this?", "what type of area is shown?", "what is this place?",
                 "scene category?", "what land use does this image show?")
CAP_QUESTIONS = ("", "describe the image", "describe this scene", "what does this image show?",
                 "write a caption", "give a short description of the area")
CCD_QUESTIONS = ("", "what changed?", "what has changed between the two dates?", "describe the changes",
                 "did anything change?", "what is different in the second image?")
PLURAL = {"building": "buildings", "road": "roads", "water": "water", "vegetation": "vegetation",
          "bare land": "bare land", "car": "cars", "ship": "ships"}
COUNT_WORDS = {"building": ("buildings", "houses", "structures"), "car": ("cars", "vehicles"),
               "ship": ("ships", "boats", "vessels")}
NUMBER_WORDS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve "
                                           "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty"
                                           .split())}
TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
MIN_INSTANCE_PX = 30  # label regions smaller than this on the chip are not counted


# [CAP] answers with one of the CAPTION_BANK_SIZE captions people wrote most often for the scene class [CLS] names
# (train scenes only), the one the language model scores highest (rsapp.model.inference.Runtime.choose_caption)
CAPTION_BANK_SIZE = 8


# The land-cover words' captions, written here in UC Merced's manner (no captioned scene of them exists): greedy, the
# language model described held-out open water as "two straight freeways" and bare desert as "a white boat docked at
# the harbor".
COVER_CAPTIONS = {"bare land": ["It is a piece of bare land.", "This is a large area of bare land."],
                  "water": ["It is a piece of open water.", "This is a large area of water."]}


def caption_bank(rasters: list[Raster], size: int = CAPTION_BANK_SIZE) -> dict[str, list[str]]:
    """{scene class: its `size` most written captions, most written first} over the captioned train scenes, and
    COVER_CAPTIONS for the land-cover words."""
    written: dict[str, Counter] = {}
    for r in rasters:
        if r.captions and r.scene and not r.held_out:
            written.setdefault(r.scene, Counter()).update(tidy_caption(c) for c in r.captions)
    return {scene: [c for c, _ in n.most_common(size)] for scene, n in sorted(written.items())} | COVER_CAPTIONS


def tidy_caption(caption: str) -> str:
    """A written caption as an answer shows it: one space between words, one full stop at the end (UCM-Captions has
    'Lots of plants scattered on the ground..')."""
    return " ".join(caption.split()).rstrip(" .") + "."


@dataclass
class TextSample:
    images: list[np.ndarray]
    token: str
    question: str
    answer: str
    gsd_m: float | None


def digits(answer: str) -> str:
    """'eight' → '8' (RSIVQA spells counts in words; answers here use digits)."""
    return str(NUMBER_WORDS[answer]) if answer in NUMBER_WORDS else answer


def count_of(answer: str) -> int | None:
    """The number a count answer says ('8', 'eight', 'forty-four'), or None when it says none."""
    words = answer.strip().lower().replace(" ", "-").split("-")
    if len(words) == 1 and words[0].isdigit():
        return int(words[0])
    if len(words) == 1 and words[0] in NUMBER_WORDS:
        return NUMBER_WORDS[words[0]]
    if words[0] in TENS and (len(words) == 1 or (len(words) == 2 and NUMBER_WORDS.get(words[1], 10) < 10)):
        return TENS[words[0]] + (NUMBER_WORDS[words[1]] if len(words) == 2 else 0)
    return None


def scene_sample(r: Raster, rng, chip: int) -> TextSample:
    rgb, gsd = scene_chip(r, rng, chip)
    kind = rng.choice(["cls", "cap", "vqa"], p=[0.35, 0.3, 0.35]) if r.qa else rng.choice(["cls", "cap"])
    if kind == "cls" or (kind == "cap" and not r.captions):
        return TextSample([rgb], "[CLS]", str(rng.choice(CLS_QUESTIONS)), r.scene, gsd)
    if kind == "cap":
        return TextSample([rgb], "[CAP]", str(rng.choice(CAP_QUESTIONS)), str(rng.choice(r.captions)), gsd)
    q, a = r.qa[int(rng.integers(len(r.qa)))]
    return TextSample([rgb], "[VQA]", q, digits(a), gsd)


def count(mask: np.ndarray) -> int:
    labels, n = ndimage.label(mask)
    return int((np.bincount(labels.ravel())[1:] >= MIN_INSTANCE_PX).sum()) if n else 0


def dense_sample(r: Raster, rng, chip: int) -> TextSample:
    rgb, labels, gsd = dense_chip(r, rng, chip)
    known = list(r.known)
    name = known[int(rng.integers(len(known)))]
    mask = labels == DENSE_INDEX[name]
    roll = rng.random()
    if name in COUNT_WORDS and roll < 0.5:
        noun = str(rng.choice(COUNT_WORDS[name]))
        q = str(rng.choice([f"how many {noun} are there?", f"how many {noun} can you see?", f"count the {noun}",
                            f"number of {noun}?", f"how many {noun} are in this image?"]))
        return TextSample([rgb], "[VQA]", q, str(count(mask)), gsd)
    if roll < 0.85 or len(known) == 1:
        word = PLURAL[name]
        q = str(rng.choice([f"is there any {word}?", f"are there {word} in this image?", f"do you see {word}?",
                            f"does this image contain {word}?"] if word.endswith("s") else
                           [f"is there any {word}?", f"is there {word} in this image?", f"do you see {word}?",
                            f"does this image contain {word}?"]))
        return TextSample([rgb], "[VQA]", q, "yes" if mask.sum() > 0.002 * mask.size else "no", gsd)
    shares = {n: float((labels == DENSE_INDEX[n]).mean()) for n in known}
    q = str(rng.choice(["what covers most of this image?", "what is the main land cover?",
                        "which land cover is most common here?"]))
    return TextSample([rgb], "[VQA]", q, max(shares, key=shares.get), gsd)


def change_sample(pairs: list[Raster], building_sets: list[Raster], rng, chip: int,
                  synthetic_share: float = 0.6) -> TextSample:
    """[CCD]: pairs are real building-change pairs (their captions count the changed regions)."""
    q = str(rng.choice(CCD_QUESTIONS))
    if rng.random() < 0.15:  # the same place with no change: only the nuisances of two dates
        r = building_sets[int(rng.integers(len(building_sets)))]
        rgb, _, gsd = dense_chip(r, rng, chip)
        return TextSample([nuisance(rgb, rng), nuisance(rgb, rng)], "[CCD]", q, "no change", gsd)
    if rng.random() < synthetic_share:
        for _ in range(5):
            made = synthetic_change(building_sets[int(rng.integers(len(building_sets)))], rng, chip)
            if made is not None:
                before, after, target, gsd, built = made
                return TextSample([before, after], "[CCD]", q, change_caption(count(target == 1), built), gsd)
    r = pairs[int(rng.integers(len(pairs)))]
    before, after, target, gsd = change_chip(r, rng, chip)
    return TextSample([before, after], "[CCD]", q, change_caption(count(target == 1), None), gsd)
