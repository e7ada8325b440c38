"""Alert identity rules: pure functions over GeoDataFrames."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from alertsdata import changes
from gis.alerts.identity import freeze_baseline, overlap_pairs, update_alerts
from gis.alerts.store import empty_alerts

D1, D2, D3 = dt.date(2026, 3, 1), dt.date(2026, 3, 8), dt.date(2026, 3, 15)
CRS = "EPSG:4547"
RED = gpd.GeoDataFrame({"project_id": ["P1", "P2"], "district": ["东城区", "西城区"],
                        "freeze_date": [dt.date(2026, 2, 1), dt.date(2026, 6, 1)]},
                       geometry=[box(0, 0, 1000, 1000), box(2000, 0, 3000, 1000)], crs=CRS)


def run(alerts, ch, date, prev, **kw):
    return update_alerts(alerts, ch, epoch_date=date, previous_date=prev, redlines=RED,
                         epoch_dates=[D1, D2, D3], run_date=date, **kw)


def first():
    ch = changes(("new_structure", box(100, 100, 120, 120)), ("new_crops", box(2100, 100, 2200, 160)),
                 ("new_structure", box(5000, 5000, 5030, 5030)))
    return run(empty_alerts(CRS), ch, D2, D1)


def test_new_alerts_get_ids_context_and_freeze_flags():
    up = first()
    a = up.alerts.set_index("alert_id")
    assert len(up.new_ids) == 3 and len(set(up.new_ids)) == 3
    assert all(i.startswith("A20260308-") for i in up.new_ids)
    assert set(a["status"]) == {"new"}
    by_proj = a.set_index("project_id")
    # P1 froze on 2026-02-01, before all imagery: anything new since 03-01 is post-freeze
    assert bool(by_proj.loc["P1", "post_freeze"]) and by_proj.loc["P1", "freeze_date"] == "2026-02-01"
    # P2 freezes on 2026-06-01: not yet
    assert not bool(by_proj.loc["P2", "post_freeze"]) and by_proj.loc["P2", "district"] == "西城区"
    # outside every red line: district of the nearest red line, no freeze
    assert by_proj.loc["", "district"] in ("东城区", "西城区") and not bool(by_proj.loc["", "post_freeze"])
    assert np.allclose(by_proj.loc["P2", "area_mu"], 6000 / 666.6667, rtol=1e-4)
    assert (a["seen_count"] == 1).all() and (a["first_seen"] == "2026-03-08").all()


def test_same_change_again_updates_the_same_alert_and_flags_growth():
    up = first()
    aid = up.alerts.loc[up.alerts["project_id"] == "P1", "alert_id"].iloc[0]
    grown = changes(("new_structure", box(100, 100, 125, 125)),  # 625 m2 vs 400: +56 %
                    ("new_crops", box(2100, 100, 2200, 160)), ("new_structure", box(5000, 5000, 5030, 5030)))
    up2 = run(up.alerts, grown, D3, D2)
    assert up2.new_ids == []
    a = up2.alerts.set_index("alert_id")
    assert a.loc[aid, "last_seen"] == "2026-03-15" and a.loc[aid, "seen_count"] == 2
    assert a.loc[aid, "area_m2"] == pytest.approx(625) and bool(a.loc[aid, "growing"])
    assert (~a.drop(index=aid)["growing"]).all()
    assert {e["field"] for e in up2.events if e["alert_id"] == aid} >= {"last_seen", "area_m2", "growing"}


def test_rerun_of_the_same_epoch_changes_nothing():
    up = first()
    ch = changes(("new_structure", box(100, 100, 120, 120)), ("new_crops", box(2100, 100, 2200, 160)),
                 ("new_structure", box(5000, 5000, 5030, 5030)))
    again = run(up.alerts, ch, D2, D1)
    assert again.new_ids == [] and again.events == [] and again.updated_ids == []
    cols = [c for c in up.alerts.columns if c != "geometry"]
    assert again.alerts[cols].equals(up.alerts[cols])
    assert again.alerts.geometry.geom_equals(up.alerts.geometry).all()


def test_verdict_fields_are_never_touched_by_a_run():
    up = first()
    a = up.alerts.copy()
    k = a.index[a["project_id"] == "P1"][0]
    a.loc[k, ["status", "verdict", "note", "photos", "updated_by"]] = ["illegal", "illegal", "查实", "photos/x.jpg", "李"]
    a.loc[k, "verdict_area_m2"] = 400.0
    up2 = run(a, changes(("new_structure", box(100, 100, 121, 121))), D3, D2)
    row = up2.alerts.loc[up2.alerts["alert_id"] == a.loc[k, "alert_id"]].iloc[0]
    assert (row["status"], row["verdict"], row["note"], row["photos"], row["updated_by"]) == \
        ("illegal", "illegal", "查实", "photos/x.jpg", "李")
    assert row["last_seen"] == "2026-03-15" and not row["growing"]  # 441 vs 400 at verdict: +10 %


def test_false_alarm_suppresses_the_footprint_until_it_grows_or_changes_kind():
    up = first()
    a = up.alerts.copy()
    k = a.index[a["project_id"] == "P2"][0]
    closed_id = a.loc[k, "alert_id"]
    a.loc[k, ["status", "verdict"]] = ["false_alarm", "false_alarm"]
    a.loc[k, "verdict_area_m2"] = 6000.0
    same = run(a, changes(("new_crops", box(2100, 100, 2200, 162))), D3, D2)
    assert same.new_ids == [] and same.suppressed == 1
    grown = run(a, changes(("new_crops", box(2100, 100, 2200, 200))), D3, D2)  # 10000 vs 6000
    assert len(grown.new_ids) == 1
    new = grown.alerts.set_index("alert_id").loc[grown.new_ids[0]]
    assert new["ref_alert_id"] == closed_id and new["status"] == "new"
    other_kind = run(a, changes(("new_structure", box(2100, 100, 2200, 160))), D3, D2)
    assert len(other_kind.new_ids) == 1
    assert other_kind.alerts.set_index("alert_id").loc[other_kind.new_ids[0], "ref_alert_id"] == closed_id
    # the closed alert itself keeps its verdict
    assert grown.alerts.set_index("alert_id").loc[closed_id, "status"] == "false_alarm"


def test_merge_keeps_the_oldest_identity_and_references_it():
    a1 = run(empty_alerts(CRS), changes(("new_structure", box(100, 100, 120, 120))), D1, None)
    a2 = run(a1.alerts, changes(("new_structure", box(100, 100, 120, 120)),
                                 ("new_structure", box(130, 100, 150, 120))), D2, D1)
    old_id, young_id = a1.new_ids[0], a2.new_ids[0]
    merged = run(a2.alerts, changes(("new_structure", box(100, 100, 150, 120))), D3, D2)
    a = merged.alerts.set_index("alert_id")
    assert merged.new_ids == [] and merged.merged_ids == [young_id]
    assert a.loc[old_id, "area_m2"] == pytest.approx(1000) and a.loc[old_id, "last_seen"] == "2026-03-15"
    assert a.loc[young_id, "ref_alert_id"] == old_id and a.loc[young_id, "area_m2"] == pytest.approx(400)
    again = run(merged.alerts, changes(("new_structure", box(100, 100, 150, 120))), D3, D2)
    assert again.events == [] and again.new_ids == []


def test_split_keeps_identity_on_the_largest_part():
    a1 = run(empty_alerts(CRS), changes(("new_structure", box(100, 100, 160, 120))), D2, D1)
    aid = a1.new_ids[0]
    split = run(a1.alerts, changes(("new_structure", box(100, 100, 125, 120)),
                                   ("new_structure", box(130, 100, 160, 120))), D3, D2)
    a = split.alerts.set_index("alert_id")
    assert len(split.new_ids) == 1
    assert a.loc[aid, "area_m2"] == pytest.approx(600)  # the larger part (30 x 20) keeps the id
    assert a.loc[split.new_ids[0], "ref_alert_id"] == aid
    again = run(split.alerts, changes(("new_structure", box(100, 100, 125, 120)),
                                      ("new_structure", box(130, 100, 160, 120))), D3, D2)
    assert again.new_ids == [] and again.events == []


def test_small_changes_are_dropped_and_order_does_not_matter():
    ch = changes(("new_structure", box(100, 100, 103, 103)), ("new_crops", box(300, 300, 340, 340)),
                 ("new_structure", box(600, 100, 630, 130)))
    one = run(empty_alerts(CRS), ch, D2, D1, min_area_m2=20)
    two = run(empty_alerts(CRS), ch.iloc[::-1], D2, D1, min_area_m2=20)
    assert len(one.new_ids) == 2
    cols = ["alert_id", "kind", "area_m2"]
    assert one.alerts[cols].equals(two.alerts[cols])


def test_freeze_baseline_and_overlap_ratio():
    assert freeze_baseline(dt.date(2026, 3, 10), [D1, D2, D3]) == D2
    assert freeze_baseline(dt.date(2026, 1, 1), [D1, D2]) is None
    # P1 frozen 03-10: baseline 03-08; changes seen against 03-01 imagery are not provably post-freeze
    red = RED.assign(freeze_date=[dt.date(2026, 3, 10), None])
    ch = changes(("new_structure", box(100, 100, 120, 120)))
    before = update_alerts(empty_alerts(CRS), ch, epoch_date=D2, previous_date=D1, redlines=red,
                           epoch_dates=[D1, D2, D3])
    after = update_alerts(empty_alerts(CRS), ch, epoch_date=D3, previous_date=D2, redlines=red,
                          epoch_dates=[D1, D2, D3])
    assert not before.alerts["post_freeze"].iloc[0] and after.alerts["post_freeze"].iloc[0]
    pairs = overlap_pairs(np.array([box(0, 0, 10, 10)]), np.array([box(5, 0, 105, 10), box(50, 50, 60, 60)]))
    assert len(pairs) == 1 and pairs["ratio"].iloc[0] == pytest.approx(0.5)


def test_an_extension_built_onto_an_alert_grows_it():
    a1 = run(empty_alerts(CRS), changes(("new_structure", box(100, 100, 114, 112))), D2, D1)
    aid = a1.new_ids[0]
    # next week only the added part differs from last week's image: an L around the old house
    ext = box(100, 100, 120, 115).difference(box(100, 100, 114, 112))
    up = run(a1.alerts, changes(("new_structure", ext)), D3, D2)
    a = up.alerts.set_index("alert_id")
    assert up.new_ids == [] and a.loc[aid, "area_m2"] == pytest.approx(300)
    assert bool(a.loc[aid, "growing"]) and a.loc[aid, "seen_count"] == 2
    again = run(up.alerts, changes(("new_structure", ext)), D3, D2)
    assert again.events == [] and again.new_ids == []
    # crops next to a house are not the house growing
    crops = run(a1.alerts, changes(("new_crops", box(114, 100, 160, 140))), D3, D2)
    assert len(crops.new_ids) == 1


def test_inventory_structures_are_not_post_freeze():
    ch = changes(("new_structure", box(100, 100, 120, 120)), ("new_structure", box(300, 300, 320, 320)))
    ch["in_inventory"] = [True, False]
    a = run(empty_alerts(CRS), ch, D2, D1).alerts.sort_values("area_m2")
    assert a.set_index("in_inventory")["post_freeze"].to_dict() == {True: False, False: True}
