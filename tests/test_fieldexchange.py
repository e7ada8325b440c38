"""Export to a patrol GeoPackage, edit it as QGIS/QField would, import it back."""

from __future__ import annotations

import contextlib
import sqlite3

import pyogrio
import pytest

from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in, spot_outside, write_photo
from gis.errors import ConflictError, InputError, InvalidTransitionError
from gis.alerts.exchange import export_district, import_field
from gis.alerts.lifecycle import set_alert
from gis.alerts.store import open_store
from gis.weekly import run_weekly


@pytest.fixture
def store(tmp_path):
    root = make_workspace(tmp_path / "ws")
    ch = changes(("new_structure", spot_in(root, "P03", 20, dx=-150)), ("new_crops", spot_in(root, "P03", 40)),
                 ("new_structure", spot_in(root, "P05")), ("new_structure", spot_outside(root)))
    run_weekly(root, DATES[1], detect=FakeDetect({DATES[1].isoformat(): ch}), maps=False)
    return open_store(root / "store.gpkg")


def edit(gpkg, alert_id, **values):
    """Change attributes in the patrol file as a field app does (plain SQL UPDATE)."""
    with contextlib.closing(sqlite3.connect(gpkg)) as con, con:
        sets = ", ".join(f"{k} = ?" for k in values)
        con.execute(f"UPDATE alerts SET {sets} WHERE alert_id = ?", (*values.values(), alert_id))


def test_export_writes_a_qgis_friendly_geopackage(store, tmp_path):
    out = tmp_path / "field" / "patrol.gpkg"
    out.parent.mkdir()
    res = export_district(store, "高新区", out)
    info = pyogrio.read_info(out, layer="alerts")
    assert info["crs"] == "EPSG:4547" and info["features"] == len(res.alert_ids) == 2
    layer = pyogrio.read_dataframe(out, layer="alerts")
    assert {"alert_id", "kind", "area_mu", "project_id", "parcel_id", "status", "chip_before",
            "chip_after", "photo", "exported_at", "export_rev"} <= set(layer.columns)
    assert set(layer["project_id"]) == {"P03"} and set(layer["status"]) == {"dispatched"}
    assert all((out.parent / p).exists() for p in layer["chip_before"])
    with contextlib.closing(sqlite3.connect(out)) as con:
        blob = con.execute("SELECT chip_after_img FROM alerts LIMIT 1").fetchone()[0]
        kinds = dict(con.execute("SELECT table_name, data_type FROM gpkg_contents").fetchall())
    assert blob[:8] == b"\x89PNG\r\n\x1a\n" and kinds == {"alerts": "features", "gis_export": "attributes"}
    # exporting is dispatching, and it is in the audit log
    a = store.alerts().set_index("alert_id")
    assert (a.loc[res.alert_ids, "status"] == "dispatched").all()
    assert (store.events()["new"] == "dispatched").sum() == 2
    with pytest.raises(InputError, match="no alerts in district"):
        export_district(store, "火星区", tmp_path / "x.gpkg")


def test_round_trip_of_verdicts_notes_and_photos(store, tmp_path):
    out = tmp_path / "patrol.gpkg"
    ids = export_district(store, "高新区", out).alert_ids
    one = write_photo(tmp_path / "DCIM" / "IMG_1.jpg").read_bytes()
    edit(out, ids[0], status="illegal", note="两层砖房在建", photo="DCIM/IMG_1.jpg", updated_by="王五")
    edit(out, ids[1], status="false_alarm", note="大棚已拆")
    res = import_field(store, out, by="巡查二队")
    assert res.applied == sorted(ids) and res.photos == 1
    a = store.alerts().set_index("alert_id")
    assert (a.loc[ids[0], "status"], a.loc[ids[0], "verdict"], a.loc[ids[0], "updated_by"]) == ("illegal", "illegal", "王五")
    assert a.loc[ids[1], "updated_by"] == "巡查二队" and a.loc[ids[1], "note"] == "大棚已拆"
    (tmp_path / "DCIM" / "IMG_1.jpg").unlink()
    assert (store.store_dir / a.loc[ids[0], "photos"]).read_bytes() == one
    ev = store.events()
    assert ((ev["alert_id"] == ids[0]) & (ev["action"] == "photo") & (ev["old"] == "IMG_1.jpg")).any()
    # importing the same file again changes nothing and is no conflict
    (tmp_path / "DCIM" / "IMG_1.jpg").write_bytes(one)
    n = len(store.events())
    again = import_field(store, out)
    assert again.applied == [] and again.conflicts == [] and len(store.events()) == n
    # a later weekly run keeps what the patrol recorded
    root = store.store_dir
    run_weekly(root, DATES[2], detect=FakeDetect(), maps=False)
    assert store.alert(ids[0])["note"] == "两层砖房在建"


def test_conflict_is_reported_and_nothing_is_written(store, tmp_path):
    out = tmp_path / "patrol.gpkg"
    ids = export_district(store, "高新区", out).alert_ids
    edit(out, ids[0], status="illegal", note="field says illegal")
    edit(out, ids[1], note="only a note")
    set_alert(store, ids[0], status="legal", by="内业", note="permit found")  # the office, meanwhile
    before = (store.alerts().drop(columns="geometry"), store.events())
    with pytest.raises(ConflictError) as exc:
        import_field(store, out)
    assert exc.value.ids == [ids[0]] and "--prefer" in str(exc.value)
    after = (store.alerts().drop(columns="geometry"), store.events())
    assert after[0].equals(before[0]) and after[1].equals(before[1])
    kept = import_field(store, out, prefer="store")
    assert kept.kept_store == [ids[0]] and kept.applied == [ids[1]]
    assert store.alert(ids[0])["note"] == "permit found" and store.alert(ids[1])["note"] == "only a note"
    # preferring the field still obeys the lifecycle: legal -> illegal is not a transition
    with pytest.raises(InvalidTransitionError, match=ids[0]):
        import_field(store, out, prefer="field")
    assert store.alert(ids[0])["status"] == "legal"


def test_bad_patrol_files(store, tmp_path):
    with pytest.raises(InputError, match="not found"):
        import_field(store, tmp_path / "none.gpkg")
    other = tmp_path / "other.gpkg"
    pyogrio.write_dataframe(store.alerts()[["alert_id", "geometry"]], other, layer="alerts")
    with pytest.raises(InputError, match="gis alerts export"):
        import_field(store, other)
    out = tmp_path / "patrol.gpkg"
    ids = export_district(store, "高新区", out).alert_ids
    edit(out, ids[0], photo="DCIM/missing.jpg")
    with pytest.raises(InputError, match="missing"):
        import_field(store, out)
