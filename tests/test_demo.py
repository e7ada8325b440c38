"""The demo county: deterministic, realistic enough to exercise every figure."""

from __future__ import annotations

import numpy as np

from gis.clearance import layers
from gis.synthetic.county import make_demo_county


def test_demo_county_shape(demo_county):
    red = layers.read_redlines(demo_county.redlines)
    parcels = layers.read_parcels(demo_county.parcels)
    inv = layers.read_inventory(demo_county.inventory)
    assert len(red) == 8 and red["project_type"].nunique() >= 6
    assert red["deadline"].notna().all() and red["freeze_date"].notna().all()
    assert len(parcels) >= 2000 and parcels["district"].nunique() >= 3
    assert parcels["status"].nunique() == 6
    assert (inv.geometry.area > 50).all() and len(inv) > 100
    # Chinese headers on disk, canonical names after reading
    assert layers.read_raw(demo_county.parcels).columns[0] == "宗地编号"


def test_demo_is_deterministic(tmp_path, demo_county):
    again = make_demo_county(tmp_path / "again")
    a = layers.read_parcels(demo_county.parcels)
    b = layers.read_parcels(again.parcels)
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    assert np.array_equal(a.geometry.to_wkb(), b.geometry.to_wkb())
