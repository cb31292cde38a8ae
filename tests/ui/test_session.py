"""Session state without the browser: an AOI outside the image is refused when it is set, and nothing changes."""

import json

import pytest
import shapely

from rsapp.errors import RsappError
from rsapp.ui.session import Session


def test_an_aoi_outside_the_image_is_refused_when_set_and_the_session_keeps_its_aoi(geo_tif):
    s = Session()
    s.load([str(geo_tif)])
    inside = {"type": "Polygon", "coordinates": [[[15.001, 45.19], [15.01, 45.19], [15.01, 45.199],
                                                  [15.001, 45.199], [15.001, 45.19]]]}
    assert s.set_aoi(json.dumps(inside)).startswith("AOI:")
    far = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    with pytest.raises(RsappError, match="outside"):
        s.set_aoi(json.dumps(far))
    assert shapely.geometry.shape(s.aoi).equals(shapely.geometry.shape(inside))  # the earlier AOI stays
