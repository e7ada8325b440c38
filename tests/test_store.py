"""The alert store on both backends: transactions, fault injection, kill -9, the run lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import gis.alerts.store
from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in
from gis.errors import StoreError, StoreLockedError
from gis.alerts.store import open_store
from gis.weekly import run_weekly
from storedata import execute, state, store_of, use_store

TESTS = Path(__file__).parent


@pytest.fixture
def ws(tmp_path, store_url):
    """A workspace whose store (GeoPackage or PostGIS) holds the alerts of one weekly run."""
    root = use_store(make_workspace(tmp_path / "ws"), store_url)
    detect = FakeDetect({DATES[1].isoformat(): changes(("new_structure", spot_in(root, "P01")),
                                                        ("new_crops", spot_in(root, "P03", 40)))})
    run_weekly(root, DATES[1], detect=detect, maps=False)
    return root


def test_round_trip_of_alerts_events_and_runs(ws):
    store = store_of(ws)
    a = store.alerts()
    assert len(a) == 2 and a.crs.to_epsg() == 4547
    assert a["seen_count"].dtype.kind == "i" and a["growing"].dtype == bool
    ev, runs = store.events(), store.runs()
    assert list(ev["action"]) == ["created", "created"]
    assert len(runs) == 1 and json.loads(runs["counts"][0])["new"] == 2
    assert len(json.loads(runs["inputs"][0])) >= 4  # layers and both orthophotos hashed
    assert store.alert(a["alert_id"][0])["kind"] in ("new_structure", "new_crops")
    assert store.alert(a["alert_id"][0]).geometry.equals(a.geometry[0])
    with pytest.raises(KeyError):
        store.alert("nope")


def test_geopackage_store_stays_a_layer_qgis_reads(tmp_path):
    import pyogrio

    root = make_workspace(tmp_path / "ws")
    run_weekly(root, DATES[1], detect=FakeDetect({DATES[1].isoformat(): changes(
        ("new_structure", spot_in(root, "P01")))}), maps=False)
    store = store_of(root)
    aid = store.alerts()["alert_id"][0]
    run_weekly(root, DATES[2], detect=FakeDetect({DATES[2].isoformat(): changes(
        ("new_structure", spot_in(root, "P01", 30)))}), maps=False)
    layer = pyogrio.read_dataframe(root / "store.gpkg", layer="alerts")
    assert aid in set(layer["alert_id"]) and layer.crs.to_epsg() == 4547
    assert layer.geometry.area.round(1).tolist() == store.alerts().geometry.area.round(1).tolist()
    info = pyogrio.read_info(root / "store.gpkg", layer="alerts")
    assert info["features"] == len(layer)  # GDAL's own feature count kept up by its triggers
    # the R-tree follows the rows written through plain SQLite
    hits = pyogrio.read_dataframe(root / "store.gpkg", layer="alerts", bbox=tuple(layer.total_bounds))
    assert len(hits) == len(layer)


@pytest.mark.parametrize("where", ["before_commit", "in_transaction"])
def test_fault_injection_leaves_the_store_intact(ws, monkeypatch, where):
    store = store_of(ws)
    before = state(store)

    def boom(*a, **k):
        raise RuntimeError("injected fault")

    if where == "before_commit":
        monkeypatch.setattr(gis.alerts.store, "_before_commit", boom)
    with pytest.raises(RuntimeError, match="injected"):
        with store.transaction(by="test") as tx:
            tx.alerts.loc[0, "note"] = "should never be stored"
            tx.event(tx.alerts["alert_id"][0], "set", "note", "", "x")
            if where == "in_transaction":
                boom()
    assert state(store_of(ws)) == before
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
        gis.alerts.store._before_commit = pause  # inside the transaction, its writes done
    detect = SlowDetect({{DATES[2].isoformat(): changes(("new_structure", spot_in(root, "P01", 30)),
                                                       ("new_structure", spot_in(root, "P05")))}})
    run_weekly(root, DATES[2], detect=detect, maps=False)
""")


@pytest.mark.parametrize("phase", ["detect", "commit"])
def test_kill_9_mid_run_leaves_the_store_and_refuses_a_concurrent_run(ws, tmp_path, phase):
    store = store_of(ws)
    before = state(store)
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
        # the paused run holds the run lock: a second run is refused at once, naming the holder
        t0 = time.monotonic()
        with pytest.raises(StoreLockedError) as exc:
            run_weekly(ws, DATES[2], detect=FakeDetect(), maps=False)
        msg = str(exc.value)
        assert f"pid {proc.pid}" in msg and socket.gethostname() in msg and "started" in msg
        assert "run again" in msg and time.monotonic() - t0 < 20
        if phase == "detect":  # people's writes are never refused because a run is working
            aid = store.alerts()["alert_id"][0]
            from gis.alerts.lifecycle import set_alert
            set_alert(store_of(ws), aid, by="巡查", note="while the run detects")
            before = state(store_of(ws))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert state(store_of(ws)) == before  # exactly as before the killed run's transaction
    # the dead run's lock is stale: the next run takes it over and completes
    summary = run_weekly(ws, DATES[2], detect=FakeDetect(), maps=False)
    assert summary.epoch == DATES[2].isoformat()
    assert len(store_of(ws).runs()) == 2
    if store.kind == "gpkg":
        assert not any(p.name.endswith(".part.gpkg") for p in ws.iterdir())


def test_run_lock_of_a_live_process_refuses_and_dead_one_is_taken_over(ws):
    store = store_of(ws)
    if store.kind == "gpkg":
        execute(store, "INSERT INTO run_lock VALUES ('weekly', :pid, :host, '2026-11-21T08:00:00+00:00', "
                       "'weekly')", {"pid": os.getpid(), "host": socket.gethostname()})
        with pytest.raises(StoreLockedError, match="2026-11-21T08:00:00"):
            with store.run_lock("x"):
                pass
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        execute(store, "UPDATE run_lock SET pid = :pid", {"pid": dead.pid})
    else:  # PostGIS: the advisory lock of a live session refuses; a row alone does not
        held, release = threading.Event(), threading.Event()

        def hold():
            with store_of(ws).run_lock("weekly"):
                held.set()
                release.wait(30)

        t = threading.Thread(target=hold)
        t.start()
        assert held.wait(30)
        with pytest.raises(StoreLockedError, match=f"pid {os.getpid()}"):
            with store.run_lock("x"):
                pass
        release.set()
        t.join()
        execute(store, "INSERT INTO run_lock VALUES ('weekly', 1, 'elsewhere', 'x', 'weekly')")
    with store.run_lock("x"):
        with store.transaction(by="x") as tx:
            tx.event("A", "test")
    assert store.events()["action"].iloc[-1] == "test"
    with store.transaction(by="x") as tx:  # released
        tx.event("A", "after")


def test_only_geopackage_or_postgresql_stores(tmp_path):
    with pytest.raises(StoreError, match="GeoPackage"):
        open_store(tmp_path / "store.sqlite")
