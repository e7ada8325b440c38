"""The alert store against lost, corrupt and full-disk files (issue 15, points 9-11, 14-16).

A deleted or mistyped store is an error, never an empty store; every weekly
run (and other commits at most daily) keeps a backup and `gis store restore`
puts one back; a corrupt store is
refused before anything is written; a full disk leaves the store as it was;
a commit keeps the file's mode and group; a killed writer's temporary files
are removed by the next write of the same output.
"""

from __future__ import annotations

import errno
import grp
import hashlib
import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import gis.alerts.safety as safety_module
import gis.alerts.store as store_module
from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in
from gis.cli import main
from gis.errors import StoreCorruptError, StoreMissingError, StoreWriteError
from gis.alerts.lifecycle import set_alert
from gis.alerts.store import open_store
from gis.weekly import run_weekly
from gis.workspace import load_workspace
from gis.alerts.safety import content_digest


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def gis(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def week(root: Path, k: int = 1):
    detect = FakeDetect({DATES[k].isoformat(): changes(("new_structure", spot_in(root, "P01")),
                                                        ("new_crops", spot_in(root, "P03", 40)))})
    return run_weekly(root, DATES[k], detect=detect, maps=False)


@pytest.fixture
def ws(tmp_path):
    """A workspace whose store holds the alerts of one weekly run."""
    root = make_workspace(tmp_path / "ws")
    week(root)
    return root


def store_of(root: Path):
    return load_workspace(root).open_store()


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


def corrupt_table(path: Path, table: str) -> None:
    """Overwrite the root page of ``table`` with garbage, as a failing disk would."""
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every committed page in the file itself
        (root_page,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        (size,) = con.execute("PRAGMA page_size").fetchone()
    con.close()
    with open(path, "r+b") as f:
        f.seek((root_page - 1) * size)
        f.write(b"\xff" * size)
    with pytest.raises(sqlite3.DatabaseError):  # SQLite itself sees it
        with sqlite3.connect(path) as con:
            assert con.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    con.close()


# --- 9: a deleted or mistyped store ------------------------------------------------


def test_first_run_creates_the_store_and_says_so(tmp_path, caplog):
    root = make_workspace(tmp_path / "ws")
    with caplog.at_level(logging.INFO, logger="gis.alerts.store"):
        week(root)
    assert any("creating a new alert store" in r.getMessage() for r in caplog.records)
    rec = json.loads((root / ".gis" / "state.json").read_text())
    assert rec["store"] == "store.gpkg" and rec["commits"] == 1 and rec["last_run"]


def test_deleted_store_is_an_error_not_an_empty_store(ws):
    (ws / "store.gpkg").unlink()
    res = gis("alerts", "list", "--workspace", ws)
    assert res.exit_code == 2, res.output
    assert "store.gpkg" in res.output and "missing" in res.output and "gis store restore" in res.output
    assert "0 alerts" not in res.output and "Traceback" not in res.output
    with pytest.raises(StoreMissingError, match="gis store restore"):
        week(ws, 2)
    assert not (ws / "store.gpkg").exists()  # no new store started silently


def test_mistyped_store_in_toml_names_the_real_one(ws):
    toml = ws / "gis.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('store = "store.gpkg"', 'store = "stroe.gpkg"'),
                    encoding="utf-8")
    res = gis("alerts", "list", "--workspace", ws)
    assert res.exit_code == 2
    assert "stroe.gpkg" in res.output and "store.gpkg" in res.output and "fix `store` in gis.toml" in res.output.lower()
    with pytest.raises(StoreMissingError):
        week(ws, 2)
    assert not (ws / "stroe.gpkg").exists()


def test_a_store_older_than_the_record_is_adopted_on_first_read(ws):
    (ws / ".gis" / "state.json").unlink()
    for b in (ws / "backups").iterdir():
        b.unlink()
    assert gis("alerts", "list", "--workspace", ws).exit_code == 0  # records the store it finds
    (ws / "store.gpkg").unlink()
    res = gis("alerts", "list", "--workspace", ws)
    assert res.exit_code == 2 and "missing" in res.output


def test_store_new_starts_an_empty_store_on_purpose(ws):
    (ws / "store.gpkg").unlink()
    res = gis("store", "new", "--workspace", ws)
    assert res.exit_code == 0, res.output
    assert json.loads(gis("alerts", "list", "--workspace", ws, "--json").output) == []
    assert gis("store", "new", "--workspace", ws).exit_code == 2  # never over an existing store


# --- 10: backups and restore ---------------------------------------------------------


def test_each_run_keeps_a_backup_rotated_to_the_configured_count(ws):
    # a backup per weekly run and at most one a day for other commits: no whole-file
    # copy per verdict (issue 17), still a sound copy of every run's result
    store = store_of(ws)
    assert len(store.backups()) == 1 and content_digest(store.backups()[-1]) == content_digest(store.path)
    aid = store.alerts()["alert_id"].iloc[0]
    for k in range(3):
        set_alert(store, aid, status="dispatched", by="t", note=f"n{k}")
    assert len(store.backups()) == 1  # within the day
    for k in range(4):
        week(ws, 2)
    assert len(store.backups()) == 4  # the default
    assert content_digest(store.backups()[-1]) == content_digest(store.path)
    toml = ws / "gis.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("store_backups = 4", "store_backups = 2"),
                    encoding="utf-8")
    week(ws, 2)
    assert len(store_of(ws).backups()) == 2


def test_a_verdict_makes_a_backup_when_the_newest_is_a_day_old(ws, monkeypatch):
    import datetime as dt

    store = store_of(ws)
    monkeypatch.setattr(safety_module, "BACKUP_EVERY", dt.timedelta(0))
    set_alert(store, store.alerts()["alert_id"].iloc[0], status="dispatched", by="t", note="x")
    assert len(store.backups()) == 2 and content_digest(store.backups()[-1]) == content_digest(store.path)


def test_restore_brings_back_a_deleted_store(ws):
    alerts = store_of(ws).alerts().drop(columns="geometry")
    (ws / "store.gpkg").unlink()
    listed = gis("store", "restore", "--workspace", ws, "--list")
    assert listed.exit_code == 0 and "2 alerts" in listed.output
    res = gis("store", "restore", "--workspace", ws)
    assert res.exit_code == 0, res.output
    assert store_of(ws).alerts().drop(columns="geometry").equals(alerts)
    assert gis("alerts", "list", "--workspace", ws).exit_code == 0


def test_restore_a_named_backup_keeps_the_current_store_as_a_backup(ws):
    store = store_of(ws)
    first = store.backups()[-1]
    aid = store.alerts()["alert_id"].iloc[0]
    set_alert(store, aid, status="dispatched", by="t", note="after the backup")
    current = content_digest(store.path)
    res = gis("store", "restore", "--workspace", ws, first.name)
    assert res.exit_code == 0, res.output
    assert content_digest(store.path) == content_digest(first)
    assert current in {content_digest(b) for b in store.backups()}
    assert store_of(ws).alert(aid)["note"] == ""  # an open store object reads the restored store
    assert gis("store", "restore", "--workspace", ws, "nope.gpkg").exit_code == 2


def test_store_backup_copies_the_store_and_never_over_itself(ws, tmp_path):
    res = gis("store", "backup", tmp_path / "copy.gpkg", "--workspace", ws)
    assert res.exit_code == 0 and content_digest(tmp_path / "copy.gpkg") == content_digest(ws / "store.gpkg")
    assert store_module.open_store(tmp_path / "copy.gpkg").alerts().drop(columns="geometry").equals(
        store_of(ws).alerts().drop(columns="geometry"))
    assert gis("store", "backup", ws / "store.gpkg", "--workspace", ws).exit_code == 2


# --- 11: corruption does not spread ----------------------------------------------------


def test_corrupt_audit_log_is_refused_by_reads_and_writes(ws):
    path = ws / "store.gpkg"
    aid = open_store(path).alerts()["alert_id"].iloc[0]
    corrupt_table(path, "alert_events")
    before = digest(path)
    for args in (("alerts", "set", aid, "--status", "dispatched", "--by", "x"),
                 ("alerts", "show", aid), ("alerts", "list", "--json")):
        res = gis(*args, "--workspace", ws)
        assert res.exit_code == 2, (args, res.output)
        assert "corrupt" in res.output and "store.gpkg" in res.output and "gis store restore" in res.output
        assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    with pytest.raises(StoreCorruptError):
        week(ws, 2)
    assert digest(path) == before and len(names(ws / "backups")) <= 1  # nothing written
    # the newest backup is sound and brings the store back; the corrupt one is set aside, not rotated
    assert gis("store", "restore", "--workspace", ws).exit_code == 0
    assert safety_module.integrity_problem(path) == "" and len(store_of(ws).events()) == 2
    aside = list((ws / "backups").glob("store-corrupt-*.gpkg"))
    assert len(aside) == 1 and digest(aside[0]) == before and len(store_of(ws).backups()) == 1


# --- 14: mode and group ----------------------------------------------------------------


def test_commit_keeps_the_store_mode_and_group(ws):
    path = ws / "store.gpkg"
    os.chmod(path, 0o664)
    other = [g for g in os.getgroups() if g != path.stat().st_gid]
    if other:
        os.chown(path, -1, other[0])
    group = path.stat().st_gid
    store = open_store(path)
    set_alert(store, store.alerts()["alert_id"].iloc[0], status="dispatched", by="t")
    assert stat.S_IMODE(path.stat().st_mode) == 0o664
    assert path.stat().st_gid == group, grp.getgrgid(group).gr_name
    week(ws, 2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o664


def test_atomic_outputs_keep_the_mode_of_the_file_they_replace(tmp_path):
    from gis.atomic import write_text_atomic

    out = tmp_path / "bulletin.html"
    out.write_text("old")
    os.chmod(out, 0o640)
    write_text_atomic(out, "new")
    assert out.read_text() == "new" and stat.S_IMODE(out.stat().st_mode) == 0o640


# --- 15: leftovers of a killed writer ---------------------------------------------------

KILLED_WRITER = """
import os, sys
from gis.atomic import atomic_path
cm = atomic_path(sys.argv[1])
tmp = cm.__enter__()
tmp.write_bytes(b"half a GeoPackage" * 1000)
tmp.with_name(tmp.name + "-journal").write_bytes(b"j")
os._exit(9)  # killed: no cleanup runs
"""


def test_next_overlay_removes_a_killed_overlay_s_temp_files(small_layers, tmp_path):
    s = small_layers
    out = tmp_path / "out" / "figures.gpkg"
    out.parent.mkdir()
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(out)], check=False)
    left = temp_files(out.parent)
    assert len(left) == 2 and all(n.startswith(".figures.") for n in left)
    # a live writer's temp file and another output's are not touched
    live = out.parent / f".figures.{os.getppid()}.abc123.part.gpkg"
    other = out.parent / ".figures_old.99999999.abc123.part.gpkg"
    live.write_bytes(b"x")
    other.write_bytes(b"x")
    res = CliRunner().invoke(main, ["overlay", "--redlines", str(s["redlines_path"]), "--parcels",
                                    str(s["parcels_path"]), "--out", str(out), "--as-of", "2026-11-21"])
    assert res.exit_code == 0, res.output
    assert temp_files(out.parent) == sorted([live.name, other.name])
    assert out.exists()


# --- 16: a full disk during a commit ----------------------------------------------------


@pytest.mark.parametrize("fault", [OSError(errno.ENOSPC, "No space left on device"),
                                   sqlite3.OperationalError("database or disk is full")])
def test_full_disk_commit_leaves_the_store_and_raises_a_named_error(ws, monkeypatch, fault):
    path = ws / "store.gpkg"
    before = digest(path)
    backups = names(ws / "backups")

    def full(*a, **k):
        raise fault

    # the disk fills while the transaction writes: SQLite rolls it back
    monkeypatch.setattr(store_module, "_before_commit", full)
    store = open_store(path)
    aid = store.alerts()["alert_id"].iloc[0]
    with pytest.raises(StoreWriteError) as exc:
        set_alert(store, aid, status="dispatched", by="t")
    assert exc.value.exit_code == 1 and "store.gpkg" in str(exc.value) and "not changed" in str(exc.value)
    assert "no space left" in str(exc.value)
    assert digest(path) == before and store.alert(aid)["status"] == "new"
    assert temp_files(ws) == []
    assert names(ws / "backups") == backups
    res = gis("alerts", "set", aid, "--workspace", ws, "--status", "dispatched", "--by", "t")
    assert res.exit_code == 1 and "free disk space" in res.output.lower() and "Traceback" not in res.output


def test_full_disk_while_copying_the_backup_keeps_the_commit_and_no_half_backup(ws, monkeypatch, caplog):
    # the backup is made after the commit now: the commit stands, the failed copy leaves nothing
    store = store_of(ws)
    backups = names(ws / "backups")

    def copy(self, out):
        Path(out).write_bytes(b"half a backup")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(store.backend), "backup_to", copy)
    aid = store.alerts()["alert_id"].iloc[0]
    with caplog.at_level(logging.WARNING):
        week(ws, 2)
    assert any("backups could not be written" in r.getMessage() for r in caplog.records)
    assert len(store.runs()) == 2 and names(ws / "backups") == backups
    assert temp_files(ws) == [] and temp_files(ws / "backups") == []
    assert store.alert(aid)["status"] == "new"
