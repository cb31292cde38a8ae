"""Training-time colour casts: the sensor's and the atmosphere's colour, which the rendered corpus does not vary.

The renderer varies brightness and contrast only, so a rendered scene is always "white balanced": grey asphalt,
blue water. Real scenes are not (issue #4): the held-out SpaceNet Las Vegas chip has a blue-green cast under which
its asphalt (RGB ≈ 79/111/115) sits among the corpus's water colours, and the dense head called 53 % of it water.
Per-channel gains (white balance), a saturation change and a haze offset make colour alone an unreliable cue, so
the tower has to use shape and texture too. Training only: the evaluation corpus stays as rendered.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rsapp.data.samples import Sample

GAIN_SIGMA = 0.15  # log per-channel gain; two channels then differ by ±0.21 (1σ), the Las Vegas cast is ≈ 0.34
SATURATION = (0.4, 1.3)  # blend towards (< 1) or away from (> 1) each pixel's grey
HAZE = 25.0  # largest additive per-channel offset, 0–255 (path radiance)
DATE_SIGMA = 0.04  # log gain that differs between the two dates of a pair (two acquisitions, one sensor)


def colour_cast(sample: Sample, rng: np.random.Generator) -> Sample:
    """The sample under one random cast (both dates share it, each with a small difference of its own)."""
    gains = rng.normal(0.0, GAIN_SIGMA, 3)
    saturation = rng.uniform(*SATURATION)
    haze = rng.uniform(0.0, HAZE, 3) * rng.integers(2)
    images = []
    for rgb in sample.images:
        x = rgb.astype(np.float32)
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * saturation
        x = x * np.exp(gains + rng.normal(0.0, DATE_SIGMA, 3)) + haze
        images.append(np.clip(x, 0, 255).astype(np.uint8))
    return replace(sample, images=images)
