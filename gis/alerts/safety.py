"""Safety around the store itself: its presence, integrity, backups and the workspace's record.

Issue 15's rules, kept under transactional stores:

* the workspace records each commit (``.gis/state.json``: which store, how
  many commits, the last run), so a store that was deleted, or a ``store``
  mistyped in gis.toml, is an error (:class:`StoreMissingError`) instead of
  an empty store; a new store is made only by the first run of a new
  workspace, ``gis store init`` or ``gis store new``;
* a GeoPackage store failing SQLite's ``quick_check`` is refused by reads
  and writes (:class:`StoreCorruptError`), so corruption never spreads;
* a GeoPackage store keeps backups in ``backups/`` beside it: after every
  weekly run's commit, and after other commits when the newest backup is
  older than :data:`BACKUP_EVERY`; the newest ``store_backups`` (default 4)
  are kept. They are made with SQLite's online backup API, consistent while
  others write. ``gis store restore`` puts one back (the current store
  becomes a backup first; a corrupt one is set aside, never rotated away);
* backups and copies keep the store's mode and group.

PostGIS stores are backed up with ``gis store backup`` (``pg_dump``) and
restored with ``pg_restore``; their integrity is the server's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gis.alerts import photos as photo_table
from gis.alerts.backends import integrity_problem, now_iso, safe_url
from gis.atomic import atomic_path, keep_owner, write_text_atomic
from gis.errors import (ProtectedOutputError, StoreCorruptError, StoreError, StoreMissingError,
                        StoreWriteError)

log = logging.getLogger(__name__)

BACKUP_DIR = "backups"
#: Commits other than weekly runs make a backup when the newest is older than this.
BACKUP_EVERY = dt.timedelta(hours=24)
#: Tables whose rows make a store's content (see :func:`content_digest`).
CONTENT_TABLES = ("alerts", "alert_events", "runs", "photos")
_STAMP = "%Y%m%dT%H%M%S%fZ"


class StoreFile:
    """Mixed into :class:`gis.alerts.store.AlertStore`: record, integrity, backups."""

    path: Any
    kind: str

    def __init__(self, *, record: str | os.PathLike | None, backups: int) -> None:
        self.record_path = None if record is None else Path(record)
        self.keep_backups = int(backups)
        self._checked: tuple | None = None  # stat of the file last found sound
        self._absence_ok = False  # set while restoring or starting a store on purpose

    # --- the workspace's record ---------------------------------------------------------
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

    def _location(self) -> str:
        """How the record names this store: a path relative to the workspace, or a URL."""
        if self.kind != "gpkg":
            return safe_url(str(self.path))
        root = self.record_path.parent.parent.resolve()
        return Path(os.path.relpath(self.path.resolve(), root)).as_posix()

    def write_record(self, *, commits: int, last_run: str) -> None:
        if self.record_path is None:
            return
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.record_path, json.dumps(
            {"store": self._location(), "commits": commits, "last_run": last_run,
             "last_commit": now_iso()}, ensure_ascii=False, indent=1))

    def adopt(self) -> None:
        """Record a store made before the workspace kept records, so its loss is noticed too."""
        runs = self.runs()
        self.write_record(commits=0, last_run=str(runs["run_id"].iloc[-1]) if len(runs) else "")

    def present(self) -> bool:
        """True when the store exists; False for a workspace that never had one.

        Raises :class:`StoreMissingError` when it is gone although the workspace
        committed to it (or backups of it exist).
        """
        if self.backend.exists():
            return True
        if self._absence_ok:
            return False
        rec = self.record()
        known = rec.get("store") or ""
        history = (f"last run {rec.get('last_run') or 'none'}, "
                   f"last commit {rec.get('last_commit') or 'unknown'}")
        if known and known != self._location():
            raise StoreMissingError(
                f"no alert store here, but this workspace's store is {known} ({history})", path=self.path,
                hint=f"fix `store` in gis.toml (it names {self.name}) to name the workspace's store; "
                "to start an empty store there on purpose, run `gis store new`")
        if known or self.backups():
            last = (f"the workspace recorded it: {history}" if known
                    else f"{len(self.backups())} backups of it in {self.backup_dir}")
            raise StoreMissingError(
                f"the alert store is missing ({last})", path=self.path,
                hint="bring back its newest backup with `gis store restore`, or fix `store` in gis.toml "
                "if it names the wrong file; to start an empty store on purpose, run `gis store new`")
        return False

    @contextlib.contextmanager
    def absence_waived(self) -> Iterator[None]:
        """A missing store is expected here (restore, a new store on purpose)."""
        self._absence_ok = True
        try:
            yield
        finally:
            self._absence_ok = False

    # --- integrity -----------------------------------------------------------------------
    def corrupt(self, what: str) -> StoreCorruptError:
        return StoreCorruptError(f"{what}; nothing was read from or written to it", path=self.path,
                                 hint="restore the newest sound backup with `gis store restore` "
                                 "(`gis store restore --list` shows them)")

    def check(self, *, fresh: bool = False) -> None:
        """Refuse a GeoPackage that fails SQLite's ``quick_check`` (:class:`StoreCorruptError`).

        The result is remembered for the file as it is (inode, size, mtime), so
        it is checked again only when someone else changed it (or ``fresh``
        and the file changed since).
        """
        if self.kind != "gpkg":
            return
        st = self.path.stat()
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        if sig == self._checked:
            return
        problem = integrity_problem(self.path)
        if problem:
            self._checked = None
            raise self.corrupt(f"the alert store is corrupt ({problem})")
        self._checked = sig

    def _remember_sound(self) -> None:
        if self.kind == "gpkg" and self.path.exists():
            st = self.path.stat()
            self._checked = (st.st_ino, st.st_size, st.st_mtime_ns)

    # --- after a commit --------------------------------------------------------------------
    def committed(self, tx, command: str) -> None:
        """Photo copies, the workspace record and the backups; the store is committed by now,
        so a failure here is logged, not raised."""
        self._remember_sound()
        try:
            for key, data in tx.files:
                photo_table.write_file_copy(self.store_dir, key, data)
            rec = self.record()
            self.write_record(commits=int(rec.get("commits", 0)) + 1,
                              last_run=(tx.run or {}).get("run_id") or rec.get("last_run", ""))
            if self.kind == "gpkg" and self.keep_backups > 0 and (tx.run is not None or self._backup_due()):
                self.make_backup()
                self.rotate()
        except (OSError, sqlite3.Error, StoreError) as exc:
            log.warning("store committed, but its photo copies, record or backups could not be "
                        "written: %s", exc)

    # --- backups (GeoPackage) ------------------------------------------------------------
    @property
    def backup_dir(self) -> Path:
        return self.store_dir / BACKUP_DIR

    def backups(self) -> list[Path]:
        """Backups of this store, oldest first."""
        if self.kind != "gpkg" or not self.backup_dir.is_dir():
            return []
        name = re.compile(rf"^{re.escape(self.path.stem)}-(\d{{8}}T\d{{12}}Z)(?:-(\d+))?\.gpkg$")
        found = [(m.group(1), int(m.group(2) or 0), p) for p in self.backup_dir.iterdir()
                 if (m := name.match(p.name))]
        return [p for *_, p in sorted(found)]

    def _backup_due(self) -> bool:
        have = self.backups()
        if not have:
            return True
        stamp = dt.datetime.strptime(have[-1].stem[len(self.path.stem) + 1:][:22], _STAMP)
        return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - stamp >= BACKUP_EVERY

    def make_backup(self) -> Path:
        """A consistent copy of the store into ``backups/`` (never a half-written file)."""
        self.backup_dir.mkdir(exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime(_STAMP)
        target = self.backup_dir / f"{self.path.stem}-{stamp}.gpkg"
        k = 0
        while target.exists():
            k += 1
            target = self.backup_dir / f"{self.path.stem}-{stamp}-{k}.gpkg"
        self._copy_into(target)
        return target

    def _copy_into(self, target: Path) -> None:
        with atomic_path(target) as tmp:
            self.backend.backup_to(Path(tmp))
            if self.kind == "gpkg":
                keep_owner(self.path, tmp)

    def rotate(self) -> None:
        """Keep only the newest ``keep_backups`` backups."""
        old = self.backups()
        for p in old[:max(len(old) - self.keep_backups, 0)]:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def backup_named(self, name: str | os.PathLike | None) -> Path:
        """The backup called ``name`` (a file name or path), or the newest one."""
        if self.kind != "gpkg":
            raise StoreError("a PostGIS store keeps no backups folder", path=self.path,
                             hint="restore a `gis store backup` (pg_dump) file with pg_restore")
        have = self.backups()
        if not have:
            raise StoreError("the store has no backups", path=self.backup_dir,
                             hint="backups are made by weekly runs and daily by other commits")
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

        The current store, when no backup already holds it, becomes a backup
        first, so a restore can be undone; a corrupt one is set aside as
        ``backups/<stem>-corrupt-<time>.gpkg``. A sound store is overwritten in
        place by SQLite's backup API (other connections see the old or the
        restored store, never a mix); refused while a weekly run works.
        """
        with self.absence_waived():
            source = self.backup_named(name)
            problem = integrity_problem(source)
            if problem:
                raise StoreCorruptError(f"the backup is corrupt too ({problem})", path=source,
                                        hint="restore an older one (`gis store restore --list`)")
            sound = self.path.exists() and not integrity_problem(self.path)
            lock = self.run_lock("store restore") if sound else contextlib.nullcontext()
            with lock:
                self._keep_current(sound)
                try:
                    if sound:
                        with contextlib.closing(sqlite3.connect(source)) as src, \
                                contextlib.closing(sqlite3.connect(self.path)) as dst:
                            dst.execute("PRAGMA busy_timeout = 60000")
                            src.backup(dst)
                    else:
                        with atomic_path(self.path) as tmp:
                            shutil.copyfile(source, tmp)
                except (OSError, sqlite3.Error) as exc:
                    raise StoreWriteError(f"the restore could not be written ({exc}); the store was "
                                          "not changed", path=self.path,
                                          hint="free disk space (or fix the folder's permissions) and "
                                               "run again") from exc
            self._checked = None
            self._ready = False
            self.backend.dispose()  # no pooled connection to a replaced file
            runs = self.runs()
            rec = self.record()
            self.write_record(commits=int(rec.get("commits", 0)) + 1,
                              last_run=str(runs["run_id"].iloc[-1]) if len(runs) else "")
            self.rotate()
        return source

    def _keep_current(self, sound: bool) -> None:
        """Before a restore: the current store into the backups (a corrupt one set aside)."""
        if not self.path.exists():
            return
        if not sound:
            self.backup_dir.mkdir(exist_ok=True)
            aside = self.backup_dir / f"{self.path.stem}-corrupt-{dt.datetime.now(dt.timezone.utc):{_STAMP}}.gpkg"
            shutil.copyfile(self.path, aside)
            log.warning("kept the corrupt store as %s", aside)
            return
        mine = content_digest(self.path)
        if not any(content_digest(b) == mine for b in self.backups()):
            self.make_backup()

    def copy_to(self, out: str | os.PathLike) -> Path:
        """A consistent copy of the store at ``out`` (``gis store backup``), made while others write:
        a GeoPackage (SQLite's backup API) or a ``pg_dump`` custom-format file."""
        out = Path(out)
        if self.kind == "gpkg" and out.resolve() == self.path.resolve():
            raise ProtectedOutputError("the copy would be the store itself", path=out, hint="name another file")
        if not self.ready():
            raise StoreMissingError("there is no alert store yet", path=self.path,
                                    hint="run `gis weekly` or `gis store init` first")
        try:
            self._copy_into(out)
        except OSError as exc:
            raise StoreWriteError(f"the copy could not be written ({exc.strerror or exc})", path=out,
                                  hint="free disk space (or fix the folder's permissions) and run again"
                                  ) from exc
        return out


def content_digest(path: str | os.PathLike) -> str:
    """SHA-256 over the rows of a GeoPackage store's content tables (alerts, audit log,
    runs, photos): equal for two files holding the same store, whatever their pages."""
    h = hashlib.sha256()
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table in CONTENT_TABLES:
            if table not in names:
                continue
            h.update(table.encode())
            for row in con.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):
                h.update(repr(row).encode())
    return h.hexdigest()


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
