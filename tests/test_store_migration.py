"""A store written by gis 0.1.0 (tests/fixtures/store_v0_1_0) is upgraded in place on first open."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pyogrio
import pytest

from gis.alerts.lifecycle import set_alert
from gis.alerts.store import open_store
from gis.alerts.tables import SCHEMA_VERSION

FIXTURE = Path(__file__).parent / "fixtures" / "store_v0_1_0"
PHOTO = "photos/429ecd372dcb8f745f9bea7bf5627e9a8bf2b928721d239c25dae8634540d233.jpg"


@pytest.fixture
def old(tmp_path):
    folder = tmp_path / "ws"
    shutil.copytree(FIXTURE, folder)
    return folder / "store.gpkg"


def test_old_store_is_upgraded_in_place_after_a_copy_beside_it(old):
    original = old.read_bytes()
    before = pyogrio.read_dataframe(old, layer="alerts")
    store = open_store(old, crs="EPSG:4547")
    a = store.alerts()
    kept = old.with_name("store.schema1.gpkg")
    assert kept.read_bytes() == original or _rows(kept) == _rows_of_bytes(original, kept.parent)
    with sqlite3.connect(old) as con:
        assert con.execute("SELECT value FROM gis_store WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),)
    # nothing people recorded is lost
    assert len(a) == 5 and len(store.events()) == 15 and len(store.runs()) == 2
    assert sorted(a["alert_id"]) == sorted(before["alert_id"])
    row = a.set_index("alert_id").loc["A20260315-0001"]
    assert (row["status"], row["note"], row["photos"], row["rev"]) == ("illegal", "新建砖房", PHOTO, 2)
    assert a.geometry.area.round(3).tolist() == before.sort_values("alert_id").geometry.area.round(3).tolist()
    # the photo file is in the photos table now, with who uploaded it and its original name
    photos = store.photos()
    assert len(photos) == 1 and photos["name"][0] == "IMG_0001.jpg" and photos["uploaded_by"][0] == "张三"
    assert store.photo(PHOTO) == (old.parent / PHOTO).read_bytes()
    assert store.verify()["ok"], store.verify()["problems"]
    # and it works as a store of this release: a verdict, then QGIS/GDAL still reads the layer
    set_alert(store, "A20260315-0003", status="dispatched", by="调度")
    layer = pyogrio.read_dataframe(old, layer="alerts")
    assert layer.set_index("alert_id").loc["A20260315-0003", "status"] == "dispatched"
    assert open_store(old, crs="EPSG:4547").alerts().equals(store.alerts())  # upgraded once
    assert not old.with_name("store.schema1-1.gpkg").exists()
    if shutil.which("ogrinfo"):
        out = subprocess.run(["ogrinfo", "-so", "-ro", str(old), "alerts"], capture_output=True, text=True)
        assert "Feature Count: 5" in out.stdout


def _rows(path: Path) -> list:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        return [con.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in ("alerts", "alert_events", "runs")]


def _rows_of_bytes(data: bytes, folder: Path) -> list:
    p = folder / f".orig-{hashlib.sha256(data).hexdigest()[:8]}.gpkg"
    p.write_bytes(data)
    return _rows(p)
