"""The patrol GeoPackage for QField, and an import that reports every problem at once (issue 19)."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET

import pyogrio
import pytest
from click.testing import CliRunner

from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in, spot_outside
from gis.cli import main
from gis.errors import InvalidValueError, LayerValidationError
from gis.alerts.exchange import export_district, import_field
from gis.alerts.lifecycle import set_alert
from gis.alerts.patrolform import PATROL_STATUSES, form_qml, parse_value_maps
from gis.alerts.store import open_store
from gis.labels import ALERT_STATUS, REASON
from gis.schema import FALSE_ALARM_REASONS
from gis.weekly import run_weekly


@pytest.fixture
def store(tmp_path):
    root = make_workspace(tmp_path / "ws")
    ch = changes(("new_structure", spot_in(root, "P03", 20, dx=-150)), ("new_crops", spot_in(root, "P03", 40)),
                 ("new_structure", spot_in(root, "P03", 20, dy=-120)), ("new_structure", spot_outside(root)))
    run_weekly(root, DATES[1], detect=FakeDetect({DATES[1].isoformat(): ch}), maps=False)
    return open_store(root / "store.gpkg")


@pytest.fixture
def patrol(store, tmp_path):
    out = tmp_path / "field" / "patrol.gpkg"
    out.parent.mkdir()
    return out, export_district(store, "高新区", out).alert_ids


def edit(gpkg, alert_id, **values):
    with contextlib.closing(sqlite3.connect(gpkg)) as con, con:
        sets = ", ".join(f"{k} = ?" for k in values)
        con.execute(f"UPDATE alerts SET {sets} WHERE alert_id = ?", (*values.values(), alert_id))


def add_row(gpkg, alert_id, status="illegal"):
    """A row the store does not know, with its own gis_export row (as if copied from elsewhere)."""
    with contextlib.closing(sqlite3.connect(gpkg)) as con, con:
        con.execute("INSERT INTO alerts (alert_id, status, note) VALUES (?, ?, 'added')", (alert_id, status))
        con.execute("INSERT INTO gis_export SELECT ?, 0, 'dispatched', '', '', '', exported_at, store, "
                    "district, export_id FROM gis_export LIMIT 1", (alert_id,))


def state(store):
    return store.alerts().drop(columns="geometry"), store.events()


# --- the GeoPackage QField opens ---------------------------------------------------------------


def test_patrol_layer_is_multipolygon(patrol):
    out, _ = patrol
    if shutil.which("ogrinfo"):
        info = subprocess.run(["ogrinfo", "-so", str(out), "alerts"], capture_output=True, text=True,
                              check=True).stdout
        assert "Geometry: Multi Polygon" in info
    assert pyogrio.read_info(out, layer="alerts")["geometry_type"] == "MultiPolygon"
    with contextlib.closing(sqlite3.connect(out)) as con:
        kind = con.execute("SELECT geometry_type_name FROM gpkg_geometry_columns WHERE table_name = 'alerts'")
        assert kind.fetchone()[0] == "MULTIPOLYGON"
    assert set(pyogrio.read_dataframe(out, layer="alerts").geometry.geom_type) == {"MultiPolygon"}


def test_patrol_layer_carries_a_qgis_form_with_dropdowns(patrol):
    out, _ = patrol
    with contextlib.closing(sqlite3.connect(out)) as con:
        rows = con.execute("SELECT f_table_name, f_geometry_column, styleQML, useAsDefault FROM layer_styles "
                           "WHERE f_table_name = 'alerts'").fetchall()
        geom = con.execute("SELECT column_name FROM gpkg_geometry_columns").fetchone()[0]
    assert len(rows) == 1 and rows[0][1] == geom and rows[0][3] == 1
    qml = rows[0][2]
    root = ET.fromstring(qml.split("\n", 1)[1])  # parses: the DOCTYPE line, then the XML
    assert root.tag == "qgis"
    maps = parse_value_maps(qml)
    assert maps["status"] == {ALERT_STATUS["zh"][s]: s for s in PATROL_STATUSES}
    assert set(PATROL_STATUSES) == {"dispatched", "illegal", "legal", "false_alarm", "demolished"}
    assert {REASON["zh"][r]: r for r in FALSE_ALARM_REASONS}.items() <= maps["reason"].items()
    editable = {f.get("name"): f.get("editable") for f in root.iter("field") if f.get("editable")}
    assert editable["status"] == editable["reason"] == "1" and editable["alert_id"] == "0"
    assert "reason" in pyogrio.read_dataframe(out, layer="alerts", read_geometry=False).columns


def test_form_qml_escapes_labels(monkeypatch):
    monkeypatch.setitem(ALERT_STATUS["zh"], "illegal", '违法 <b>&"x"</b>')
    qml = form_qml(["status"])
    assert "<b>" not in qml
    assert parse_value_maps(qml)["status"]['违法 <b>&"x"</b>'] == "illegal"


def test_a_false_alarm_reason_is_imported_as_the_web_app_records_it(store, patrol):
    out, ids = patrol
    edit(out, ids[0], status="false_alarm", reason="seasonal_crops")
    edit(out, ids[1], status="false_alarm", reason=REASON["zh"]["temporary_shed"])  # the word, typed
    assert import_field(store, out, by="巡查一队").applied == sorted(ids[:2])
    ev = store.events()
    got = ev[(ev["field"] == "reason") & (ev["action"] == "set")].set_index("alert_id")["new"].to_dict()
    assert got == {ids[0]: "seasonal_crops", ids[1]: "temporary_shed"}
    n = len(store.events())
    assert import_field(store, out).applied == [] and len(store.events()) == n  # twice: nothing new


def test_a_bad_reason_is_refused(store, patrol):
    out, ids = patrol
    edit(out, ids[0], status="false_alarm", reason="aliens")
    with pytest.raises(InvalidValueError, match="aliens"):
        import_field(store, out)
    edit(out, ids[0], status="illegal", reason="seasonal_crops")
    with pytest.raises(InvalidValueError, match="only with status false_alarm"):
        import_field(store, out)
    assert store.alert(ids[0])["status"] == "dispatched"


# --- every problem at once -------------------------------------------------------------------


def three_problems(store, out, ids):
    """ids[0] a conflict, ids[1] an invalid transition, A-NOPE unknown; ids[2] valid."""
    edit(out, ids[0], status="illegal", note="field says illegal")
    set_alert(store, ids[0], status="legal", by="内业", note="permit found")
    edit(out, ids[1], status="demolished")  # dispatched -> demolished is not a transition
    edit(out, ids[2], status="illegal", note="在建")
    add_row(out, "A-NOPE")


def test_import_reports_every_problem_and_applies_nothing(store, patrol):
    out, ids = patrol
    assert len(ids) == 3
    three_problems(store, out, ids)
    before = state(store)
    with pytest.raises(LayerValidationError) as exc:
        import_field(store, out)
    msg = str(exc.value)
    assert exc.value.ids == sorted([ids[0], ids[1], "A-NOPE"]) and exc.value.exit_code == 2
    assert f"{ids[0]}: changed both" in msg and f"{ids[1]}: is 'dispatched' and cannot become 'demolished'" in msg
    assert "A-NOPE: not in the store" in msg and ids[2] not in msg
    after = state(store)
    assert after[0].equals(before[0]) and after[1].equals(before[1])
    res = CliRunner().invoke(main, ["alerts", "import", str(out), "--workspace", str(store.store_dir)])
    assert res.exit_code == 2 and all(i in res.output for i in (ids[0], ids[1], "A-NOPE"))


def test_prefer_applies_the_valid_rows_and_reports_the_others(store, patrol):
    out, ids = patrol
    three_problems(store, out, ids)
    edit(out, ids[0], status="")  # the field keeps the status: preferring it is a valid note change
    res = import_field(store, out, prefer="field")
    assert res.applied == sorted([ids[0], ids[2]]) and res.conflicts == [ids[0]]
    assert set(res.skipped) == {ids[1], "A-NOPE"} and "cannot become 'demolished'" in res.skipped[ids[1]]
    assert store.alert(ids[0])["note"] == "field says illegal" and store.alert(ids[2])["status"] == "illegal"
    assert store.alert(ids[1])["status"] == "dispatched"


def test_prefer_on_the_command_line_exits_2_when_rows_were_skipped(store, patrol):
    out, ids = patrol
    three_problems(store, out, ids)
    res = CliRunner().invoke(main, ["alerts", "import", str(out), "--workspace", str(store.store_dir),
                                    "--prefer", "store"])
    assert res.exit_code == 2, res.output
    assert "applied 1 alerts" in res.output and f"kept the store's version of {ids[0]}" in res.output
    assert f"skipped {ids[1]}" in res.output and "skipped A-NOPE: not in the store" in res.output
    assert store.alert(ids[2])["status"] == "illegal" and store.alert(ids[0])["status"] == "legal"
