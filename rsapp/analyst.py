"""Analyst.ask(scenes, prompt, aoi) → Answer: the one entry point the CLI and the app share."""

from __future__ import annotations

import time
from pathlib import Path

import shapely

from rsapp.answer import Answer
from rsapp.errors import RsappError
from rsapp.geo import Scene, make_chip, make_pair
from rsapp.tasks.tokens import route

WEIGHTS_ROOT = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_MODEL = "rsapp-tiny"
# Chip side used to check the geometry of a request when no model is loaded to say its own input size.
DEFAULT_CHIP_PX = 256
# GSDs outside this range are not imagery of the Earth's surface anyone would mean (0.01 m .. 1 km).
GSD_RANGE_M = (0.01, 1000.0)


def default_weights() -> Path:
    return WEIGHTS_ROOT / DEFAULT_MODEL


class Analyst:
    """Holds the loaded model (lazily) and answers prompts about one scene or a two-date pair."""

    def __init__(self, weights: str | Path | None = None, quant: str = "auto"):
        self.weights = Path(weights) if weights else default_weights()
        self.quant = quant
        self._runtime = None

    @property
    def runtime(self):
        if self._runtime is None:
            self._runtime = self._load_runtime()
        return self._runtime

    def _load_runtime(self):
        if not (self.weights / "config.json").exists():
            raise RsappError(
                f"model not available: no weights in {self.weights} (train them with `python -m rsapp train`)")
        from rsapp.model.runtime import Runtime  # torch is imported only when a model is really needed

        return Runtime.load(self.weights, quant=self.quant)

    def available(self) -> bool:
        return self._runtime is not None or (self.weights / "config.json").exists()

    def ask(self, scenes: list[Scene], prompt: str, aoi: shapely.Geometry | None = None, gsd: float | None = None,
            task: str | None = None) -> Answer:
        """Route the prompt, cut the chip(s) the AOI asks for, run the model, decode its text into geometry.

        The geometry is checked before the model is needed, so a bad AOI or pair is reported as such even
        when no weights are installed.
        """
        t0 = time.perf_counter()
        if not scenes or len(scenes) > 2:
            raise RsappError("give one image, or two dates of the same place")
        if gsd is not None and not GSD_RANGE_M[0] <= gsd <= GSD_RANGE_M[1]:
            raise RsappError(f"GSD override {gsd} m is outside {GSD_RANGE_M[0]}–{GSD_RANGE_M[1]} m")
        r = route(prompt, n_images=len(scenes), force=task)
        size = self.runtime.image_size if self.available() else DEFAULT_CHIP_PX
        if len(scenes) == 2:
            chips = list(make_pair(scenes[0], scenes[1], aoi, size))
        else:
            chips = [make_chip(scenes[0], aoi, size)]
        t_chip = time.perf_counter()
        answer = self.runtime.answer(chips, r, gsd_override_m=gsd)
        answer.timings_s = {"chip": t_chip - t0, **answer.timings_s, "total": time.perf_counter() - t0}
        return answer
