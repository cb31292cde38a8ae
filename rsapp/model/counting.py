"""How the model counts instances, shared with whoever reports counts (the map's layer totals) without importing
torch: a region smaller than MIN_INSTANCE_M2 is a speck of the mask, not a thing."""

# Smallest region of a class counted as an instance (m²): a car is ~9 m², a small shed ~10 m².
MIN_INSTANCE_M2 = 8.0
