"""Pictures for the web map: the scene decimated from overviews and reprojected to Web Mercator (Leaflet's
image overlays are linear in EPSG:3857), with transparency where there is no data."""

from __future__ import annotations

import base64
import io

import numpy as np
from affine import Affine
from PIL import Image
from rasterio.crs import CRS
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_bounds

WEB_MERCATOR = CRS.from_epsg(3857)
WGS84 = CRS.from_epsg(4326)
DISPLAY_MAX_SIDE_PX = 1024


def web_overlay(scene, max_side_px: int = DISPLAY_MAX_SIDE_PX) -> tuple[np.ndarray, list[list[float]]]:
    """(h, w, 4) RGBA in Web Mercator and its Leaflet bounds [[south, west], [north, east]].

    Scenes without georeference are returned in pixel space: bounds [[-height, 0], [0, width]] (Leaflet
    CRS.Simple, with y pointing up, so row r sits at latitude -r).
    """
    rgb, valid = scene.overview_rgb(max_side_px)
    rgba = np.dstack([rgb, (valid * 255).astype(np.uint8)])
    if not scene.georeferenced:
        return rgba, [[-float(scene.height), 0.0], [0.0, float(scene.width)]]
    h, w = rgb.shape[:2]
    src_transform = scene.transform @ Affine.scale(scene.width / w, scene.height / h)
    left, bottom, right, top = scene.ds.bounds
    dst_transform, dw, dh = calculate_default_transform(scene.crs, WEB_MERCATOR, w, h, left, bottom, right, top)
    out = np.zeros((4, dh, dw), np.uint8)
    reproject(rgba.transpose(2, 0, 1), out, src_transform=src_transform, src_crs=scene.crs,
              dst_transform=dst_transform, dst_crs=WEB_MERCATOR, resampling=Resampling.nearest)
    x0, y0 = dst_transform @ (0, 0)
    x1, y1 = dst_transform @ (dw, dh)
    west, south, east, north = transform_bounds(WEB_MERCATOR, WGS84, x0, y1, x1, y0)
    return out.transpose(1, 2, 0), [[south, west], [north, east]]


def png_data_url(rgba: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
