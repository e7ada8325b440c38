"""Clearance figures: exact values on a hand-checked example, rankings, lists."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from gis.clearance.figures import rank_districts
from gis.clearance.pipeline import clearance

MU = 10000 / 15


def test_project_figures_by_hand(small_layers):
    s = small_layers
    c = clearance(s["redlines_path"], s["parcels_path"], as_of=s["as_of"])
    a = c.projects.set_index("project_id").loc["A"]
    b = c.projects.set_index("project_id").loc["B"]
    assert a.total_mu == pytest.approx(20_000 / MU)
    assert a.acquired_mu == pytest.approx(20_000 / MU)
    assert a.delivered_mu == pytest.approx(10_000 / MU)
    assert (a.completion_rate, a.clean_land_rate) == pytest.approx((1.0, 0.5))
    assert a.houses_left == pytest.approx(2) and a.graves_left == pytest.approx(1)
    assert a.overdue  # deadline 2026-01-31 passed, half the land not delivered
    assert b.total_mu == pytest.approx(15_000 / MU)
    assert (b.completion_rate, b.clean_land_rate) == pytest.approx((1 / 3, 1 / 3))
    assert b.houses_left == pytest.approx(4) and b.households_left == pytest.approx(5)
    assert not b.overdue
    assert pd.isna(a.progressed)  # no previous snapshot: progress unknown, not "none"


def test_district_figures_count_land_once_and_rank(small_layers):
    s = small_layers
    c = clearance(s["redlines_path"], s["parcels_path"], as_of=s["as_of"])
    d = c.districts.set_index("district")
    # 东区: p1 + all of p2 (which lies in both A and B: counted once)
    assert d.loc["东区", "total_mu"] == pytest.approx(20_000 / MU)
    assert d.loc["东区", "completion_rate"] == pytest.approx(1.0)
    assert d.loc["西区", "total_mu"] == pytest.approx(10_000 / MU)  # p3; p4 is in no project
    assert d.loc["西区", "completion_rate"] == 0.0
    assert d.loc["西区", "houses_left"] == pytest.approx(4)
    assert list(c.districts["district"]) == ["东区", "西区"]
    assert list(c.districts["rank"]) == [1, 2]
    # two districts: one place on each list; 东区 has an overdue project (A), so it stays off the
    # red list (issue 19: a district with an overdue project is never on the red list by default)
    assert list(c.districts["list"]) == ["", "black"]
    assert list(rank_districts(c.districts, overdue_off_red=False)["list"]) == ["red", "black"]


def test_progress_ratio_from_previous_snapshot(small_layers, tmp_path):
    s = small_layers
    prev = s["parcels"].copy()
    prev.loc[prev.parcel_id == "p3", "status"] = "not_started"  # p3 (project B) moved this week
    prev_path = tmp_path / "prev.gpkg"
    prev.to_file(prev_path)
    c = clearance(s["redlines_path"], s["parcels_path"], previous=prev_path, as_of=s["as_of"])
    assert dict(zip(c.projects.project_id, c.projects.progressed)) == {"A": False, "B": True}
    d = c.districts.set_index("district")
    assert d.loc["东区", "progress_ratio"] == 0.0
    assert d.loc["西区", "progress_ratio"] == 1.0


def test_ranking_ties_and_list_sizes():
    figs = pd.DataFrame({
        "district": ["乙", "甲", "丙", "丁", "戊", "己", "庚", "辛"],
        "completion_rate": [0.5, 0.5, 0.9, 0.1, np.nan, 0.7, 0.3, 0.2],
        "clean_land_rate": [0.2, 0.2, 0.1, 0.0, np.nan, 0.9, 0.4, 0.1],
    })
    r = rank_districts(figs)
    # ties on both rates fall back to the name; a district with no land ranks last
    assert list(r["district"]) == ["丙", "己", "乙", "甲", "庚", "辛", "丁", "戊"]
    assert list(r["list"]) == ["red"] * 3 + [""] * 2 + ["black"] * 3
    small = rank_districts(figs.iloc[:5])
    assert list(small["list"]).count("red") == 2 and list(small["list"]).count("black") == 2


def test_demo_county_figures_are_consistent(demo_clearance):
    c = demo_clearance
    assert len(c.projects) == 8 and len(c.districts) == 6
    assert c.projects["completion_rate"].between(0, 1).all()
    assert (c.projects["clean_land_rate"] <= c.projects["completion_rate"]).all()
    # district land is counted once, so it never exceeds the sum over projects
    assert c.districts["total_mu"].sum() <= c.projects["total_mu"].sum() + 1e-9
    assert c.projects["progressed"].any() and not c.projects["progressed"].all()
    assert c.projects["overdue"].any()
    assert list(c.districts["rank"]) == list(range(1, 7))


def test_as_of_moves_overdue(small_layers):
    s = small_layers
    early = clearance(s["redlines_path"], s["parcels_path"], as_of=dt.date(2025, 12, 1))
    assert not early.projects["overdue"].any()
