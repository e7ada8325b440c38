"""Many people and one weekly run writing one store at once, on both backends (issue 17).

8 writers x 50 notes on the same few alerts while a weekly run detects and
commits: every note is kept, the audit log has every event, the run's own
fields are merged in, and the only error anyone meets is the named conflict
(an alert that changed since the writer read it), after which the writer
reads again and records the note.
"""

from __future__ import annotations

import threading

import pytest

from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in
from gis.alerts.lifecycle import set_alert
from gis.errors import ConflictError, StoreLockedError
from gis.weekly import run_weekly
from storedata import store_of, use_store

WRITERS, WRITES = 8, 50


@pytest.fixture
def ws(tmp_path, store_url):
    root = use_store(make_workspace(tmp_path / "ws"), store_url)
    run_weekly(root, DATES[1], detect=FakeDetect({DATES[1].isoformat(): changes(
        ("new_structure", spot_in(root, "P01")), ("new_crops", spot_in(root, "P03", 40)),
        ("new_structure", spot_in(root, "P05")))}), maps=False)
    return root


class GatedDetect(FakeDetect):
    """Detection that waits, while the run holds its lock, until the writers are well under way."""

    def __init__(self, by_epoch, gate: threading.Event, detecting: threading.Event) -> None:
        super().__init__(by_epoch)
        self.gate, self.detecting = gate, detecting

    def __call__(self, before, after, **kw):
        self.detecting.set()
        assert self.gate.wait(120)
        return super().__call__(before, after, **kw)


def test_writers_and_a_weekly_run_lose_nothing(ws):
    ids = sorted(store_of(ws).alerts()["alert_id"])
    gate, detecting = threading.Event(), threading.Event()
    # the run sees the P01 alert again, larger (so it merges geometry, area, last_seen) and a new one
    detect = GatedDetect({DATES[2].isoformat(): changes(("new_structure", spot_in(ws, "P01", 26)),
                                                        ("new_crops", spot_in(ws, "P07")))}, gate, detecting)
    errors: list[BaseException] = []
    conflicts = [0] * WRITERS
    written: list[str] = []
    lock = threading.Lock()

    def run():
        try:
            run_weekly(ws, DATES[2], detect=detect, maps=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def writer(w: int):
        store = store_of(ws)  # each person their own connection
        try:
            for k in range(WRITES):
                aid, note = ids[(w + k) % len(ids)], f"w{w}-{k}"
                while True:
                    seen = int(store.alert(aid)["rev"])  # what the person looked at
                    try:
                        set_alert(store, aid, by=f"巡查{w}", note=note, rev=seen)
                        break
                    except ConflictError as exc:  # the named conflict: read again, record again
                        assert aid in str(exc) and f"revision {seen}" in str(exc)
                        conflicts[w] += 1
                with lock:
                    written.append(note)
                if k == WRITES // 4 and w == 0:
                    gate.set()  # the run commits while the writers go on
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    assert detecting.wait(60)
    # a second run while the first one detects: refused, never queued
    with pytest.raises(StoreLockedError):
        run_weekly(ws, DATES[2], detect=FakeDetect(), maps=False)
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    gate.set()
    runner.join(300)
    assert errors == []
    assert len(written) == WRITERS * WRITES

    store = store_of(ws)
    ev = store.events()
    notes = ev[(ev["action"] == "set") & (ev["field"] == "note")]
    assert sorted(notes["new"]) == sorted(written)  # every write in the audit log, once
    a = store.alerts().set_index("alert_id")
    for aid in ids:  # the row holds the last note the log recorded for it, and a rev per write
        mine = notes[notes["alert_id"] == aid]
        assert a.loc[aid, "note"] == mine["new"].iloc[-1]
        assert a.loc[aid, "rev"] == len(mine)
    # the run's commit merged its own fields and kept every note
    assert len(store.runs()) == 2 and len(a) == len(ids) + 1
    p01 = a.loc[a["project_id"] == "P01"]
    assert (p01["last_seen"] == DATES[2].isoformat()).all() and (p01["seen_count"] == 2).all()
    assert p01["area_m2"].round().tolist() == [26 * 26]
    rep = store.verify()
    assert rep["ok"], rep["problems"]
