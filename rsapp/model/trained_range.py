"""The GSDs each dense class was trained at, and whether a GSD lies beyond them: an answer about a class beyond
its range warns (rsapp.analyst.beyond_training), and the change answer reads the road mask only within it."""

from __future__ import annotations

# The coarsest GSD each dense class was trained at: stage A resamples the real sets up to 8 × their GSD, and the
# coarsest labelling each land-cover class is Dubai's (~0.5–1 m); cars come from ISPRS (≤ 0.09 m), ships from
# Sentinel-2 (10 m). tests/data/test_real_sets.py recomputes these from the train splits.
TRAINED_MAX_GSD_M = {"building": 8.0, "road": 8.0, "water": 8.0, "vegetation": 8.0, "bare land": 8.0, "car": 0.72,
                     "ship": 80.0}
# The finest: each set's own GSD (training never upsamples; Dubai's taken at the finer end of its ~0.5–1 m). A
# 0.3 m harbour's boats are 30 × finer than any ship the model saw, and it finds none of them.
TRAINED_MIN_GSD_M = {"building": 0.05, "road": 0.05, "water": 0.5, "vegetation": 0.05, "bare land": 0.5, "car": 0.05,
                     "ship": 10.0}
# A class is beyond its trained range past this factor of it (coarser, finer).
BEYOND_COARSER, BEYOND_FINER = 1.5, 2.0


def coarser_than_trained(classes: list[str], gsd_m: float) -> list[str]:
    """The classes the model never saw as coarse as gsd_m, by more than BEYOND_COARSER."""
    return [c for c in classes if c in TRAINED_MAX_GSD_M and gsd_m > BEYOND_COARSER * TRAINED_MAX_GSD_M[c]]


def finer_than_trained(classes: list[str], gsd_m: float) -> list[str]:
    """The classes the model never saw as fine as gsd_m, by more than BEYOND_FINER."""
    return [c for c in classes if c in TRAINED_MIN_GSD_M and gsd_m * BEYOND_FINER < TRAINED_MIN_GSD_M[c]]
