"""The one class vocabulary of v2: the dense classes masks are drawn in, the scene labels [CLS] answers with,
and the words people use for them. Defined here once; the model's config stores the lists it was trained on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Classes the dense head paints, pixel by pixel (multi-label: a pixel can be none of them).
DENSE_CLASSES = ("building", "road", "water", "vegetation", "bare land", "car", "ship")

# [CLS] labels: UC Merced's 21 scene classes, then the land-cover words (README documents the set).
SCENE_CLASSES = (
    "agricultural", "airplane", "baseball diamond", "beach", "buildings", "chaparral", "dense residential",
    "forest", "freeway", "golf course", "harbor", "intersection", "medium residential", "mobile home park",
    "overpass", "parking lot", "river", "runway", "sparse residential", "storage tanks", "tennis court",
)
# Land-cover words [CLS] also answers with: a scene mostly of one dense class (rsapp.data.real_sets.cover_scenes
# labels them from the land-cover sets' pixels). Words with no labelled real scene here (grassland, industrial
# area, ...) are not in it. The language model's tag carries the 21 scene classes only.
COVER_SCENES = ("bare land", "water")
SCENE_LABELS = SCENE_CLASSES + COVER_SCENES


def change_caption(n: int, built: bool | None, exact: bool = False) -> str:
    """The change sentence for n changed buildings (built True, demolished False, None unknown: new); more than nine
    are "many", as the captions the model learned from say, unless `exact` (asked how many)."""
    if n == 0:
        return "no change"
    verb = "demolished" if built is False else "built"
    if n == 1:
        return f"a building was {verb}"
    return f"{n} buildings were {verb}" if n <= 9 or exact else f"many buildings were {verb}"


# [CCD] answers with the sentences the model was trained to write, from its change map (rsapp.analyst.change_sentence);
# NO_CHANGE exactly when the map is empty.
NO_CHANGE = change_caption(0, None)


def unclear_change(n: int, exact: bool = False) -> str:
    """The change sentence for n changed regions whose buildings neither clearly rose nor fell between the dates
    (rsapp.analyst.built_by): counted as areas, not as buildings built or demolished."""
    if n == 1:
        return "a changed area, not clearly a building built or demolished"
    return f"{n if n <= 9 or exact else 'many'} changed areas, not clearly buildings built or demolished"


# Dense classes a UC Merced scene class holds somewhere in every one of its scenes (a river, a harbour and a beach
# hold water): the scene says the class is there, not where (rsapp.train.dense pushes the scene's most likely pixels
# of it; a presence question reads it: scene_holds). Stage A learned water from Dubai's dark sea and creeks and
# missed the greener, greyer water of UC Merced.
SCENE_HOLDS = {"river": ("water",), "harbor": ("water",), "beach": ("water",)}


def scene_holds(scene: str | None) -> tuple[str, ...]:
    """The dense classes a scene the scene head names holds: a river, harbour or beach water (SCENE_HOLDS), a
    land-cover word's scene its own class ("water" holds water)."""
    return SCENE_HOLDS.get(scene, ()) + ((scene,) if scene in COVER_SCENES else ())


# A yes-or-no question about change ("were any buildings demolished?", "has anything changed?") and the way it asks
_YES_NO_RE = re.compile(r"^\s*(?:\[ccd\]\s*)?(?:is|are|was|were|has|have|had|did|do|does|can|could)\b", re.I)
_GONE_RE = re.compile(r"\b(?:demolish\w*|destroy\w*|remov\w*|torn|tear\w*|razed|disappear\w*|lost|gone|cut|"
                      r"felled|cleared|shr[iau]nk\w*|decreas\w*)\b", re.I)
_BUILT_RE = re.compile(r"\b(?:built|builds?|construct\w*|new|newly|appear\w*|added|erected|gr[eo]w\w*|"
                       r"increas\w*|expand\w*|planted)\b", re.I)


def asks_which_way(question: str) -> bool:
    """Whether a change question asks which way things changed ('were any trees cut down?', 'were roads built?'),
    not only whether they did ('has the vegetation changed?')."""
    return bool(_GONE_RE.search(question or "") or _BUILT_RE.search(question or ""))


def change_verdict(question: str, n: int, built: bool | None) -> str:
    """'yes: ' or 'no: ' before the change sentence when the question asks yes or no: whether any change (n regions)
    happened, or whether buildings were built or demolished (built: the map's buildings rose, None: which way is not
    known, so a question asking which way gets no yes or no unless nothing changed); '' for any other question."""
    if not _YES_NO_RE.search(question or ""):
        return ""
    gone, new = bool(_GONE_RE.search(question)), bool(_BUILT_RE.search(question))
    if built is None and n > 0 and (gone or new):
        return ""
    found_gone = n > 0 and built is False
    yes = n > 0 and (gone == new or found_gone == gone)  # neither asked (or both): any change
    return "yes: " if yes else "no: "


# Words a person may use for a dense class (plural and near synonyms).
_DENSE_WORDS = {
    "building": r"buildings?|houses?|housing|homes?|roofs?|rooftops?|built[- ]?up|footprints?|structures?",
    "road": r"roads?|streets?|highways?|freeways?|lanes?|pavements?|paved|impervious|asphalt",
    "water": r"water|lakes?|rivers?|ponds?|sea|ocean|pools?|reservoirs?",
    "vegetation": r"vegetation|trees?|forests?|grass(?:land)?|green|plants?|shrubs?|parks?|crops?|fields?",
    "bare land": r"bare(?: land| ground| soil)?|sand|desert|soil|land",
    "car": r"cars?|vehicles?",
    "ship": r"ships?|boats?|vessels?",
}
_DENSE_RE = [(name, re.compile(rf"\b(?:{words})\b", re.I)) for name, words in _DENSE_WORDS.items()]
# A kind of water a question names ("is there a lake?"): the water mask holds water of every kind
_WATER_KIND_RE = re.compile(r"\b(lake|river|pond|sea|ocean|pool|reservoir)s?\b", re.I)


def water_kind(question: str) -> str | None:
    """'is there a lake?' → 'lake': the kind of water a question names, which the water mask does not tell apart."""
    m = _WATER_KIND_RE.search(question or "")
    return m.group(1).lower() if m else None



def _class_mentions(text: str) -> tuple[str, list[tuple[int, int, str]]]:
    """The text without 'land cover' / 'land use', and every (start, end, dense class) it names, in order."""
    text = _LAND_COVER_RE.sub(" ", text or "")
    return text, sorted((m.start(), m.end(), name) for name, rx in _DENSE_RE for m in rx.finditer(text))


def dense_classes_in(text: str) -> list[str]:
    """Every dense class a text names, in the order it first names them ('more houses than trees' → building,
    vegetation)."""
    return list(dict.fromkeys(name for _, _, name in _class_mentions(text)[1]))


# What joins the classes of a list ("roads, buildings and the water"), as against a relation ("the buildings near
# the road", which names one thing asked for and one it is placed by)
_LIST_JOINER_RE = re.compile(r"^\s*(?:,|&|\+|and|or|plus|as well as)?\s*(?:,|&|and|or)?\s*(?:the|all|any)?\s*$", re.I)


def listed_classes(text: str) -> list[str]:
    """The dense classes a request lists ('segment the roads and buildings' → road, building): the first class it
    names and those joined to it by a comma, 'and', 'or' or '&'; one class when it names one, or places the thing by
    another ('the buildings near the road' → building); none when it names none."""
    text, hits = _class_mentions(text)
    listed, end = [], None
    for start, stop, name in hits:
        if end is not None and not _LIST_JOINER_RE.match(text[end:start]):
            break
        if name not in listed:
            listed.append(name)
        end = stop
    return listed


# Classes that cover areas rather than stand as things: asked to show all of them ("show me the streets"), the answer
# is their mask, not a box per fragment; one of them picked ("the largest field") is still a box.
AREA_CLASSES = ("road", "vegetation", "bare land")


# "land cover" and "land use" name no class (the "land" of "bare land" is not meant)
_LAND_COVER_RE = re.compile(r"\bland[- ]?(?:cover|use)s?\b", re.I)


def dense_class_of(text: str) -> str | None:
    """The dense class a question names ('segment the houses' → building), None when it names none."""
    text = _LAND_COVER_RE.sub(" ", text or "")
    hits = [(m.start(), name) for name, rx in _DENSE_RE if (m := rx.search(text))]
    return min(hits)[1] if hits else None


# Words of a [SEG] request that name no thing: the verb, the image, every class ("segment the image", "map all land
# cover"): what is left names the thing asked for
_NOT_A_THING_RE = re.compile(r"\b(?:segment\w*|mask\w*|outline|delineate|map|show|me|draw|highlight|extract|label|"
                             r"classify|please|can|could|you|all|every|each|the|a|an|of|in|on|this|that|these|image|"
                             r"picture|photo|scene|area|tile|view|everything|classes|class|land|cover|use|types?|"
                             r"pixels?|what|is|are|there|here|it|its|them|into|by|for|with|and|or|to|different|"
                             r"main|visible)\b|[^\w\s]", re.I)


def unknown_thing(phrase: str) -> str | None:
    """What a [SEG] request asks to draw when it is no dense class ('segment the airplanes' → 'airplanes'), None
    when it names one or asks for every class ('segment the image', 'map the land cover')."""
    if dense_class_of(phrase) is not None:
        return None
    rest = " ".join(_NOT_A_THING_RE.sub(" ", phrase or "").split())
    return rest or None


# Which instances a [VG] phrase asks for; the first cue found wins, "all" when none.
_SELECTION = (
    ("largest", r"largest|biggest|widest|longest"), ("smallest", r"smallest|tiniest|narrowest|shortest"),
    ("leftmost", r"leftmost|left[- ]?most|on the left|westernmost"),
    ("rightmost", r"rightmost|right[- ]?most|on the right|easternmost"),
    ("topmost", r"topmost|top[- ]?most|at the top|northernmost|uppermost"),
    ("bottommost", r"bottommost|bottom[- ]?most|at the bottom|southernmost|lowest"),
)
_SELECTION_RE = [(name, re.compile(rf"\b(?:{words})\b", re.I)) for name, words in _SELECTION]


# "the tree nearest the road", "the building farthest from the centre": one instance picked by its distance to
# another class's mask or to the image's centre
_RELATION_RE = re.compile(r"\b(?:(?P<nearest>nearest|closest|next to|beside|adjacent to)|(?P<farthest>farthest|"
                          r"furthest|most distant))\b", re.I)
_CENTRE_RE = re.compile(r"\b(?:cent(?:re|er|ral)|middle)\b", re.I)


def selection_of(phrase: str) -> str:
    """'the largest pond' → 'largest'; 'all ships' → 'all'; 'the tree nearest the road' → 'nearest road' (the
    class it is measured from, or 'centre')."""
    for name, rx in _SELECTION_RE:
        if rx.search(phrase or ""):
            return name
    relation = _RELATION_RE.search(phrase or "")
    if relation is not None:
        after = dense_classes_in(phrase[relation.end():])
        reference = after[0] if after else "centre" if _CENTRE_RE.search(phrase) else None
        if reference is not None:
            return f"{relation.lastgroup} {reference}"
    if re.search(r"\b(?:in|at) the (?:cent(?:re|er)|middle)\b", phrase or "", re.I):  # "the building in the middle"
        return "nearest centre"
    return "all"


# A phrase naming one thing ("a green and brown golf field", "the white ship"), as the referring expressions of
# grounding sets do: the first countable word of its class in the singular, with an article up to four words before
# it ("a green and brown golf field"), and no "all", "every", "each", "any" or "network"
_COUNTABLE_ONE = frozenset(("building house home roof rooftop structure footprint road street highway freeway lane "
                            "lake river pond sea ocean pool reservoir tree forest plant shrub park field car vehicle "
                            "ship boat vessel").split())
_ONE_BEFORE_RE = re.compile(r"\b(?:a|an|the|one|this|that)\s+(?:[\w-]+\s+){0,4}$", re.I)
_EVERY_RE = re.compile(r"\b(?:all|every|each|any|network|system)\b", re.I)  # "the road network": all of them


def names_one(phrase: str) -> bool:
    """'a green and brown golf field', 'the white ship' → True; 'ships', 'all buildings', 'the water' → False."""
    text = _LAND_COVER_RE.sub(" ", phrase or "")
    name = dense_class_of(text)
    if name is None or _EVERY_RE.search(text):
        return False
    for m in dict(_DENSE_RE)[name].finditer(text):  # the first countable word of the class is the thing named
        word = m.group(0).lower()
        if word in _COUNTABLE_ONE:
            return bool(_ONE_BEFORE_RE.search(text[:m.start()]))
        if word.rstrip("s") in _COUNTABLE_ONE:  # "the trees in the park": many
            return False
    return False


def grounding_selection(phrase: str) -> str:
    """Which instances a [VG] phrase boxes: selection_of's cue, else the largest where the phrase names one thing
    (names_one: without a cue that picks among several, the most prominent), else all of them (and all where it picks
    by a distance the model cannot measure: unresolved_relation, which the answer says)."""
    select = selection_of(phrase)
    one = select == "all" and names_one(phrase) and not unresolved_relation(phrase)
    return "largest" if one else select


def unresolved_relation(phrase: str) -> bool:
    """'the building closest to the intersection': a phrase picking by distance to something the model cannot find
    (no dense class, not the centre)."""
    return bool(_RELATION_RE.search(phrase or "")) and selection_of(phrase) == "all"


def selected_phrase(select: str, name: str | None) -> str:
    """How an answer names what it picked: 'the largest building', 'the vegetation nearest the road', 'the building
    farthest from the centre'."""
    how, _, reference = select.partition(" ")
    if not reference:
        return f"the {select} {name}"
    return f"the {name} {how} {'from ' if how == 'farthest' else ''}the {reference}"


_COUNT_RE = re.compile(r"\b(how many|count|number of)\b", re.I)
# "how much of the image is water?", "what percentage is covered by trees?": the share of the area a class covers
_COVER_RE = re.compile(r"\b(how much|percentage|percent|share|fraction|proportion|portion|what part|what area|"
                       r"density|how dense|total (?:\w+ )?area)\b|%",
                       re.I)


def asks_how_many(question: str) -> bool:
    """'how many buildings were built?', 'count the new houses'"""
    return bool(_COUNT_RE.search(question or ""))


def counted_class(question: str) -> str | None:
    """The dense class a counting question asks about ('how many houses are there?' → building), else None."""
    return dense_class_of(question) if _COUNT_RE.search(question or "") else None


def covered_class(question: str) -> str | None:
    """The dense class whose share of the area a question asks about ('how much of the image is water?' → water,
    'what percentage is covered by trees?' → vegetation), else None; a counting question is not one."""
    if _COUNT_RE.search(question or "") or not _COVER_RE.search(question or ""):
        return None
    return dense_class_of(question)


# A question about the image's ground sample distance: the answer is the GSD the analyst reports anyway (the file's,
# the user's, or SSE-U's), which the language model never learned to say.
_GSD_RE = re.compile(r"\b(resolution|gsd|ground samp(le|ling) distance|pixel (size|spacing)|(metres?|meters?|m) "
                     r"(per|a|each) pixel|how (big|large|wide) is (a|one|each) pixel|what(?:'s| is)? (?:the )?scale|"
                     r"(?:image|map) scale)\b", re.I)


def asks_gsd(question: str) -> bool:
    """'what is the resolution of this image?', 'how many metres per pixel?'"""
    return bool(_GSD_RE.search(question or ""))


# "how big is the largest building?", "what is the area of the pond?": one instance's area on the ground
_SIZE_RE = re.compile(r"\b(how (big|large)|(size|area) of)\b", re.I)


# "what is the average house size?", "how big are the houses on average?": the mean of every instance's area
_AVERAGE_RE = re.compile(r"\b(average|mean|typical)\b", re.I)
_SIZE_WORD_RE = re.compile(r"\b(sizes?|areas?|big|large)\b", re.I)


def asks_average(question: str) -> bool:
    """'what is the average house size?': the mean size of the instances, not one instance's."""
    return bool(_AVERAGE_RE.search(question or "")) and bool(_SIZE_WORD_RE.search(question or ""))


def sized_class(question: str) -> str | None:
    """The dense class whose instance's size a question asks about ('how big is the largest building?' → building,
    'what is the average house size?' → building), else None."""
    return dense_class_of(question) if _SIZE_RE.search(question or "") or asks_average(question) else None


# "how wide is the road?", "how tall are the buildings?", "what colour are the roofs?": lengths, heights and colours,
# which the model does not measure (the language model, never taught them, answered all six length and height
# questions on the Las Vegas sample "4 buildings were built", and the roofs' colour "medium residential"; colours named
# from the pixels were tried and not kept: a sensor's cast made the street "cyan")
_UNMEASURED_RE = re.compile(r"\bhow (?P<plan>wide|broad|long|narrow|far)\b|\b(?P<plan2>width|length|distance) (of|from|"
                            r"between|to)\b|"
                            r"\bhow (?P<up>tall|high|deep|many (storeys|stories|floors))\b|\b(?P<up2>height|depth) of\b|"
                            r"\b(?P<colour>colou?rs?|colou?red)\b", re.I)


def unmeasured(question: str) -> str | None:
    """'plan' when a question asks for a length, width or distance on the ground ('how wide is the road?', 'how far
    is the house from the road?'), 'height' when it asks how tall or deep something is, 'colour' when it asks a
    colour, 'object' when it asks whether a thing the model never learned is there ('are there solar panels?');
    None otherwise."""
    found = _UNMEASURED_RE.search(question or "")
    if found is None:
        return "object" if unlearned_object(question) else None
    return "plan" if found.group("plan") or found.group("plan2") else "colour" if found.group("colour") else "height"


def unmeasured_sentence(question: str) -> str:
    """The honest answer to a length, height, colour or unlearned thing's question."""
    what = unmeasured(question)
    if what == "object":
        return (f"cannot say: the model has not learned to find {unlearned_object(question)} (it maps buildings, "
                "roads, water, vegetation, bare land, cars and ships, and names the kind of scene)")
    if what == "plan":
        return ("cannot say: the model measures areas, not lengths, widths or distances (ask how big the largest one "
                "is, or [SEG] to draw it on the map)")
    if what == "colour":
        return "cannot say: the model does not name colours (each sensor shows them differently)"
    return "cannot say: one image seen from above does not show heights or depths"


# "where are the trees?", "what is the location of the boats?": where in the image a class lies
_WHERE_RE = re.compile(r"^\s*where\b|\b(where (is|are|do|does)|location of|located)\b", re.I)


def located_class(question: str) -> str | None:
    """The dense class a question asks the whereabouts of ('where are the trees?' → vegetation), else None."""
    return dense_class_of(question) if _WHERE_RE.search(question or "") else None


def asks_location(question: str) -> bool:
    """'what is the location of the intersection in this picture?': RSIVQA's location questions, which the language
    model learned for things no dense class is (it answers 'center', 'top left')."""
    return bool(_WHERE_RE.search(question or ""))


# "what is in the top left?", "what's at the bottom of the image?", "what is in the middle?": a part of the picture
# named by where it lies, in thirds (as where_in_image names them)
_PART_RE = re.compile(r"^\s*what(?:'s| is| are)?(?: there)? (?:in|at|on) (?:the )?(?P<v>top|upper|bottom|lower|"
                      r"cent(?:re|er)|middle)?[- ]?(?P<h>left|right)?\b", re.I)
_PART_ROW = {"top": 0, "upper": 0, "bottom": 2, "lower": 2, "centre": 1, "center": 1, "middle": 1}


def named_part(question: str) -> tuple[str, tuple[float, float, float, float]] | None:
    """'what is in the top left?' → ('the top left', (0, 0, 1/3, 1/3)): the part of the picture a question asks
    about, its (x0, y0, x1, y1) as fractions of the picture; None when it names none."""
    m = _PART_RE.search(question or "")
    if m is None or not (m.group("v") or m.group("h")):
        return None
    v, h = (m.group("v") or "").lower(), (m.group("h") or "").lower()
    row = _PART_ROW.get(v)
    col = {"left": 0, "right": 2}.get(h, 1 if row == 1 and not h else None)
    rows, cols = (row, row + 1) if row is not None else (0, 3), (col, col + 1) if col is not None else (0, 3)
    name = "the centre" if (row, col) == (1, 1) else "the " + " ".join(w for w in (v, h) if w)
    return name, (cols[0] / 3, rows[0] / 3, cols[1] / 3, rows[1] / 3)


def unlearned_sentence(question: str) -> str:
    """The honest answer to a question about one image that neither the heads measure nor the language model learned
    ('what season is it?', 'how many storage tanks are there?'), which it answered with guesses ('beach', '1')."""
    if _COUNT_RE.search(question or ""):
        return ("cannot say: the model counts only buildings, cars and ships, and patches of water, vegetation, road "
                "or bare land")
    return ("cannot say: the model has not learned to answer this about one image (ask what the scene is, or how much, "
            "how many, whether or where there are buildings, roads, water, vegetation, bare land, cars or ships)")


# "does this picture contain trees?", "is there any water?", "can you see buildings?": whether a class is there
_PRESENT_RE = re.compile(r"^\s*(is there|are there|any|"
                         r"(does|do) (this|the|these) (image|picture|photo|scene|area|tile)s? "
                         r"(contain|have|show|include|hold)|(can|do) (you|we|i) see)\b|\b(visible|present)\s*\??\s*$",
                         re.I)


def present_class(question: str) -> str | None:
    """The dense class a yes-or-no question asks the presence of ('does this picture contain trees?' → vegetation),
    else None."""
    return dense_class_of(question) if _PRESENT_RE.search(question or "") else None


# Words of a question about what changed between two dates ("what's new?", "compare the two images")
_CHANGE_WORDS_RE = re.compile(r"\b(chang\w*|new|newly|differ\w*|built|constructed|demolish\w*|destroy\w*|removed|"
                              r"(?:dis)?appear\w*|damage\w*|compar\w*|before|after|since|happen\w*|gr[eo]w\w*|"
                              r"lost|gain\w*|added|cleared|expan\w*|between|dates?)\b", re.I)


def asks_change(question: str) -> bool:
    """Whether a question asks what changed between two dates ('what's new?', 'how many houses were built?')
    rather than about what one picture shows ('which building is the largest?')."""
    return bool(_CHANGE_WORDS_RE.search(question or ""))


_AROUND_OBJECT_RE = re.compile(r"^(?:(?:is|are|there|any|some|a|an|the)\s+)+|\s*\b(?:(?:in|on|within) (?:this|the) "
                               r"(?:image|picture|photo|scene|area|tile)|here)\b|[?.!\s]+$", re.I)


def present_scene(question: str) -> str | None:
    """The kind of scene a yes-or-no question asks for as a thing in the image ('is there a tennis court?' → 'tennis
    court', 'are there any airplanes?' → 'airport'), else None: a dense class ('is there a pool?') is measured."""
    if not _PRESENT_RE.search(question or "") or dense_class_of(question) or _CHANGE_WORDS_RE.search(question):
        return None
    return _scene_kind(question)


def unlearned_object(question: str) -> str | None:
    """The thing a yes-or-no question asks the presence of when it is neither a dense class nor a kind of scene, so
    the model never learned it ('are there solar panels?' → 'solar panels'), else None. Questions about change are
    left to the language model."""
    found = _PRESENT_RE.search(question or "")
    if found is None or dense_class_of(question) or _scene_kind(question) or _CHANGE_WORDS_RE.search(question):
        return None
    rest, previous = (question[:found.start()] + " " + question[found.end():]).strip(), None
    while previous != rest:
        previous, rest = rest, _AROUND_OBJECT_RE.sub("", rest).strip()
    return rest or None


# Kinds of scene a person asks about ("is this an airport?"), first match wins (the narrower words come first), each
# with the [CLS] labels it is true of: an airport is an airplane or a runway scene, a residential area any of four.
_RESIDENTIAL = ("dense residential", "medium residential", "sparse residential", "mobile home park")
_SCENE_KINDS = (
    ("dense residential area", r"dense(?:ly)?[- ](?:residential|populated|built|housing)", ("dense residential",)),
    ("medium residential area", r"medium[- ](?:density[- ])?residential", ("medium residential",)),
    ("sparse residential area", r"sparse(?:ly)?[- ](?:residential|populated|built|housing)|rural residential",
     ("sparse residential",)),
    ("mobile home park", r"mobile[- ]homes?|trailer (?:park|home)s?|caravan (?:park|site)s?", ("mobile home park",)),
    ("residential area", r"residential|houses?|homes?|housing|neighbou?rhoods?|suburb\w*", _RESIDENTIAL),
    ("runway", r"runways?|air ?strips?|landing strips?", ("runway",)),
    ("airport", r"air ?ports?|air ?fields?|aerodromes?|air ?planes?|aircraft|planes?|jets?", ("airplane", "runway")),
    ("baseball diamond", r"baseball\w*|ball ?(?:park|field)s?", ("baseball diamond",)),
    ("golf course", r"golf\w*", ("golf course",)),
    ("tennis court", r"tennis\w*", ("tennis court",)),
    ("stadium", r"stadiums?|sports? (?:ground|field|centre|center)s?", ()),  # no label (below)
    ("farmland", r"farm\w*|agricultur\w*|crop ?lands?|crops?|fields?|arable", ("agricultural",)),
    ("beach", r"beach(?:es)?", ("beach",)),
    ("coast", r"coast\w*|shore\w*|seaside|waterfront", ("beach", "harbor")),  # a harbour is on the coast too
    ("commercial area", r"commercial|downtown|city cent(?:re|er)s?|offices?|business district", ("buildings",)),
    ("shrubland", r"chaparral|shrub\w*|scrub\w*|bush\w*", ("chaparral",)),
    ("forest", r"forest\w*|woods?|wooded|woodlands?", ("forest",)),
    ("harbor", r"harbou?rs?|ports?|marinas?|docks?|piers?", ("harbor",)),
    ("intersection", r"intersections?|crossroads?|junctions?|crossings?", ("intersection",)),
    ("overpass", r"overpass\w*|interchanges?|flyovers?|bridges?", ("overpass",)),
    ("highway", r"highways?|freeways?|motorways?|expressways?|interstates?", ("freeway", "overpass")),
    ("road", r"roads?|streets?", ("freeway", "intersection", "overpass")),
    ("parking lot", r"parking\w*|car ?parks?", ("parking lot",)),
    ("river", r"rivers?|streams?|creeks?|canals?", ("river",)),
    ("storage tanks", r"storage|tanks?|oil (?:depot|terminal|farm)s?|tank farms?|refiner\w*", ("storage tanks",)),
    ("bare land", r"bare|barren|deserts?", ("bare land",)),
    ("water", r"water|lakes?|ponds?|reservoirs?|sea|ocean", ("water", "river", "harbor")),
    ("rural area", r"rural|country ?side|wild\w*|natural", ("agricultural", "chaparral", "forest", "sparse residential",
                                                          "river")),
    ("urban area", r"urban|city|town|built[- ]?up", ("buildings", "dense residential", "medium residential",
                                                       "mobile home park", "parking lot", "intersection", "freeway",
                                                       "overpass", "storage tanks", "tennis court")),
    # kinds of scene people name that no label here is (no labelled scene of them was held to learn from): the
    # answer says so and what the scene looks like instead of a yes or no
    ("grassland", r"grass\w*|meadows?|pastures?|prairies?|savann?ah?s?", ()),
    ("industrial area", r"industr\w*|factor(?:y|ies)|warehouses?|power (?:plant|station)s?", ()),
    ("wetland", r"wetlands?|marsh\w*|swamps?", ()),
    ("mountain", r"mountain\w*|hills?|hilly", ()),
    ("snow", r"snow\w*|glaciers?|ice", ()),
    ("railway station", r"rail\w*|train stations?", ()),
    ("park", r"parks?|playgrounds?|gardens?", ()),
    ("school", r"schools?|campus(?:es)?|universit(?:y|ies)", ()),
)
_SCENE_KIND_RE = [(kind, re.compile(rf"\b(?:{words})\b", re.I), labels) for kind, words, labels in _SCENE_KINDS]
SCENE_KIND_LABELS = {kind: labels for kind, _, labels in _SCENE_KINDS}
# How a person says each [CLS] label in a sentence.
SCENE_PHRASES = {
    "agricultural": "farmland", "airplane": "an airport with parked aircraft", "baseball diamond": "a baseball diamond",
    "beach": "a beach", "buildings": "a commercial area of large buildings", "chaparral": "chaparral (shrubland)",
    "dense residential": "a dense residential area", "forest": "a forest", "freeway": "a freeway",
    "golf course": "a golf course", "harbor": "a harbor", "intersection": "a road intersection",
    "medium residential": "a medium-density residential area", "mobile home park": "a mobile home park",
    "overpass": "an overpass", "parking lot": "a parking lot", "river": "a river", "runway": "an airport runway",
    "sparse residential": "a sparse residential area", "storage tanks": "storage tanks",
    "tennis court": "a tennis court", "bare land": "bare land", "water": "open water",
}
# "is this an airport?", "is the area forested?", "does this image look like farmland?": what the scene is
_IDENTITY_RE = re.compile(r"^\s*(is|isn'?t|is not)\s+(this|it|that|the (image|picture|photo|scene|area|place|region|"
                          r"tile|view))\b|^\s*(does|do)\s+(this|it|the (image|picture|photo|scene|area|place))\s*"
                          r"(\w+\s+)?(look like|depict|show)\b|^\s*(are we|am i) (looking at|over)\b",
                          re.I)


def _scene_kind(text: str) -> str | None:
    hits = [(i, kind) for i, (kind, rx, _) in enumerate(_SCENE_KIND_RE) if rx.search(text)]
    return min(hits)[1] if hits else None


def asked_scene(question: str) -> str | None:
    """The kind of scene a yes-or-no question asks whether the image is ('is this an airport?' → 'airport', 'is the
    area forested?' → 'forest'), else None; 'does it contain trees?' asks a dense class's presence, not this. An
    either-or question asks two ('is this urban or rural?' → 'urban area or rural area')."""
    if not _IDENTITY_RE.search(question or ""):
        return None
    first, _, second = question.partition(" or ")
    kinds = [k for k in dict.fromkeys((_scene_kind(first), _scene_kind(second))) if k is not None]
    return " or ".join(kinds) if len(kinds) == 2 else _scene_kind(question)


def scene_verdict(kind: str, label: str, inside: bool = False) -> str:
    """The answer to 'is this a <kind>?' when [CLS] reads the scene as label: 'yes: a forest', 'no: it looks like a
    golf course', or for a kind no label is, 'cannot say: the model knows no grassland scenes; it looks like …'. To
    'is this urban or rural?' the kind that is true: 'urban area: a dense residential area'. Asked as a thing in the
    image (inside: 'is there a tennis court?'), a scene of another kind may still hold one: 'probably not'."""
    said = SCENE_PHRASES.get(label, label)
    if " or " in kind:
        true = [k for k in kind.split(" or ") if label in SCENE_KIND_LABELS[k]]
        return f"{true[0]}: {said}" if true else f"neither: it looks like {said}"
    if not SCENE_KIND_LABELS[kind]:
        return f"cannot say: the model knows no {kind} scenes; it looks like {said}"
    if label in SCENE_KIND_LABELS[kind]:
        return f"yes: it looks like {said}" if inside else f"yes: {said}"
    if inside:
        return f"probably not: it looks like {said} (the model knows {kind} scenes, not one inside another scene)"
    return f"no: it looks like {said}"


# "which of these is it: forest, river or beach?", "classify it as one of: farmland, residential, parking lot",
# "is this a beach, a harbor or a parking lot?": the options a scene question lists (after a colon, "one of",
# "among" or "between", else the whole question when it says "or")
_OPTIONS_LEAD_RE = re.compile(r":|\bone of\b|\bamong\b|\bbetween\b", re.I)
_OPTIONS_SPLIT_RE = re.compile(r",|;|/|\bor\b|\band\b", re.I)
OPTION_MAX_WORDS = 4  # a listed option is a short phrase; a longer piece is the question's own words


@dataclass(frozen=True)
class SceneOption:
    word: str  # as the question says it ("farmland", "parking lot")
    labels: tuple[str, ...]  # the [CLS] labels it covers (none: a kind of scene no label is)


def scene_options(question: str, labels: tuple[str, ...] = SCENE_LABELS) -> tuple[SceneOption, ...]:
    """The kinds of scene a question asks to choose among, each with the labels of `labels` it covers; () unless it
    lists at least two. A [CLS] label is an option of its own name; anything else is read as _SCENE_KINDS reads
    it."""
    text = question or ""
    leads = list(_OPTIONS_LEAD_RE.finditer(text))
    if leads:
        text = text[leads[-1].end():]
    elif not re.search(r"\bor\b", text, re.I):
        return ()
    options: dict[str, SceneOption] = {}
    for piece in _OPTIONS_SPLIT_RE.split(text):
        piece = re.sub(r"[?.!]", "", piece).strip()
        if not piece or len(piece.split()) > OPTION_MAX_WORDS:
            continue
        exact = next((lb for lb in labels if re.search(rf"\b{re.escape(lb)}\b", piece, re.I)), None)
        if exact is not None:
            options.setdefault(exact, SceneOption(exact, (exact,)))
            continue
        found = next(((m, kind) for kind, rx, _ in _SCENE_KIND_RE if (m := rx.search(piece))), None)
        if found:  # the first kind in _SCENE_KINDS' order, as _scene_kind reads it, in the question's word
            word, kind = found[0].group(0).lower(), found[1]
            options.setdefault(word, SceneOption(word, tuple(lb for lb in SCENE_KIND_LABELS[kind] if lb in labels)))
    return tuple(options.values()) if len(options) >= 2 else ()


def option_of(label: str, options: tuple[SceneOption, ...]) -> SceneOption:
    """The listed option a chosen label answers: the one named as the label, else the narrowest that covers it."""
    covering = [o for o in options if label in o.labels]
    return next((o for o in covering if o.word == label), min(covering, key=lambda o: len(o.labels)))


def option_answer(label: str, options: tuple[SceneOption, ...], unrestricted: str | None) -> str:
    """A choice among the listed options in the question's own word, the label beside it where it says more
    ('farmland (agricultural)', 'residential (dense residential)'), and what the scene looks like when the model,
    free to name any label, names one no option covers."""
    word = option_of(label, options).word
    text = word if word == label else f"{word} ({label})"
    if unrestricted is not None and not any(unrestricted in o.labels for o in options):
        text += f", of the options given; it looks most like {SCENE_PHRASES.get(unrestricted, unrestricted)}"
    return text


# "are there more houses than trees?", "is the number of buildings equal to the number of roads?", "which covers more,
# water or vegetation?": two classes compared, by their counts where a person counts them (things, or a question
# about their number), else by the area they cover
_COMPARATIVE_RE = re.compile(r"\b(?:(?P<more>more|greater|larger|bigger|higher|outnumbers?)|(?P<less>fewer|less|"
                             r"smaller|lower)|(?P<same>equal|same|as many|as much))\b", re.I)
_COMPARED_RE = re.compile(r"\b(than|as (many|much)|equal|same)\b|^\s*(which|what)\b", re.I)
_WHICH_RE = re.compile(r"^\s*(which|what)\b", re.I)
_NUMBER_RE = re.compile(r"\b(numbers?|how many|as many|fewer|outnumbers?)\b", re.I)
# classes a person compares by count unless asked about area (how the model counts them is the runtime's:
# rsapp.model.counting.counting_method)
COUNTED_THINGS = ("building", "car", "ship")


@dataclass(frozen=True)
class Comparison:
    first: str  # the classes in the order the question names them
    second: str
    relation: str  # ">" (more), "<" (fewer), "=" (as many)
    which: bool  # "which …?": name the class the relation holds for, not yes or no
    by: str  # "count" or "area"


def compared_classes(question: str) -> Comparison | None:
    """The two classes a question compares and how ('are there more houses than trees?' → building > vegetation, by
    area: trees are not counted as things), else None."""
    classes, word = dense_classes_in(question), _COMPARATIVE_RE.search(question or "")
    if len(classes) < 2 or word is None or not _COMPARED_RE.search(question):
        return None
    first, second = classes[:2]
    things = first in COUNTED_THINGS and second in COUNTED_THINGS
    by = "count" if _NUMBER_RE.search(question) or (things and "area" not in question.lower()) else "area"
    return Comparison(first, second, {"more": ">", "less": "<", "same": "="}[word.lastgroup],
                      bool(_WHICH_RE.search(question)), by)


# "what is the dominant land cover?", "what covers most of the area?": the share of every class, largest first
_COMPOSITION_RE = re.compile(r"\b((dominant|main|primary|predominant|prevailing|major|most common) (land[- ]?)?"
                             r"(cover|surface|class)|land[- ]?cover|what covers|(mostly|mainly) (covered|made up)|"
                             r"composition)\b", re.I)


def asks_composition(question: str) -> bool:
    """'what is the dominant land cover?', 'what is the area mostly covered by?'; a question naming a class asks
    for that class instead ('how much land cover is water?')."""
    return bool(_COMPOSITION_RE.search(question or "")) and dense_class_of(question) is None


def measured_question(question: str) -> tuple[str, str | Comparison | None] | None:
    """How a [VQA] question is answered from the heads and the GSD instead of by the language model, which never
    learned these: ("compare", Comparison), ("count" | "cover" | "size" | "where" | "presence", class),
    ("scene", kind of scene asked), ("scene inside", kind of scene asked for as a thing in it), ("composition",
    None), ("gsd", None) or ("unmeasured", None: a length, height, colour or thing the model does not measure or
    never learned, said so); None otherwise. A comparison comes first
    ('is the number of buildings greater than the number of roads?' counts both); a dense class's presence before the
    scene: 'does it contain trees?' asks for vegetation, 'is this a forest?' what the scene is."""
    if (compared := compared_classes(question)) is not None:
        return "compare", compared
    if unmeasured(question) is not None and not asks_gsd(question):  # "how many floors has the building?"
        return "unmeasured", None
    for kind, named in (("count", counted_class), ("cover", covered_class), ("size", sized_class),
                        ("where", located_class), ("presence", present_class), ("scene", asked_scene),
                        ("scene inside", present_scene)):
        if (name := named(question)) is not None:
            return kind, name
    if asks_composition(question):
        return "composition", None
    return ("gsd", None) if asks_gsd(question) else None
