"""The training stages run end to end on the real sets and leave checkpoints that load strictly."""

import pytest
from safetensors.torch import load_file

from tests.conftest import REAL

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real")]


def test_stage_a_change_and_scene_heads_stage_b_and_the_release_load(tmp_path):
    import sys

    import torch

    from rsapp.model.vision_model import VisionConfig, VisionModel
    from rsapp.tasks.vocabulary import COVER_SCENES, SCENE_CLASSES
    from rsapp.model.vlm import RsappVLM
    from rsapp.train.change import ChangeRun, train_change
    from rsapp.train.dense import DenseRun, train_dense
    from rsapp.train.instances import InstanceRun, train_instances
    from rsapp.train.language import LanguageRun, train_language
    from rsapp.train.scene import SceneRun, train_scene
    from rsapp.train.vision import VisionRun, train_vision
    from tests.conftest import ROOT

    a = train_vision(VisionRun(steps=2, dense_per_step=1, scene_per_step=1, change_per_step=1), tmp_path / "a")
    VisionModel(VisionConfig()).load_state_dict(load_file(str(a / "vision.safetensors")), strict=True)
    c = train_change(ChangeRun(vision=str(a), steps=2, pairs_per_step=2), tmp_path / "c")
    s = train_scene(SceneRun(vision=str(c), epochs=1, scenes_per_class=1, cover_per_class=2), tmp_path / "s")
    i = train_instances(InstanceRun(vision=str(a), steps=2, chips_per_step=2), tmp_path / "i")
    b = train_language(LanguageRun(vision=str(a), steps=1, batch=1), tmp_path / "b")
    model = RsappVLM.load(b)
    assert {"projector.tag.0.weight", "lm.extra_embed"} <= set(model.trained_state())

    sys.path.insert(0, str(ROOT / "tools"))
    from ship_model import ship

    assert model.vision.cfg.instance_classes == () and not hasattr(model.vision, "instance_head")
    release = RsappVLM.load(ship(b, tmp_path / "release", change=c, scene=s, instances=i))
    assert release.cfg.vision.instance_classes == ("building",)
    assert release.cfg.vision.cover_scenes == COVER_SCENES  # the scene head names the land-cover words too
    assert release.vision.scene_head.fc.out_features == len(SCENE_CLASSES) + len(COVER_SCENES)
    for name, run in (("change_head", c), ("scene_head", s), ("instance_head", i)):
        head = load_file(str(run / "vision.safetensors"))
        grafted = getattr(release.vision, name).state_dict()
        assert all(torch.equal(grafted[k], head[f"{name}.{k}"].half().float()) for k in grafted)
    assert not torch.equal(release.vision.scene_head.fc.weight, model.vision.scene_head.fc.weight)  # refitted
    tower = release.vision.tower.state_dict()
    assert all(torch.equal(tower[k], model.vision.tower.state_dict()[k]) for k in tower)
    with pytest.raises(SystemExit, match="another tower"):
        ship(b, tmp_path / "wrong", change=_other_tower(tmp_path, a))
    # a head refitted on a release's own tower (its base backbone tensors come from the installed wheel)
    again = train_scene(SceneRun(vision=str(tmp_path / "release"), epochs=1, scenes_per_class=1, cover_per_class=2,
                                 zoom_in=True), tmp_path / "s2")
    import json

    assert json.loads((again / "run.json").read_text())["views"] == 5 * (21 + 2 * 2)  # each scene also seen finer
    refit = RsappVLM.load(ship(tmp_path / "release", tmp_path / "release2", scene=again))
    assert refit.cfg.vision.cover_scenes == COVER_SCENES
    assert all(torch.equal(refit.vision.tower.state_dict()[k], tower[k]) for k in tower)
    # a change head fitted on the release's own tower, on made pairs that also paste buildings and change other
    # classes, grafts into it
    c2 = train_change(ChangeRun(vision=str(tmp_path / "release"), steps=1, pairs_per_step=2, paste_share=1.0,
                                distractor_share=1.0), tmp_path / "c2")
    again = RsappVLM.load(ship(tmp_path / "release", tmp_path / "release3", change=c2))
    assert all(torch.equal(again.vision.tower.state_dict()[k], tower[k]) for k in tower)
    # a second change head, fitted with real pairs without building change too, grafts beside the first
    c3 = train_change(ChangeRun(vision=str(tmp_path / "release"), steps=1, pairs_per_step=2, unchanged_pairs=True),
                      tmp_path / "c3")
    both = RsappVLM.load(ship(tmp_path / "release3", tmp_path / "release4", second_change=c3))
    assert both.cfg.vision.second_change_head and not again.cfg.vision.second_change_head
    second, fitted = both.vision.second_change_head.state_dict(), load_file(str(c3 / "vision.safetensors"))
    assert all(torch.equal(second[k], fitted[f"change_head.{k}"].half().float()) for k in second)
    first = both.vision.change_head.state_dict()
    assert all(torch.equal(first[k], again.vision.change_head.state_dict()[k]) for k in first)
    # the dense head refitted on the release's tower (land-cover chips and scenes ruling classes out) grafts into it
    # as its mask head, beside the dense head the tag reads
    d = train_dense(DenseRun(vision=str(tmp_path / "release"), steps=2, chips_per_step=1, ruled_out_per_step=1),
                    tmp_path / "d")
    dense = RsappVLM.load(ship(tmp_path / "release", tmp_path / "release4", dense=d, mask_share=0.5))
    assert dense.cfg.vision.mask_head_share == 0.5
    head = load_file(str(d / "vision.safetensors"))
    grafted = dense.vision.mask_head.state_dict()
    assert all(torch.equal(grafted[k], head[f"mask_head.{k}"].half().float()) for k in grafted)
    before = release.vision.dense_head.state_dict()
    assert not torch.equal(grafted["out.weight"], before["out.weight"])  # it started as the dense head, and moved
    assert all(torch.equal(dense.vision.dense_head.state_dict()[k], before[k]) for k in before)
    assert all(torch.equal(dense.vision.tower.state_dict()[k], tower[k]) for k in tower)
    # refitted again, it continues from the release's mask head
    d2 = train_dense(DenseRun(vision=str(tmp_path / "release4"), steps=1, chips_per_step=1, ruled_out_per_step=0,
                              lr=0.0), tmp_path / "d2")
    again = load_file(str(d2 / "vision.safetensors"))
    assert all(torch.equal(again[f"mask_head.{k}"], grafted[k]) for k in grafted)
    # refitted for water alone, with scenes that hold water somewhere: only the water row of its read-out moves
    d3 = train_dense(DenseRun(vision=str(tmp_path / "release4"), steps=2, chips_per_step=1, ruled_out_per_step=1,
                              present_per_step=2, only_classes=("water",), lr=0.05, weight_decay=0.0), tmp_path / "d3")
    water = load_file(str(d3 / "vision.safetensors"))
    w = release.cfg.vision.dense_classes.index("water")
    for k in grafted:
        moved = water[f"mask_head.{k}"] != grafted[k]
        if k.startswith("out."):
            assert moved[w].any() and not moved[:w].any() and not moved[w + 1:].any(), k
        else:
            assert not moved.any(), k
    # with an anchor the whole head learns water (the decoder too), the other classes held to their maps by a loss
    d5 = train_dense(DenseRun(vision=str(tmp_path / "release4"), steps=2, chips_per_step=1, ruled_out_per_step=1,
                              present_per_step=1, only_classes=("water",), anchor=5.0, lr=0.05), tmp_path / "d5")
    anchored = load_file(str(d5 / "vision.safetensors"))
    assert any(not torch.equal(anchored[f"mask_head.{k}"], grafted[k]) for k in grafted if k.startswith("decoder."))
    with pytest.raises(ValueError, match="weight_decay"):
        train_dense(DenseRun(vision=str(tmp_path / "release4"), steps=1, only_classes=("water",)), tmp_path / "d4")
    # with tail_lr the mask head's own copy of the deep blocks learns with it; shipped, the release reads it, and
    # the shared tower stays as it was
    d6 = train_dense(DenseRun(vision=str(tmp_path / "release4"), steps=2, chips_per_step=1, ruled_out_per_step=1,
                              tail_lr=0.05), tmp_path / "d6")
    tailed = RsappVLM.load(ship(tmp_path / "release4", tmp_path / "release5", dense=d6, mask_share=0.5))
    assert tailed.cfg.vision.mask_tail
    blocks = tailed.vision.mask_tail.blocks.state_dict()
    first = tailed.vision.mask_tail.first
    start = {k: v for k, v in tower.items() if k.startswith("backbone._blocks.")}
    moved = [k for k in blocks if not torch.equal(blocks[k], start[f"backbone._blocks.{int(k.split('.')[0]) + first}."
                                                                   + k.split(".", 1)[1]])]
    assert moved and all(torch.equal(tailed.vision.tower.state_dict()[k], tower[k]) for k in tower)
    assert not RsappVLM.load(ship(tmp_path / "release5", tmp_path / "release6", dense=d, mask_share=0.5)
                             ).cfg.vision.mask_tail  # a mask head fitted without one ships without it
    # its water refitted again (the anchor reads the maps the head makes through its copy): the copy is kept as is
    d8 = train_dense(DenseRun(vision=str(tmp_path / "release5"), steps=1, chips_per_step=1, ruled_out_per_step=1,
                              present_per_step=1, only_classes=("water",), anchor=5.0, lr=0.05), tmp_path / "d8")
    kept = load_file(str(d8 / "vision.safetensors"))
    assert all(torch.equal(kept[f"mask_tail.blocks.{k}"], v.float()) for k, v in blocks.items())
    assert RsappVLM.load(ship(tmp_path / "release5", tmp_path / "release7", dense=d8, mask_share=0.5)
                         ).cfg.vision.mask_tail
    with pytest.raises(ValueError, match="only_classes"):
        train_dense(DenseRun(vision=str(tmp_path / "release4"), steps=1, only_classes=("water",), tail_lr=1e-4,
                             weight_decay=0.0), tmp_path / "d7")


def test_look_everywhere_sees_the_ruled_out_scenes_and_the_crowns_as_another_sensor_too(tmp_path, monkeypatch):
    from rsapp.train import dense
    from tests.conftest import ROOT

    looks = {}

    def spy(name, real):
        def drawn(*args, **kwargs):
            looks.setdefault(name, set()).add(kwargs.get("look", 0.0))
            return real(*args, **kwargs)
        return drawn

    monkeypatch.setattr(dense, "add_dense", spy("dense", dense.add_dense))
    monkeypatch.setattr(dense, "add_crowns", spy("crowns", dense.add_crowns))
    run = dict(vision=str(ROOT / "weights" / "rsapp-v2"), steps=1, chips_per_step=1, ruled_out_per_step=1,
               crowns_per_step=1, look=0.5)
    dense.train_dense(dense.DenseRun(**run), tmp_path / "labelled")
    assert looks == {"dense": {0.5, 0.0}, "crowns": {0.0}}  # the labelled chips alone: a look came with labels
    looks.clear()
    dense.train_dense(dense.DenseRun(**run, look_everywhere=True), tmp_path / "everywhere")
    assert looks == {"dense": {0.5}, "crowns": {0.5}}


def _other_tower(tmp_path, a):
    """A copy of run `a` whose tower differs in one tensor."""
    from safetensors.torch import save_file

    state = load_file(str(a / "vision.safetensors"))
    state["tower.backbone._conv_stem.weight"] = state["tower.backbone._conv_stem.weight"] + 1
    out = tmp_path / "other"
    out.mkdir()
    save_file(state, str(out / "vision.safetensors"))
    return out
