import torch


def test_a_scene_holding_a_class_pushes_only_its_most_likely_pixels_of_that_class():
    from rsapp.train.losses import present_loss

    logits = torch.full((2, 3, 10, 10), -4.0)
    logits[0, 1, :2] = 3.0  # chip 0 already shows class 1 on 20 % of its pixels
    logits[1, 2, 0, 0] = 1.0  # chip 1 shows class 2 on one pixel, weakly
    logits.requires_grad_(True)
    loss = present_loss(logits, [(1,), (2,)], top_share=0.1)
    loss.backward()
    pushed = logits.grad != 0
    assert pushed[0, 1].sum() == 10 and pushed[0, 1, :2].sum() == 10  # the 10 % most likely, within the shown 20 %
    assert pushed[1, 2].sum() == 10 and pushed[1, 2, 0, 0]  # the likeliest pixel, and nine more
    assert not pushed[:, 0].any() and not pushed[0, 2].any() and not pushed[1, 1].any()  # other classes: unsaid
    assert (logits.grad[pushed] < 0).all()  # towards the class
    confident = present_loss(torch.full((1, 3, 10, 10), 6.0), [(0,)], 0.1)
    assert confident < 0.01 < loss  # nothing left to push where the class is already seen
