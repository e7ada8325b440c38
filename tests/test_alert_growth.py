"""A house that grows next to its own alert updates that alert; it opens no alert for the new strip.

The demo's case (issue 19): a P01 house of 14 x 12 m grew to 20 x 15 m
between two surveys; detection saw the growth as two strips, one on each
side, the first overlapping the old footprint a little, the other only
touching it. Both are the house growing: one alert, its footprint the union.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import box

from alertsdata import changes
from gis.alerts.identity import update_alerts
from gis.alerts.store import empty_alerts

D1, D2, D3 = dt.date(2026, 10, 31), dt.date(2026, 11, 7), dt.date(2026, 11, 14)
CRS = "EPSG:4547"
RED = gpd.GeoDataFrame({"project_id": ["P01"], "district": ["东城区"], "freeze_date": [dt.date(2026, 9, 1)]},
                       geometry=[box(0, 0, 1000, 1000)], crs=CRS)
PARCELS = gpd.GeoDataFrame({"parcel_id": ["东城-02411"], "district": ["东城区"]},
                           geometry=[box(50, 50, 200, 200)], crs=CRS)
HOUSE = box(103, 100, 117, 112)  # 14 x 12 m = 168 m2, first seen on D2
GROWN = box(100, 100, 120, 115)  # 20 x 15 m = 300 m2 on D3
LEFT = box(100, 100, 105, 115)  # overlaps the old house by 2 x 12 m: 32 % of the strip
RIGHT = box(117, 100, 120, 115)  # touches the old house, does not overlap it


def run(alerts, ch, date, prev):
    return update_alerts(alerts, ch, epoch_date=date, previous_date=prev, epoch_dates=[D1, D2, D3],
                         redlines=RED, parcels=PARCELS, run_date=date + dt.timedelta(days=3))


@pytest.fixture
def first():
    up = run(empty_alerts(CRS), changes(("new_structure", HOUSE)), D2, D1)
    assert len(up.new_ids) == 1
    return up


def only_alert(up, aid):
    assert up.new_ids == [] and list(up.alerts["alert_id"]) == [aid]
    return up.alerts.set_index("alert_id").loc[aid]


def test_two_strips_of_a_grown_house_grow_its_alert(first):
    aid = first.new_ids[0]
    up = run(first.alerts, changes(("new_structure", LEFT), ("new_structure", RIGHT)), D3, D2)
    a = only_alert(up, aid)
    union = shapely.union_all([HOUSE, LEFT, RIGHT])
    assert a["area_m2"] == pytest.approx(union.area) and a.geometry.equals(union)
    assert bool(a["growing"]) and a["seen_count"] == 2 and a["last_seen"] == D3.isoformat()
    assert a["ref_alert_id"] == "" and a["parcel_id"] == "东城-02411"
    # a re-run of the same survey changes nothing and opens nothing
    again = run(up.alerts, changes(("new_structure", LEFT), ("new_structure", RIGHT)), D3, D2)
    assert again.new_ids == [] and again.events == []


def test_only_the_adjacent_strip_grows_the_alert(first):
    aid = first.new_ids[0]
    a = only_alert(run(first.alerts, changes(("new_structure", RIGHT)), D3, D2), aid)
    assert a["area_m2"] == pytest.approx(HOUSE.area + RIGHT.area) and bool(a["growing"])


def test_the_whole_grown_house_grows_the_alert(first):
    aid = first.new_ids[0]
    a = only_alert(run(first.alerts, changes(("new_structure", GROWN)), D3, D2), aid)
    assert a["area_m2"] == pytest.approx(GROWN.area) and bool(a["growing"])


def test_the_whole_grown_house_and_a_strip_beside_it_are_one_alert(first):
    aid = first.new_ids[0]
    porch = box(105, 97, 115, 100)  # 30 m2 below the house, touching the old and the grown footprint
    up = run(first.alerts, changes(("new_structure", GROWN), ("new_structure", porch)), D3, D2)
    a = only_alert(up, aid)
    assert a["area_m2"] == pytest.approx(GROWN.area + porch.area)


def test_a_neighbour_further_than_two_metres_or_of_another_kind_is_its_own_alert(first):
    aid = first.new_ids[0]
    near = run(first.alerts, changes(("new_structure", box(120, 100, 130, 110))), D3, D2)
    assert len(near.new_ids) == 1  # 3 m away
    crops = run(first.alerts, changes(("new_structure", LEFT), ("new_crops", box(117, 100, 140, 130))), D3, D2)
    assert len(crops.new_ids) == 1 and crops.alerts.set_index("alert_id").loc[aid, "area_m2"] == pytest.approx(
        shapely.union(HOUSE, LEFT).area)
