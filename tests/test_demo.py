"""The demo county: deterministic, realistic enough to exercise every figure."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import gis.demo as demo_module
from gis import errors
from gis.cli import main
from gis.clearance import layers
from gis.demo import STEPS, is_demo_workspace, remove_demo_store, run_demo, run_demo_cycle
from gis.products.bulletin import bulletin_tables
from gis.products.bulletinpage import summary_text
from gis.synthetic.county import make_demo_county
from gis.synthetic.epochs import DEMO_DATES, write_demo_epochs
from gis.weekly import STEPS as WEEKLY_STEPS
from gis.workspace import load_workspace


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


def test_demo_projects_have_start_dates_and_some_lag_behind(demo_county, demo_clearance):
    """序时进度 is counted in the demo: its red lines carry start dates (开工日期 on disk), and the
    bulletin lists projects behind schedule (滞后) in its table and its summary."""
    assert "开工日期" in layers.read_raw(demo_county.redlines).columns
    red = layers.read_redlines(demo_county.redlines)
    started = red.loc[red["start_date"].notna()]
    assert len(started) >= 4 and (started["start_date"] < started["freeze_date"]).all()
    assert (started["start_date"] < started["deadline"]).all()
    t = bulletin_tables(demo_clearance, as_of=demo_county.as_of)
    schedule = t["schedule"].set_index("project_id")
    assert set(schedule.index) == set(started["project_id"])
    behind = schedule.index[schedule["behind_schedule"].eq(True)]
    assert len(behind) >= 1 and len(behind) < len(schedule)  # some behind, not all
    summary = summary_text(t, "zh")
    assert f"滞后于序时进度的项目{len(behind)}个" in summary and schedule.loc[behind[0], "name"] in summary
    assert "未计序时进度" not in summary


def test_demo_is_deterministic(tmp_path, demo_county):
    again = make_demo_county(tmp_path / "again")
    a = layers.read_parcels(demo_county.parcels)
    b = layers.read_parcels(again.parcels)
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    assert np.array_equal(a.geometry.to_wkb(), b.geometry.to_wkb())


def test_demo_scenario_refuses_another_workspace_before_writing_anything(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "gis.toml").write_text('[layers]\nredlines = "mine.gpkg"\n', encoding="utf-8")
    with pytest.raises(errors.ProtectedOutputError, match="--force"):
        run_demo(ws, tmp_path / "maps")
    assert sorted(p.name for p in ws.iterdir()) == ["gis.toml"] and not (tmp_path / "maps").exists()


@pytest.mark.slow
def test_demo_cycle_runs_each_epoch_and_reports_progress(tmp_path):
    county = make_demo_county(tmp_path / "demo")
    write_demo_epochs(county, tmp_path / "demo", resolution=10.0)  # coarse: the cycle, not detection
    seen, inner = [], []
    summary = run_demo_cycle(tmp_path / "demo", tmp_path / "maps", progress=lambda *a: seen.append(a),
                             weekly_progress=lambda *a: inner.append(a))
    assert summary.epoch == DEMO_DATES[-1].isoformat()
    assert [STEPS[done - 1] for done, _ in seen] == ["weekly run 1", "weekly run 2", "weekly run 3"]
    assert {total for _, total in seen} == {len(STEPS)}
    assert len(inner) == 3 * len(WEEKLY_STEPS) and inner[0] == (1, len(WEEKLY_STEPS))
    assert {p.name for p in (tmp_path / "maps").iterdir()} >= {
        "clearance_2026-11-14.html", "bulletin_2026-11-14.html"}
    bulletin = (tmp_path / "maps" / "bulletin_2026-11-14.html").read_text(encoding="utf-8")
    assert "滞后于序时进度的项目" in bulletin and "未计序时进度" not in bulletin  # the demo has start dates


def test_the_demo_never_removes_another_workspaces_store(tmp_path):
    ws = tmp_path / "ws"
    (ws / "chips").mkdir(parents=True)
    (ws / "gis.toml").write_text('[layers]\nredlines = "mine.gpkg"\n', encoding="utf-8")
    (ws / "store.gpkg").write_bytes(b"theirs")
    assert remove_demo_store(ws) == [] and not is_demo_workspace(ws)
    assert (ws / "store.gpkg").read_bytes() == b"theirs" and (ws / "chips").is_dir()


@pytest.mark.slow
def test_the_demo_run_twice_starts_afresh_and_shows_the_same(tmp_path, monkeypatch):
    def coarse(county, out, **kw):  # coarse imagery: the twice-run behaviour, not detection
        return write_demo_epochs(county, out, **{**kw, "resolution": 4.0})

    monkeypatch.setattr(demo_module, "write_demo_epochs", coarse)
    args = ["demo", "--out", str(tmp_path / "demo"), "--maps", str(tmp_path / "maps")]

    def run():
        res = CliRunner().invoke(main, args, catch_exceptions=False)
        assert res.exit_code == 0, res.output
        store = load_workspace(tmp_path / "demo").open_store()
        return res.output, store.alerts(), store.runs()

    out1, alerts1, runs1 = run()
    assert "afresh" not in out1 and len(alerts1) > 0
    out2, alerts2, runs2 = run()
    assert "started afresh" in out2.splitlines()[0] and str(tmp_path / "demo") in out2.splitlines()[0]
    assert len(alerts2) == len(alerts1) and len(runs2) == len(runs1) == 3
    cols = ["alert_id", "kind", "status", "seen_count"]
    assert alerts2[cols].equals(alerts1[cols])
