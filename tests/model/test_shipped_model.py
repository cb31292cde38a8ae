"""The shipped v2 checkpoint: strict loading, exact save/load, int8 (the CPU default) ≈ fp32, and what it was trained
to do on real held-out imagery (claims about the trained model are tested on the trained model)."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from rsapp.analyst import Analyst, default_weights
from rsapp.errors import RsappError
from rsapp.model.inference import Request, Runtime
from rsapp.model.vlm import WEIGHTS_FILE, RsappVLM
from tests.conftest import REAL, ROOT, SAMPLES

WEIGHTS = default_weights()
# What the shipped weights were measured to do (README, model card), with a margin: a retrained model that does
# worse fails here. The Las Vegas sample's labels are 26 buildings, 3 roads and 27 trees (property `class`).
VEGAS_MIN_IOU = 0.50  # measured 0.65 against the 26 buildings through the analyst (0.63 before v2d19)
# issue #21's line: measured 22 of 26 through the analyst (int8), counted by the instance head's cores from the
# picture alone (16 when the 650 × 500 image was read with its square chip's black frame): the row-house blocks are
# found one by one (the labels draw each block as one building), small white carport and shed roofs mostly not.
# Counted as mask regions it was 40.
VEGAS_COUNT_TOLERANCE = 0.30
# held-out xBD pair counted by cores: 0.50 int8 with the maps read at two scales (0.59 at one); as mask regions 0.43
# (0.78 at one scale: the averaged mask splits touching houses more often)
XBD_MAX_COUNT_ERR = 0.70
TAIZHOU_MIN_RECALL, TAIZHOU_MAX_FALSE_ALARM = 0.40, 0.05  # measured 0.58, 0.0015
# held-out change pairs through the analyst (native tiles): issue #21's 0.5 m and ~2 m lines; measured LEVIR-CD
# test_1 0.805 and Beijing B 0.589 (0.760 and 0.576 before the map left out road that is no building, 0.73 and 0.57
# before it left out its specks; 0.74 and 0.54 with the first change head alone)
LEVIR_MIN_F1 = 0.70
BEIJING_MIN_F1 = 0.50
LEVIR_ROADLESS_MIN_F1 = 0.78  # the change answer without the new estate's road: measured 0.805 (0.760 with it)
# Dubai held-out land cover through the shipped pixel answers (the dense and mask heads' mean, int8): measured 0.521 /
# 0.440 / 0.885 (one view at 0.5: 0.460 / 0.378 / 0.878; the release before the mask head's own deep blocks: 0.508 /
# 0.410 / 0.860)
DUBAI_MIN_IOU = {"building": 0.50, "road": 0.42, "water": 0.85}
UCM_MIN_TOP1 = 0.80  # measured 19 / 21 on image 70 of each class
UCM_MIN_PRESENCE = 0.80  # RSIVQA's held-out "Does this picture contain trees?" through the analyst: measured 0.87
# "is there any water?" on held-out UC Merced scenes whose class says (every 4th): rivers, harbours, beaches measured
# 15 of 15 yes (0.53 of them before the water refit), and both kinds balanced 0.74 (0.47 before)
WET_MIN_YES, WATER_MIN_BALANCED = 0.80, 0.62
WET_ALL_MIN_YES = 0.93  # all 60 held-out wet scenes, the scene head read where the mask draws too little: 58 / 60


@pytest.fixture(scope="module")
def runtime():
    return Runtime.load(WEIGHTS)  # the default path: int8 on CPU (rsapp/model/quant.py)


@pytest.fixture(scope="module")
def fp32_runtime():
    return Runtime.load(WEIGHTS, quant="fp32")


def test_model_info_names_the_pretrained_parts():
    r = subprocess.run([sys.executable, "-m", "rsapp", "model-info", "--json"], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["vision"]["params"] >= 4_000_000 and "EfficientNet" in info["vision"]["pretrained"]
    assert info["lm"]["params"] >= 100_000_000 and "SmolLM2" in info["lm"]["pretrained"]
    assert info["experts"] == 3 and set(info["cs_hlora"]["tiers"]) == {"object", "structure", "semantic"}
    assert info["quant"] == "int8"
    assert info["cls_labels"][-2:] == ["bare land", "water"] and len(info["cls_labels"]) == 23  # the README's set
    # issue #20: what the project ships, quantized, at most a 3.5th of its fp32 bytes; the whole model far less
    assert 0 < info["shipped_bytes_quantized"] * 3.5 <= info["shipped_bytes_fp32"]
    assert 0 < info["bytes_quantized"] * 3.5 <= info["bytes_fp32"]


def test_checkpoint_loads_strictly_and_saves_bit_identically(tmp_path):
    state = load_file(str(WEIGHTS / WEIGHTS_FILE))
    model = RsappVLM.load(WEIGHTS)
    model.save(tmp_path)
    again = load_file(str(tmp_path / WEIGHTS_FILE))
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)
    (tmp_path / "config.json").write_text((WEIGHTS / "config.json").read_text())
    missing = dict(state)
    missing.pop(next(iter(missing)))
    save_file(missing, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(RsappError, match="1 missing"):
        RsappVLM.load(tmp_path)
    save_file(state | {"vision.extra": torch.zeros(1)}, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(RsappError, match="1 unexpected"):
        RsappVLM.load(tmp_path)


def _scene(name: str) -> np.ndarray:
    from PIL import Image

    folder = REAL / "scenes" / "ucmerced" / "images" / name
    return np.asarray(Image.open(sorted(folder.iterdir())[70]).convert("RGB"))  # image 70: held out


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_int8_default_names_the_same_scenes_as_fp32(runtime, fp32_runtime):
    """Weight-only int8 (the CPU default; SmolLM2's base in its own 4-bit blocks) agrees with fp32 on labels
    (held-out UC Merced over 60 scenes: cls 0.917 vs 0.92, VQA 0.817 vs 0.82, BLEU-4 0.405 vs 0.42)."""
    from rsapp.tasks.vocabulary import SCENE_CLASSES

    assert runtime.quant == "int8" and fp32_runtime.quant == "fp32"
    for scene in ("forest", "harbor", "airplane", "beach", "freeway"):
        req = Request("[CLS]", "", 0, "text", labels=SCENE_CLASSES)
        assert runtime.generate([_scene(scene)], req).text == fp32_runtime.generate([_scene(scene)], req).text


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_greedy_decoding_screen_picks_the_int8_heads_own_token(runtime, monkeypatch):
    """The int4 screen of the output head and exact scoring of its best 16 (PackedLM.greedy) choose the token the
    full int8 head's logits choose, at every step of captions and answers on held-out scenes."""
    lm = runtime.model.lm
    screened, steps = lm.greedy, []

    def both(hidden):
        token = screened(hidden)
        steps.append((token, int(lm.logits(hidden).argmax())))
        return token

    monkeypatch.setattr(lm, "greedy", both)
    monkeypatch.setattr(runtime.config, "captions", {})  # captions written greedily, as for a class without a bank
    for scene in ("airplane", "beach", "forest", "harbor", "freeway", "golfcourse"):
        runtime.generate([_scene(scene)], Request("[CAP]", "", 0, "text"))
        runtime.generate([_scene(scene)], Request("[VQA]", "what is in this image?", 0, "text"))
    assert len(steps) >= 60 and all(a == b for a, b in steps), [s for s in steps if s[0] != s[1]]


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_free_answers_read_the_image(runtime):
    req = Request("[CAP]", "", 0, "text")
    assert "airplane" in runtime.generate([_scene("airplane")], req).text.lower()
    assert "beach" in runtime.generate([_scene("beach")], req).text.lower()


@pytest.fixture(scope="module")
def analyst(runtime):
    return Analyst(runtime=runtime)


def ask_sample(analyst, *questions: str) -> list:
    """The analyst's answers to each question on the bundled Las Vegas street, in order."""
    from rsapp.geo import Scene

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        return [analyst.ask([scene], q) for q in questions]


def _chip_truth(answer, geojson, crs) -> np.ndarray:
    import geopandas as gpd
    from rasterio.features import rasterize

    shapes = gpd.read_file(geojson).to_crs(crs).geometry
    return rasterize(((g, 1) for g in shapes), out_shape=answer.mask.shape, transform=answer.transform,
                     dtype="uint8") > 0


def test_bundled_vegas_scene_buildings_are_found_and_counted(analyst):
    """The scene every newcomer sees first (never trained on): 26 labelled buildings (row houses)."""
    from rsapp.geo import Scene
    from rsapp.ui.app import answer_markdown

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        seg = analyst.ask([scene], "[SEG] segment the buildings")
        count = analyst.ask([scene], "[VQA] how many houses are there?")
        crs = scene.crs
    truth = _chip_truth(seg, SAMPLES / "vegas_buildings.geojson", crs)
    pred = seg.mask > 0
    iou = (pred & truth).sum() / (pred | truth).sum()
    assert iou >= VEGAS_MIN_IOU, iou
    assert seg.raw_text.count("building") >= 1 and "%" in seg.text and not seg.warnings
    assert count.text.isdigit() and abs(int(count.text) - 26) <= VEGAS_COUNT_TOLERANCE * 26, count.text
    assert not seg.language_model and not count.language_model  # the heads' maps answered, and the footer says so
    assert "answered by the vision heads" in answer_markdown(seg, None)
    # the mask's answer says the count the question got, and its layer counts the same
    assert seg.counts == {"building": int(count.text)} and f"building: {count.text} found, " in seg.text
    # the houses counted are boxed on the map, each on the building mask (a count drew nothing before)
    assert len(count.boxes_px) == int(count.text) and set(count.box_labels) == {"building"}
    assert all(pred[int(y0):int(y1) + 1, int(x0):int(x1) + 1].any() for x0, y0, x1, y1 in count.boxes_px)


def test_a_seg_request_listing_two_classes_draws_both_on_one_map(analyst):
    """'segment the roads and buildings' drew the roads alone (the first class named); now one map of both, the
    houses as the buildings' own answer draws them and the street beside them, each class counted."""
    from rsapp.geo import Scene

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        both = analyst.ask([scene], "[SEG] segment the roads and buildings")
        houses = analyst.ask([scene], "[SEG] segment the buildings")
        roads = analyst.ask([scene], "[SEG] segment the roads")
        crs = scene.crs
    assert both.mask_labels == ["others", "road", "building"] and not both.warnings
    truth = _chip_truth(both, SAMPLES / "vegas_buildings.geojson", crs)
    pred = both.mask == 2
    assert (pred & truth).sum() / (pred | truth).sum() >= VEGAS_MIN_IOU
    street = both.mask == 1
    assert street.mean() > 0.1 and (street & (roads.mask > 0)).sum() > 0.8 * street.sum()
    assert both.counts == {**roads.counts, **houses.counts}
    assert both.text.startswith(f"road: {roads.counts['road']} found, ") and "; building: " in both.text


def test_the_bundled_vegas_street_is_described_as_houses_or_a_residential_area(analyst):
    """Issue #21's line for the scene every newcomer sees first: its caption (a caption of the class [CLS] names,
    chosen by the language model) mentions houses or a residential area."""
    import re

    from rsapp.geo import Scene

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        caption = analyst.ask([scene], "[CAP] describe the image")
        named = analyst.ask([scene], "[CLS] what kind of scene is this?")
    assert re.search(r"\b(?:houses?|residential)\b", caption.text, re.I) and caption.language_model, caption.text
    assert caption.text in analyst.runtime.config.captions[named.text], (named.text, caption.text)


def test_bundled_vegas_scene_roads_are_counted_as_streets_not_fragments(analyst):
    """Its 3 labelled roads: counted as mask regions (trees and cars break the mask) they were 33."""
    from rsapp.geo import Scene

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        count = analyst.ask([scene], "[VQA] how many roads are there?")
        seg = analyst.ask([scene], "[SEG] segment the roads")
    assert count.text.isdigit() and 2 <= int(count.text) <= 5, count.text
    assert seg.counts == {"road": int(count.text)} and f"road: {count.text} found, " in seg.text


def test_a_count_says_so_where_the_model_counts_connected_regions_of_a_mask(analyst):
    """The release splits buildings by their cores and bridges roads into streets; trees and cars it counts as
    connected regions of their masks, so two parked cars touching are one: their counts say what was counted, and
    the count of a class labelled on few pixels says it is unreliable."""
    from rsapp.geo import Scene

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        trees = analyst.ask([scene], "[VQA] how many trees are there?")
        cars = analyst.ask([scene], "[VQA] how many cars are there?")
        houses = analyst.ask([scene], "[VQA] how many houses are there?")
    assert analyst.runtime.counted_by("building") == "cores" and analyst.runtime.counted_by("road") == "network"
    assert trees.text.endswith(" (touching ones count as one)") and " of vegetation" in trees.text, trees.text
    n = int(cars.text.split()[0])  # the release finds few cars at 0.3 m: said as a number of cars either way
    assert cars.text.startswith(f"{n} car") and cars.text.endswith(" (touching ones count as one)") == (n > 1)
    assert houses.text.isdigit() and not houses.warnings and not trees.warnings
    # cars were labelled on one 5–9 cm panel: the answer says it is unreliable (the street's cars are not found)
    assert any("car on 1,185 labelled pixels" in w and "unreliable" in w for w in cars.warnings), cars.warnings


def test_the_bundled_vegas_street_holds_no_water_in_its_shadows(analyst):
    """A dry street of row houses: the shadows beside the roofs are dark ground, not water (a mask head taught pasted
    ponds said "yes: 3.5 % of the area is water" here, its shadow strips; the release says 0.2 %)."""
    from rsapp.geo import Scene

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        answer = analyst.ask([scene], "[VQA] is there any water?")
        bodies = analyst.ask([scene], "[VQA] how many water bodies are there?")
    assert answer.text.startswith("no"), answer.text
    # counted on the map cells wholly of the picture: the cells along its letterboxed side, half frame, had made
    # "4 water bodies" of a mask holding 7 m²
    assert bodies.text.startswith("0 water"), bodies.text


def test_where_the_buildings_are_is_where_the_labels_put_them(analyst):
    """The language model answered 'dense residential' to where-questions; the mask's ninths say where, and on the
    Las Vegas sample they are the ninths its 26 labelled buildings lie in (both sides of the boulevard)."""
    from rsapp.geo import Scene, make_chip
    from rsapp.tasks.mask_sentences import where_in_image

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        where = analyst.ask([scene], "[VQA] where are the buildings?")
        largest = analyst.ask([scene], "[VQA] where is the largest building?")
        size = analyst.ask([scene], "[VQA] how big is the largest building?")
        valid, crs = make_chip(scene, None, where.chip_size).valid, scene.crs
    truth = _chip_truth(where, SAMPLES / "vegas_buildings.geojson", crs)
    assert where.text == where_in_image(truth, "building", valid)
    assert "left side" in where.text and "right side" in where.text and where.mask is not None
    assert set(where.counts) == {"building"}  # its layer says the model's count (it said the mask's 28 polygons)
    assert largest.boxes_px == size.boxes_px and largest.text.startswith("the largest building: the ")


# "what is the dominant land cover?" on 256 px crops of the held-out Dubai tiles (every crop whose most-covering class
# is not bare land, every 5th that is): measured 41 / 44 (the language model's answers: 0.86 on all 133 crops, naming
# only bare land or water; on the Las Vegas sample "water")
DUBAI_MIN_DOMINANT = 0.80


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_the_dominant_land_cover_is_the_class_covering_most_of_the_area(analyst, tmp_path):
    """What covers most of the area, read off the all-classes mask (the one an unnamed [SEG] draws), largest share
    first; the labelled crops' most-covering class, and the Las Vegas sample's buildings."""
    from PIL import Image

    from rsapp.data.real_sets import IGNORE, NONE_OF_KNOWN, split
    from rsapp.geo import Scene
    from rsapp.tasks.vocabulary import DENSE_CLASSES

    right, n, bare = 0, 0, 0
    for r in (r for r in split(held_out=True) if r.set == "dubai"):
        for y in range(0, r.dense.shape[0] - 255, 256):
            for x in range(0, r.dense.shape[1] - 255, 256):
                labels = r.dense[y:y + 256, x:x + 256]
                known = labels[(labels != IGNORE) & (labels != NONE_OF_KNOWN)]
                if known.size < labels.size / 2:
                    continue
                truth = DENSE_CLASSES[int(np.bincount(known).argmax())]
                if truth == "bare land" and (bare := bare + 1) % 5:
                    continue
                Image.fromarray(r.rgb[y:y + 256, x:x + 256]).save(tmp_path / "crop.png")
                with Scene(tmp_path / "crop.png") as scene:
                    answer = analyst.ask([scene], "[VQA] what is the dominant land cover?")
                right += answer.text.split(" (")[0] in (f"mostly {truth}", f"{truth} covers most")
                n += 1
    assert n == 44 and right >= DUBAI_MIN_DOMINANT * n, right
    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        vegas = analyst.ask([scene], "what covers most of the area?")
    assert vegas.task == "[VQA]" and vegas.text.startswith("building covers most (") and ", then " in vegas.text
    assert len(set(np.unique(vegas.mask)) - {0}) >= 3  # the map draws every class found


def test_how_much_of_the_area_a_class_covers_is_read_off_its_mask(analyst):
    """The language model never learned cover questions (it answered "4 buildings were built"): the share is the
    class mask's, the one [SEG] draws, and the answer draws it too."""
    from rsapp.geo import Scene

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        share = analyst.ask([scene], "[VQA] how much of the area is covered by buildings?")
        seg = analyst.ask([scene], "[SEG] segment the buildings")
    percent = seg.text.split(", ")[1].split(" %")[0]  # "building: 22 found, 39.6 % of the area, ..."
    assert share.text.startswith(f"{percent} % of the area is building"), (share.text, seg.text)
    assert 30 < float(percent) < 50 and np.array_equal(share.mask, seg.mask)
    assert share.counts == seg.counts  # its map layer counts the buildings [SEG] counted, not the mask's polygons


def test_a_question_comparing_two_classes_agrees_with_asking_for_each(analyst):
    """The language model never learned comparisons (it answered "yes: 34.7 % of the area is building" to "are there
    more houses than trees?"): areas are compared on the all-classes map the dominant-cover answer draws, things by
    the counts a "how many" gets; the Las Vegas street holds more houses than trees, and more houses than streets."""
    import re

    more, fewer, cover, number, houses, roads = ask_sample(
        analyst, "[VQA] are there more houses than trees?", "[VQA] are there more trees than houses?",
        "[VQA] what is the dominant land cover?", "[VQA] is the number of buildings greater than the number of roads?",
        "[VQA] how many houses are there?", "[VQA] how many roads are there?")
    building = re.search(r"building covers most \((\d+\.\d) %", cover.text).group(1)  # its share, largest first
    vegetation = re.search(r"vegetation (\d+\.\d) %", cover.text).group(1)
    assert more.text == f"yes: building covers {building} % of the area, vegetation {vegetation} %", more.text
    assert fewer.text.startswith("no: vegetation covers ") and np.array_equal(more.mask, cover.mask)
    assert not any("ship" in w for w in more.warnings + cover.warnings)  # stray "ship" pixels are not the answer
    assert number.text == f"yes: {houses.text} buildings against {roads.text} road pieces", (number.text, roads.text)


def test_a_question_about_the_resolution_is_answered_with_the_gsd(analyst, tmp_path):
    """The language model never learned it (it answered "many buildings were built"): the file's GSD when it has a
    georeference, SSE-U's estimate from the pixels, with its uncertainty, when it has none."""
    from PIL import Image

    from rsapp.geo import Scene

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        stored = analyst.ask([scene], "[VQA] what is the resolution of this image?")
        pixels = scene.ds.read()
    assert stored.text == "0.27 m a pixel (from the file)", stored.text
    Image.fromarray(np.moveaxis(pixels, 0, -1)).save(tmp_path / "vegas.png")  # no georeference
    with Scene(tmp_path / "vegas.png") as scene:
        guessed = analyst.ask([scene], "what is the resolution of this image?")
    assert guessed.text.startswith("about ") and "estimated from the pixels" in guessed.text, guessed.text
    assert abs(np.log10(guessed.gsd_m / 0.27)) < 0.3 and f"{guessed.gsd_m:.2g} m a pixel" in guessed.text


def test_a_length_height_colour_or_unlearned_question_is_not_made_up(analyst):
    """Asked how wide the street is or how tall the houses are, the language model said "4 buildings were built", and
    the roofs' colour "medium residential"; the analyst says what it cannot measure, and draws nothing. Questions
    about one image the language model never learned ("what season is it?": "beach"; "how many storage tanks?": "1")
    are said so too; RSIVQA's location questions, which it learned, it still answers."""
    from rsapp.geo import Scene

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        answers = [analyst.ask([scene], q) for q in ("how wide is the street?", "[VQA] how tall are the buildings?",
                                                     "what colour are the roofs?", "[VQA] how old are the buildings?",
                                                     "what season is it?", "[VQA] how many storage tanks are there?")]
        density = analyst.ask([scene], "[VQA] what is the building density?")
        cover = analyst.ask([scene], "[VQA] how much of the area is covered by buildings?")
        located = analyst.ask([scene], "[VQA] what is the location of the intersection in this picture?")
        scene_kind = analyst.ask([scene], "what is this?")
    assert [a.text.split(":")[0] for a in answers] == ["cannot say"] * 6, [a.text for a in answers]
    assert all(a.mask is None and not a.boxes_px and a.task == "[VQA]" for a in answers)
    assert "not learned to answer this about one image" in answers[4].text
    assert answers[5].text.startswith("cannot say: the model counts only buildings"), answers[5].text
    assert density.text == cover.text and " % of the area is building (" in density.text and density.mask is not None
    assert not located.text.startswith("cannot say"), located.text
    assert scene_kind.task == "[CLS]" and scene_kind.text == "dense residential", scene_kind.text


def test_a_thing_asked_for_is_judged_by_the_scene_or_said_unlearned(analyst):
    """Paraphrased, the language model said "yes" to airplanes, a tennis court, a bridge and solar panels on the Las
    Vegas street (and to 85 of 100 held-out UC Merced scenes asked "are there any airplanes?"). A kind of scene asked
    for as a thing is read by the scene head; a thing the model never learned is said so; RSIVQA's own question on a
    held-out airport still gets its yes."""
    from rsapp.geo import Scene

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        scene_kinds = [analyst.ask([scene], q) for q in ("are there any airplanes?", "[VQA] is there a tennis court?",
                                                         "is there a bridge?")]
        panels = analyst.ask([scene], "are there solar panels?")
    assert [a.text.split(":")[0] for a in scene_kinds] == ["probably not"] * 3, [a.text for a in scene_kinds]
    assert all("residential" in a.text for a in scene_kinds), [a.text for a in scene_kinds]
    assert panels.text.startswith("cannot say: the model has not learned to find solar panels"), panels.text
    assert panels.mask is None and not panels.boxes_px
    if REAL.is_dir():
        with Scene(REAL / "scenes" / "ucmerced" / "images" / "airplane" / "airplane65.jpg") as scene:
            airport = analyst.ask([scene], "[VQA] does this picture contain an airplane?")
        assert airport.text.startswith("yes: it looks like an airport"), airport.text


def test_a_seg_request_for_a_thing_the_model_never_learned_says_so_beside_its_map(analyst):
    """'segment the solar panels' draws every class the model knows (it has no other answer), and says that is what
    it drew; 'segment the image' asks for exactly that and gets no such note."""
    from rsapp.geo import Scene

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        panels = analyst.ask([scene], "[SEG] segment the solar panels")
        everything = analyst.ask([scene], "[SEG] segment the image")
    assert panels.mask is not None and panels.text == everything.text
    assert any(w.startswith("the model has not learned to draw solar panels: drawn is every class") for w in
               panels.warnings), panels.warnings
    assert not any("not learned" in w for w in everything.warnings), everything.warnings


def test_one_instance_is_picked_by_its_distance_to_another_class(analyst):
    """Issue #21's "the tree nearest the road": [VG] had boxed all 37 patches of vegetation. On the Las Vegas street
    one tree, touching the road mask; the building farthest from the road another than the nearest; measured from
    water the street does not hold, every building, and the answer says why."""
    from rsapp.geo import Scene

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        tree = analyst.ask([scene], "[VG] the tree nearest the road")
        near = analyst.ask([scene], "[VG] the building nearest the road")
        far = analyst.ask([scene], "[VG] the building farthest from the road")
        water = analyst.ask([scene], "[VG] the building nearest the water")
        road = analyst.ask([scene], "[SEG] segment the roads")
    assert len(tree.boxes_px) == len(near.boxes_px) == len(far.boxes_px) == 1
    assert near.boxes_px != far.boxes_px
    x0, y0, x1, y1 = (int(round(v)) for v in tree.boxes_px[0])
    assert road.mask[max(y0 - 3, 0):y1 + 3, max(x0 - 3, 0):x1 + 3].any()  # the tree's box meets the road
    assert len(water.boxes_px) > 1 and any("no water found to measure from" in w for w in water.warnings)


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_a_referring_phrase_boxes_the_one_thing_it_names(analyst):
    """DIOR-RSVG's "A green and brown golf field" (evaluation only, as `evaluate --real` asks it) names one thing: one
    box, on the golf course (measured IoU 0.62; [VG] had boxed all 86 vegetation regions, the first a tree row at the
    image's edge). The bare phrase, without a token, is grounded the same way; asked in the plural, every region is
    boxed."""
    from rsapp.data.real_sets import split
    from rsapp.evaluate.real import asked_examples, asking

    ask = asking(analyst)
    dior = next(r for r in split(held_out=True) if r.set == "dior-rsvg")
    scores = asked_examples(ask, [dior])["dior-rsvg"]
    assert scores["n_boxes"] == 1 and scores["vg_iou"] >= 0.5
    bare = ask([dior.rgb], dior.referred[0])
    assert bare.task == "[VG]" and len(bare.boxes_px) == 1
    assert len(ask([dior.rgb], "[VG] the green fields").boxes_px) > 1


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_phrases_made_from_held_out_footprints_are_asked_and_the_xbd_largest_house_is_found(analyst):
    """`evaluate --real`'s [VG] phrases made from the held-out footprint and box labels (referring_phrases), asked as
    the CLI asks: on the held-out xBD image after the storm, "the largest building" boxes the labelled largest house
    (measured IoU 0.62), and the image's two phrases score 1 of 2 (the building nearest the centre is missed: the
    answer boxes its neighbour)."""
    from rsapp.data.real_sets import split
    from rsapp.evaluate.real import asking, image_box, referred_scores, referring_phrases
    from rsapp.tasks.boxes import iou

    post = next(r for r in split(held_out=True) if r.set == "xbd-buildings" and "post" in r.name)
    asked = []

    def ask(images, prompt):
        asked.append(prompt)
        return asking(analyst)(images, prompt)

    phrases = dict(referring_phrases(post))
    assert phrases["the largest building"] == (778.0, 711.0, 913.0, 846.0)
    assert referred_scores(ask, [post])["xbd-buildings"] == {"vg_acc50": 0.5, "vg_phrases": 2}
    assert sorted(asked) == sorted(f"[VG] {p}" for p in phrases)
    largest = asking(analyst)([post.rgb], "[VG] the largest building")
    assert iou(image_box(largest, largest.boxes_px[0]), phrases["the largest building"]) >= 0.5


def test_how_big_an_instance_is_is_its_area_on_the_ground(analyst):
    """'how big is the largest building?' (the language model answered "5 buildings"): the area of the instance
    [VG] picks, boxed on the map; on the Las Vegas sample about the size of its largest labelled row-house block
    (1,026 m²)."""
    from rsapp.geo import Scene

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        size = analyst.ask([scene], "[VQA] how big is the largest building?")
        largest = analyst.ask([scene], "[VG] the largest building")
    assert size.text.startswith("about ") and "m² (the largest building" in size.text, size.text
    assert size.boxes_px == largest.boxes_px and len(size.boxes_px) == 1
    area = float(size.text.split()[1].replace(",", ""))
    assert 1026 / 2 < area < 1026 * 2, size.text


def test_a_nodata_collar_does_not_change_a_pixel_answer(analyst, tmp_path):
    """The same pixels inside a collar of no-data (as a reprojected scene has): the answer reads the picture, not
    the black around it, so it finds and counts the same buildings."""
    import rasterio
    from rasterio.transform import Affine

    from rsapp.geo import Scene

    with rasterio.open(SAMPLES / "vegas_buildings_0.3m.tif") as src:
        pixels, profile, transform = src.read(), src.profile, src.transform
    collar = 100
    framed = np.zeros((3, pixels.shape[1] + 2 * collar, pixels.shape[2] + 2 * collar), np.uint8)
    framed[:, collar:-collar, collar:-collar] = pixels
    inside = np.zeros(framed.shape[1:], np.uint8)
    inside[collar:-collar, collar:-collar] = 255
    profile.update(height=framed.shape[1], width=framed.shape[2],
                   transform=transform * Affine.translation(-collar, -collar))
    with rasterio.open(tmp_path / "collared.tif", "w", **profile) as dst:
        dst.write(framed)
        dst.write_mask(inside)
    answers = []
    for path in (SAMPLES / "vegas_buildings_0.3m.tif", tmp_path / "collared.tif"):
        with Scene(path) as scene:
            answers.append(analyst.ask([scene], "[SEG] segment the buildings"))
    plain, collared = answers
    masks = []
    for a in answers:  # each mask on the sample's own pixel grid
        col, row = ~transform * (a.transform.c, a.transform.f)
        c0, r0 = -int(round(col)), -int(round(row))
        masks.append(a.mask[r0:r0 + pixels.shape[1], c0:c0 + pixels.shape[2]] > 0)
    assert masks[1].sum() > 0.2 * masks[1].size and not (collared.mask > 0).sum() > masks[1].sum()
    assert (masks[0] & masks[1]).sum() / (masks[0] | masks[1]).sum() > 0.97
    assert collared.counts == plain.counts, (plain.counts, collared.counts)


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_instance_cores_box_held_out_buildings_better_than_mask_regions(runtime, monkeypatch):
    """The instance head: on the held-out xBD Harvey pair (two dates of ~37 footprints each, never trained) the boxes
    of the buildings its cores split match more footprints than connected regions of the mask do, and its count
    stays within XBD_MAX_COUNT_ERR. (At one scale the regions also counted worse, 0.78 against 0.59; with the maps
    read at two scales they count about as well, 0.43 against 0.50.)"""
    from rsapp.evaluate.real import RuntimePredictor, evaluate_real
    from rsapp.model.vision_model import VisionOutput

    cores = evaluate_real(RuntimePredictor(runtime), sets=("xbd-buildings",), progress=False)["xbd-buildings"]
    monkeypatch.setattr(VisionOutput, "core", lambda self, name: None)
    regions = evaluate_real(RuntimePredictor(runtime), sets=("xbd-buildings",), progress=False)["xbd-buildings"]
    assert cores["count_rel_err"] <= XBD_MAX_COUNT_ERR, (cores, regions)
    assert cores["box_f1"] > regions["box_f1"], (cores, regions)


def test_a_land_cover_mask_at_30_m_says_it_is_beyond_training(analyst):
    """The bundled Landsat scene: the heads learned land cover at up to ~8 m, and at 30 m mark forest as water
    (issue #21); the answer says so instead of looking sure."""
    from rsapp.geo import Scene

    with Scene(SAMPLES / "landsat8_224078_20200518_30m.tif") as scene:
        water = analyst.ask([scene], "[SEG] segment the water")
    assert any("30 m" in w and "unreliable" in w for w in water.warnings), water.warnings


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_boats_counted_at_0_3_m_say_the_model_never_saw_ships_that_fine(analyst):
    """A held-out UC Merced harbour (0.3 m): the model learned ships from Sentinel-2 at 10 m and counts none of its
    dozens of boats (RSIVQA: 44); the answer says so instead of looking sure. Its houses get no such warning."""
    from rsapp.geo import Scene

    images = REAL / "scenes" / "ucmerced" / "images"
    with Scene(images / "harbor" / "harbor61.jpg") as scene:
        boats = analyst.ask([scene], "[VQA] how many boats are there?")
    assert boats.gsd_m < 1 and any("ship" in w and "at least ~10 m" in w for w in boats.warnings), boats.warnings
    with Scene(images / "mediumresidential" / "mediumresidential63.jpg") as scene:
        houses = analyst.ask([scene], "[VQA] how many houses are there?")
    assert int(houses.text) > 0 and not any("unreliable" in w for w in houses.warnings), houses.warnings


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_land_cover_is_drawn_from_turned_maps_at_the_thresholds_chosen_on_train(runtime, monkeypatch):
    """Dubai's held-out tiles (~1 m, never trained): a pixel answer averaged over four quarter turns and cut at the
    per-class thresholds chosen on the train splits reaches building / road / water IoU it did not reach with one
    view cut at 0.5."""
    from rsapp.evaluate.real import RuntimePredictor, evaluate_real

    vision = runtime.config.vision
    assert vision.dense_tta == 4 and vision.threshold("building") < 0.5
    shipped = evaluate_real(RuntimePredictor(runtime), sets=("dubai",), progress=False)["dubai"]["seg_iou"]
    monkeypatch.setattr(vision, "dense_tta", 1)
    monkeypatch.setattr(vision, "dense_thresholds", {})
    plain = evaluate_real(RuntimePredictor(runtime), sets=("dubai",), progress=False)["dubai"]["seg_iou"]
    assert shipped["building"] >= DUBAI_MIN_IOU["building"] > plain["building"], (shipped, plain)
    assert shipped["road"] >= DUBAI_MIN_IOU["road"] > plain["road"], (shipped, plain)
    assert shipped["water"] >= DUBAI_MIN_IOU["water"], (shipped, plain)


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_a_batch_tile_reads_two_quarter_turns_and_finds_more_of_the_held_out_roads(analyst, monkeypatch):
    """A batch reads its tiles without the pixel answer's four turns, for speed. Read so, in 512 px tiles, the held-out
    DeepGlobe tile's roads came out at IoU 0.36 in one view; batch_tta's two, a quarter turn apart, give 0.53
    (measured; docs/EXPERIMENTS.md, the look on every chip)."""
    from rasterio.windows import Window

    from rsapp.data.real_sets import DENSE_INDEX, NONE_OF_KNOWN, load_deepglobe
    from rsapp.geo import Scene

    r = next(r for r in load_deepglobe(REAL) if r.held_out)
    labelled = (r.dense < len(DENSE_INDEX)) | (r.dense == NONE_OF_KNOWN)
    truth = r.dense == DENSE_INDEX["road"]
    cfg = analyst.runtime.config.vision
    assert cfg.batch_tta == 2

    def road_iou() -> float:
        inter = union = 0
        with Scene(REAL / "roads" / "deepglobe" / f"{r.name}_sat.jpg") as scene:
            for y in (0, 512):
                for x in (0, 512):  # the tile read as a batch reads its 512 px tiles
                    ans = analyst.ask([scene], "[SEG] segment the roads", window=Window(x, y, 512, 512), turns=False)
                    win = np.s_[y:y + 512, x:x + 512]
                    pred, t = ans.mask[labelled[win]] > 0, truth[win][labelled[win]]
                    inter, union = inter + (pred & t).sum(), union + (pred | t).sum()
        return inter / union

    two = road_iou()
    monkeypatch.setattr(cfg, "batch_tta", 1)
    one = road_iou()
    assert two >= 0.45 and two > one + 0.1, (two, one)


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_levir_pair_change_map_at_native_resolution(analyst, tmp_path):
    """LEVIR-CD test_1 (0.5 m, 1024 px, held out): [CCD] draws its map on the full 1024 px grid, from tiles."""
    from PIL import Image

    from rsapp.geo import Scene

    folder = REAL / "change" / "levir-cd-full-tiles"
    with Scene(folder / "A" / "test_1.png") as a, Scene(folder / "B" / "test_1.png") as b:
        ans = analyst.ask([a, b], "[CCD] what changed?")
    assert ans.mask.shape == (1024, 1024) and ans.is_change
    truth = np.asarray(Image.open(folder / "label" / "test_1.png").convert("L")) > 127
    pred = ans.mask > 0
    f1 = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    assert f1 >= LEVIR_MIN_F1, f1


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_the_change_answer_is_building_change_and_the_new_roads_are_asked_for_apart(analyst):
    """LEVIR-CD test_1 (held out) labels only its 12 new buildings; "what changed?" also drew the new estate's
    cul-de-sac, most of the map's false alarms. The answer is building change ("many buildings were built"): road
    that neither date draws as building is left out, and "[SEG] the new roads" on the pair still draws it."""
    from PIL import Image

    from rsapp.geo import Scene

    folder = REAL / "change" / "levir-cd-full-tiles"
    with Scene(folder / "A" / "test_1.png") as a, Scene(folder / "B" / "test_1.png") as b:
        changed = analyst.ask([a, b], "[CCD] what changed?")
        roads = analyst.ask([a, b], "[SEG] the new roads")
    truth = np.asarray(Image.open(folder / "label" / "test_1.png").convert("L")) > 127
    pred, new_road = changed.mask > 0, roads.mask > 0
    assert changed.text.startswith("many buildings were built (")
    assert 2 * (pred & truth).sum() / (pred.sum() + truth.sum()) >= LEVIR_ROADLESS_MIN_F1
    # the estate's new road, no building: drawn when asked for (1,070 px; 1,652 with the specks kept before)
    assert (new_road & ~truth).sum() > 800
    assert (pred & new_road & ~truth).sum() < 0.1 * (new_road & ~truth).sum()  # and not a building change


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_beijing_pair_change_map_finds_the_new_building(analyst):
    """Beijing B (~1–2 m, 500 px JPEGs, held out): the building that went up between the dates is the change."""
    from PIL import Image

    from rsapp.export import answer_frame
    from rsapp.geo import Scene

    folder = REAL / "change" / "beijing-optical"
    with Scene(folder / "beijing_B_1.jpg") as a, Scene(folder / "beijing_B_2.jpg") as b:
        ans = analyst.ask([a, b], "[CCD] what changed?")
    truth = np.asarray(Image.open(folder / "beijing_B_gt_bin.png").convert("L")) > 127
    pred = ans.mask > 0
    f1 = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    assert f1 >= BEIJING_MIN_F1, f1
    # the sentence counts the map's regions, and the layer (its counts) and the exported file hold the same number
    # (they held 11 polygons for 9 counted: two specks under MIN_INSTANCE_SHARE were drawn and exported)
    assert ans.text.startswith(f"{ans.counts['change']} buildings were built ("), (ans.text, ans.counts)
    assert len(answer_frame(ans)) == ans.counts["change"], (len(answer_frame(ans)), ans.counts)


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_the_change_sentence_follows_the_map_not_the_question(analyst):
    """LEVIR-CD test_1 (held out: 12 labelled changes, every one a new building). Choosing among its sentences, the
    language model answered "were any buildings demolished?" with "many buildings were demolished"; the sentence is
    now written from the change map (its regions, and whether the building probability rose over them), so every
    question gets the same sentence (a yes-or-no question with its yes or no), and the dates read the other way round
    say demolished. Asked how many, the
    answer gives the number of regions instead of "many" (it said "many"); with no token, "how many new houses?" is
    asked of the same map, and "has the vegetation changed?" of vegetation's (it got the buildings' sentence)."""
    from rsapp.geo import Scene

    folder = REAL / "change" / "levir-cd-full-tiles"
    with Scene(folder / "A" / "test_1.png") as a, Scene(folder / "B" / "test_1.png") as b:
        asked = [analyst.ask([a, b], q).text for q in ("[CCD] what changed?", "[CCD] were any buildings demolished?",
                                                        "has anything changed?")]
        how_many = [analyst.ask([a, b], q) for q in ("[CCD] how many buildings were built?", "how many new houses?")]
        vegetation = analyst.ask([a, b], "has the vegetation changed?")
        cut = analyst.ask([a, b], "were any trees cut down?")
        reversed_dates = analyst.ask([b, a], "[CCD] what changed?").text
    assert asked[0].startswith("many buildings were built ("), asked
    # a yes-or-no question gets its yes or no before the same sentence (it got the sentence alone)
    assert asked[1:] == ["no: " + asked[0], "yes: " + asked[0]], asked
    n = how_many[0].counts["change"]
    assert n > 9 and {h.text for h in how_many} == {asked[0].replace("many", str(n), 1)}, [h.text for h in how_many]
    # yes or no first, as for buildings; which way a class other than building changed is not read, so not said
    assert vegetation.task == "[SEG]" and vegetation.text.startswith("yes: changed — vegetation"), vegetation.text
    assert cut.task == "[SEG]" and cut.text == vegetation.text.removeprefix("yes: "), cut.text
    # a class's change map holds the regions its layer counts, without the specks (it held 44 covering 0.1 %)
    from scipy import ndimage

    from rsapp.model.counting import speckless_regions

    assert speckless_regions(vegetation.mask > 0)[1] == ndimage.label(vegetation.mask > 0)[1]
    # read the other way round the map is weaker (the head learned LEVIR-CD's order: 12 regions, 5 on a labelled
    # building, "many"; without the road that is no building 8 regions, 5 on one), and every region is a demolition
    assert re.match(r"(many|\d+) buildings were demolished \(", reversed_dates), reversed_dates


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_a_question_about_one_picture_asked_of_two_dates_is_answered_on_the_later_one(analyst):
    """Held-out LEVIR-CD test_1 as two dates. "which building is the largest?" got the change sentence (no task
    token: [CCD]), and "[VG] the largest building" the error "[VG] takes 1 image, but 2 were given", though the app
    keeps both dates loaded. A question about one picture is now asked of the second date, and says so; a question
    about change still reads both."""
    from rsapp.geo import Scene

    folder = REAL / "change" / "levir-cd-full-tiles"
    with Scene(folder / "A" / "test_1.png") as a, Scene(folder / "B" / "test_1.png") as b:
        largest, forced, count = (analyst.ask([a, b], q) for q in (
            "which building is the largest?", "[VG] the largest building", "how many buildings are there?"))
        alone = [analyst.ask([b], q) for q in ("[VG] the largest building", "how many buildings are there?")]
        built = analyst.ask([a, b], "how many buildings were built?")
    assert largest.task == forced.task == "[VG]" and len(largest.boxes_px) == 1
    assert largest.boxes_px == forced.boxes_px == alone[0].boxes_px
    assert count.task == "[VQA]" and count.text == alone[1].text and re.match(r"\d+\b", count.text), count.text
    assert all(any("answered on the second date (test_1.png)" in w for w in x.warnings) for x in (largest, count))
    assert len(largest.sources) == len(count.sources) == 1
    assert built.task == "[CCD]" and built.is_change and "buildings were built" in built.text


LEVIR_GSD_MAX_LOG10_ERR = 0.15  # measured 0.035 (0.46 m for 0.5 m); before, the answer said the chip's 0.92 m


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_gsd_of_a_large_unreferenced_image_is_the_images_own(analyst):
    """A 1024 px PNG without georeference (LEVIR-CD test_1, 0.5 m, held out) is read resampled into the 512 px
    chip: the answer's GSD is SSE-U's reading of the chip brought back to the image's own pixels, and a GSD the user
    gives is the image's too (the model is told the chip's, twice as coarse)."""
    import math

    from rsapp.geo import Scene
    from rsapp.ui.app import answer_markdown

    with Scene(REAL / "change" / "levir-cd-full-tiles" / "A" / "test_1.png") as scene:
        predicted = analyst.ask([scene], "[CAP] describe the image")
        given = analyst.ask([scene], "[CAP] describe the image", gsd=0.5)
    assert predicted.gsd_source == "predicted" and predicted.chip_gsd_m == pytest.approx(2 * predicted.gsd_m)
    assert predicted.language_model and "language model read " in answer_markdown(predicted, None)
    assert abs(math.log10(predicted.gsd_m / 0.5)) <= LEVIR_GSD_MAX_LOG10_ERR, predicted.gsd_m
    assert given.gsd_source == "user" and given.gsd_m == 0.5 and given.chip_gsd_m == pytest.approx(1.0)


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_a_question_about_the_scene_reads_it_over_quarter_turns(runtime):
    """A held-out scene turned a quarter turn is the same scene: read once, the scene head's probabilities move (by
    0.012 on this freeway); read over its quarter turns, as [CLS] and [CAP] read it, they do not. Measured through the
    analyst (105 held-out files): 0.952 -> 0.962 as they are, 0.867 -> 0.895 2x coarser, 0.876 -> 0.895 blurred."""
    from PIL import Image

    from rsapp.model.inference import Request
    from rsapp.tasks.tokens import TASKS

    rgb = np.asarray(Image.open(REAL / "scenes" / "ucmerced" / "images" / "freeway" / "freeway72.jpg").convert("RGB"))
    turned = np.ascontiguousarray(np.rot90(rgb))
    vision, views = runtime.model.vision, runtime.config.vision.dense_tta
    once = [vision.read([im], runtime.image_size).labels for im in (rgb, turned)]
    four = [vision.read([im], runtime.image_size, scene_views=views).labels for im in (rgb, turned)]
    assert views == 4 and (once[0] - once[1]).abs().max() > 1e-3
    assert (four[0] - four[1]).abs().max() < 1e-5
    labels = runtime.config.vision.scene_labels
    said = [runtime.generate([im], Request("[CLS]", "", TASKS["[CLS]"].expert, "text", labels=labels)).text
            for im in (rgb, turned)]
    assert said == ["freeway", "freeway"], said


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_a_scene_question_listing_options_is_answered_among_them_in_the_users_words(analyst):
    """"classify it as one of: farmland, residential or parking lot" was answered with a label of the model's own
    whatever the options ("beach" among farmland, industrial, residential, parking lot). Now the choice is among the
    labels the options cover, said in the question's words; an option no label covers is said, and what the scene
    looks like when none of the options fits. Measured (105 held-out files, each asked among its class and three
    others): 0.981 among the options, 0.962 asked plainly."""
    from rsapp.geo import Scene

    images = REAL / "scenes" / "ucmerced" / "images"
    with Scene(images / "agricultural" / "agricultural72.jpg") as field:
        among = analyst.ask([field], "[CLS] which of these is it: farmland, industrial, residential or parking lot?")
        unknown = analyst.ask([field], "[CLS] is it industrial or grassland?")
    with Scene(images / "denseresidential" / "denseresidential72.jpg") as houses:
        misfit = analyst.ask([houses], "[CLS] is it a forest, a river or a beach?")
        urban = analyst.ask([houses], "[CLS] urban or rural?")
    assert among.text == "farmland (agricultural)", among.text
    assert among.warnings == ["the model knows no industrial scenes: that option was not chosen"]
    assert unknown.text == "cannot say: the model knows no industrial or grassland scenes; it looks like farmland"
    assert misfit.text.endswith(", of the options given; it looks most like a dense residential area"), misfit.text
    assert urban.text == "urban (dense residential)", urban.text


# Three held-out tiles mirrored to 2048 px: read through the global view alone (4x resampled) they were 0.28, 0.21
# and 0.39 m, a mean error of 0.26 decades, each said to be within x/÷ 1.05-1.10; with their native tiles 0.68, 0.32
# and 0.54 m (int8), 0.12, within x/÷ 1.36, 1.40 and 1.20
LARGE_GSD_MAX_MEAN_LOG10_ERR = 0.18


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_gsd_of_an_image_larger_than_two_chips_is_read_from_its_native_tiles(analyst, tmp_path):
    """An unreferenced image more than twice the chip across: SSE-U reads native tiles of it as well as the global
    view, for a text answer (the chip resampled from it) and for a pixel answer (its native tiles) alike; where the
    two readings disagree, the uncertainty the answer states says so (it is at least half the error)."""
    import math

    from PIL import Image

    from rsapp.geo import Scene

    tiles = {REAL / "change" / "levir-cd-full-tiles" / "A" / "test_1.png": 0.5,
             REAL / "roads" / "deepglobe" / "388_sat.jpg": 0.5,
             REAL / "change" / "xbd-harvey" / "images" / "hurricane-harvey_00000007_pre_disaster.png": 0.6}
    errors = []
    for path, gsd in tiles.items():
        rgb = np.asarray(Image.open(path).convert("RGB"))
        half = np.concatenate([rgb, rgb[:, ::-1]], 1)
        Image.fromarray(np.concatenate([half, half[::-1]], 0)).save(tmp_path / "large.png")
        with Scene(tmp_path / "large.png") as scene:
            said = analyst.ask([scene], "[VQA] what is the resolution of this image?")
            if not errors:
                drawn = analyst.ask([scene], "[SEG] segment the buildings")
                assert drawn.gsd_source == "predicted" and abs(math.log10(drawn.gsd_m / said.gsd_m)) < 0.03
        assert said.gsd_source == "predicted" and said.chip_gsd_m == pytest.approx(4 * said.gsd_m)
        errors.append(abs(math.log10(said.gsd_m / gsd)))
        assert said.gsd_sigma_log10 >= errors[-1] / 2, (said.text, gsd)
    assert np.mean(errors) <= LARGE_GSD_MAX_MEAN_LOG10_ERR, errors


# The held-out xBD Harvey pair (a flood; the same buildings on both dates): the first change head alone marked 5.6 %
# of it changed ("many buildings were demolished", 78 regions), averaged with the second 0.6 % (through the CLI).
XBD_UNCHANGED_MAX_CHANGED = 0.02


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_a_flooded_pair_without_new_buildings_is_read_as_neither_built_nor_demolished(analyst):
    """What is left on its change map (6 regions: roofs seen from another angle, a tarp, a track) is not buildings
    built: the building probability rose by +0.04 over it (new buildings rise +0.4 to +0.6), and the answer, which
    said "6 buildings were built", now says changed areas, and no yes or no to "were any buildings built?"."""
    from rsapp.geo import Scene

    base = REAL / "change" / "xbd-harvey" / "images" / "hurricane-harvey_00000007"
    with Scene(f"{base}_pre_disaster.png") as before, Scene(f"{base}_post_disaster.png") as after:
        answer = analyst.ask([before, after], "[CCD] what changed?")
        asked = analyst.ask([before, after], "[CCD] were any buildings built?")
    assert answer.is_change and (answer.mask > 0).mean() <= XBD_UNCHANGED_MAX_CHANGED, (answer.mask > 0).mean()
    n = answer.counts["change"]
    assert 0 < n < 20 and answer.text.startswith(
        f"{n} changed areas, not clearly buildings built or demolished ("), answer.text
    assert asked.text == answer.text, asked.text


def test_change_question_on_taizhou_answers_and_draws_the_labelled_change(analyst):
    from rsapp.geo import Scene

    import rasterio
    from rasterio.warp import Resampling, reproject

    with Scene(SAMPLES / "taizhou_2000_30m.tif") as a, Scene(SAMPLES / "taizhou_2003_30m.tif") as b:
        ans = analyst.ask([a, b], "[CCD] what changed?")
    with Scene(SAMPLES / "taizhou_2000_30m.tif") as a, Scene(SAMPLES / "taizhou_2000_30m.tif") as b:
        same = analyst.ask([a, b], "[CCD] what changed?")
    assert same.text.startswith("no change") and not same.mask.any()  # one date twice: nothing changed
    assert ans.task == "[CCD]" and ans.is_change and ans.mask is not None
    assert not ans.text.startswith("no change") and "changed: " in ans.text  # the sentence agrees with the map
    labels = np.zeros(ans.mask.shape, np.uint8)  # the reference labels on the chip's grid
    with rasterio.open(SAMPLES / "taizhou_change_labels.tif") as src:
        reproject(src.read(1), labels, src_transform=src.transform, src_crs=src.crs, dst_transform=ans.transform,
                  dst_crs=ans.crs, resampling=Resampling.nearest)
    pred = ans.mask > 0
    changed, unchanged = labels == 1, labels == 2
    recall = (pred & changed).sum() / changed.sum()
    false_alarm = (pred & unchanged).sum() / unchanged.sum()
    assert recall >= TAIZHOU_MIN_RECALL and false_alarm <= TAIZHOU_MAX_FALSE_ALARM, (recall, false_alarm)


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_uc_merced_scenes_are_named_by_the_language_model(runtime):
    from rsapp.tasks.vocabulary import SCENE_LABELS
    from rsapp.data.real_sets import SCENE_CLASSES_OF_UCM

    hits = 0
    for folder, label in SCENE_CLASSES_OF_UCM.items():
        req = Request("[CLS]", "what kind of scene is this?", 0, "text", labels=SCENE_LABELS)
        hits += runtime.generate([_scene(folder)], req).text == label
    assert hits / len(SCENE_CLASSES_OF_UCM) >= UCM_MIN_TOP1, hits


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_uc_merced_files_are_named_through_the_analyst_at_their_own_size(analyst):
    """The CLI's path: a 256 px JPEG is shown to the model at 256 px, as it trained, not framed in black inside a
    512 px chip (which cost 8 points of top-1: 0.83 against 0.92 on 105 held-out files)."""
    from rsapp.data.real_sets import SCENE_CLASSES_OF_UCM
    from rsapp.geo import Scene

    hits = 0
    for folder, label in SCENE_CLASSES_OF_UCM.items():
        path = sorted((REAL / "scenes" / "ucmerced" / "images" / folder).iterdir())[70]
        with Scene(path) as scene:
            ans = analyst.ask([scene], "[CLS] what kind of scene is this?")
        assert ans.chip_size == max(scene.width, scene.height) <= 256 and ans.gsd_source == "predicted"
        hits += ans.text == label
    assert hits / len(SCENE_CLASSES_OF_UCM) >= UCM_MIN_TOP1, hits


# [CAP] on image 72 of each held-out class through the analyst (int8), BLEU-4 against its five captions: measured
# 0.67 with the caption bank (21 of 21 captions of the class [CLS] names), 0.45 with the language model's greedy
# captions (6 of 21 in the bank: "a straight runway" for a freeway, "two tennis courts in the golf course" for buildings)
UCM_MIN_CAPTION_BLEU = 0.55


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_captions_describe_the_kind_of_scene_the_scene_is_named(analyst):
    import sacrebleu

    from rsapp.data.real_sets import SCENE_CLASSES_OF_UCM
    from rsapp.geo import Scene

    root = REAL / "scenes" / "ucmerced"
    written = {e["image"].split("/")[-1]: e["captions"] for e in json.loads((root / "captions.json").read_text())}
    bank = analyst.runtime.config.captions
    captions, references = [], []
    for folder in SCENE_CLASSES_OF_UCM:
        path = sorted((root / "images" / folder).iterdir())[72]
        with Scene(path) as scene:
            named = analyst.ask([scene], "[CLS] what kind of scene is this?").text
            caption = analyst.ask([scene], "[CAP] describe the image")
        assert caption.language_model and caption.text in bank[named], (path.name, named, caption.text)
        captions.append(caption.text)
        references.append([c.replace(" .", ".").strip() for c in written[path.name]])
    streams = [[refs[i] for refs in references] for i in range(5)]
    assert sacrebleu.corpus_bleu(captions, streams).score / 100 >= UCM_MIN_CAPTION_BLEU


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_open_water_and_bare_land_are_described_as_such(analyst, tmp_path):
    """Held-out Dubai crops that one land cover fills (part 009 of tiles 5 and 2): written greedily, the open water
    was "two straight freeways closed to each other" and the desert "a white boat docked at the harbor"."""
    from PIL import Image

    from rsapp.data.real_text import COVER_CAPTIONS
    from rsapp.geo import Scene

    tiles = REAL / "segmentation" / "dubai-landcover"
    for tile, (y, x), cover in (("tile5", (0, 256), "water"), ("tile2", (0, 128), "bare land")):
        rgb = np.asarray(Image.open(tiles / tile / "images" / "image_part_009.jpg").convert("RGB"))
        Image.fromarray(rgb[y:y + 256, x:x + 256]).save(tmp_path / f"{tile}.png")
        with Scene(tmp_path / f"{tile}.png") as scene:
            caption = analyst.ask([scene], "[CAP] describe the image")
        assert caption.text in COVER_CAPTIONS[cover], (tile, caption.text)


# "is this a forest?" asked in a person's words of image 71 of each held-out class, once naming its own kind of scene
# and once another's: measured 20 / 21 yes and 21 / 21 no (the language model answering: 0.26 / 0.70 on every 3rd)
UCM_MIN_SCENE_YES_NO = 0.85
ASKED_AS = {"agricultural": "farmland", "airplane": "an airport", "baseball diamond": "a baseball field",
            "beach": "a beach", "buildings": "a commercial area", "chaparral": "shrubland",
            "dense residential": "a residential area", "forest": "forested", "freeway": "a highway",
            "golf course": "a golf course", "harbor": "a harbour", "intersection": "an intersection",
            "medium residential": "a neighbourhood of houses", "mobile home park": "a trailer park",
            "overpass": "an overpass", "parking lot": "a car park", "river": "a river", "runway": "a runway",
            "sparse residential": "a residential area", "storage tanks": "an oil depot",
            "tennis court": "a tennis court"}


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_scenes_are_said_to_be_or_not_be_the_kind_of_scene_named(analyst):
    """'is this an airport?' is answered from what [CLS] reads the scene as (the language model, never trained on
    such questions, said yes or no at chance), in words a person uses."""
    from rsapp.data.real_sets import SCENE_CLASSES_OF_UCM
    from rsapp.geo import Scene

    labels = list(SCENE_CLASSES_OF_UCM.values())
    right = []
    for i, (folder, label) in enumerate(SCENE_CLASSES_OF_UCM.items()):
        other = labels[(i + 7) % len(labels)]  # another class, 7 along the list
        path = sorted((REAL / "scenes" / "ucmerced" / "images" / folder).iterdir())[71]
        with Scene(path) as scene:
            for named, want in ((label, "yes"), (other, "no")):
                question = f"is the area {ASKED_AS[named]}?" if i % 2 else f"[VQA] is this {ASKED_AS[named]}?"
                answer = analyst.ask([scene], question)
                assert answer.task == "[VQA]" and answer.text.split(":")[0] in ("yes", "no"), answer.text
                right.append(answer.text.startswith(want))
    assert np.mean(right) >= UCM_MIN_SCENE_YES_NO, np.mean(right)


UCM_FINER_MIN_TOP1 = 0.75  # held-out files 2.34× finer through the analyst: measured 0.81 (0.64 before)


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_scenes_from_a_finer_collection_are_named_through_the_analyst(analyst, tmp_path):
    """A 600 px PNG of a held-out UC Merced scene (the same 77 m at 0.13 m, as a finer collection delivers it): the
    analyst resamples it into its 512 px chip. The scene head refitted with finer views and weighted by
    scene_head_weight (chosen on the train split) names it; the language model's reading alone did not."""
    from PIL import Image

    from rsapp.data.real_sets import SCENE_CLASSES_OF_UCM
    from rsapp.geo import Scene

    assert analyst.runtime.config.vision.scene_head_weight > 1
    hits = n = 0
    for folder, label in SCENE_CLASSES_OF_UCM.items():
        for path in sorted((REAL / "scenes" / "ucmerced" / "images" / folder).iterdir())[62:80:9]:  # held out
            Image.open(path).convert("RGB").resize((600, 600), Image.BICUBIC).save(tmp_path / "finer.png")
            with Scene(tmp_path / "finer.png") as scene:
                hits += analyst.ask([scene], "[CLS] what kind of scene is this?").text == label
            n += 1
    assert n == 42 and hits / n >= UCM_FINER_MIN_TOP1, hits / n


COVER_MIN_TOP1 = 0.75  # held-out Dubai land-cover scenes (20 of 231) through the analyst: measured 18 of 20


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_tree_crowns_at_0_1_m_are_drawn_as_vegetation(analyst):
    """NEON's held-out OSBS_029 (0.1 m pines on sand, 61 labelled crowns, georeferenced). "[SEG] segment the trees"
    drew vegetation on a fifth of the crowns' pixels: the land-cover sets show tree canopy at 1 m or not at all. The
    mask head has since trained on NEON's four other images' crowns (v2d19); measured 0.99 through the analyst."""
    from rsapp.data.real_sets import load_neon_trees
    from rsapp.geo import Scene

    held = next(r for r in load_neon_trees(REAL) if r.held_out)
    with Scene(REAL / "boxes" / "neon-trees" / "OSBS_029.tif") as scene:
        answer = analyst.ask([scene], "[SEG] segment the trees")
    assert answer.mask.shape == held.instances.shape  # a 400 px image is its own chip
    vegetation = answer.mask == answer.mask_labels.index("vegetation")
    assert vegetation[held.instances > 0].mean() >= 0.8


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_questions_whether_there_are_trees_are_answered_from_the_mask(analyst):
    """RSIVQA's 100 held-out 'Does this picture contain trees?' (UC Merced images 60–79 of five classes, 80 'yes'):
    answered yes when the vegetation mask covers more than a trace of the picture, measured 0.87; the language model
    had answered 0.67."""
    from rsapp.data.real_sets import ucm_held_out
    from rsapp.geo import Scene

    root = REAL / "scenes" / "ucmerced"
    asked = [q for q in json.loads((root / "vqa.json").read_text())
             if q["question"] == "Does this picture contain trees?" and ucm_held_out(q["image"])]
    assert len(asked) == 100
    right = 0
    for q in asked:
        with Scene(root / q["image"]) as scene:
            answer = analyst.ask([scene], f"[VQA] {q['question']}")
        said = answer.text.split(":")[0].split()[0]
        assert said in ("yes", "no") and answer.mask is not None, answer.text  # the mask is drawn, either way
        right += said == q["answer"]
    assert right >= UCM_MIN_PRESENCE * len(asked), right


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_scenes_that_hold_water_are_said_to_and_dry_ones_more_often_not(analyst):
    """'is there any water?' where the UC Merced class says: a river, a harbour or a beach holds water; an airport,
    a freeway, a field or a parking lot holds none. The mask's water was refitted with such train scenes."""
    from rsapp.data.real_sets import SCENE_CLASSES_OF_UCM
    from rsapp.geo import Scene

    wet, dry = ("river", "harbor", "beach"), ("agricultural", "airplane", "baseball diamond", "chaparral", "freeway",
                                              "intersection", "overpass", "parking lot", "runway")
    said = {True: [], False: []}
    for folder, label in SCENE_CLASSES_OF_UCM.items():
        if label in wet + dry:
            for path in sorted((REAL / "scenes" / "ucmerced" / "images" / folder).iterdir())[60:80:4]:  # held out
                with Scene(path) as scene:
                    answer = analyst.ask([scene], "[VQA] is there any water?").text
                said[label in wet].append(answer.split(":")[0].split()[0] == "yes")
    yes_wet, no_dry = np.mean(said[True]), 1 - np.mean(said[False])
    assert len(said[True]) == 15 and yes_wet >= WET_MIN_YES, yes_wet
    assert (yes_wet + no_dry) / 2 >= WATER_MIN_BALANCED, (yes_wet, no_dry)


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_a_scene_the_scene_head_names_a_river_harbour_or_beach_is_said_to_hold_water(analyst):
    """All 60 held-out rivers, harbours and beaches: the mask missed the water of 10 (brown or grey rivers, a
    beach's sea; 50 of 60 said yes). Where the mask draws too little, a scene the scene head names a river, a
    harbour or a beach holds water, and the answer says which it read (58 of 60 now; the dry scenes of the test
    above are not named so: 30 of 180 said yes before and after)."""
    from rsapp.geo import Scene

    said = []
    for folder in ("river", "harbor", "beach"):
        for path in sorted((REAL / "scenes" / "ucmerced" / "images" / folder).iterdir())[60:80]:  # held out
            with Scene(path) as scene:
                said.append(analyst.ask([scene], "is there any water?").text)
    assert sum(t.startswith("yes") for t in said) >= WET_ALL_MIN_YES * len(said), [t for t in said if t[:3] != "yes"]
    by_scene = [t for t in said if t.startswith("yes: it looks like ")]
    drawn = r"\(the mask draws (none|under 0\.1 %|\d+\.\d %) of the area as water\)$"
    assert by_scene and all(re.search(drawn, t) for t in by_scene), by_scene


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_a_question_naming_a_kind_of_water_is_answered_with_all_water_and_says_so(analyst):
    """'is there a lake?' on a held-out harbour: its water is there, and the answer says the mask does not tell a
    lake from other water (it said a bare "yes: 50.8 % of the area is water"); asked about water, no such note."""
    from rsapp.geo import Scene

    harbour = sorted((REAL / "scenes" / "ucmerced" / "images" / "harbor").iterdir())[60]  # held out
    with Scene(harbour) as scene:
        lake = analyst.ask([scene], "is there a lake?")
        water = analyst.ask([scene], "is there any water?")
    assert lake.text.startswith("yes") and water.text.startswith("yes"), (lake.text, water.text)
    assert any("does not tell a lake from other water" in w for w in lake.warnings), lake.warnings
    assert not any("other water" in w for w in water.warnings), water.warnings


def test_paraphrases_without_a_token_reach_the_answer_they_ask_for(analyst):
    """Asked in a person's words on the bundled street: 'which building is the largest?' boxes the one 'find the
    biggest building' does (it got "cannot say"), 'what is the ground resolution?' is the GSD (it got a [VG] "none
    found"), 'highlight the streets', 'mark all the buildings' and 'draw the buildings' draw their masks, 'how dense
    is the housing?' is the buildings' share, 'give me a summary' a caption and 'what's the average house size?'
    the mean of the boxed buildings' areas (each got "cannot say")."""
    import re

    which, find, gsd, streets, buildings, drawn, dense, summary, average, largest, smallest, houses = ask_sample(
        analyst, "which building is the largest?", "find the biggest building", "what is the ground resolution?",
        "highlight the streets", "mark all the buildings", "draw the buildings", "how dense is the housing?",
        "give me a summary", "what's the average house size?", "how big is the largest building?",
        "how big is the smallest building?", "how many houses are there?")
    n = int(houses.text)
    assert which.task == "[VG]" and which.n_boxes == 1 and which.boxes_px == find.boxes_px, which.text
    # the box's label, which names its layer and export, is what was boxed, not the question's words
    assert which.box_labels == find.box_labels == ["the largest building"], which.box_labels
    assert gsd.task == "[VQA]" and "m a pixel" in gsd.text, gsd.text
    assert streets.task == "[SEG]" and streets.text.startswith("road"), streets.text
    assert buildings.task == "[SEG]" and buildings.text.startswith("building"), buildings.text
    assert drawn.task == "[SEG]" and drawn.text == buildings.text, drawn.text
    assert dense.task == "[VQA]" and "% of the area is building" in dense.text, dense.text  # it got "cannot say"
    assert summary.task == "[CAP]" and "residential" in summary.text, summary.text
    # the mean of every instance's area (it got "cannot say"), between the smallest's and the largest's
    m2 = [float(re.search(r"about ([\d,.]+) m²", t.text).group(1).replace(",", ""))
          for t in (smallest, average, largest)]
    assert average.n_boxes == n and f"on average ({n} buildings" in average.text and m2 == sorted(m2), average.text


def test_what_is_in_a_named_part_of_the_picture_is_read_in_that_part(analyst):
    """'what is in the top left?' (it got "cannot say") is [REF] on that third of the picture: the class covering
    most of it, as a box written over the same third says; the bundled street's middle row holds its road."""
    from rsapp.geo import Scene

    with Scene(SAMPLES / "vegas_buildings_0.3m.tif") as scene:
        named = analyst.ask([scene], "what is in the top left?")
        written = analyst.ask([scene], "[REF] what is at [0, 0, 33, 33]?")
        rows = [analyst.ask([scene], f"what is in the {part}?") for part in ("top", "middle", "bottom")]
    assert named.task == "[REF]" and named.text.startswith("the top left: "), named.text
    assert named.text.split(": ")[1].split()[0] == written.text.split()[0], (named.text, written.text)
    assert [r.text.split(": ")[1].split()[0] for r in rows].count("road") >= 1, [r.text for r in rows]


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_desert_and_open_water_are_named_with_land_cover_words(analyst, tmp_path, monkeypatch):
    """[CLS] answers 'bare land' and 'water' for scenes mostly of that cover (crops of the held-out Dubai tiles, saved
    as the PNG files a user would load), words the 21 UC Merced classes do not have; a model whose config names no
    land-cover words is never offered them."""
    from PIL import Image

    from rsapp.data.real_sets import cover_scenes, split
    from rsapp.geo import Scene
    from rsapp.tasks.vocabulary import SCENE_CLASSES

    crops = cover_scenes([r for r in split(held_out=True) if r.set == "dubai"])
    picked = []
    for name, n in (("bare land", 12), ("water", 8)):  # spread over the tiles
        of = [c for c in crops if c.scene == name]
        picked += of[::len(of) // n][:n]
    hits = 0
    for i, crop in enumerate(picked):
        Image.fromarray(crop.rgb).save(tmp_path / f"{i}.png")
        with Scene(tmp_path / f"{i}.png") as scene:
            hits += analyst.ask([scene], "[CLS] what kind of scene is this?").text == crop.scene
    assert len(picked) == 20 and hits / len(picked) >= COVER_MIN_TOP1, hits
    monkeypatch.setattr(analyst.runtime.config.vision, "cover_scenes", ())
    with Scene(tmp_path / "0.png") as scene:  # a desert
        assert analyst.ask([scene], "[CLS] what kind of scene is this?").text in SCENE_CLASSES


UCM_COARSE_MIN_TOP1 = 0.70  # the scene head on held-out scenes downsampled 3×: measured 0.81 (0.51 before the refit)


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_scenes_three_times_coarser_are_still_named_by_the_scene_head(runtime):
    """rsapp.train.scene refitted the head with zoomed-out views: a scene from a coarser collection is still known."""
    from PIL import Image

    from rsapp.data.real_sets import SCENE_CLASSES_OF_UCM
    from rsapp.model.vision_model import to_tensor

    vision, hits, n = runtime.model.vision, 0, 0
    for folder, label in SCENE_CLASSES_OF_UCM.items():
        for path in sorted((REAL / "scenes" / "ucmerced" / "images" / folder).iterdir())[60:80:4]:  # held out
            im = Image.open(path).convert("RGB")
            small = np.asarray(im.resize((round(im.width / 3), round(im.height / 3)), Image.BOX))
            out = vision.encode([to_tensor(small)])
            hits += vision.cfg.scene_classes[int(out.scene[0].argmax())] == label
            n += 1
    assert hits / n >= UCM_COARSE_MIN_TOP1, hits / n


# the scene head on held-out scenes through a softer lens (σ 1.5 px): measured 0.88 (0.84 before v2sc6 saw other optics)
UCM_BLURRED_MIN_TOP1 = 0.85


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_scenes_through_a_softer_lens_are_still_named_by_the_scene_head(runtime):
    """rsapp.train.scene showed half of its views through another sensor's optics (blurred, sharpened, compressed):
    a scene from a softer sensor is still known."""
    from PIL import Image, ImageFilter

    from rsapp.data.real_sets import SCENE_CLASSES_OF_UCM
    from rsapp.model.vision_model import to_tensor

    vision, hits, n = runtime.model.vision, 0, 0
    for folder, label in SCENE_CLASSES_OF_UCM.items():
        for path in sorted((REAL / "scenes" / "ucmerced" / "images" / folder).iterdir())[60:80:2]:  # held out
            soft = np.asarray(Image.open(path).convert("RGB").filter(ImageFilter.GaussianBlur(1.5)))
            out = vision.encode([to_tensor(soft)])
            hits += vision.cfg.scene_classes[int(out.scene[0].argmax())] == label
            n += 1
    assert hits / n >= UCM_BLURRED_MIN_TOP1, hits / n


# the scene head, over quarter turns as [CLS] reads it, on held-out scenes resized to 600 px and resampled into the
# 512 px chip (the same area at a finer GSD, as a finer collection shows it): measured 0.94 on every 2nd file (int8;
# 0.90 before the head read its own tuned copy of the deep blocks, v2sc8; fp32 on all 420: 0.93, 0.89 before)
UCM_FINER_MIN_TOP1 = 0.91


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_scenes_from_a_finer_collection_are_named_by_the_scene_heads_own_deep_blocks(runtime):
    """The scene head reads the pooled features of its own copy of the tower's deep blocks, tuned with it on the
    train scenes' views (rsapp.train.scene with tail_lr): scenes at another collection's finer scale are named
    better than from the shared tower's features, which every other head reads as they were."""
    from PIL import Image

    from rsapp.data.real_sets import SCENE_CLASSES_OF_UCM
    from rsapp.model.vision_model import to_tensor

    vision, hits, n = runtime.model.vision, 0, 0
    assert vision.cfg.scene_tail
    for folder, label in SCENE_CLASSES_OF_UCM.items():
        for path in sorted((REAL / "scenes" / "ucmerced" / "images" / folder).iterdir())[60:80:2]:  # held out
            im = Image.open(path).convert("RGB").resize((600, 600), Image.BICUBIC).resize((512, 512), Image.BOX)
            x = to_tensor(np.asarray(im))
            with torch.no_grad():
                levels = vision.tower.pyramid(x)
                probs = vision.scene_log_probs(x, levels, vision.tower.pooled(levels), views=4).exp()[0]
            hits += vision.cfg.scene_classes[int(probs[:len(vision.cfg.scene_classes)].argmax())] == label
            n += 1
    assert hits / n >= UCM_FINER_MIN_TOP1, hits / n


UCM_RECOLOURED_MIN_TOP1 = 0.80  # the scene head on held-out scenes in another sensor's colours: measured 0.90


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")
def test_held_out_scenes_in_another_sensors_colours_are_still_named_by_the_scene_head(runtime):
    """rsapp.train.scene showed half of its views recoloured (cast, contrast, saturation, haze): a scene from a
    collection that looks otherwise is still known."""
    from PIL import Image

    from rsapp.data.real_sets import SCENE_CLASSES_OF_UCM
    from rsapp.model.vision_model import to_tensor
    from rsapp.data.real_chips import other_sensor

    vision, hits, n, rng = runtime.model.vision, 0, 0, np.random.default_rng(0)
    for folder, label in SCENE_CLASSES_OF_UCM.items():
        for path in sorted((REAL / "scenes" / "ucmerced" / "images" / folder).iterdir())[60:80:4]:  # held out
            recoloured = other_sensor(np.asarray(Image.open(path).convert("RGB")), rng)
            out = vision.encode([to_tensor(recoloured)])
            hits += vision.cfg.scene_classes[int(out.scene[0].argmax())] == label
            n += 1
    assert hits / n >= UCM_RECOLOURED_MIN_TOP1, hits / n
