"""The alert store: alerts, their audit log and the run log.

:class:`AlertStore` says what any store must provide; :class:`GeoPackageStore`
keeps everything in one GeoPackage (``store.gpkg``): layer ``alerts``, and
attribute tables ``alert_events`` (audit log: when, who, what changed,
old -> new) and ``runs`` (inputs' hashes, parameters, counts, times).

Every write is all or nothing. A GeoPackage store builds the new state in a
temporary copy beside the store and ``os.replace``-s it over the old file,
so a run killed at any point (``kill -9`` included) leaves the old file
byte for byte; SQLite transactions alone would not cover GDAL's own writes
of the alerts layer. A lock file refuses a second writer with the holder's
pid, host and start time; a lock left by a dead process is taken over.

Safety around the file itself:

* every commit first runs SQLite's ``quick_check`` on the current store and
  refuses a corrupt one (:class:`StoreCorruptError`), so corruption never
  spreads into a new store; reads refuse it the same way;
* every commit keeps a copy of the new store in ``backups/`` beside it
  (the newest ``backups`` of them, default 4); ``gis store restore`` puts one
  back;
* the workspace records each commit (``.gis/state.json``), so a store that
  was deleted or a ``store`` path mistyped in gis.toml is an error
  (:class:`StoreMissingError`) instead of an empty store;
* a commit that cannot be written (a full disk) leaves the store as it was
  and raises :class:`StoreWriteError`; the replaced file's mode and group
  are kept.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import errno
import filecmp
import json
import logging
import os
import re
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from gis.atomic import atomic_path, keep_owner, write_text_atomic
from gis.errors import (AlertNotFoundError, ProtectedOutputError, StoreCorruptError, StoreError,
                        StoreLockedError, StoreMissingError, StoreWriteError)

log = logging.getLogger(__name__)

#: Committed stores kept in ``backups/`` beside the store (gis.toml: ``store_backups``).
DEFAULT_BACKUPS = 4
BACKUP_DIR = "backups"
#: Errors of the disk and of the libraries writing to it: a commit that meets
#: one is an environment problem (exit 1), never a traceback.
_WRITE_ERRORS = (OSError, sqlite3.Error, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError)

#: Columns of the alerts layer and their kinds. The first block is the
#: contract with maps and the bulletin; the rest is bookkeeping.
ALERT_COLUMNS: dict[str, str] = {
    "alert_id": "str", "kind": "str", "status": "str", "verdict": "str",
    "area_m2": "float", "area_mu": "float", "confidence": "float",
    "project_id": "str", "parcel_id": "str", "district": "str",
    "first_seen": "str", "last_seen": "str", "seen_count": "int",
    "growing": "bool", "post_freeze": "bool", "freeze_date": "str",
    "note": "str", "updated_by": "str", "updated_at": "str",
    "chip_before": "str", "chip_after": "str", "ref_alert_id": "str",
    "status_since": "str",
    # bookkeeping: area at first sighting / at verdict (growth reference),
    # field photos (';'-separated paths under the store folder), whether the
    # footprint is in the structure inventory, and a revision number bumped
    # by every human edit (field exchange detects conflicts with it).
    "first_area_m2": "float", "verdict_area_m2": "float", "photos": "str",
    "in_inventory": "bool", "rev": "int",
}
EVENT_COLUMNS = ["event_id", "at", "by", "run_id", "alert_id", "action", "field", "old", "new"]
RUN_COLUMNS = ["run_id", "command", "epoch", "previous_epoch", "started", "finished",
               "inputs", "parameters", "counts", "host", "pid"]

_EVENTS_DDL = """CREATE TABLE IF NOT EXISTS alert_events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, by TEXT, run_id TEXT,
    alert_id TEXT, action TEXT NOT NULL, field TEXT, old TEXT, new TEXT)"""
_RUNS_DDL = """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, command TEXT, epoch TEXT, previous_epoch TEXT, started TEXT,
    finished TEXT, inputs TEXT, parameters TEXT, counts TEXT, host TEXT, pid INTEGER)"""


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def empty_alerts(crs: Any = None) -> gpd.GeoDataFrame:
    return normalise_alerts(gpd.GeoDataFrame({c: [] for c in ALERT_COLUMNS},
                                             geometry=gpd.GeoSeries([], crs=crs), crs=crs))


def normalise_alerts(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Every contract column present with its kind; no NaN in text columns."""
    out = gdf.copy()
    for col, kind in ALERT_COLUMNS.items():
        if col not in out:
            out[col] = {"str": "", "float": np.nan, "int": 0, "bool": False}[kind]
        if kind == "str":
            out[col] = out[col].fillna("").astype(str).replace({"None": "", "nan": ""})
        elif kind == "float":
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
        elif kind == "int":
            out[col] = pd.to_numeric(out[col], errors="coerce").fillna(0).astype(np.int64)
        else:
            out[col] = out[col].fillna(False).astype(bool)
    cols = list(ALERT_COLUMNS) + [c for c in out.columns if c not in ALERT_COLUMNS and c != "geometry"]
    out = gpd.GeoDataFrame(out[cols], geometry=out.geometry, crs=gdf.crs)
    return out.sort_values("alert_id", kind="stable").reset_index(drop=True)


class Transaction:
    """The pending new state of a store; committed as a whole or not at all."""

    def __init__(self, alerts: gpd.GeoDataFrame, *, by: str, run_id: str = "") -> None:
        self.alerts = alerts
        self.by = by
        self.run_id = run_id
        self.events: list[dict[str, Any]] = []
        self.run: dict[str, Any] | None = None

    def event(self, alert_id: str, action: str, field: str = "", old: Any = "", new: Any = "",
              *, by: str | None = None) -> None:
        self.events.append({"at": now_iso(), "by": by or self.by, "run_id": self.run_id,
                            "alert_id": alert_id, "action": action, "field": field,
                            "old": "" if old is None else str(old), "new": "" if new is None else str(new)})

    def add_events(self, events: pd.DataFrame | list[dict]) -> None:
        rows = events.to_dict("records") if isinstance(events, pd.DataFrame) else events
        for r in rows:
            self.event(r["alert_id"], r["action"], r.get("field", ""), r.get("old", ""),
                       r.get("new", ""), by=r.get("by"))


class AlertStore(abc.ABC):
    """What any alert store provides (a PostGIS store would subclass this)."""

    @property
    @abc.abstractmethod
    def store_dir(self) -> Path:
        """Folder holding chips and photos; alert paths are relative to it."""

    @abc.abstractmethod
    def alerts(self) -> gpd.GeoDataFrame: ...

    @abc.abstractmethod
    def events(self) -> pd.DataFrame: ...

    @abc.abstractmethod
    def runs(self) -> pd.DataFrame: ...

    @abc.abstractmethod
    def lock(self, command: str = "") -> contextlib.AbstractContextManager:
        """Hold the store's write lock; raise StoreLockedError if another has it."""

    @abc.abstractmethod
    def _commit(self, tx: Transaction) -> None:
        """Write ``tx`` atomically."""

    def alert(self, alert_id: str) -> pd.Series:
        a = self.alerts()
        hit = a[a["alert_id"] == str(alert_id)]
        if hit.empty:
            raise AlertNotFoundError(f"no alert {alert_id!r} in the store", path=self.path,
                                     hint="list alert ids with `gis alerts list`")
        return hit.iloc[0]

    @contextlib.contextmanager
    def transaction(self, *, by: str, command: str = "", run_id: str = "") -> Iterator[Transaction]:
        """Lock, hand out the current alerts to modify, commit on success."""
        with self.lock(command or by):
            tx = Transaction(self.alerts(), by=by, run_id=run_id)
            yield tx
            tx.alerts = normalise_alerts(tx.alerts)
            self._commit(tx)


class GeoPackageStore(AlertStore):
    """The store in one GeoPackage file, replaced whole by every commit.

    ``record`` is the workspace's state file (``.gis/state.json``): each
    commit notes there the store's path and its last run, so a store that
    disappears is recognised. ``backups`` committed stores are kept in
    ``backups/`` beside the store (0: none).
    """

    def __init__(self, path: str | os.PathLike, crs: Any = None, *,
                 record: str | os.PathLike | None = None, backups: int = DEFAULT_BACKUPS) -> None:
        self.path = Path(path)
        self.crs = crs
        self.record_path = None if record is None else Path(record)
        self.keep_backups = int(backups)
        self._lock_depth = 0
        self._checked: tuple | None = None  # stat of the file last found sound
        self._absence_ok = False  # set while restoring or starting a store on purpose

    @property
    def store_dir(self) -> Path:
        return self.path.parent

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @property
    def backup_dir(self) -> Path:
        return self.store_dir / BACKUP_DIR

    # --- presence and integrity ----------------------------------------------
    def record(self) -> dict[str, Any]:
        """The workspace's record of this store's commits ({} when none)."""
        if self.record_path is None:
            return {}
        try:
            return json.loads(self.record_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.warning("ignoring unreadable store record %s", self.record_path)
            return {}

    def _recorded_store(self, rec: dict[str, Any]) -> Path | None:
        if not rec.get("store") or self.record_path is None:
            return None
        return (self.record_path.parent.parent / rec["store"]).resolve()

    def present(self) -> bool:
        """True when the store file exists; False for a workspace that never had one.

        Raises :class:`StoreMissingError` when the file is gone although the
        workspace committed to it (or backups of it exist): a deleted store
        or a mistyped ``store`` in gis.toml must not read as an empty store.
        """
        if self.path.exists():
            return True
        if self._absence_ok:
            return False
        rec = self.record()
        known = self._recorded_store(rec)
        restore = "bring back its newest backup with `gis store restore`"
        history = (f"last run {rec.get('last_run') or 'none'}, "
                   f"last commit {rec.get('last_commit') or 'unknown'}")
        if known is not None and known != self.path.resolve():
            raise StoreMissingError(
                f"no alert store here, but this workspace's store is {known} ({history})",
                path=self.path,
                hint=f"fix `store` in gis.toml (it names {self.path.name}) to name the workspace's store; "
                "to start an empty store there on purpose, run `gis store new`")
        if known is not None or self.backups():
            last = (f"the workspace recorded it: {history}" if known is not None
                    else f"{len(self.backups())} backups of it in {self.backup_dir}")
            raise StoreMissingError(
                f"the alert store is missing ({last})", path=self.path,
                hint=f"{restore}, or fix `store` in gis.toml if it names the wrong file; "
                "to start an empty store on purpose, run `gis store new`")
        return False

    def check(self, *, fresh: bool = False) -> None:
        """Refuse a store that fails SQLite's ``quick_check`` (:class:`StoreCorruptError`).

        The result is remembered for the file as it is (inode, size, mtime);
        ``fresh`` checks again regardless, as every commit does.
        """
        st = self.path.stat()
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        if not fresh and sig == self._checked:
            return
        problem = integrity_problem(self.path)
        if problem:
            raise StoreCorruptError(
                f"the alert store is corrupt ({problem}); nothing was read from or written to it",
                path=self.path,
                hint="restore the newest sound backup with `gis store restore` "
                "(`gis store restore --list` shows them)")
        self._checked = sig

    def _readable(self) -> bool:
        """Whether there is a store to read (checked sound); False for a new workspace."""
        if not self.present():
            return False
        self.check()
        if self.record_path is not None and not self.record_path.exists():
            self._adopt()
        return True

    def _adopt(self) -> None:
        """Record a store made before the workspace kept records, so its loss is noticed too."""
        try:
            with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as con:
                last = con.execute("SELECT run_id FROM runs ORDER BY started DESC, run_id DESC LIMIT 1"
                                   ).fetchone()
            self._write_record(commits=0, last_run=last[0] if last else "")
        except (OSError, sqlite3.Error) as exc:
            log.warning("could not record the store in %s: %s", self.record_path, exc)

    # --- reading -------------------------------------------------------------
    def alerts(self) -> gpd.GeoDataFrame:
        if not self._readable():
            return empty_alerts(self.crs)
        try:
            gdf = pyogrio.read_dataframe(self.path, layer="alerts")
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise StoreCorruptError(f"the alert store cannot be read ({exc})", path=self.path,
                                    hint="restore it with `gis store restore`; "
                                    "the store is only replaced whole") from None
        gdf = gdf.drop(columns=[c for c in ("fid",) if c in gdf])
        return normalise_alerts(gdf)

    def _table(self, name: str, columns: list[str], order: str) -> pd.DataFrame:
        if not self._readable():
            return pd.DataFrame(columns=columns)
        try:
            with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as con:
                return pd.read_sql_query(f"SELECT * FROM {name} ORDER BY {order}", con)
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
            raise StoreCorruptError(f"table {name} of the alert store cannot be read ({exc})",
                                    path=self.path, hint="restore it with `gis store restore`") from None

    def events(self) -> pd.DataFrame:
        return self._table("alert_events", EVENT_COLUMNS, "event_id")

    def runs(self) -> pd.DataFrame:
        return self._table("runs", RUN_COLUMNS, "started, run_id")

    # --- locking -------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, command: str = "") -> Iterator[None]:
        if self._lock_depth:  # re-entrant within one process: the run holds it already
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        self.present()  # a vanished store is refused before any work (and any folder made)
        self._acquire(command)
        self._lock_depth = 1
        # holding the lock, any half-built store beside ours is a killed run's leftover
        for leftover in self.path.parent.glob(f".{self.path.stem}.*.part.gpkg*"):
            log.warning("removing %s left by an interrupted run", leftover.name)
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        try:
            if self.path.exists() and not self._absence_ok:
                self.check()  # refuse a corrupt store before a run's long work
            yield
        finally:
            self._lock_depth = 0
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()

    def _acquire(self, command: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            info = {"pid": os.getpid(), "host": socket.gethostname(), "started": now_iso(),
                    "command": command}
            fd, tmp = tempfile.mkstemp(prefix=".lock.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(info, f)
            except OSError:
                os.unlink(tmp)
                raise
        except OSError as exc:
            raise StoreWriteError(f"cannot write the store's lock file ({exc.strerror or exc})",
                                  path=self.lock_path, hint=_WRITE_HINT) from None
        try:
            for _ in range(2):
                try:  # link() creates the lock with its content in one step, or fails
                    os.link(tmp, self.lock_path)
                    return
                except FileExistsError:
                    holder = self._holder()
                    if not _is_stale(holder):
                        raise StoreLockedError(
                            f"another run holds the store lock (pid {holder.get('pid')} on "
                            f"{holder.get('host')}, started {holder.get('started')}, "
                            f"command {holder.get('command')!r})",
                            path=self.lock_path,
                            hint="wait for it to finish and run again; if no run is active "
                            "on that host, delete the lock file")
                    log.warning("taking over stale store lock of dead pid %s", holder.get("pid"))
                    with contextlib.suppress(FileNotFoundError):
                        self.lock_path.unlink()
            raise StoreLockedError("could not take the store lock", path=self.lock_path,
                                   hint="run again")
        finally:
            os.unlink(tmp)

    def _holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.lock_path.read_text())
        except (OSError, ValueError):
            return {}

    # --- writing -------------------------------------------------------------
    def _commit(self, tx: Transaction) -> None:
        existed = self.present()
        if existed:
            self.check(fresh=True)  # never build a new store on a corrupt one
        else:
            log.info("creating a new alert store at %s (first run of this workspace)", self.path)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".part.gpkg",
                                        dir=self.path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if existed:
                shutil.copyfile(self.path, tmp)
            else:
                tmp.unlink()
            self._write(tx, tmp)
            keep_owner(self.path, tmp)
            _before_replace(tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            self._backup(tmp)
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except _WRITE_ERRORS as exc:
            _remove_temp(tmp)
            raise StoreWriteError(f"the commit could not be written ({_reason(exc)}); "
                                  "the store was not changed", path=self.path, hint=_WRITE_HINT) from exc
        except BaseException:
            _remove_temp(tmp)
            raise
        self._checked = None
        self._after_commit(tx)

    def _write(self, tx: Transaction, tmp: Path) -> None:
        """The new state of alerts, events and runs into ``tmp`` (a copy of the store)."""
        alerts = tx.alerts
        if alerts.crs is None and self.crs is not None:
            alerts = alerts.set_crs(self.crs)
        pyogrio.write_dataframe(alerts, tmp, layer="alerts", driver="GPKG", geometry_type="Unknown")
        with contextlib.closing(sqlite3.connect(tmp)) as con:
            with con:  # one SQLite transaction for the tables
                con.execute(_EVENTS_DDL)
                con.execute(_RUNS_DDL)
                for table in ("alert_events", "runs"):
                    con.execute(
                        "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier) "
                        "VALUES (?, 'attributes', ?)", (table, table))
                con.executemany(
                    "INSERT INTO alert_events (at, by, run_id, alert_id, action, field, old, new) "
                    "VALUES (:at, :by, :run_id, :alert_id, :action, :field, :old, :new)", tx.events)
                if tx.run is not None:
                    run = {k: tx.run.get(k) for k in RUN_COLUMNS}
                    for k in ("inputs", "parameters", "counts"):
                        run[k] = json.dumps(run[k] or {}, ensure_ascii=False, sort_keys=True)
                    con.execute(f"INSERT INTO runs VALUES ({', '.join(':' + c for c in RUN_COLUMNS)})", run)

    def _after_commit(self, tx: Transaction) -> None:
        """Rotate backups and note the commit in the workspace record.

        The store is committed by now: a failure here is logged, not raised.
        """
        try:
            self._rotate()
            rec = self.record()
            self._write_record(commits=int(rec.get("commits", 0)) + 1,
                               last_run=(tx.run or {}).get("run_id") or rec.get("last_run", ""))
        except OSError as exc:
            log.warning("store committed, but its backups or record could not be updated: %s", exc)

    def _write_record(self, *, commits: int, last_run: str) -> None:
        if self.record_path is None:
            return
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        root = self.record_path.parent.parent.resolve()
        store = Path(os.path.relpath(self.path.resolve(), root)).as_posix()
        write_text_atomic(self.record_path, json.dumps(
            {"store": store, "commits": commits, "last_run": last_run, "last_commit": now_iso()},
            ensure_ascii=False, indent=1))

    # --- backups -------------------------------------------------------------
    def backups(self) -> list[Path]:
        """Backups of this store, oldest first."""
        if not self.backup_dir.is_dir():
            return []
        name = re.compile(rf"^{re.escape(self.path.stem)}-(\d{{8}}T\d{{12}}Z)(?:-(\d+))?\.gpkg$")
        found = [(m.group(1), int(m.group(2) or 0), p) for p in self.backup_dir.iterdir()
                 if (m := name.match(p.name))]
        return [p for *_, p in sorted(found)]

    def _backup(self, source: Path) -> Path | None:
        """Copy ``source`` (a committed or about-to-be-committed store) into the backups."""
        if self.keep_backups <= 0:
            return None
        self.backup_dir.mkdir(exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.backup_dir / f"{self.path.stem}-{stamp}.gpkg"
        k = 0
        while target.exists():
            k += 1
            target = self.backup_dir / f"{self.path.stem}-{stamp}-{k}.gpkg"
        part = target.with_name(f".{target.name}.part")
        try:
            shutil.copyfile(source, part)
            keep_owner(source, part)
            os.replace(part, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            raise
        return target

    def _rotate(self) -> None:
        """Keep only the newest ``keep_backups`` backups (and no half-copied one)."""
        for part in self.backup_dir.glob(f".{self.path.stem}-*.gpkg.part"):  # under the lock: leftovers
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        old = self.backups()
        for p in old[:max(len(old) - self.keep_backups, 0)]:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def backup_named(self, name: str | os.PathLike | None) -> Path:
        """The backup called ``name`` (a file name or path), or the newest one."""
        have = self.backups()
        if not have:
            raise StoreError("the store has no backups", path=self.backup_dir,
                             hint="backups are made by each commit from this version on")
        if name is None:
            return have[-1]
        want = Path(name).name
        for p in have:
            if p.name == want:
                return p
        raise StoreMissingError(f"no backup named {want!r}", path=self.backup_dir,
                                hint="list them with `gis store restore --list`")

    def restore(self, name: str | os.PathLike | None = None) -> Path:
        """Put a backup (default: the newest) in place of the store; return the backup used.

        The current store, when there is one that no backup already holds,
        becomes a backup itself, so a restore can be undone; a corrupt one is
        set aside as ``backups/<stem>-corrupt-<time>.gpkg`` (never rotated
        away, never restored by default). Holds the lock.
        """
        with self._absence_waived(), self.lock("store restore"):
            source = self.backup_named(name)
            problem = integrity_problem(source)
            if problem:
                raise StoreCorruptError(f"the backup is corrupt too ({problem})", path=source,
                                        hint="restore an older one (`gis store restore --list`)")
            fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".part.gpkg",
                                            dir=self.path.parent)
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                shutil.copyfile(source, tmp)
                keep_owner(self.path, tmp)
                self._keep_current()
                os.replace(tmp, self.path)
                _fsync_dir(self.path.parent)
            except _WRITE_ERRORS as exc:
                _remove_temp(tmp)
                raise StoreWriteError(f"the restore could not be written ({_reason(exc)}); "
                                      "the store was not changed", path=self.path,
                                      hint=_WRITE_HINT) from exc
            except BaseException:
                _remove_temp(tmp)
                raise
            self._checked = None
            runs = self.runs()
            rec = self.record()
            self._write_record(commits=int(rec.get("commits", 0)) + 1,
                               last_run=str(runs["run_id"].iloc[-1]) if len(runs) else "")
            self._rotate()
        return source

    def _keep_current(self) -> None:
        """Before a restore: the current store into the backups (a corrupt one set aside)."""
        if not self.path.exists() or any(_same_file(self.path, b) for b in self.backups()):
            return
        if integrity_problem(self.path):
            self.backup_dir.mkdir(exist_ok=True)
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
            aside = self.backup_dir / f"{self.path.stem}-corrupt-{stamp}.gpkg"
            shutil.copyfile(self.path, aside)
            log.warning("kept the corrupt store as %s", aside)
        else:
            self._backup(self.path)

    def create_empty(self) -> None:
        """Start a new, empty store on purpose (``gis store new``); refuses over an existing file."""
        if self.path.exists():
            raise ProtectedOutputError("an alert store already exists here", path=self.path,
                                       hint="restore a backup with `gis store restore` instead, "
                                       "or move the file away first")
        with self._absence_waived(), self.transaction(by="gis store new", command="store new") as tx:
            tx.event("", "store created")
        self._write_record(commits=1, last_run="")  # a new history, not the old one's

    def copy_to(self, out: str | os.PathLike) -> Path:
        """A sound copy of the store at ``out`` (``gis store backup``), made under the lock."""
        out = Path(out)
        if out.resolve() == self.path.resolve():
            raise ProtectedOutputError("the copy would be the store itself", path=out,
                             hint="name another file")
        with self.lock("store backup"):
            if not self.present():
                raise StoreMissingError("there is no alert store yet", path=self.path,
                                        hint="run `gis weekly` first")
            self.check(fresh=True)
            try:
                with atomic_path(out) as tmp:
                    shutil.copyfile(self.path, tmp)
            except OSError as exc:
                raise StoreWriteError(f"the copy could not be written ({_reason(exc)})", path=out,
                                      hint=_WRITE_HINT) from exc
        return out

    @contextlib.contextmanager
    def _absence_waived(self) -> Iterator[None]:
        """A missing store is expected here (restore, a new store on purpose)."""
        self._absence_ok = True
        try:
            yield
        finally:
            self._absence_ok = False


_WRITE_HINT = "free disk space (or fix the folder's permissions) and run again"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on the disk"
    return getattr(exc, "strerror", None) or str(exc)


def _remove_temp(tmp: Path) -> None:
    for leftover in (tmp, *tmp.parent.glob(tmp.name + "-*")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def _same_file(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and filecmp.cmp(a, b, shallow=False)


def describe_backup(path: Path) -> dict[str, Any]:
    """Name, size, alerts and last run of a backup (for ``gis store restore --list``)."""
    info: dict[str, Any] = {"name": path.name, "bytes": path.stat().st_size, "alerts": None,
                            "last_run": "", "sound": False}
    problem = integrity_problem(path)
    if problem:
        info["problem"] = problem
        return info
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            info["alerts"] = con.execute("SELECT count(*) FROM alerts").fetchone()[0]
            last = con.execute("SELECT run_id FROM runs ORDER BY started DESC, run_id DESC LIMIT 1").fetchone()
    except sqlite3.Error as exc:
        info["problem"] = str(exc)
        return info
    info["last_run"] = last[0] if last else ""
    info["sound"] = True
    return info


def integrity_problem(path: str | os.PathLike) -> str:
    """What SQLite's ``quick_check`` finds wrong with ``path`` ('' when sound)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            rows = [r[0] for r in con.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return "" if rows == ["ok"] else "; ".join(rows)


def _before_replace(tmp: Path) -> None:
    """Hook for fault-injection tests; does nothing."""


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _is_stale(holder: dict[str, Any]) -> bool:
    """A lock is stale when its process is dead on this host (or it is unreadable)."""
    if not holder:
        return True
    if holder.get("host") != socket.gethostname():
        return False  # cannot tell for another machine: be safe
    pid = int(holder.get("pid", 0))
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def open_store(path: str | os.PathLike, crs: Any = None, *, record: str | os.PathLike | None = None,
               backups: int = DEFAULT_BACKUPS) -> GeoPackageStore:
    """The store at ``path`` (a GeoPackage; created on its first write).

    ``record`` is the workspace's state file (see :class:`GeoPackageStore`);
    a workspace opens its store with :meth:`gis.workspace.Workspace.open_store`.
    """
    p = Path(path)
    if p.suffix.lower() != ".gpkg":
        raise StoreError("only GeoPackage stores (.gpkg) are supported", path=p,
                         hint="set store = \"store.gpkg\" in gis.toml")
    return GeoPackageStore(p, crs=crs, record=record, backups=backups)
