"""The alert store: atomic commits, fault injection, kill -9, the lock."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import gis.alerts.store
from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in
from gis.errors import StoreError, StoreLockedError
from gis.alerts.store import open_store
from gis.weekly import run_weekly

TESTS = Path(__file__).parent


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def ws(tmp_path):
    """A workspace whose store holds the alerts of one weekly run."""
    root = make_workspace(tmp_path / "ws")
    detect = FakeDetect({DATES[1].isoformat(): changes(("new_structure", spot_in(root, "P01")),
                                                        ("new_crops", spot_in(root, "P03", 40)))})
    run_weekly(root, DATES[1], detect=detect, maps=False)
    return root


def test_round_trip_of_alerts_events_and_runs(ws):
    store = open_store(ws / "store.gpkg")
    a = store.alerts()
    assert len(a) == 2 and a.crs.to_epsg() == 4547
    assert a["seen_count"].dtype.kind == "i" and a["growing"].dtype == bool
    ev, runs = store.events(), store.runs()
    assert list(ev["action"]) == ["created", "created"]
    assert len(runs) == 1 and json.loads(runs["counts"][0])["new"] == 2
    assert len(json.loads(runs["inputs"][0])) >= 4  # layers and both orthophotos hashed
    assert store.alert(a["alert_id"][0])["kind"] in ("new_structure", "new_crops")
    with pytest.raises(KeyError):
        store.alert("nope")


@pytest.mark.parametrize("where", ["before_replace", "layer_write", "in_transaction"])
def test_fault_injection_leaves_the_store_intact(ws, monkeypatch, where):
    path = ws / "store.gpkg"
    before = digest(path)
    store = open_store(path)

    def boom(*a, **k):
        raise RuntimeError("injected fault")

    if where == "before_replace":
        monkeypatch.setattr(gis.alerts.store, "_before_replace", boom)
    elif where == "layer_write":
        monkeypatch.setattr(gis.alerts.store.pyogrio, "write_dataframe", boom)
    with pytest.raises(RuntimeError, match="injected"):
        with store.transaction(by="test") as tx:
            tx.alerts.loc[0, "note"] = "should never be stored"
            tx.event(tx.alerts["alert_id"][0], "set", "note", "", "x")
            if where == "in_transaction":
                boom()
    assert digest(path) == before
    assert sorted(p.name for p in ws.iterdir() if p.name.startswith(".store")) == []
    assert not store.lock_path.exists()
    assert (store.alerts()["note"] == "").all() and len(store.events()) == 2


SCRIPT = textwrap.dedent("""
    import sys, time, pathlib
    sys.path.insert(0, {tests!r})
    import gis.alerts.store
    from alertsdata import FakeDetect, changes, spot_in, DATES
    from gis.weekly import run_weekly
    root, phase, flag = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])

    def pause(*a, **k):
        flag.write_text("paused")
        time.sleep(120)

    class SlowDetect(FakeDetect):
        def __call__(self, before, after, **kw):
            if phase == "detect":
                pause()
            return super().__call__(before, after, **kw)

    if phase == "commit":
        gis.alerts.store._before_replace = pause
    detect = SlowDetect({{DATES[2].isoformat(): changes(("new_structure", spot_in(root, "P01", 30)),
                                                       ("new_structure", spot_in(root, "P05")))}})
    run_weekly(root, DATES[2], detect=detect, maps=False)
""")


@pytest.mark.parametrize("phase", ["detect", "commit"])
def test_kill_9_mid_run_leaves_the_store_and_refuses_a_concurrent_run(ws, tmp_path, phase):
    path = ws / "store.gpkg"
    before = digest(path)
    alerts_before = open_store(path).alerts()
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(TESTS)))
    flag = tmp_path / "flag"
    proc = subprocess.Popen([sys.executable, str(script), str(ws), phase, str(flag)])
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None, "the run ended before reaching the pause"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # the paused run holds the lock: a second run is refused, naming the holder
        with pytest.raises(StoreLockedError) as exc:
            run_weekly(ws, DATES[2], detect=FakeDetect(), maps=False)
        msg = str(exc.value)
        assert f"pid {proc.pid}" in msg and socket.gethostname() in msg and "started" in msg
        assert "delete the lock file" in msg
        if phase == "commit":  # the new store is fully built beside the old one
            assert any(p.name.endswith(".part.gpkg") for p in ws.iterdir())
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert digest(path) == before
    assert open_store(path).alerts().drop(columns="geometry").equals(alerts_before.drop(columns="geometry"))
    # the dead run's lock is stale: the next run takes it over and completes
    assert open_store(path).lock_path.exists()
    summary = run_weekly(ws, DATES[2], detect=FakeDetect(), maps=False)
    assert summary.epoch == DATES[2].isoformat()
    assert not any(p.name.endswith(".part.gpkg") for p in ws.iterdir())  # the killed run's copy is gone
    assert len(open_store(path).runs()) == 2


def test_lock_of_a_live_process_refuses_and_dead_one_is_taken_over(ws):
    store = open_store(ws / "store.gpkg")
    store.lock_path.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                           "started": "2026-11-21T08:00:00+00:00", "command": "weekly"}))
    with pytest.raises(StoreLockedError, match="2026-11-21T08:00:00"):
        with store.transaction(by="x"):
            pass
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.lock_path.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                           "started": "x", "command": "weekly"}))
    with store.transaction(by="x") as tx:
        tx.event("A", "test")
    assert not store.lock_path.exists() and store.events()["action"].iloc[-1] == "test"


def test_only_geopackage_stores(tmp_path):
    with pytest.raises(StoreError, match="GeoPackage"):
        open_store(tmp_path / "store.sqlite")
