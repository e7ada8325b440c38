"""The alert store: alerts, their audit log, the run log and field photos, in a database.

:func:`open_store` opens a GeoPackage (``store.gpkg``, the default) or a
PostGIS database (``postgresql://user@host/db``); :class:`AlertStore` gives
both the same behaviour through SQLAlchemy (the backend specifics are in
:mod:`gis.alerts.backends`, the tables in :mod:`gis.alerts.tables`).

Every write is one short database transaction (:meth:`AlertStore.transaction`):
a verdict is one row and its audit events, a weekly run's commit all of its
inserts and updates. Killed at any point (``kill -9`` during the commit
included), the store is as it was before the transaction. A person's edit is
checked against the alert's ``rev`` (:meth:`Transaction.update`): an alert
that changed since it was read is a :class:`ConflictError`, never a silent
overwrite. A weekly run holds only the run lock (:meth:`AlertStore.run_lock`)
while it detects, and its commit writes only the columns a run owns
(:data:`gis.alerts.tables.RUN_OWNED`, :meth:`Transaction.merge_run`), so
verdicts, notes and photos recorded meanwhile are kept.

Safety around a GeoPackage file (issue 15): a store that was deleted, or a
``store`` mistyped in gis.toml, is an error when the workspace's record
(``.gis/state.json``) knows it (:class:`StoreMissingError`); a store failing
SQLite's ``quick_check`` is refused before any write (:class:`StoreCorruptError`);
backups are kept in ``backups/`` (after each weekly run and at most daily
otherwise; SQLite's online backup API) and ``gis store restore`` puts one back
(:mod:`gis.alerts.safety`). A store of gis 0.1.0 is upgraded in place on first
open, after a copy beside it (:mod:`gis.alerts.migrate`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import sqlalchemy as sa
from pyproj import CRS

from gis.alerts import photos as photo_table
from gis.alerts.backends import GeoPackageBackend, PostGISBackend, is_url, now_iso
from gis.alerts.safety import StoreFile
from gis.alerts.tables import (ALERT_COLUMNS, EVENT_COLUMNS, GPKG_ATTRIBUTE_TABLES, PHOTO_COLUMNS,
                               RUN_COLUMNS, SCHEMA_VERSION, meta, schema_version, set_meta)
from gis.alerts.transaction import Transaction, empty_alerts, frame_of_rows, normalise_alerts, series_of_row
from gis.errors import (AlertNotFoundError, ProtectedOutputError, StoreError, StoreLockedError,
                        StoreWriteError)

__all__ = ["AlertStore", "Transaction", "open_store", "now_iso", "empty_alerts", "normalise_alerts",
           "ALERT_COLUMNS", "EVENT_COLUMNS", "RUN_COLUMNS", "DEFAULT_BACKUPS"]

log = logging.getLogger(__name__)

#: Backups kept in ``backups/`` beside a GeoPackage store (gis.toml: ``store_backups``).
DEFAULT_BACKUPS = 4
_WRITE_HINT = "free disk space (or fix the folder's permissions) and run again"


def _before_commit(tx: Transaction) -> None:
    """Hook for fault-injection tests (called inside the transaction, before COMMIT); does nothing."""


class AlertStore(StoreFile):
    """An alert store over one backend. ``store_dir`` holds chips (and photo copies)."""

    def __init__(self, backend: GeoPackageBackend | PostGISBackend, *, crs: Any = None,
                 store_dir: str | os.PathLike | None = None, record: str | os.PathLike | None = None,
                 backups: int = DEFAULT_BACKUPS) -> None:
        self.backend = backend
        self.crs = crs
        self.kind = backend.kind
        self.path: Any = backend.path if backend.kind == "gpkg" else backend.where
        self._store_dir = Path(store_dir) if store_dir is not None else (
            backend.path.parent if backend.kind == "gpkg" else Path.cwd())
        self.md = backend.metadata
        self.t = backend.metadata.tables
        self._ready = False
        self._srid: int | None = None
        StoreFile.__init__(self, record=record, backups=backups)

    # --- identity -------------------------------------------------------------------
    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (a web server adds its own tables through it)."""
        return self.backend.engine

    @property
    def store_dir(self) -> Path:
        return self._store_dir

    @property
    def name(self) -> str:
        """The store's name for people and patrol files: the file or database name, never a path."""
        return self.path.name if self.kind == "gpkg" else (self.backend.url.database or "postgis")

    @property
    def srid(self) -> int:
        """The EPSG code of the store's CRS (0 when it has none), worked out once."""
        if self._srid is None:
            self._srid = (CRS.from_user_input(self.crs).to_epsg() or 0) if self.crs is not None else 0
        return self._srid

    # --- opening -----------------------------------------------------------------
    def ready(self, *, create: bool = False) -> bool:
        """Make the store ready: present, sound, at the current schema. False: no store yet."""
        if self._ready:
            if self.kind == "gpkg":
                self.check()
            return True
        try:
            exists = self.present()
        except sa.exc.OperationalError as exc:
            raise StoreError(f"the store's database cannot be reached ({_first_line(exc)})",
                             path=self.path, hint="check the URL in gis.toml or GIS_STORE and that "
                             "the server runs") from None
        if not exists:
            if not create:
                return False
            self._create()
        if self.kind == "gpkg":
            self.check()
        with self.backend.reading() as conn:
            found = schema_version(conn)
        if found == 0 and create:
            self._create_schema()
        elif 0 < found < SCHEMA_VERSION:
            from gis.alerts.migrate import upgrade_store

            upgrade_store(self, found)
        elif found > SCHEMA_VERSION:
            raise StoreError(f"the store has schema version {found}, newer than this gis knows "
                             f"({SCHEMA_VERSION})", path=self.path, hint="upgrade gis")
        elif found == 0:
            return False
        self._ready = True
        if self.kind == "gpkg" and self.record_path is not None and not self.record_path.exists():
            self.adopt()
        return True

    def _create(self) -> None:
        log.info("creating a new alert store at %s (first run of this workspace)", self.path)
        try:
            if self.kind == "gpkg":
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.backend.create_layer(self.crs)
            self._create_schema()
        except (OSError, sqlite3.Error, sa.exc.OperationalError) as exc:
            raise StoreWriteError(f"the store could not be created ({_reason(exc)})", path=self.path,
                                  hint=_WRITE_HINT) from exc

    def _create_schema(self) -> None:
        with self.backend.writing() as conn:
            if self.kind == "gpkg":
                for name, table in self.t.items():
                    if name != "alerts":
                        table.create(conn, checkfirst=True)
                for index in self.t["alerts"].indexes:
                    index.create(conn, checkfirst=True)
                self.backend.register_tables(conn, GPKG_ATTRIBUTE_TABLES)
            else:
                self.md.create_all(conn)
            set_meta(conn, self.md, schema_version=SCHEMA_VERSION, created=now_iso(),
                     crs=str(self.crs or ""))

    # --- reading ---------------------------------------------------------------------
    def alerts(self) -> gpd.GeoDataFrame:
        if not self.ready():
            return empty_alerts(self.crs)
        t = self.t["alerts"]
        cols = [t.c[c] for c in ALERT_COLUMNS] + [self.backend.geom_select(t)]
        with self._reading() as conn:
            rows = conn.execute(sa.select(*cols).order_by(t.c.alert_id)).all()
            crs = meta(conn, self.md).get("crs") or self.crs
        return frame_of_rows(rows, self.backend, crs or self.crs)

    def alert(self, alert_id: str) -> pd.Series:
        if self.ready():
            t = self.t["alerts"]
            cols = [t.c[c] for c in ALERT_COLUMNS] + [self.backend.geom_select(t)]
            with self._reading() as conn:
                rows = conn.execute(sa.select(*cols).where(t.c.alert_id == str(alert_id))).all()
            if rows:
                return series_of_row(rows[0], self.backend)
        raise AlertNotFoundError(f"no alert {alert_id!r} in the store", path=self.path,
                                 hint="list alert ids with `gis alerts list`")

    def events(self) -> pd.DataFrame:
        return self._table("alert_events", EVENT_COLUMNS, "event_id")

    def runs(self) -> pd.DataFrame:
        return self._table("runs", RUN_COLUMNS, "started")

    def photos(self) -> pd.DataFrame:
        """The stored photos' facts (not their bytes), by upload time."""
        return self._table("photos", PHOTO_COLUMNS, "uploaded_at")

    def photo(self, key: str) -> bytes:
        """The bytes of photo ``key`` (``photos/<sha256>.<ext>``), verified against their hash."""
        if not self.ready():
            raise AlertNotFoundError("there is no alert store yet", path=self.path)
        with self._reading() as conn:
            return photo_table.get_photo(conn, self.t["photos"], key, where=str(self.path))

    def _table(self, name: str, columns: list[str], order: str) -> pd.DataFrame:
        if not self.ready():
            return pd.DataFrame(columns=columns)
        t = self.t[name]
        with self._reading() as conn:
            rows = conn.execute(sa.select(*[t.c[c] for c in columns]).order_by(t.c[order])).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=columns)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        try:
            with self.backend.reading() as conn:
                yield conn
        except sa.exc.DatabaseError as exc:
            raise self.corrupt(f"the alert store cannot be read ({_first_line(exc)})") from None

    # --- writing ---------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self, *, by: str, command: str = "", run_id: str = "") -> Iterator[Transaction]:
        """One write transaction: committed whole when the block ends, or not at all."""
        self.ready(create=True)
        if self.kind == "gpkg":
            self.check(fresh=True)  # never write on a corrupt store
        tx: Transaction | None = None
        try:
            with self.backend.writing() as conn:
                tx = Transaction(self, conn, by=by, run_id=run_id)
                yield tx
                tx.flush()
                _before_commit(tx)
        except sa.exc.OperationalError as exc:
            raise self._write_error(exc) from exc
        except (OSError, sqlite3.Error) as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreWriteError(f"the commit could not be written ({_reason(exc)}); "
                                  "the store was not changed", path=self.path, hint=_WRITE_HINT) from exc
        self.committed(tx, command)

    def _write_error(self, exc: sa.exc.OperationalError) -> StoreError:
        text = _first_line(exc)
        if "locked" in text or "busy" in text or "deadlock" in text:
            return StoreLockedError(f"another writer held the store too long ({text}); the store was "
                                    "not changed", path=self.path, hint="run again")
        return StoreWriteError(f"the commit could not be written ({_reason(exc.orig or exc)}); the store "
                               "was not changed", path=self.path, hint=_WRITE_HINT)

    @contextlib.contextmanager
    def run_lock(self, command: str = "weekly") -> Iterator[None]:
        """Refuse a second weekly run (:class:`StoreLockedError`); people's writes go on meanwhile."""
        self.ready(create=True)
        with self.backend.run_lock(command):
            yield

    def unlock(self) -> dict[str, Any] | None:
        """Clear a run lock left by a run that died on another machine; return who held it."""
        self.ready()
        return self.backend.unlock()

    # --- starting ----------------------------------------------------------------
    def init(self) -> bool:
        """Create the store when there is none (``gis store init``); False if it existed."""
        if self.ready():
            return False
        with self.absence_waived():
            self.ready(create=True)
        self.write_record(commits=0, last_run="")
        return True

    def create_empty(self) -> None:
        """Start a new, empty store on purpose (``gis store new``); refuses over an existing one."""
        if self.kind == "gpkg" and self.path.exists() or self.kind != "gpkg" and self.backend.exists():
            raise ProtectedOutputError("an alert store already exists here", path=self.path,
                                       hint="restore a backup with `gis store restore` instead, "
                                       "or move the file away first")
        with self.absence_waived(), self.transaction(by="gis store new", command="store new") as tx:
            tx.event("", "store created")
        self.write_record(commits=1, last_run="")  # a new history, not the old one's

    def dispose(self) -> None:
        self.backend.dispose()

    # --- checking -----------------------------------------------------------------
    def verify(self) -> dict[str, Any]:
        """``gis store check``: the schema version, the file's integrity (GeoPackage), every
        photo's hash, and the audit log against the alert rows. ``ok`` is False on any problem."""
        rep: dict[str, Any] = {"store": str(self.path), "backend": self.kind, "schema_version": 0,
                               "current_schema": SCHEMA_VERSION, "problems": []}
        problems: list[str] = rep["problems"]
        if self.kind == "gpkg" and self.path.exists():
            bad = self.backend.integrity_problem()
            if bad:
                problems.append(f"the file fails SQLite's integrity check: {bad}")
                rep["ok"] = False
                return rep
        if not self.ready():
            problems.append("there is no store yet")
            rep["ok"] = False
            return rep
        with self._reading() as conn:
            rep["schema_version"] = schema_version(conn)
            rep["bad_photos"] = photo_table.bad_photos(conn, self.t["photos"])
        alerts, events, photos = self.alerts(), self.events(), self.photos()
        rep.update(alerts=len(alerts), events=len(events), runs=len(self.runs()), photos=len(photos))
        if rep["schema_version"] != SCHEMA_VERSION:
            problems.append(f"schema version {rep['schema_version']}, expected {SCHEMA_VERSION}")
        problems += [f"photo {k}: its bytes do not match their SHA-256" for k in rep["bad_photos"]]
        have = {photo_table.photo_key(r.sha256, r.ext) for r in photos.itertuples()}
        named = {k for v in alerts["photos"] for k in v.split(";") if k}
        problems += [f"photo {k} is named by an alert but not in the store" for k in sorted(named - have)]
        problems += audit_problems(alerts, events)
        rep["ok"] = not problems
        return rep


def audit_problems(alerts: pd.DataFrame, events: pd.DataFrame) -> list[str]:
    """Where the audit log and the alert rows disagree: events of alerts that are not in
    the store, alerts without a 'created' event, and a status or note that differs from
    the last value the log set."""
    ids = set(alerts["alert_id"])
    out = [f"the audit log names alert {a} that is not in the store"
           for a in sorted(set(events["alert_id"]) - ids - {""})]
    created = set(events.loc[events["action"] == "created", "alert_id"])
    out += [f"alert {a} has no 'created' event in the audit log" for a in sorted(ids - created)]
    sets = events[events["action"] == "set"]
    for field in ("status", "note"):
        last = sets[sets["field"] == field].groupby("alert_id")["new"].last()
        now = alerts.set_index("alert_id")[field].reindex(last.index)
        for a in last.index[(now != last).to_numpy()]:
            out.append(f"alert {a}: {field} is {now[a]!r} but the audit log last set {last[a]!r}")
    return out


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0] if str(exc) else type(exc).__name__


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on the disk"
    text = getattr(exc, "strerror", None) or str(exc)
    if "disk is full" in text or "database or disk is full" in text:
        return "no space left on the disk"
    return text


def open_store(location: str | os.PathLike, crs: Any = None, *,
               record: str | os.PathLike | None = None, backups: int = DEFAULT_BACKUPS,
               store_dir: str | os.PathLike | None = None) -> AlertStore:
    """The store at ``location``: a GeoPackage path (created on its first write) or a
    ``postgresql://`` URL (the schema created on the first write into an empty database).

    ``record`` is the workspace's state file (see :mod:`gis.alerts.safety`);
    a workspace opens its store with :meth:`gis.workspace.Workspace.open_store`.
    """
    if is_url(location):
        srid = (CRS.from_user_input(crs).to_epsg() or 0) if crs is not None else 0
        return AlertStore(PostGISBackend(str(location), srid), crs=crs, store_dir=store_dir,
                          record=record, backups=backups)
    p = Path(location)
    if p.suffix.lower() != ".gpkg":
        raise StoreError("the store is a GeoPackage (.gpkg) or a postgresql:// URL", path=p,
                         hint="set store = \"store.gpkg\" (or a postgresql://user@host/db URL) in gis.toml")
    return AlertStore(GeoPackageBackend(p), crs=crs, store_dir=store_dir, record=record, backups=backups)
