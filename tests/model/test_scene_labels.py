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


def test_a_scene_head_with_its_own_deep_blocks_reads_them_and_nothing_else_does():
    """With scene_tail, the scene head reads the pooled features of its own copy of the tower's deep blocks and head
    conv: an untuned copy names scenes as the shared tower does; a tuned one moves the scene probabilities and never
    the pixel maps or the GSD."""
    from rsapp.model.efficientnet import PooledTail

    torch.manual_seed(0)
    plain = VisionModel(CFG).eval()
    tailed = VisionModel(VisionConfig(scene_classes=CFG.scene_classes, cover_scenes=CFG.cover_scenes,
                                      scene_tail=True)).eval()
    missing, _ = tailed.load_state_dict(plain.state_dict(), strict=False)
    assert missing and all(k.startswith("scene_tail.") for k in missing)
    tailed.scene_tail = PooledTail.copy_of(tailed.tower.backbone).eval()
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        before, same = plain.encode([x]), tailed.encode([x])
        assert torch.allclose(same.labels, before.labels, atol=1e-5)
        for p in tailed.scene_tail.parameters():
            p.add_(0.2 * torch.randn_like(p))
        tuned = tailed.encode([x])
    assert (tuned.labels - before.labels).abs().max() > 0.01
    assert torch.equal(tuned.dense, before.dense) and torch.equal(tuned.s_mu, before.s_mu)
