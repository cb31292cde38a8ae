"""Masks as GeoTIFFs on the chip grid, with the label names in the band metadata."""

from __future__ import annotations

from pathlib import Path

import rasterio

from rsapp.answer import Answer


def write_mask_geotiff(path: str | Path, answer: Answer) -> Path:
    """The answer's mask (or change map) as a single-band uint8 GeoTIFF on the grid the model saw."""
    if answer.mask is None:
        raise ValueError("this answer has no mask")
    path = Path(path)
    profile = dict(driver="GTiff", width=answer.chip_size, height=answer.chip_size, count=1, dtype="uint8",
                   transform=answer.transform, compress="deflate", nodata=None)
    if answer.crs is not None:
        profile["crs"] = answer.crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(answer.mask.astype("uint8"), 1)
        dst.set_band_description(1, "change" if answer.is_change else "mask")
        dst.update_tags(1, **{f"label_{i}": name for i, name in enumerate(answer.mask_labels)})
        dst.update_tags(task=answer.task, prompt=answer.prompt, model=answer.model, created=answer.created)
    return path
