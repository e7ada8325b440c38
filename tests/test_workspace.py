"""gis.toml: written with comments and relative paths, validated on load."""

from __future__ import annotations

import datetime as dt
import shutil

import geopandas as gpd
import pytest

from alertsdata import DATES, make_workspace
from gis.errors import AreaTooSmallError, CRSError, WorkspaceError
from gis.workspace import init_workspace, load_workspace


def test_init_writes_commented_relative_toml_and_load_reads_it(tmp_path):
    ws_dir = make_workspace(tmp_path / "ws", freeze_dates={"P01": "2026-03-20"})
    text = (ws_dir / "gis.toml").read_text(encoding="utf-8")
    assert text.count("#") > 10
    assert str(tmp_path) not in text  # every path relative to the workspace
    ws = load_workspace(ws_dir)
    assert [e.date for e in ws.epochs] == list(DATES)
    assert ws.redlines == (ws_dir / "layers" / "redlines.gpkg").resolve()
    assert ws.freeze_dates == {"P01": dt.date(2026, 3, 20)}
    assert ws.thresholds["growth"] == 0.2 and ws.working_crs == "EPSG:4547"
    assert ws.store.name == "store.gpkg" and ws.store.parent == ws.root
    assert ws.epoch("2026-03-15").date == dt.date(2026, 3, 15)
    assert ws.previous_epoch(ws.epoch()).date == dt.date(2026, 3, 15)


def test_a_workspace_can_be_moved(tmp_path):
    make_workspace(tmp_path / "a")
    shutil.move(tmp_path / "a", tmp_path / "b")
    ws = load_workspace(tmp_path / "b")
    assert ws.parcels.exists() and ws.epochs[0].ortho.exists()


def test_missing_paths_are_listed_with_the_file(tmp_path):
    ws_dir = make_workspace(tmp_path / "ws")
    (ws_dir / "imagery" / "2026-03-15.tif").unlink()
    with pytest.raises(WorkspaceError) as exc:
        load_workspace(ws_dir)
    msg = str(exc.value)
    assert "gis.toml" in msg and "2026-03-15.tif" in msg and "fix these paths" in msg.lower()


def test_bad_toml_missing_file_and_bad_values(tmp_path):
    with pytest.raises(WorkspaceError, match="gis init"):
        load_workspace(tmp_path)
    ws_dir = make_workspace(tmp_path / "ws")
    toml = ws_dir / "gis.toml"
    good = toml.read_text(encoding="utf-8")
    toml.write_text(good + "\n[thresholds\n", encoding="utf-8")
    with pytest.raises(WorkspaceError, match="not valid TOML"):
        load_workspace(ws_dir)
    toml.write_text(good.replace("growth = 0.2", "growth = \"lots\""), encoding="utf-8")
    with pytest.raises(WorkspaceError, match="thresholds.growth"):
        load_workspace(ws_dir)
    with pytest.raises(WorkspaceError, match="already exists"):
        init_workspace(ws_dir)
    toml.write_text(good + '\n[[epochs]]\ndate = 2026-02-15\northo = "imagery/2026-02-15.tif"\n',
                    encoding="utf-8")
    with pytest.raises(WorkspaceError, match="share a survey date"):
        load_workspace(ws_dir)


def test_relative_paths_given_to_init_are_relative_to_the_current_folder(tmp_path, monkeypatch):
    make_workspace(tmp_path / "src")
    monkeypatch.chdir(tmp_path)
    init_workspace("ws", redlines="src/layers/redlines.gpkg", parcels="src/layers/parcels.gpkg",
                   epochs=[("2026-03-15", "src/imagery/2026-03-15.tif")])
    ws = load_workspace(tmp_path / "ws")
    assert ws.redlines == (tmp_path / "src/layers/redlines.gpkg").resolve()
    assert '"../src/layers/parcels.gpkg"' in (tmp_path / "ws/gis.toml").read_text(encoding="utf-8")


def test_the_workspace_loads_its_own_clearance_and_snapshot(tmp_path):
    ws_dir = make_workspace(tmp_path / "ws")
    toml = ws_dir / "gis.toml"
    # the workspace's own reading rules apply: here a minimum red-line area no project meets
    toml.write_text(toml.read_text(encoding="utf-8").replace("[layers]", "[layers]\nmin_redline_m2 = 1e12"),
                    encoding="utf-8")
    with pytest.raises(AreaTooSmallError):
        load_workspace(ws_dir).clearance()
    toml.write_text(toml.read_text(encoding="utf-8").replace("min_redline_m2 = 1e12", "min_redline_m2 = 1"),
                    encoding="utf-8")
    ws = load_workspace(ws_dir)
    assert ws.latest_epoch.date == DATES[-1]
    snap = ws.snapshot()
    assert snap.as_of == snap.clearance.as_of == DATES[-1]  # the latest imagery date
    assert snap.epoch == ws.latest_epoch and snap.alerts is None  # no weekly run yet: no store
    assert snap.store_dir == ws.store_dir and snap.lang == "zh"
    assert len(snap.clearance.projects) == 8 and snap.clearance.has_geometry
    assert ws.snapshot(dt.date(2026, 1, 1)).as_of == dt.date(2026, 1, 1)


def test_init_takes_the_working_crs_from_the_layers(tmp_path, small_layers):
    """Layers in the CM 120E zone (EPSG:4549) make a workspace in EPSG:4549, not the old fixed EPSG:4547."""
    s = small_layers
    red, parcels = tmp_path / "red_4549.gpkg", tmp_path / "parcels_4549.gpkg"
    s["redlines"].set_crs("EPSG:4549", allow_override=True).to_file(red)
    s["parcels"].set_crs("EPSG:4549", allow_override=True).to_file(parcels)
    init_workspace(tmp_path / "ws", redlines=red, parcels=parcels)
    assert load_workspace(tmp_path / "ws").working_crs == "EPSG:4549"
    # geographic CGCS2000 layers: the Gauss-Kruger zone of their centre (120E), as the clearance chooses
    geo_red, geo_parcels = tmp_path / "red_4490.gpkg", tmp_path / "parcels_4490.gpkg"
    gpd.read_file(red).to_crs("EPSG:4490").to_file(geo_red)
    gpd.read_file(parcels).to_crs("EPSG:4490").to_file(geo_parcels)
    init_workspace(tmp_path / "geo", redlines=geo_red, parcels=geo_parcels)
    ws = load_workspace(tmp_path / "geo")
    assert ws.working_crs == "EPSG:4549" and ws.clearance(dt.date(2026, 11, 21)).crs.to_epsg() == 4549
    # an explicit CRS wins, and is checked against the layers: Web Mercator distorts areas
    init_workspace(tmp_path / "given", redlines=red, parcels=parcels, working_crs="EPSG:4548")
    assert load_workspace(tmp_path / "given").working_crs == "EPSG:4548"
    with pytest.raises(CRSError, match="distorts areas"):
        init_workspace(tmp_path / "merc", redlines=red, parcels=parcels, working_crs="EPSG:3857")
    assert not (tmp_path / "merc").exists()
    # no layers there yet: the default
    init_workspace(tmp_path / "empty")
    assert 'working_crs = "EPSG:4547"' in (tmp_path / "empty" / "gis.toml").read_text(encoding="utf-8")
