"""Statuses, transitions and verdicts with photos and the audit log."""

from __future__ import annotations

import pytest

from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in
from gis.errors import AlertNotFoundError, InputError, InvalidTransitionError
from gis.alerts.lifecycle import TRANSITIONS, check_transition, set_alert
from gis.alerts.store import open_store
from gis.weekly import run_weekly


@pytest.fixture
def store(tmp_path):
    root = make_workspace(tmp_path / "ws")
    run_weekly(root, DATES[1], detect=FakeDetect({DATES[1].isoformat(): changes(
        ("new_structure", spot_in(root, "P01")))}), maps=False)
    return open_store(root / "store.gpkg")


def test_transition_table():
    check_transition("A1", "new", "dispatched")
    check_transition("A1", "dispatched", "illegal")
    check_transition("A1", "illegal", "demolished")
    check_transition("A1", "demolished", "closed")
    check_transition("A1", "illegal", "illegal")  # a note only
    with pytest.raises(InvalidTransitionError) as exc:
        check_transition("A20260315-0001", "new", "demolished")
    msg = str(exc.value)
    assert "A20260315-0001" in msg and "'new'" in msg and "'demolished'" in msg
    assert "dispatched, false_alarm" in msg
    with pytest.raises(InvalidTransitionError, match="none"):
        check_transition("A1", "closed", "new")
    with pytest.raises(InvalidTransitionError, match="unknown status"):
        check_transition("A1", "new", "bogus")
    assert all(set(v) <= set(TRANSITIONS) for v in TRANSITIONS.values())


def test_set_records_verdict_note_photo_and_audit(store, tmp_path):
    aid = store.alerts()["alert_id"][0]
    photo = tmp_path / "IMG_0001.JPG"
    photo.write_bytes(b"\xff\xd8\xff\xe0 a field photo")
    set_alert(store, aid, status="dispatched", by="调度员")
    a = set_alert(store, aid, status="illegal", by="张三", note="新建砖房两层", photos=[photo])
    photo.unlink()  # the original can go: the store has its own copy
    assert a["status"] == "illegal" and a["verdict"] == "illegal" and a["note"] == "新建砖房两层"
    assert a["updated_by"] == "张三" and a["rev"] == 2 and a["verdict_area_m2"] == pytest.approx(400)
    rel = a["photos"]
    assert rel.startswith("photos/") and rel.endswith(".jpg")
    assert (store.store_dir / rel).read_bytes() == b"\xff\xd8\xff\xe0 a field photo"
    ev = store.events()
    mine = ev[ev["alert_id"] == aid]
    assert {"status", "verdict", "note", "photos"} <= set(mine["field"])
    st = mine[(mine["field"] == "status") & (mine["by"] == "张三")].iloc[-1]
    assert (st["old"], st["new"]) == ("dispatched", "illegal")
    assert ((mine["action"] == "photo") & (mine["old"] == "IMG_0001.JPG")).any()


def test_same_photo_twice_is_stored_once_and_invalid_sets_change_nothing(store, tmp_path):
    aid = store.alerts()["alert_id"][0]
    p = tmp_path / "a.jpg"
    p.write_bytes(b"\x89PNG\r\n\x1a\n same")
    set_alert(store, aid, status="new", by="x", photos=[p])
    n_events = len(store.events())
    set_alert(store, aid, status="new", by="x", photos=[p])
    assert len(store.events()) == n_events + 1  # only the photo event; no new photo entry
    assert store.alert(aid)["photos"].count("photos/") == 1
    before = store.events()
    with pytest.raises(InvalidTransitionError):
        set_alert(store, aid, status="closed", by="x", note="lost?")
    with pytest.raises(AlertNotFoundError):
        set_alert(store, "A-none", status="dispatched", by="x")
    with pytest.raises(InputError, match="--by"):
        set_alert(store, aid, status="dispatched", by=" ")
    assert store.events().equals(before) and store.alert(aid)["note"] == ""
