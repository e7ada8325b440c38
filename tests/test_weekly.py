"""The weekly run over a real workspace (change detection replaced by stated changes)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from PIL import Image

from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in, spot_outside
from gis.alerts.lifecycle import set_alert
from gis.alerts.store import open_store
from gis.weekly import run_weekly

TODAY = dt.date(2026, 4, 20)


@pytest.fixture
def ws(tmp_path):
    return make_workspace(tmp_path / "ws")


def week2(root):
    return changes(("new_structure", spot_in(root, "P01")),           # P01 froze 2026-03-01
                   ("new_crops", spot_in(root, "P05", 60)),            # P05 freezes 2026-07-01
                   ("new_structure", spot_outside(root)))


def snapshot(store):
    a = store.alerts()
    return a.drop(columns="geometry"), a.geometry.to_wkb(), store.events()


def test_first_epoch_is_the_baseline(ws):
    s = run_weekly(ws, DATES[0], detect=FakeDetect(), maps=False, today=TODAY)
    assert s.changes == 0 and s.new_alerts == 0 and s.previous_epoch == ""
    assert len(open_store(ws / "store.gpkg").runs()) == 1


def test_rerun_changes_nothing_but_the_run_log(ws):
    detect = FakeDetect({DATES[1].isoformat(): week2(ws)})
    first = run_weekly(ws, DATES[1], detect=detect, maps=False, today=TODAY)
    store = open_store(ws / "store.gpkg")
    alerts, geoms, events = snapshot(store)
    chips = sorted((store.store_dir / "chips").glob("*.png"))
    mtimes = [p.stat().st_mtime_ns for p in chips]
    again = run_weekly(ws, DATES[1], detect=detect, maps=False, today=TODAY)
    a2, g2, e2 = snapshot(store)
    assert a2.equals(alerts) and (g2 == geoms).all() and e2.equals(events)
    assert [p.stat().st_mtime_ns for p in chips] == mtimes
    assert first.new_alerts == 3 and again.new_alerts == 0 and again.updated_alerts == 0
    assert len(store.runs()) == 2


def test_summary_chips_and_freeze_flags(ws):
    s = run_weekly(ws, DATES[1], detect=FakeDetect({DATES[1].isoformat(): week2(ws)}),
                   maps=False, today=TODAY)
    rows = {(r["district"], r["kind"]): r["count"] for r in s.new_by_district_kind}
    assert sum(rows.values()) == 3 and ("北山区", "new_crops") not in rows
    assert s.new_post_freeze == 1
    a = open_store(ws / "store.gpkg").alerts().set_index("project_id")
    assert bool(a.loc["P01", "post_freeze"]) and a.loc["P01", "freeze_date"] == "2026-03-01"
    assert not bool(a.loc["P05", "post_freeze"]) and a.loc["P05", "freeze_date"] == "2026-07-01"
    assert a.loc["P05", "district"] == "临港区"
    # waiting for a verdict: status_since is the run date, so none yet; overdue projects from figures
    assert s.waiting == [] and {p["project_id"] for p in s.overdue_projects} == set()
    later = run_weekly(ws, DATES[1], detect=FakeDetect({DATES[1].isoformat(): week2(ws)}),
                       maps=False, today=dt.date(2026, 10, 1))
    assert len(later.waiting) == 3 and min(w["days"] for w in later.waiting) > 3
    assert {p["project_id"] for p in later.overdue_projects} >= {"P06"}  # deadline 2026-08-31
    for rel in a["chip_after"].tolist() + a["chip_before"].tolist():
        img = np.asarray(Image.open(ws / rel))
        assert img.shape == (256, 256, 3)
        red = (img[..., 0] > 200) & (img[..., 1] < 80) & (img[..., 2] < 80)
        assert red.sum() > 100  # the outline is drawn
    assert a["chip_before"].str.contains("2026-02-15").all() and a["chip_after"].str.contains("2026-03-15").all()


def test_verdicts_notes_photos_survive_later_runs_and_growth_is_flagged(ws, tmp_path):
    run_weekly(ws, DATES[1], detect=FakeDetect({DATES[1].isoformat(): week2(ws)}), maps=False, today=TODAY)
    store = open_store(ws / "store.gpkg")
    a = store.alerts().set_index("project_id")
    house, crops = a.loc["P01", "alert_id"], a.loc["P05", "alert_id"]
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0evidence")
    set_alert(store, house, status="dispatched", by="调度")
    set_alert(store, house, status="illegal", by="巡查一队", note="在建", photos=[photo])
    set_alert(store, crops, status="false_alarm", by="内业", note="季节性作物")
    week3 = changes(("new_structure", spot_in(ws, "P01", 24)),   # 576 vs 400 at verdict: growing
                    ("new_crops", spot_in(ws, "P05", 60)),       # same footprint: suppressed
                    ("new_structure", spot_outside(ws)))
    s = run_weekly(ws, DATES[2], detect=FakeDetect({DATES[2].isoformat(): week3}), maps=False, today=TODAY)
    b = store.alerts().set_index("alert_id")
    assert (b.loc[house, "status"], b.loc[house, "note"], b.loc[house, "updated_by"]) == ("illegal", "在建", "巡查一队")
    assert b.loc[house, "photos"].startswith("photos/") and (store.store_dir / b.loc[house, "photos"]).exists()
    assert b.loc[house, "last_seen"] == "2026-04-15" and b.loc[house, "seen_count"] == 2
    assert bool(b.loc[house, "growing"]) and s.growing == [house]
    assert (b.loc[crops, "status"], b.loc[crops, "note"]) == ("false_alarm", "季节性作物")
    assert b.loc[crops, "last_seen"] == "2026-03-15"
    assert s.new_alerts == 0 and s.suppressed == 1 and len(b) == 3
    assert "2026-04-15" in b.loc[house, "chip_after"] and "2026-02-15" in b.loc[house, "chip_before"]


def test_older_freeze_baseline_is_compared_too(ws):
    run_weekly(ws, DATES[1], detect=FakeDetect(), maps=False, today=TODAY)
    # a house that was missed last week, inside P01 (freeze 03-01, baseline 02-15)
    missed = changes(("new_structure", spot_in(ws, "P01", 30, dx=50)))
    detect = FakeDetect({("2026-02-15", "2026-04-15"): missed})
    s = run_weekly(ws, DATES[2], detect=detect, maps=False, today=TODAY)
    assert ("2026-03-15", "2026-04-15", False) in detect.calls
    assert ("2026-02-15", "2026-04-15", True) in detect.calls
    a = open_store(ws / "store.gpkg").alerts()
    assert s.new_alerts == 1 and a["project_id"].tolist() == ["P01"] and bool(a["post_freeze"].iloc[0])


def test_maps_and_bulletin_are_written(ws):
    s = run_weekly(ws, DATES[1], detect=FakeDetect({DATES[1].isoformat(): week2(ws)}), today=TODAY)
    assert set(s.outputs) == {"map", "bulletin"}
    html = (ws / "out" / "clearance_2026-03-15.html").read_text(encoding="utf-8")
    alert_id = open_store(ws / "store.gpkg").alerts()["alert_id"][0]
    assert alert_id in html
    assert (ws / "out" / "bulletin_2026-03-15.html").exists() and (ws / "out" / "figures_2026-03-15.xlsx").exists()


def test_demo_epochs_plant_sites_where_the_story_needs_them(tmp_path):
    from gis.synthetic.county import make_demo_county
    from gis.synthetic.epochs import DEMO_DATES, SITES, planted, write_demo_epochs
    from gis.clearance.layers import read_redlines

    county = make_demo_county(tmp_path / "demo")
    red = read_redlines(county.redlines).set_index("project_id")
    for k in range(3):
        st, cr = planted(county, k)
        sites = {**dict(zip(st["name"], st.geometry)), **dict(zip(cr["name"], cr.geometry))}
        expected = {s.name for s in SITES if s.first <= k <= s.last}
        assert set(sites) == expected
        for s in SITES:
            if s.name in sites:
                g = sites[s.name]
                if s.project:
                    assert g.intersection(red.loc[s.project].geometry).area > 0.6 * g.area, s.name
                else:
                    assert not g.intersects(red.union_all()), s.name
    grown = planted(county, 2)[0].set_index("name").loc["P01 house A"].geometry.area
    assert grown > 1.2 * planted(county, 1)[0].set_index("name").loc["P01 house A"].geometry.area
    toml = write_demo_epochs(county, tmp_path / "demo", resolution=20.0)  # coarse: layout only
    from gis.workspace import load_workspace

    ws = load_workspace(toml.parent)
    assert [e.date for e in ws.epochs] == list(DEMO_DATES) and all(e.dsm.exists() for e in ws.epochs)


def test_chip_from_imagery_in_another_crs(tmp_path):
    """Alerts in the working CRS, imagery in geographic CGCS2000: the chip is still centred."""
    import rasterio
    from rasterio.transform import from_origin
    from shapely.geometry import box as sbox

    from gis.alerts.chips import chip_image

    data = np.zeros((3, 200, 200), dtype=np.uint8)
    data[:, 90:110, 90:110] = 255  # a bright 20 x 20 px roof in the middle
    res = 1e-5
    with rasterio.open(tmp_path / "geo.tif", "w", driver="GTiff", width=200, height=200, count=3,
                       dtype="uint8", crs="EPSG:4490", transform=from_origin(114.0, 30.001, res, res)) as dst:
        dst.write(data)
    import pyproj

    t = pyproj.Transformer.from_crs("EPSG:4490", "EPSG:4547", always_xy=True)
    x0, y0 = t.transform(114.0 + 90 * res, 30.001 - 110 * res)
    x1, y1 = t.transform(114.0 + 110 * res, 30.001 - 90 * res)
    with rasterio.open(tmp_path / "geo.tif") as src:
        img = np.asarray(chip_image(src, sbox(x0, y0, x1, y1), "EPSG:4547", margin=5))
    centre = img[96:160, 96:160].mean()
    assert img.shape == (256, 256, 3) and centre > 150 and img[:20, :20].mean() < 60
