"""How the model counts instances, shared with whoever reports counts (the map's layer totals) without importing
torch: a region of a class's mask smaller than MIN_INSTANCE_M2 is a speck, not a thing.

(A per-class minimum for buildings was tried: 48 m², best on the xBD Harvey training images at 0.6 m, mean
relative count error 0.18 against 0.64, took the Las Vegas sample at 0.27 m from 36 to 9 counted buildings of 26,
because there the model's mask splits houses into pieces. The count follows the mask, not a threshold.)
"""

# Smallest region of a class counted as an instance (m²): a car is ~9 m², a small shed ~10 m².
MIN_INSTANCE_M2 = 8.0
