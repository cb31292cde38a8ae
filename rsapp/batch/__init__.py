"""Batch: one prompt over whole scenes or folders, tile by tile, locally or on a Dask cluster (issue #24).

tiles (the grid of each scene) → worker (one tile through the analyst; the model loaded once per process) →
store (finished tiles recorded as they come, so a rerun does only the rest) → merge (polygons unioned across
seams, boxes de-duplicated in map coordinates, counts and geodesic areas) → one GeoPackage or GeoJSON.
"""
