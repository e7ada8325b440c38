"""gis init / weekly / alerts list, show, set, export, import through the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import unicodedata

import pytest
from click.testing import CliRunner

import gis.weekly as weekly_module
from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in, spot_outside
from gis.cli import main
from gis.labels import label


@pytest.fixture
def ws(tmp_path, monkeypatch):
    root = make_workspace(tmp_path / "ws")
    detect = FakeDetect({DATES[1].isoformat(): changes(("new_structure", spot_in(root, "P03", 20, dx=-150)),
                                                        ("new_crops", spot_in(root, "P03", 40)),
                                                        ("new_structure", spot_outside(root)))})
    monkeypatch.setattr(weekly_module, "_default_detect", lambda: detect)
    return root


def gis(*args, ok=True):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res


def test_init_command(tmp_path):
    county = make_workspace(tmp_path / "src")
    out = gis("init", tmp_path / "new", "--redlines", county / "layers/redlines.gpkg",
              "--parcels", county / "layers/parcels.gpkg",
              "--epoch", f"2026-03-15={county / 'imagery/2026-03-15.tif'}", "--freeze", "P01=2026-03-01")
    assert "gis.toml" in out.output
    text = (tmp_path / "new" / "gis.toml").read_text(encoding="utf-8")
    assert '"../src/layers/redlines.gpkg"' in text and '"P01" = 2026-03-01' in text
    again = gis("init", tmp_path / "new", ok=False)
    assert again.exit_code == 2 and "--force" in again.output
    bad = gis("init", tmp_path / "x", "--epoch", "2026-03-15", ok=False)
    assert bad.exit_code == 2 and "DATE=ORTHO" in bad.output


def test_init_takes_the_working_crs_from_the_layers(tmp_path, small_layers):
    red, parcels = tmp_path / "red.gpkg", tmp_path / "parcels.gpkg"
    small_layers["redlines"].set_crs("EPSG:4549", allow_override=True).to_file(red)
    small_layers["parcels"].set_crs("EPSG:4549", allow_override=True).to_file(parcels)
    out = gis("init", tmp_path / "ws", "--redlines", red, "--parcels", parcels).output
    assert "working CRS EPSG:4549" in out
    assert 'working_crs = "EPSG:4549"' in (tmp_path / "ws" / "gis.toml").read_text(encoding="utf-8")
    bad = gis("init", tmp_path / "merc", "--redlines", red, "--working-crs", "EPSG:3857", ok=False)
    assert bad.exit_code == 2 and "distorts areas" in bad.output and not (tmp_path / "merc").exists()


def test_weekly_list_show_set(ws, tmp_path):
    out = gis("weekly", "--workspace", ws, "--epoch", "2026-03-15", "--no-maps").output
    assert "3 new alerts" in out and "overdue projects" in out and "growing alerts: none" in out
    listed = json.loads(gis("alerts", "list", "--workspace", ws, "--json").output)
    assert len(listed) == 3 and all("alert_id" in r for r in listed)
    hi = json.loads(gis("alerts", "list", "--workspace", ws, "--district", "高新区", "--json").output)
    assert len(hi) == 2 and {r["project_id"] for r in hi} == {"P03"}
    assert json.loads(gis("alerts", "list", "--workspace", ws, "--project", "P03", "--json").output)[0]["kind"] == "new_crops"
    assert json.loads(gis("alerts", "list", "--workspace", ws, "--since", "2026-04-01", "--json").output) == []
    table = gis("alerts", "list", "--workspace", ws, "--status", "new").output
    assert listed[0]["alert_id"] in table and "3 alerts" in table
    aid = hi[0]["alert_id"]
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0jpg")
    gis("alerts", "set", aid, "--workspace", ws, "--status", "dispatched", "--by", "调度")
    res = gis("alerts", "set", aid, "--workspace", ws, "--status", "illegal", "--by", "张三",
              "--note", "新建", "--photo", photo)
    assert "illegal" in res.output
    shown = json.loads(gis("alerts", "show", aid, "--workspace", ws, "--json").output)
    assert shown["alert_id"] == aid and shown["status"] == "illegal" and shown["note"] == "新建"
    assert shown["photos"].startswith("photos/") and len(shown["events"]) >= 4
    assert "history:" in gis("alerts", "show", aid, "--workspace", ws).output
    bad = gis("alerts", "set", aid, "--workspace", ws, "--status", "closed", "--by", "x", ok=False)
    assert bad.exit_code == 2 and aid in bad.output and "demolished" in bad.output
    missing = gis("alerts", "show", "A-none", "--workspace", ws, ok=False)
    assert missing.exit_code == 2 and "A-none" in missing.output


def test_export_import_and_lock_through_the_cli(ws, tmp_path):
    summary = json.loads(gis("weekly", "--workspace", ws, "--epoch", "2026-03-15", "--no-maps", "--json").output)
    assert summary["new_alerts"] == 3 and summary["epoch"] == "2026-03-15" and "waiting" in summary
    out = tmp_path / "patrol.gpkg"
    assert "2 alerts" in gis("alerts", "export", "--workspace", ws, "--district", "高新区", "--out", out).output

    with contextlib.closing(sqlite3.connect(out)) as con, con:
        aid = con.execute("SELECT alert_id FROM alerts ORDER BY alert_id LIMIT 1").fetchone()[0]
        con.execute("UPDATE alerts SET status='false_alarm', note='树影' WHERE alert_id=?", (aid,))
    assert "applied 1 alerts" in gis("alerts", "import", out, "--workspace", ws, "--by", "巡查").output
    shown = json.loads(gis("alerts", "show", aid, "--workspace", ws, "--json").output)
    assert shown["status"] == "false_alarm" and shown["updated_by"] == "巡查"
    with contextlib.closing(sqlite3.connect(ws / "store.gpkg")) as con, con:  # a live run's lock row
        con.execute("INSERT INTO run_lock VALUES ('weekly', ?, ?, '2026-11-21T09:00:00+00:00', 'weekly')",
                    (os.getpid(), socket.gethostname()))
    refused = gis("weekly", "--workspace", ws, "--no-maps", ok=False)
    assert refused.exit_code == 3 and f"pid {os.getpid()}" in refused.output


def cells(line: str) -> int:
    """Display width of a terminal line: East Asian wide and full-width characters take two cells."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in line)


def test_alert_list_fits_a_100_column_terminal_and_wide_shows_every_column(ws):
    gis("weekly", "--workspace", ws, "--epoch", "2026-03-15", "--no-maps")
    listed = json.loads(gis("alerts", "list", "--workspace", ws, "--json").output)
    res = CliRunner(env={"COLUMNS": "100"}).invoke(main, ["alerts", "list", "--workspace", str(ws)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(cells(line) for line in lines) <= 100
    assert "预警编号" in res.output and "所属区县" in res.output and "宗地编号" not in res.output
    for r in listed:  # one line per alert, its kind and status in Chinese words, nothing wrapped
        row = next(line for line in lines if r["alert_id"] in line)
        assert label("kind", r["kind"]) in row and label("alert_status", r["status"]) in row
        assert r["district"] in row and f"{r['area_mu']:.2f}" in row
    wide = CliRunner(env={"COLUMNS": "250"}).invoke(main, ["alerts", "list", "--workspace", str(ws), "--wide"])
    assert "宗地编号" in wide.output and "最近发现" in wide.output and "seen_count" in wide.output
    assert all(r["parcel_id"] in wide.output for r in listed if r["parcel_id"])
    en = CliRunner(env={"COLUMNS": "100"}).invoke(main, ["alerts", "list", "--workspace", str(ws), "--lang", "en"])
    assert "new structure" in en.output and "District" in en.output
    assert max(cells(line) for line in en.output.splitlines()) <= 100
