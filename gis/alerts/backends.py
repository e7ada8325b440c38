"""What differs between a GeoPackage store and a PostGIS store; everything else is shared.

A backend owns the SQLAlchemy :class:`~sqlalchemy.engine.Engine` and knows
how its database opens a write transaction, encodes a geometry, locks out a
second weekly run, makes a consistent copy and checks its own integrity.
:class:`gis.alerts.store.AlertStore` speaks to either through the same methods.

GeoPackage (``store.gpkg``, the default; nothing to install or start):

* plain SQLAlchemy on SQLite, in WAL mode (readers never wait for a writer)
  with ``synchronous=FULL``; every write transaction starts ``BEGIN
  IMMEDIATE``, so two writers queue (``busy_timeout``) instead of failing;
  after each commit the WAL is checkpointed into the file, so an idle store
  is one whole file (while others write, copy it with ``gis store backup``);
* the ``alerts`` layer is created once by GDAL (pyogrio) with its R-tree, so
  QGIS and QField keep opening it; geometries are written as GeoPackage
  binary (header + WKB, :func:`gp_encode`), and the R-tree triggers' SQL
  functions (``ST_IsEmpty``, ``ST_MinX`` ...) are registered on every connection;
* the weekly run's lock is a row of ``run_lock`` (pid, host, start); a row
  left by a process that died on this host is taken over;
* a copy is SQLite's online backup API (consistent while others write).

PostGIS (``postgresql://user@host/db``): GeoAlchemy2's ``geometry`` column,
psycopg 3, ``pg_try_advisory_lock`` for the weekly run (released by the server
if the run dies), ``pg_dump`` for a copy.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
import socket
import sqlite3
import struct
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import geoalchemy2
import numpy as np
import shapely
import sqlalchemy as sa

from gis.alerts.tables import build_metadata
from gis.errors import StoreError, StoreLockedError

#: How long a writer waits for another's transaction to end before giving up (ms).
BUSY_TIMEOUT_MS = 60_000
#: Bytes of a GeoPackage binary envelope by its indicator (GeoPackage 1.3, 2.1.3).
_ENVELOPE = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}
#: A commit changing this many geometries rebuilds a GeoPackage's R-tree once instead of row by row.
REBUILD_RTREE_FROM = 2000
#: The advisory-lock key of the weekly run in a PostGIS store (one store per database).
RUN_LOCK_KEY = int.from_bytes(hashlib.sha256(b"gis weekly run").digest()[:8], "big", signed=True)


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def is_url(store: str | os.PathLike) -> bool:
    return str(store).split(":", 1)[0].lower().startswith("postgres")


def safe_url(url: str) -> str:
    """The URL without its password (for messages and the workspace record)."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid URL>"


# --- GeoPackage binary geometries ----------------------------------------------------


def gp_encode(geoms: Sequence[Any], srid: int) -> list[bytes | None]:
    """GeoPackage binary blobs (little-endian header, xy envelope, WKB) of ``geoms``."""
    arr = np.asarray(geoms, dtype=object)
    wkb = shapely.to_wkb(arr, byte_order=1)
    bounds = shapely.bounds(arr)
    out: list[bytes | None] = []
    for g, w, b in zip(arr, wkb, bounds):
        if g is None:
            out.append(None)
        elif shapely.is_empty(g):
            out.append(b"GP\x00\x11" + struct.pack("<i", srid) + w)
        else:
            out.append(b"GP\x00\x03" + struct.pack("<i4d", srid, b[0], b[2], b[1], b[3]) + w)
    return out


def _wkb_of(blob: bytes) -> bytes:
    return bytes(blob[8 + _ENVELOPE[(blob[3] >> 1) & 7]:])


def gp_decode(blobs: Sequence[bytes | None]) -> np.ndarray:
    """Shapely geometries of GeoPackage binary blobs (None stays None)."""
    return shapely.from_wkb([None if b is None else _wkb_of(b) for b in blobs])


def _envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    """(minx, maxx, miny, maxy) of a blob: from its header, else from its geometry."""
    if blob is None or blob[3] & 0x10:
        return None
    if (blob[3] >> 1) & 7:
        return struct.unpack_from("<4d" if blob[3] & 1 else ">4d", blob, 8)
    x0, y0, x1, y1 = shapely.from_wkb(_wkb_of(blob)).bounds
    return x0, x1, y0, y1


def _register_gpkg_functions(con: sqlite3.Connection) -> None:
    """The SQL functions GDAL's R-tree triggers call, so plain SQLite can write the layer."""
    con.create_function("ST_IsEmpty", 1, lambda b: None if b is None else int(bool(b[3] & 0x10)),
                        deterministic=True)
    for k, name in enumerate(("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY")):
        con.create_function(name, 1, lambda b, k=k: (e := _envelope(b)) and e[k], deterministic=True)


# --- backends -----------------------------------------------------------------------


class GeoPackageBackend:
    """A store in one GeoPackage file."""

    kind = "gpkg"
    placeholder = "?"  # the driver's parameter mark, for bulk statements

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.metadata = build_metadata(sa.LargeBinary)
        # pooled connections keep the WAL open between transactions (a verdict costs a few
        # ms instead of opening the file each time); one connection per thread at a time
        self.engine = sa.create_engine(f"sqlite:///{self.path}", pool_size=4, max_overflow=16,
                                       connect_args={"check_same_thread": False})
        sa.event.listen(self.engine, "connect", self._on_connect)
        sa.event.listen(self.engine, "begin", self._on_begin)

    @staticmethod
    def _on_connect(con: sqlite3.Connection, _record: Any) -> None:
        con.isolation_level = None  # transactions are begun below, not by the driver
        con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = FULL")
        _register_gpkg_functions(con)

    @staticmethod
    def _on_begin(conn: sa.Connection) -> None:
        # a write takes SQLite's write lock at once (writers queue, never deadlock);
        # only the store's own reads begin deferred. Other users of the engine (the web
        # server's tables) get write transactions too.
        read = conn.get_execution_options().get("gis_read", False)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

    @property
    def where(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    @contextlib.contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        """One write transaction (committed when the block ends, rolled back on an error).

        After the commit its pages are copied from the WAL into the file itself
        (a passive checkpoint), so an idle store is one whole file again for
        QGIS, a file copy or a USB stick.
        """
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn
            with contextlib.suppress(sqlite3.Error):
                conn.connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def reading(self) -> contextlib.AbstractContextManager[sa.Connection]:
        return self.engine.execution_options(gis_read=True).connect()

    # geometries
    def geom_select(self, table: sa.Table) -> sa.ColumnElement:
        return table.c.geom.label("geom")

    def encode(self, geoms: Sequence[Any], srid: int) -> list[Any]:
        return gp_encode(geoms, srid)

    def decode(self, values: Sequence[Any]) -> np.ndarray:
        return gp_decode(values)

    def create_layer(self, crs: Any) -> None:
        """The empty ``alerts`` layer, written by GDAL so QGIS/QField read it as their own."""
        import geopandas as gpd
        import pyogrio

        from gis.alerts.tables import ALERT_COLUMNS

        kinds = {"str": object, "float": float, "int": np.int64, "bool": bool}
        cols = {c: np.array([], dtype=kinds[k]) for c, k in ALERT_COLUMNS.items()}
        empty = gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
        pyogrio.write_dataframe(empty, self.path, layer="alerts", driver="GPKG", geometry_type="Unknown")

    def bulk_update(self, conn: sa.Connection, columns: Sequence[str], rows: list[tuple], srid: int) -> None:
        """``UPDATE alerts SET <columns> WHERE alert_id = ?`` for each row (values, then the id);
        a column ``geom`` takes shapely geometries. Many geometries at once: GDAL's R-tree
        triggers are set aside for the statement and the index rebuilt once (same transaction)."""
        cols = list(columns)
        if "geom" in cols:
            k = cols.index("geom")
            blobs = gp_encode([r[k] for r in rows], srid)
            rows = [r[:k] + (b,) + r[k + 1:] for r, b in zip(rows, blobs)]
        sql = f"UPDATE alerts SET {', '.join(f'{_q(c)} = ?' for c in cols)} WHERE alert_id = ?"
        raw = conn.connection.driver_connection
        triggers = []
        if "geom" in cols and len(rows) >= REBUILD_RTREE_FROM:
            triggers = raw.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND "
                                   "tbl_name = 'alerts' AND name LIKE 'rtree_alerts_geom_%'").fetchall()
            for name, _ in triggers:
                raw.execute(f"DROP TRIGGER {_q(name)}")
        raw.executemany(sql, rows)
        if triggers:
            raw.execute("DELETE FROM rtree_alerts_geom")
            raw.execute("INSERT INTO rtree_alerts_geom SELECT fid, ST_MinX(geom), ST_MaxX(geom), ST_MinY(geom), "
                        "ST_MaxY(geom) FROM alerts WHERE geom IS NOT NULL AND NOT ST_IsEmpty(geom)")
            for _, ddl in triggers:
                raw.execute(ddl)

    def register_tables(self, conn: sa.Connection, names: Sequence[str]) -> None:
        for name in names:
            conn.exec_driver_sql("INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier) "
                                 "VALUES (?, 'attributes', ?)", (name, name))

    def refresh_extent(self, conn: sa.Connection) -> None:
        """The layer's extent in gpkg_contents, from its R-tree (QGIS zooms to it)."""
        conn.exec_driver_sql(
            "UPDATE gpkg_contents SET (min_x, max_x, min_y, max_y) = "
            "(SELECT min(minx), max(maxx), min(miny), max(maxy) FROM rtree_alerts_geom) "
            "WHERE table_name = 'alerts' AND EXISTS (SELECT 1 FROM sqlite_master "
            "WHERE name = 'rtree_alerts_geom')")

    # the weekly run's lock
    @contextlib.contextmanager
    def run_lock(self, command: str) -> Iterator[None]:
        me = {"name": "weekly", "pid": os.getpid(), "host": socket.gethostname(),
              "started": now_iso(), "command": command}
        lock = self.metadata.tables["run_lock"]
        for opened in (self.reading, self.writing):  # a live holder is refused without waiting
            with opened() as conn:
                row = conn.execute(sa.select(lock).where(lock.c.name == "weekly")).mappings().first()
                if row is not None and not holder_is_stale(dict(row)):
                    raise locked_error(dict(row), self.where,
                                       "if that process is gone on another machine, clear the lock "
                                       "with `gis store unlock`")
                if opened == self.writing:
                    conn.execute(lock.delete().where(lock.c.name == "weekly"))
                    conn.execute(lock.insert().values(**me))
        try:
            yield
        finally:
            with self.writing() as conn:
                conn.execute(lock.delete().where((lock.c.name == "weekly") & (lock.c.pid == me["pid"])
                                                 & (lock.c.started == me["started"])))

    def unlock(self) -> dict[str, Any] | None:
        lock = self.metadata.tables["run_lock"]
        with self.writing() as conn:
            row = conn.execute(sa.select(lock).where(lock.c.name == "weekly")).mappings().first()
            conn.execute(lock.delete().where(lock.c.name == "weekly"))
        return dict(row) if row else None

    # copies and checks
    def backup_to(self, out: Path) -> None:
        """A consistent copy in ``out`` (SQLite's online backup API; a rollback-journal file)."""
        with contextlib.closing(sqlite3.connect(self.path)) as src, \
                contextlib.closing(sqlite3.connect(out)) as dst:
            src.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")

    def integrity_problem(self) -> str:
        return integrity_problem(self.path)

    def dispose(self) -> None:
        self.engine.dispose()


class PostGISBackend:
    """A store in a PostgreSQL database with PostGIS."""

    kind = "postgis"
    placeholder = "%s"

    def __init__(self, url: str, srid: int = 0) -> None:
        u = sa.make_url(url)
        if u.drivername in ("postgresql", "postgres"):
            u = u.set(drivername="postgresql+psycopg")
        self.url = u
        self.srid = srid
        self.metadata = build_metadata(geoalchemy2.Geometry("GEOMETRY", srid=srid or -1,
                                                            spatial_index=True))
        self.engine = sa.create_engine(u, pool_pre_ping=True, pool_size=10, max_overflow=20)

    @property
    def where(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def exists(self) -> bool:
        with self.reading() as conn:
            return sa.inspect(conn).has_table("alerts")

    def writing(self) -> contextlib.AbstractContextManager[sa.Connection]:
        return self.engine.begin()

    def reading(self) -> contextlib.AbstractContextManager[sa.Connection]:
        return self.engine.connect()

    def geom_select(self, table: sa.Table) -> sa.ColumnElement:
        return sa.func.ST_AsBinary(table.c.geom, type_=sa.LargeBinary).label("geom")

    def encode(self, geoms: Sequence[Any], srid: int) -> list[Any]:
        wkb = shapely.to_wkb(np.asarray(geoms, dtype=object), include_srid=False)
        return [None if w is None else geoalchemy2.WKBElement(w, srid=srid) for w in wkb]

    def decode(self, values: Sequence[Any]) -> np.ndarray:
        return shapely.from_wkb([None if v is None else bytes(v) for v in values])

    def create_layer(self, crs: Any) -> None:
        """Nothing: the alerts table is created with the others."""

    def bulk_update(self, conn: sa.Connection, columns: Sequence[str], rows: list[tuple], srid: int) -> None:
        """``UPDATE alerts SET <columns> WHERE alert_id = %s`` for each row (psycopg pipelines them)."""
        cols = list(columns)
        if "geom" in cols:
            k = cols.index("geom")
            wkb = shapely.to_wkb(np.asarray([r[k] for r in rows], dtype=object))
            rows = [r[:k] + (w,) + r[k + 1:] for r, w in zip(rows, wkb)]
        sets = ", ".join(f"{_q(c)} = ST_GeomFromWKB(%s, {int(srid)})" if c == "geom" else f"{_q(c)} = %s"
                         for c in cols)
        conn.exec_driver_sql(f"UPDATE alerts SET {sets} WHERE alert_id = %s", rows)

    def register_tables(self, conn: sa.Connection, names: Sequence[str]) -> None:
        """Nothing to register in PostGIS."""

    def refresh_extent(self, conn: sa.Connection) -> None:
        """PostGIS keeps no extent to refresh."""

    @contextlib.contextmanager
    def run_lock(self, command: str) -> Iterator[None]:
        me = {"name": "weekly", "pid": os.getpid(), "host": socket.gethostname(),
              "started": now_iso(), "command": command}
        lock = self.metadata.tables["run_lock"]
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            if not conn.execute(sa.select(sa.func.pg_try_advisory_lock(RUN_LOCK_KEY))).scalar():
                row = conn.execute(sa.select(lock).where(lock.c.name == "weekly")).mappings().first()
                raise locked_error(dict(row) if row else {}, self.where,
                                   "the lock ends with that run's database session")
            conn.execute(lock.delete().where(lock.c.name == "weekly"))
            conn.execute(lock.insert().values(**me))
            try:
                yield
            finally:
                conn.execute(lock.delete().where(lock.c.name == "weekly"))
                conn.execute(sa.select(sa.func.pg_advisory_unlock(RUN_LOCK_KEY)))
        finally:
            conn.close()

    def unlock(self) -> dict[str, Any] | None:
        """A PostGIS run lock ends with its session: only the description row is cleared."""
        lock = self.metadata.tables["run_lock"]
        with self.writing() as conn:
            row = conn.execute(sa.select(lock).where(lock.c.name == "weekly")).mappings().first()
            conn.execute(lock.delete().where(lock.c.name == "weekly"))
        return dict(row) if row else None

    def backup_to(self, out: Path) -> None:
        """``pg_dump --format=custom`` of the database into ``out`` (restore with pg_restore)."""
        tool = pg_tool("pg_dump")
        libpq = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        done = subprocess.run([tool, "--format=custom", f"--file={out}", f"--dbname={libpq}"],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            raise StoreError(f"pg_dump failed: {done.stderr.strip()[-500:]}", path=out,
                             hint="check that the database is reachable and pg_dump's version "
                                  "is at least the server's")

    def integrity_problem(self) -> str:
        return ""  # the server checks its own pages

    def dispose(self) -> None:
        self.engine.dispose()


def _q(name: str) -> str:
    """A quoted SQL identifier (names come from the schema, never from input)."""
    return '"' + name.replace('"', '""') + '"'


def pg_tool(name: str) -> str:
    """A PostgreSQL client program: the newest Debian one, else the one on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return str(found[-1])
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise StoreError(f"{name} is not installed", hint="install the PostgreSQL client "
                     "(Debian: postgresql-client)")


def integrity_problem(path: str | os.PathLike) -> str:
    """What SQLite's ``quick_check`` finds wrong with ``path`` ('' when sound)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            rows = [r[0] for r in con.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return "" if rows == ["ok"] else "; ".join(rows)


def holder_is_stale(holder: dict[str, Any]) -> bool:
    """A lock is stale when its process is dead on this host (or it is unreadable)."""
    if not holder:
        return True
    if holder.get("host") != socket.gethostname():
        return False  # cannot tell for another machine: be safe
    pid = int(holder.get("pid") or 0)
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def locked_error(holder: dict[str, Any], where: str, how: str) -> StoreLockedError:
    return StoreLockedError(
        f"a weekly run is already working on this store (pid {holder.get('pid', '?')} on "
        f"{holder.get('host', '?')}, started {holder.get('started', '?')}, command "
        f"{holder.get('command', '?')!r})", path=where,
        hint=f"wait for it to finish and run again; {how}")
