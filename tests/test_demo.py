"""The demo county: deterministic, realistic enough to exercise every figure."""

from __future__ import annotations

import numpy as np
import pytest

from gis import errors
from gis.clearance import layers
from gis.demo import STEPS, run_demo, run_demo_cycle
from gis.synthetic.county import make_demo_county
from gis.synthetic.epochs import DEMO_DATES, write_demo_epochs
from gis.weekly import STEPS as WEEKLY_STEPS


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
