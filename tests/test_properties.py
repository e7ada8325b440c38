"""Invariants of overlay and figures, on random cadastres (hypothesis)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gis.synthetic.county import jittered_cadastre
from gis.clearance.pipeline import clearance
from gis.schema import STATUSES

ORIGIN = (480_000.0, 3_350_000.0)


@st.composite
def county(draw):
    nx, ny = draw(st.integers(2, 9)), draw(st.integers(2, 9))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    cell = 40.0
    geoms = jittered_cadastre(nx, ny, cell, ORIGIN, seed=seed)
    n = len(geoms)
    parcels = gpd.GeoDataFrame({
        "parcel_id": [f"p{i}" for i in range(n)],
        "district": rng.choice(["甲", "乙", "丙"], n),
        "status": rng.choice(STATUSES, n),
        "houses": rng.integers(0, 4, n),
        "graves": rng.integers(0, 3, n),
    }, geometry=geoms, crs="EPSG:4547")
    k = draw(st.integers(1, 4))
    boxes = []
    for _ in range(k):
        x0, y0 = rng.uniform(-20, nx * cell, 2)
        w, h = rng.uniform(20, nx * cell), rng.uniform(20, ny * cell)
        boxes.append(shapely.box(ORIGIN[0] + x0, ORIGIN[1] + y0, ORIGIN[0] + x0 + w, ORIGIN[1] + y0 + h))
    red = gpd.GeoDataFrame({"project_id": [f"R{i}" for i in range(k)],
                            "district": rng.choice(["甲", "乙", "丙"], k)}, geometry=boxes, crs="EPSG:4547")
    return parcels, red


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(county())
def test_pieces_never_exceed_their_parcel_and_rates_are_fractions(data):
    parcels, red = data
    c = clearance(red, parcels)
    area = parcels.set_index("parcel_id").geometry.area
    per_parcel_project = c.pieces.groupby(["parcel_id", "project_id"])["area_m2"].sum()
    assert (per_parcel_project.to_numpy() <= area.reindex(per_parcel_project.index.get_level_values(0)).to_numpy()
            * (1 + 1e-9)).all()
    for df in (c.projects, c.districts):
        for col in ("completion_rate", "clean_land_rate"):
            vals = df[col].dropna()
            assert ((vals >= 0) & (vals <= 1 + 1e-12)).all()


@SETTINGS
@given(county())
def test_district_total_is_area_of_union_of_its_pieces(data):
    parcels, red = data
    c = clearance(red, parcels)
    for _, row in c.districts.iterrows():
        geoms = c.pieces.loc[c.pieces["district"] == row["district"], "geometry"].to_numpy()
        union = shapely.area(shapely.union_all(geoms)) if len(geoms) else 0.0
        assert abs(row["total_mu"] * (10000 / 15) - union) <= 1e-6 * max(union, 1.0)


def _figures(c):
    p = c.projects.set_index("project_id")[["total_mu", "acquired_mu", "delivered_mu", "houses_left", "graves_left"]]
    d = c.districts.set_index("district")[["total_mu", "acquired_mu", "delivered_mu", "houses_left", "rank"]]
    return p.sort_index(), d.sort_index()


@SETTINGS
@given(county(), st.integers(0, 2**31 - 1))
def test_figures_do_not_depend_on_row_order_or_input_crs(data, seed):
    parcels, red = data
    base_p, base_d = _figures(clearance(red, parcels))

    shuffled = clearance(red.sample(frac=1, random_state=seed % 1000),
                         parcels.sample(frac=1, random_state=seed % 997))
    sp, sd = _figures(shuffled)
    pd.testing.assert_frame_equal(base_p, sp, rtol=1e-12)
    pd.testing.assert_frame_equal(base_d, sd, rtol=1e-12)

    geographic = clearance(red.to_crs(4490), parcels.to_crs(4490))  # back to the GK zone inside
    assert geographic.crs.to_epsg() == 4547
    gp, gd = _figures(geographic)
    pd.testing.assert_frame_equal(base_p, gp, rtol=1e-6, atol=1e-6)
    pd.testing.assert_frame_equal(base_d.drop(columns="rank"), gd.drop(columns="rank"), rtol=1e-6, atol=1e-6)
