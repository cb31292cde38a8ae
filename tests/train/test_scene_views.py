"""The scene head's training views (rsapp.train.scene): coarser, a mosaic, and with zoom_in a finer one."""

import numpy as np

from rsapp.train.scene import upsampled, views


def test_a_finer_view_is_the_same_area_upsampled_and_at_most_the_chip():
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    plain = views(scene, [scene], np.random.default_rng(1))
    zoomed = views(scene, [scene], np.random.default_rng(1), zoom_in=True)
    assert len(plain) == 4 and len(zoomed) == 5
    finer = zoomed[-1]
    assert 1.4 * 256 - 1 <= finer.shape[0] == finer.shape[1] <= 512
    # the same area: averaging the finer view back to 256 px gives the scene again (up to interpolation), flipped
    # or not
    from PIL import Image

    back = np.asarray(Image.fromarray(finer).resize((256, 256), Image.BOX)).astype(float)
    err = min(np.abs(back - scene).mean(), np.abs(back[:, ::-1] - scene).mean())
    assert err < 0.5 * np.abs(scene.astype(float) - scene.mean()).mean()


def test_upsampling_never_exceeds_the_chip():
    big = np.zeros((400, 300, 3), np.uint8)
    assert upsampled(big, 2.0).shape[:2] == (512, 384)
    assert upsampled(big, 1.2).shape[:2] == (480, 360)
