"""The scene head's training views (rsapp.train.scene): coarser, a mosaic, with zoom_in a finer one, and with optics
another sensor's blur, sharpening or compression."""

import numpy as np

from rsapp.data.real_chips import other_optics
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


def test_another_sensors_optics_soften_sharpen_or_compress_the_same_scene():
    """Each of the three looks keeps the scene (its mean colour, its shape) and changes its fine detail: a blur lowers
    the pixel-to-pixel contrast, sharpening raises it, JPEG leaves it between."""
    from PIL import Image

    scene = np.asarray(Image.radial_gradient("L").resize((128, 128)).convert("RGB")).copy()
    scene[::8] = 255  # fine stripes for the optics to act on
    detail = lambda a: np.abs(np.diff(a.astype(float), axis=0)).mean()  # noqa: E731
    seen = [other_optics(scene, np.random.default_rng(seed)) for seed in range(12)]
    assert all(s.shape == scene.shape and s.dtype == np.uint8 for s in seen)
    assert all(abs(s.astype(float).mean() - scene.mean()) < 10 for s in seen)
    change = [detail(s) / detail(scene) for s in seen]
    assert min(change) < 0.8 and max(change) > 1.1  # softer and sharper ones among them
    same = views(scene, [scene], np.random.default_rng(3), optics=0.0)
    again = views(scene, [scene], np.random.default_rng(3))
    assert all(np.array_equal(a, b) for a, b in zip(same, again))  # without optics the views are drawn as before
