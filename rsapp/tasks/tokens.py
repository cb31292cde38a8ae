"""Task tokens and RSUniVLM's training-free router: the token decides the G-MoE expert, no learned gate."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rsapp.errors import RsappError
from rsapp.tasks.vocabulary import (AREA_CLASSES, asks_change, asks_gsd, dense_class_of, grounding_selection,
                                    measured_question, named_part, selection_of, unresolved_relation)


@dataclass(frozen=True)
class Task:
    """One row of DESIGN.md's task table."""

    token: str
    expert: int  # G-MoE granularity: 0 image, 1 region, 2 pixel
    images: tuple[int, ...]  # how many images it takes
    output: str  # codec of the answer: "text", "boxes" ([x1, y1, x2, y2] on 0–100) or "mask" (Text4Seg)
    asks_class: bool  # the question names a class (tasks.vocabulary.dense_class_of)
    needs_question: bool  # a bare token is not a request


TASKS: dict[str, Task] = {t.token: t for t in (
    Task("[CAP]", 0, (1,), "text", False, False),
    Task("[CLS]", 0, (1,), "text", False, False),
    Task("[VQA]", 0, (1,), "text", False, True),
    Task("[CCD]", 0, (2,), "text", False, False),
    Task("[VG]", 1, (1,), "boxes", True, True),
    Task("[REF]", 1, (1,), "text", False, True),
    Task("[SEG]", 2, (1, 2), "mask", True, False),
)}
TASK_TOKENS = tuple(TASKS)
# Longest prompt accepted (characters): a question about an image is a sentence or two; refused before the model
# runs, since a long one would hold a worker for minutes and the language model reads 8K tokens at most.
MAX_PROMPT_CHARS = 1000
_TOKEN_RE = re.compile(r"^\s*(\[[A-Za-z]+\])\s*")
_BOX_RE = re.compile(r"\[\s*-?\d+(?:\.\d+)?\s*(?:,\s*-?\d+(?:\.\d+)?\s*){3}\]")

# A question asking what the scene is: answered as [CLS] even when asked with [VQA] (RSIVQA's held-out "what is the
# theme of this picture?": 0.85 as the language model's [VQA] answer, 0.91 as [CLS], counting 'agricultural' for its
# 'farmland')
_SCENE_CUE = re.compile(r"\b(classify|scene class|theme of|what (?:kind|type|sort) of (?:scene|area|place|land|"
                        r"landscape|terrain|region|site|environment|location|image|picture|photo)|categor(?:y|i[sz]e)|"
                        r"land[- ]?(?:use|cover) class|(?:main |primary )?land[- ]?use|what (?:is|are) (?:this|the) "
                        r"(?:area|land|place|site|region|scene)s? used for|"
                        r"what (?:scene|place|landscape) is (?:this|it))\b|"
                        r"\bwhat(?:'s| is) (?:this|it|here)(?: (?:scene|place|area|location|region|site|landscape|image|"
                        r"picture|photo))?\s*\??\s*$", re.I)
# A request to describe the image, however worded: answered as [CAP] even when asked with [VQA] (the language model's
# [VQA] answer to "what do you see?" was a scene label, "dense residential").
_DESCRIBE_CUE = re.compile(r"\b(caption|describe|description|summari[sz]e|summary|overview|"
                           r"what (?:do|can) (?:you|we|i) see|list what|what (?:objects|things|features) (?:are|can)|"
                           r"tell me about|what does (?:this|the) (?:image|picture|photo|scene|tile) show)\b|"
                           r"\bwhat(?:'s| is| are) (?:the|this|it)(?: \w+)? like\b|"
                           r"\bwhat(?:'s| is| are)(?: shown| visible)? (?:in|on) (?:this|the) "
                           r"(?:image|picture|photo|scene|tile)\b\s*\??\s*$", re.I)
# Inference of a token from the wording, checked in this order; first match wins.
_CUES: list[tuple[str, re.Pattern]] = [
    ("[SEG]", re.compile(r"\b(segment\w*|mask|outline|delineate|highlight|mark|(?:draw|map) (?:the|all|every)|"
                         r"pixels? of)\b|^\s*(?:colou?r|paint|shade)\s+(?:in\s+)?(?:the|all|every)\b", re.I)),
    ("[CAP]", _DESCRIBE_CUE),
    ("[CLS]", _SCENE_CUE),
    ("[VG]", re.compile(r"\b(find|locate|where (?:is|are)|detect|box(?:es)?|ground|point (?:out|to|at)|show me)\b|"
                        r"^\s*show\b", re.I)),
]
# "which building is the largest?", "which tree is nearest the road?": one instance picked, as [VG] boxes it
_WHICH_ONE_RE = re.compile(r"\bwhich\b", re.I)
# A bare noun phrase, as grounding sets ask ("the white ship", "a green and brown golf field", "all buildings",
# "ships"): an article or up to three words, no verb that would make it a sentence, and no question mark
_PHRASE_RE = re.compile(r"^(?!.*\b(?:is|are|was|were|do|does|did|can|has|have)\b)\s*"
                        r"(?:(?:a|an|the|one|all|every|each)\s+[^?]*|(?:[\w-]+\s*){1,3})$", re.I)
_CHANGE_SEG_CUE = re.compile(r"\b(segment\w*|mask|map|where|outline|delineate)\b", re.I)


@dataclass(frozen=True)
class Route:
    """What the router decided for one request."""

    token: str
    expert: int
    question: str  # the prompt without its token
    inferred: bool  # True when no token was given and the router chose one
    later_date: bool = False  # a task of one image asked of two dates: the second (later) date answers it

    @property
    def task(self) -> Task:
        return TASKS[self.token]


def route(prompt: str, n_images: int = 1, force: str | None = None) -> Route:
    """Pick the task token (forced, written in the prompt, or inferred) and its expert; check the image count. A
    [VQA] question asking what the scene is goes to [CLS] (the scene head and the language model's label scores),
    one asking to describe the image to [CAP]."""
    prompt = (prompt or "").strip()
    if len(prompt) > MAX_PROMPT_CHARS:
        raise RsappError(f"the prompt is {len(prompt):,} characters; ask in at most {MAX_PROMPT_CHARS:,}")
    if not prompt and force is None:
        raise RsappError("the prompt is empty: ask a question, e.g. '[VQA] how many buildings are there?'")
    m = _TOKEN_RE.match(prompt)
    written = m.group(1).upper() if m else None
    question = prompt[m.end():].strip() if m else prompt
    if written and written not in TASKS:
        raise RsappError(f"unknown task token {written}; use one of {' '.join(TASK_TOKENS)}")
    token = _normalise(force) or written
    inferred = token is None
    if inferred:
        token = infer_token(question, n_images)
    elif token == "[VQA]" and _SCENE_CUE.search(question):
        token = "[CLS]"
    elif token == "[VQA]" and _DESCRIBE_CUE.search(question):
        token = "[CAP]"
    task = TASKS[token]
    expert, images = task.expert, task.images
    later_date = n_images == 2 and images == (1,)  # "which building is the largest?" of the after date
    if n_images not in images and not later_date:
        want = " or ".join(str(i) for i in images)
        raise RsappError(f"{token} takes {want} image{'s' if images != (1,) else ''}, but {n_images} {'was' if n_images == 1 else 'were'} given")
    if not question and task.needs_question:
        raise RsappError(f"{token} needs a question or phrase after the token")
    return Route(token=token, expert=expert, question=question, inferred=inferred, later_date=later_date)


def _normalise(token: str | None) -> str | None:
    if token is None or token.strip().lower() in ("", "auto"):
        return None
    t = token.strip().upper()
    t = t if t.startswith("[") else f"[{t}]"
    if t not in TASKS:
        raise RsappError(f"unknown task token {token}; use one of {' '.join(TASK_TOKENS)}")
    return t


def infer_token(question: str, n_images: int) -> str:
    """The token a prompt with none most likely means (the answer reports it, the user can override)."""
    if n_images == 2 and not asks_change(question):  # about one picture: boxes, the scene, what the heads measure
        one = infer_token(question, 1)
        measured = measured_question(question) if one == "[VQA]" else None
        if one in ("[VG]", "[REF]", "[CLS]") or (measured is not None and measured[0] != "unmeasured"):
            return one
    if n_images == 2:  # "has the vegetation changed?": that class's change, as two-date [SEG] draws it
        named = dense_class_of(question)
        return "[SEG]" if _CHANGE_SEG_CUE.search(question) or named not in (None, "building") else "[CCD]"
    if _BOX_RE.search(question) or named_part(question):  # a box, or a part of the picture ("the top left")
        return "[REF]"
    for token, cue in _CUES:
        if cue.search(question):
            if token == "[VG]" and asks_gsd(question):  # "what is the ground resolution?"
                return "[VQA]"
            if token == "[VG]" and dense_class_of(question) in AREA_CLASSES and selection_of(question) == "all":
                return "[SEG]"
            return token
    picks_one = selection_of(question) != "all" or unresolved_relation(question)
    if _WHICH_ONE_RE.search(question) and dense_class_of(question) and picks_one:
        return "[VG]"
    if _PHRASE_RE.match(question) and dense_class_of(question) and measured_question(question) is None:
        # a bare phrase naming a class: boxed, or a class that covers areas, asked all of it, drawn as its mask
        area = dense_class_of(question) in AREA_CLASSES and grounding_selection(question) == "all"
        return "[SEG]" if area else "[VG]"
    return "[VQA]"
