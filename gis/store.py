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
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import json
import logging
import os
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

from gis.errors import AlertNotFoundError, StoreError, StoreLockedError

log = logging.getLogger(__name__)

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
    def __init__(self, path: str | os.PathLike, crs: Any = None) -> None:
        self.path = Path(path)
        self.crs = crs
        self._lock_depth = 0

    @property
    def store_dir(self) -> Path:
        return self.path.parent

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    # --- reading -------------------------------------------------------------
    def alerts(self) -> gpd.GeoDataFrame:
        if not self.path.exists():
            return empty_alerts(self.crs)
        try:
            gdf = pyogrio.read_dataframe(self.path, layer="alerts")
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise StoreError(f"the alert store cannot be read ({exc})", path=self.path,
                             hint="restore it from a backup; the store is only replaced whole") from None
        gdf = gdf.drop(columns=[c for c in ("fid",) if c in gdf])
        return normalise_alerts(gdf)

    def _table(self, name: str, columns: list[str], order: str) -> pd.DataFrame:
        if not self.path.exists():
            return pd.DataFrame(columns=columns)
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as con:
            return pd.read_sql_query(f"SELECT * FROM {name} ORDER BY {order}", con)

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
        self._acquire(command)
        self._lock_depth = 1
        # holding the lock, any half-built store beside ours is a killed run's leftover
        for leftover in self.path.parent.glob(f".{self.path.stem}.*.part.gpkg*"):
            log.warning("removing %s left by an interrupted run", leftover.name)
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        try:
            yield
        finally:
            self._lock_depth = 0
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()

    def _acquire(self, command: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": now_iso(),
                "command": command}
        fd, tmp = tempfile.mkstemp(prefix=".lock.", dir=self.path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
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
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".part.gpkg",
                                        dir=self.path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if self.path.exists():
                shutil.copyfile(self.path, tmp)
            else:
                tmp.unlink()
            alerts = tx.alerts
            if alerts.crs is None and self.crs is not None:
                alerts = alerts.set_crs(self.crs)
            pyogrio.write_dataframe(alerts, tmp, layer="alerts", driver="GPKG",
                                    geometry_type="Unknown")
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
            _before_replace(tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except BaseException:
            for leftover in (tmp, *tmp.parent.glob(tmp.name + "-*")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            raise


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


def open_store(path: str | os.PathLike, crs: Any = None) -> AlertStore:
    """The store at ``path`` (a GeoPackage; created on its first write)."""
    p = Path(path)
    if p.suffix.lower() != ".gpkg":
        raise StoreError("only GeoPackage stores (.gpkg) are supported", path=p,
                         hint="set store = \"store.gpkg\" in gis.toml")
    return GeoPackageStore(p, crs=crs)
