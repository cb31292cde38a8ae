"""[CLS] labels: the 21 scene classes the language model reads in its tag, and the land-cover words the scene head
names besides them."""

import torch

from rsapp.model.vision_model import VisionConfig, VisionModel, tag_dim

CFG = VisionConfig(scene_classes=("beach", "forest"), cover_scenes=("bare land", "water"))


def test_a_land_cover_word_needs_the_first_rank_and_more_than_half_the_probability():
    assert CFG.scene_labels == ("beach", "forest", "bare land", "water")
    assert CFG.cover_scene(torch.tensor([0.1, 0.1, 0.7, 0.1])) == "bare land"
    assert CFG.cover_scene(torch.tensor([0.35, 0.05, 0.45, 0.15])) is None  # a sandy beach: first, not sure
    assert CFG.cover_scene(torch.tensor([0.2, 0.1, 0.1, 0.6])) == "water"
    assert CFG.cover_scene(torch.tensor([0.6, 0.1, 0.2, 0.1])) is None  # a scene class ranks first
    assert VisionConfig(scene_classes=("beach",)).cover_scene(torch.tensor([1.0])) is None
    assert CFG.cover_scene(None) is None


def test_the_tag_keeps_the_scene_classes_and_the_labels_add_the_cover_words():
    torch.manual_seed(0)
    model = VisionModel(CFG).eval()
    with torch.no_grad():
        out = model.encode([torch.rand(1, 3, 64, 64)])
    assert model.scene_head.fc.out_features == 4
    assert out.labels.shape == (1, 4) and out.scene.shape == (1, 2)
    # the scene classes' probabilities are the softmax of their own logits: what the language model was trained on
    assert torch.allclose(out.scene, out.labels[:, :2] / out.labels[:, :2].sum(), atol=1e-6)
    assert out.tag().shape == (1, tag_dim(CFG)) and tag_dim(CFG) == tag_dim(VisionConfig(scene_classes=("a", "b")))
    assert CFG.scene_name(out) in CFG.scene_labels
