import pytest

from rsapp.errors import RsappError
from rsapp.tasks.tokens import TASKS, route


@pytest.mark.parametrize("token,expert", [("[CAP]", 0), ("[CLS]", 0), ("[VQA]", 0), ("[VG]", 1), ("[REF]", 1),
                                          ("[SEG]", 2)])
def test_written_token_picks_its_expert(token, expert):
    r = route(f"{token} the largest pond [10, 20, 30, 40]", n_images=1)
    assert (r.token, r.expert, r.inferred) == (token, expert, False)
    assert r.question == "the largest pond [10, 20, 30, 40]"


def test_change_tokens_take_two_images():
    assert route("[CCD] what changed?", n_images=2).expert == 0
    assert route("[SEG] changed buildings", n_images=2).expert == 2
    with pytest.raises(RsappError, match="takes 2 images"):
        route("[CCD] what changed?", n_images=1)
    vg = route("[VG] the pond", n_images=2)  # a task of one image asked of two dates: the later date answers it
    assert (vg.token, vg.later_date) == ("[VG]", True) and not route("[VG] the pond", n_images=1).later_date


@pytest.mark.parametrize("prompt,n,token", [
    ("how many ships are there?", 1, "[VQA]"),
    ("is there a built-up area?", 1, "[VQA]"),
    ("segment the roads", 1, "[SEG]"),
    ("describe this image", 1, "[CAP]"), ("what do you see?", 1, "[CAP]"), ("What's in this picture?", 1, "[CAP]"),
    ("tell me about this image", 1, "[CAP]"), ("what is in the top left of the image?", 1, "[REF]"),
    ("what kind of scene is this?", 1, "[CLS]"),
    ("What is the theme of this picture?", 1, "[CLS]"),
    ("find the largest pond", 1, "[VG]"),
    ("where is the stadium?", 1, "[VG]"),
    ("show me the streets", 1, "[SEG]"),  # an area class, all of it: its mask, not a box per fragment
    ("where are the trees?", 1, "[SEG]"),
    ("find the largest field", 1, "[VG]"),  # one of them picked: a box
    ("where are the cars?", 1, "[VG]"),
    ("what is at [10, 10, 40, 50]?", 1, "[REF]"),
    ("what changed?", 2, "[CCD]"),
    ("map the new buildings", 2, "[SEG]"),
    ("has the vegetation changed?", 2, "[SEG]"), ("any new buildings?", 2, "[CCD]"),  # a class other than building
    # about one picture, asked of two dates: answered on the later one
    ("which building is the largest?", 2, "[VG]"), ("how many buildings are there?", 2, "[VQA]"),
    ("what kind of area is this?", 2, "[CLS]"), ("what is in the top left?", 2, "[REF]"),
    ("how many buildings were built?", 2, "[CCD]"), ("compare the two images", 2, "[CCD]"),
    ("what happened here?", 2, "[CCD]"), ("what season is it?", 2, "[CCD]"),  # nothing a head measures
    ("describe the image", 2, "[CCD]"),  # of two dates, a description is of what changed
    ("highlight the streets", 1, "[SEG]"), ("mark all the buildings", 1, "[SEG]"),
    ("which building is the largest?", 1, "[VG]"), ("which tree is nearest the road?", 1, "[VG]"),
    ("which building is closest to the intersection?", 1, "[VG]"),  # boxed, with what it could not measure from
    ("which is larger, the water or the trees?", 1, "[VQA]"),  # a comparison of two classes, not one instance
    ("what is the ground resolution?", 1, "[VQA]"),  # the GSD, not a phrase to ground
    ("is there a market?", 1, "[VQA]"),
    ("draw the buildings", 1, "[SEG]"), ("show the vegetation", 1, "[SEG]"), ("colour the roofs", 1, "[SEG]"),
    ("paint the water blue", 1, "[SEG]"), ("what colour are the roofs?", 1, "[VQA]"),  # a colour, not a request
    ("draw a box around the largest building", 1, "[VG]"), ("point to the largest tree", 1, "[VG]"),
    ("give me a summary", 1, "[CAP]"), ("list what you see", 1, "[CAP]"),
    ("what objects are in the image?", 1, "[CAP]"),
    ("what does this image show?", 1, "[CAP]"), ("what is the terrain like?", 1, "[CAP]"),
])
def test_router_infers_a_token_without_one(prompt, n, token):
    r = route(prompt, n_images=n)
    assert r.token == token and r.inferred and r.expert == TASKS[token].expert


@pytest.mark.parametrize("prompt,token", [
    ("[VQA] what is the theme of this picture?", "[CLS]"), ("[VQA] what kind of area is this?", "[CLS]"),
    ("[VQA] how many houses are there?", "[VQA]"), ("[VQA] what is the main road made of?", "[VQA]"),
    ("[VQA] what can you see?", "[CAP]"), ("[VQA] describe this scene", "[CAP]"),
    ("[VQA] what is this area used for?", "[CLS]"), ("[VQA] what is the main land use?", "[CLS]"),
    ("[VQA] how much land is used for roads?", "[VQA]"), ("[VQA] what is this?", "[CLS]"),
    ("[VQA] what scene is this?", "[CLS]"), ("[VQA] what's this place?", "[CLS]"),
    ("[VQA] what kind of landscape is this?", "[CLS]"), ("[VQA] what category is this image?", "[CLS]"),
    ("[VQA] what is this building?", "[VQA]"), ("[VQA] what is this road made of?", "[VQA]"),
])
def test_a_vqa_question_asking_what_the_scene_is_or_to_describe_it_goes_to_its_task(prompt, token):
    r = route(prompt)
    assert r.token == token and not r.inferred and r.question == prompt[6:]


def test_forced_token_overrides_the_prompt():
    r = route("[VQA] segment the roads", n_images=1, force="SEG")
    assert r.token == "[SEG]" and r.expert == 2
    assert route("segment the roads", force="auto").token == "[SEG]"


def test_bad_tokens_and_empty_questions():
    with pytest.raises(RsappError, match="unknown task token"):
        route("[FOO] bar")
    with pytest.raises(RsappError, match="needs a question"):
        route("[VG]")
    for empty in ("", "   ", None):  # it said "[VQA] needs a question or phrase after the token": no token was given
        with pytest.raises(RsappError, match="^the prompt is empty: ask a question"):
            route(empty)


def test_a_prompt_over_the_limit_is_refused_before_the_model():
    import pytest

    from rsapp.errors import RsappError
    from rsapp.tasks.tokens import MAX_PROMPT_CHARS

    with pytest.raises(RsappError, match="characters"):
        route("[VQA] " + "not" * MAX_PROMPT_CHARS)
    assert route("[VQA] " + "a" * (MAX_PROMPT_CHARS - 10)).token == "[VQA]"


@pytest.mark.parametrize("question,counted,covered", [
    ("how many houses are there?", "building", None),
    ("count the ships", "ship", None),
    ("how much of the image is water?", None, "water"),
    ("what percentage is covered by trees?", None, "vegetation"),
    ("what share of the area do the streets take?", None, "road"),
    ("what covers most of this image?", None, None),  # the main land cover: the language model's question
    ("is there water here?", None, None),
    ("how dense is the housing?", None, "building"), ("total building area?", None, "building"),
])
def test_counting_and_cover_questions_name_their_class(question, counted, covered):
    from rsapp.tasks.vocabulary import counted_class, covered_class

    assert counted_class(question) == counted and covered_class(question) == covered


@pytest.mark.parametrize("question,sized", [
    ("how big is the largest building?", "building"), ("what is the area of the smallest pond?", "water"),
    ("how large is the field on the left?", "vegetation"), ("how big is this image?", None),
    ("how many houses are there?", None), ("what's the average house size?", "building"),
    ("how big are the buildings on average?", "building"), ("what is the average number of houses?", None),
])
def test_a_question_about_an_instances_size_names_its_class(question, sized):
    from rsapp.tasks.vocabulary import sized_class

    assert sized_class(question) == sized


@pytest.mark.parametrize("question,located", [
    ("where are the trees?", "vegetation"), ("What is the location of the boats in this picture?", "ship"),
    ("where is the largest building located?", "building"), ("where is this?", None),
    ("how many roads are there?", None),
])
def test_a_question_about_where_a_class_lies_names_its_class(question, located):
    from rsapp.tasks.vocabulary import located_class

    assert located_class(question) == located


@pytest.mark.parametrize("question,present", [
    ("Does this picture contain trees?", "vegetation"), ("is there any water?", "water"),
    ("are there buildings in this image?", "building"), ("can you see boats?", "ship"),
    ("are cars visible?", "car"), ("is there any change?", None), ("what is the main road made of?", None),
    ("any water here?", "water"), ("any buildings?", "building"),
])
def test_a_question_about_whether_a_class_is_there_names_its_class(question, present):
    from rsapp.tasks.vocabulary import measured_question, present_class

    assert present_class(question) == present
    assert measured_question(question) == (("presence", present) if present else None)


@pytest.mark.parametrize("question,measured", [
    # a kind of scene asked for as a thing in the image: read as [CLS] reads the scene
    ("does this picture contain an airplane?", ("scene inside", "airport")),
    ("are there any airplanes?", ("scene inside", "airport")), ("is there a tennis court?", ("scene inside",
                                                                                             "tennis court")),
    ("can you see a bridge?", ("scene inside", "overpass")), ("is there a parking lot here?", ("scene inside",
                                                                                               "parking lot")),
    # a thing the model never learned: said so
    ("are there solar panels?", ("unmeasured", None)), ("is there any construction in this image?", ("unmeasured",
                                                                                                      None)),
    ("are wind turbines visible?", ("unmeasured", None)),
    # a dense class is measured; change is the language model's on a pair
    ("is there a swimming pool?", ("presence", "water")), ("are there any new buildings?", ("presence", "building")),
    ("is there any change?", None), ("are there any differences?", None), ("is there a new tennis court?", None),
])
def test_a_question_whether_a_scene_kind_or_an_unlearned_thing_is_there(question, measured):
    from rsapp.tasks.vocabulary import measured_question

    assert measured_question(question) == measured


def test_a_question_the_language_model_never_learned_gets_a_cannot_say_by_its_kind():
    from rsapp.tasks.vocabulary import asks_location, unlearned_sentence

    assert unlearned_sentence("how many storage tanks are there?").startswith("cannot say: the model counts only")
    assert unlearned_sentence("what season is it?").startswith("cannot say: the model has not learned to answer this")
    assert asks_location("what is the location of the intersection in this picture?")
    assert asks_location("where is the tennis court?") and not asks_location("what season is it?")


@pytest.mark.parametrize("phrase,thing", [
    ("segment the airplanes", "airplanes"), ("outline the storage tanks", "storage tanks"),
    ("segment the solar panels please", "solar panels"), ("segment the roads", None), ("mask the swimming pools", None),
    ("segment the image", None), ("map the land cover", None), ("segment everything", None),
    ("segment the image into classes", None), ("show me the land use", None),
])
def test_a_seg_request_for_a_thing_no_class_is_names_it(phrase, thing):
    from rsapp.tasks.vocabulary import unknown_thing

    assert unknown_thing(phrase) == thing


@pytest.mark.parametrize("phrase,listed", [
    ("segment the roads and buildings", ["road", "building"]),
    ("map water, roads & trees", ["water", "road", "vegetation"]),
    ("segment roads, buildings, and the water", ["road", "building", "water"]),
    ("segment roads or water", ["road", "water"]),
    ("segment the houses", ["building"]), ("segment houses and buildings", ["building"]),
    ("segment the buildings near the road", ["building"]), ("the trees along the roads and buildings", ["vegetation"]),
    ("map the land cover", []), ("segment the image", []),
])
def test_a_seg_request_listing_classes_names_each_and_one_placed_by_another_names_one(phrase, listed):
    from rsapp.tasks.vocabulary import listed_classes

    assert listed_classes(phrase) == listed


def test_a_change_question_asking_which_way_is_told_from_one_asking_whether():
    from rsapp.tasks.vocabulary import asks_which_way

    assert all(asks_which_way(q) for q in ("were any trees cut down?", "has the forest grown?", "were roads built?",
                                            "were any buildings demolished?", "is the lake shrinking?"))
    assert not any(asks_which_way(q) for q in ("has the vegetation changed?", "did anything change?", "what changed?"))


def test_a_scene_holds_the_classes_its_kind_always_holds():
    from rsapp.tasks.vocabulary import scene_holds

    assert scene_holds("river") == scene_holds("harbor") == scene_holds("beach") == ("water",)
    assert scene_holds("water") == ("water",) and scene_holds("bare land") == ("bare land",)  # land-cover words
    assert scene_holds("forest") == scene_holds("dense residential") == scene_holds(None) == ()


@pytest.mark.parametrize("question,n,built,verdict", [
    ("were any buildings demolished?", 12, True, "no: "), ("were any buildings demolished?", 3, False, "yes: "),
    ("has anything changed?", 12, True, "yes: "), ("[CCD] is there any change?", 0, None, "no: "),
    ("were new houses built?", 5, True, "yes: "), ("did they build anything?", 5, False, "no: "),
    ("did buildings appear or disappear?", 2, False, "yes: "), ("what changed?", 12, True, ""),
    ("how many buildings were built?", 4, True, ""),
    # which way is not known (a flood's changed areas): no yes or no to which way, but "no" when nothing changed
    ("were any buildings built?", 6, None, ""), ("were any buildings built?", 0, None, "no: "),
    ("has anything changed?", 6, None, "yes: "),
])
def test_a_yes_or_no_change_question_is_answered_yes_or_no_by_what_the_map_found(question, n, built, verdict):
    from rsapp.tasks.vocabulary import change_verdict

    assert change_verdict(question, n, built) == verdict


@pytest.mark.parametrize("phrase,select,said", [
    ("the tree nearest the road", "nearest road", "the vegetation nearest the road"),
    ("the house next to the pond", "nearest water", "the building nearest the water"),
    ("the building farthest from the road", "farthest road", "the building farthest from the road"),
    ("the building closest to the centre", "nearest centre", "the building nearest the centre"),
    ("the building in the middle", "nearest centre", "the building nearest the centre"),
    ("the largest building near the road", "largest", "the largest building"),
])
def test_a_vg_phrase_can_pick_one_instance_by_its_distance_to_a_class_or_the_centre(phrase, select, said):
    from rsapp.tasks.vocabulary import dense_class_of, selected_phrase, selection_of, unresolved_relation

    assert selection_of(phrase) == select and not unresolved_relation(phrase)
    assert selected_phrase(select, dense_class_of(phrase)) == said


def test_a_distance_to_something_no_class_is_is_unresolved():
    from rsapp.tasks.vocabulary import selection_of, unresolved_relation

    assert selection_of("the building closest to the intersection") == "all"
    assert unresolved_relation("the building closest to the intersection")


@pytest.mark.parametrize("question,thing", [
    ("are there solar panels?", "solar panels"), ("is there any construction in this image?", "construction"),
    ("are wind turbines visible?", "wind turbines"), ("can you see any cranes here?", "cranes"),
    ("does this image contain power lines?", "power lines"), ("are there trees?", None), ("is there an airport?", None),
])
def test_an_unlearned_thing_is_named_in_its_cannot_say_answer(question, thing):
    from rsapp.tasks.vocabulary import unlearned_object, unmeasured_sentence

    assert unlearned_object(question) == thing
    if thing is not None:
        assert unmeasured_sentence(question).startswith(f"cannot say: the model has not learned to find {thing} (")


@pytest.mark.parametrize("question,kind", [
    ("is this a forest?", "forest"), ("is this area forested?", "forest"), ("Is this an airport?", "airport"),
    ("is the area a residential area?", "residential area"), ("is it a dense residential area?",
                                                              "dense residential area"),
    ("is this a baseball field?", "baseball diamond"), ("does this image look like farmland?", "farmland"),
    ("isn't this a harbour?", "harbor"), ("are we looking at a trailer park?", "mobile home park"),
    ("does this picture show an airport?", "airport"), ("is this road a highway?", "highway"),
    ("is this an oil depot?", "storage tanks"), ("is this a sports field?", "stadium"), ("is this a field?", "farmland"),
    ("is this an industrial area?", "industrial area"), ("is the area grassland?", "grassland"),
    ("is this urban or rural?", "urban area or rural area"),
    ("is this a forest or a golf course?", "forest or golf course"),
    # a dense class's presence, another measured question, or no kind of scene the labels have: not this
    ("does this picture show a river?", None), ("Does this picture contain trees?", None),
    ("does this picture contain an airplane?", None), ("is there a forest?", None), ("is this picture blurry?", None),
    ("is this a high-resolution image?", None), ("what kind of scene is this?", None),
])
def test_a_question_about_what_the_scene_is_names_the_kind_asked(question, kind):
    from rsapp.tasks.vocabulary import SCENE_KIND_LABELS, SCENE_LABELS, measured_question

    got = measured_question(question)
    assert (got[1] if got and got[0] == "scene" else None) == kind
    if kind is not None:
        for one in kind.split(" or "):
            assert set(SCENE_KIND_LABELS[one]) <= set(SCENE_LABELS)  # empty for a kind no label is


def test_a_scene_verdict_says_yes_for_the_labels_a_kind_covers_and_names_the_scene_otherwise():
    from rsapp.tasks.vocabulary import scene_verdict

    assert scene_verdict("airport", "runway") == "yes: an airport runway"
    assert scene_verdict("airport", "airplane").startswith("yes")
    assert scene_verdict("residential area", "sparse residential") == "yes: a sparse residential area"
    assert scene_verdict("forest", "golf course") == "no: it looks like a golf course"
    assert scene_verdict("coast", "harbor") == "yes: a harbor"  # "is this near the coast?" had "no: … a harbor"
    assert scene_verdict("coast", "beach").startswith("yes") and scene_verdict("beach", "harbor").startswith("no")
    # either-or: the kind that is true, or neither
    assert scene_verdict("urban area or rural area", "dense residential") == "urban area: a dense residential area"
    assert scene_verdict("urban area or rural area", "chaparral") == "rural area: chaparral (shrubland)"
    assert scene_verdict("forest or golf course", "river") == "neither: it looks like a river"
    # a kind no label is: neither yes nor no
    assert scene_verdict("grassland", "golf course") == ("cannot say: the model knows no grassland scenes; it looks "
                                                         "like a golf course")
    # asked as a thing in the image: another kind of scene may still hold one
    assert scene_verdict("tennis court", "tennis court", inside=True) == "yes: it looks like a tennis court"
    assert scene_verdict("airport", "dense residential", inside=True) == (
        "probably not: it looks like a dense residential area (the model knows airport scenes, not one inside "
        "another scene)")
    assert scene_verdict("industrial area", "buildings", inside=True).startswith("cannot say")


@pytest.mark.parametrize("question,measured", [
    ("what is the dominant land cover?", ("composition", None)),
    ("what covers most of the area?", ("composition", None)),
    ("what is the area mostly covered by?", ("composition", None)),
    # "land cover" names no class ("bare land"'s "land" is not meant); a named class is asked for itself
    ("how much of the land cover is water?", ("cover", "water")), ("what is the dominant cover, trees?", None),
    ("how much bare land is there?", ("cover", "bare land")), ("what is the main land use?", None),
    # a class's density is its cover (the language model had answered "5 buildings were built")
    ("what is the building density?", ("cover", "building")), ("how dense is the forest?", ("cover", "vegetation")),
])
def test_a_question_about_what_covers_the_area_is_told_from_one_about_a_class(question, measured):
    from rsapp.tasks.vocabulary import measured_question

    assert measured_question(question) == measured


@pytest.mark.parametrize("question,asks", [
    ("what is the resolution of this image?", True), ("what's the GSD?", True), ("how many metres per pixel?", True),
    ("what is the pixel size?", True), ("how many houses are there?", False), ("is this a high street?", False),
    ("what scale is this image?", True), ("describe the large-scale pattern", False),
])
def test_a_question_about_the_gsd_is_recognised(question, asks):
    from rsapp.tasks.vocabulary import asks_gsd

    assert asks_gsd(question) is asks


@pytest.mark.parametrize("question,compared", [
    ("are there more houses than trees?", ("building", "vegetation", ">", False, "area")),
    ("is the number of buildings greater than the number of roads?", ("building", "road", ">", False, "count")),
    ("are there fewer cars than boats?", ("car", "ship", "<", False, "count")),  # things are counted
    ("which covers more, water or vegetation?", ("water", "vegetation", ">", True, "area")),
    ("is there as much water as bare land?", ("water", "bare land", "=", False, "area")),
    # one class, or two without a comparison: not a comparison
    ("is the largest building bigger than 100 m2?", None), ("are there buildings in the lower left and trees?", None),
    ("how many houses are there?", None),
])
def test_a_question_comparing_two_classes_names_both_and_how(question, compared):
    from dataclasses import astuple

    from rsapp.tasks.vocabulary import compared_classes, measured_question

    got = compared_classes(question)
    assert (astuple(got) if got else None) == compared
    assert ((measured_question(question) or ("",))[0] == "compare") is (compared is not None)


@pytest.mark.parametrize("question,what", [
    ("how wide is the road?", "plan"), ("what is the length of the runway?", "plan"),
    ("how far is the house from the road?", "plan"), ("how tall are the buildings?", "height"),
    ("how many floors does the building have?", "height"), ("how deep is the pool?", "height"),
    ("what colour are the roofs?", "colour"), ("what color is the water?", "colour"),
    # measured, or the GSD: not a length the model leaves unsaid
    ("how big is the largest building?", None), ("how many buildings are there?", None),
    ("how wide is a pixel?", None), ("is there a long road?", None), ("is there a green area?", None),
])
def test_a_length_or_height_the_model_does_not_measure_is_said_so(question, what):
    """The language model answered every such question on the Las Vegas sample "4 buildings were built"."""
    from rsapp.tasks.vocabulary import measured_question, unmeasured, unmeasured_sentence

    kind = (measured_question(question) or ("",))[0]
    assert (kind == "unmeasured") is (what is not None) and (kind == "gsd") is ("pixel" in question)
    if what:
        assert unmeasured(question) == what
        assert unmeasured_sentence(question).startswith("cannot say: ")
        assert ("heights" in unmeasured_sentence(question)) is (what == "height")
        assert ("colours" in unmeasured_sentence(question)) is (what == "colour")


def test_a_scene_question_listing_options_reads_each_in_the_users_words_and_answers_in_them():
    from rsapp.tasks.vocabulary import option_answer, option_of, scene_options

    options = scene_options("[CLS] classify the scene as one of: farmland, industrial, residential, parking lot")
    assert [(o.word, o.labels[:2]) for o in options] == [
        ("farmland", ("agricultural",)), ("industrial", ()),
        ("residential", ("dense residential", "medium residential")), ("parking lot", ("parking lot",))]
    assert [o.word for o in scene_options("is this a beach, a harbor or a parking lot?")] == [
        "beach", "harbor", "parking lot"]
    assert [o.word for o in scene_options("choose between airplane and runway")] == ["airplane", "runway"]
    # a question that lists nothing, or one thing, is a plain [CLS] question
    assert scene_options("what kind of scene is this?") == () == scene_options("which kind: forest?")
    assert scene_options("is there a river or a road visible in the image?") == ()  # long pieces are its own words
    # the answer: the option in the user's word, the label beside it when it says more, and what the scene looks
    # like when no option covers the scene head's own label
    assert option_answer("agricultural", options, "agricultural") == "farmland (agricultural)"
    assert option_answer("parking lot", options, "beach") == ("parking lot, of the options given; it looks most "
                                                              "like a beach")
    both = scene_options("is it an airport or a runway?")  # "airport" covers runway too: the runway option is named
    assert option_of("runway", both).word == "runway" and option_of("airplane", both).word == "airport"


@pytest.mark.parametrize("question,named", [
    ("what is in the top left?", ("the top left", (0, 0, 1 / 3, 1 / 3))),
    ("what's at the bottom of the image?", ("the bottom", (0, 2 / 3, 1, 1))),
    ("what is in the middle?", ("the centre", (1 / 3, 1 / 3, 2 / 3, 2 / 3))),
    ("what is on the right side?", ("the right", (2 / 3, 0, 1, 1))),
    ("what is at the lower-right corner?", ("the lower right", (2 / 3, 2 / 3, 1, 1))),
    ("what is in the image?", None), ("what are the top buildings?", None), ("where is the water?", None),
])
def test_a_question_about_a_part_of_the_picture_names_its_third(question, named):
    from rsapp.tasks.vocabulary import named_part

    got = named_part(question)
    assert (got is None) if named is None else (got[0] == named[0] and got[1] == pytest.approx(named[1])), got


def test_an_average_size_is_told_from_one_instances_size():
    from rsapp.tasks.vocabulary import asks_average

    assert asks_average("what's the average house size?") and asks_average("how big are the houses on average?")
    assert not asks_average("how big is the largest building?") and not asks_average("how many houses on average?")


@pytest.mark.parametrize("phrase,select", [
    ("A green and brown golf field", "largest"), ("the white ship", "largest"), ("a building", "largest"),
    ("the river", "largest"), ("the smallest pond", "smallest"), ("the tree nearest the road", "nearest road"),
    ("ships", "all"), ("all buildings", "all"), ("the houses", "all"), ("the trees in the park", "all"),
    ("every ship in the harbour", "all"), ("the water", "all"), ("the road network", "all"),  # many, or a mass
    ("the building closest to the intersection", "all"),  # a distance it cannot measure: every one, as it says
])
def test_a_phrase_naming_one_thing_boxes_the_largest_and_one_naming_many_boxes_all(phrase, select):
    from rsapp.tasks.vocabulary import grounding_selection

    assert grounding_selection(phrase) == select


@pytest.mark.parametrize("prompt,token", [
    ("A green and brown golf field", "[VG]"), ("the white ship", "[VG]"), ("ships", "[VG]"),
    ("the largest building", "[VG]"), ("all buildings", "[VG]"),
    ("the roads", "[SEG]"), ("the trees in the park", "[SEG]"),  # all of a class that covers areas: its mask
    ("the number of ships", "[VQA]"), ("trees are green", "[VQA]"), ("the image", "[VQA]"),  # no phrase to ground
])
def test_a_bare_phrase_naming_a_class_is_grounded(prompt, token):
    r = route(prompt, n_images=1)
    assert r.token == token and r.inferred
