"""Moving a store forward: from an older schema in place, and to another backend.

:func:`upgrade_store` brings a store written by an older gis up to
:data:`gis.alerts.tables.SCHEMA_VERSION` when it is first opened: a copy of
the file is kept beside it first (``store.schema1.gpkg``), then one
transaction adds the new tables and takes the photo files that alerts name
(``photos/<sha256>.<ext>`` beside the store, as gis 0.1.0 kept them) into
the ``photos`` table, with their original names, uploaders and times from
the audit log.

:func:`copy_store` moves a workspace's store to another backend (GeoPackage
-> PostGIS as an office outgrows one machine, or back): alerts, audit log,
runs and photos in one transaction into an empty store, compared with the
source afterwards, and the workspace's ``gis.toml`` then names the new store.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import shapely
import sqlalchemy as sa

from gis.alerts import photos as photo_table
from gis.alerts.tables import EVENT_COLUMNS, PHOTO_COLUMNS, RUN_COLUMNS, upgrade_schema
from gis.atomic import keep_owner, write_text_atomic
from gis.errors import StoreError

log = logging.getLogger(__name__)


def upgrade_store(store, found: int) -> Path | None:
    """Upgrade ``store`` (an :class:`~gis.alerts.store.AlertStore`) from schema ``found``; return
    the copy kept beside it (GeoPackage)."""
    kept = None
    if store.kind == "gpkg":
        kept = store.path.with_name(f"{store.path.stem}.schema{found}.gpkg")
        k = 0
        while kept.exists():
            k += 1
            kept = store.path.with_name(f"{store.path.stem}.schema{found}-{k}.gpkg")
        store.backend.backup_to(kept)
        keep_owner(store.path, kept)
        log.warning("upgrading the alert store %s from schema %d; the old store is kept as %s",
                    store.path, found, kept)
    t = store.t
    with store.backend.writing() as conn:
        upgrade_schema(conn, store.md, found)
        keys = sorted({k for v in conn.execute(sa.select(t["alerts"].c.photos)).scalars() if v
                       for k in str(v).split(";") if k})
        found_files = photo_table.read_folder_photos(store.store_dir, keys)
        ev = t["alert_events"]
        origin = {r.new: r for r in conn.execute(
            sa.select(ev.c.new, ev.c.old, ev.c.by, ev.c.at).where(ev.c.action == "photo")
            .order_by(ev.c.event_id.desc()))}
        for key, data in found_files.items():
            o = origin.get(key)
            _, ext = photo_table.split_key(key)
            photo_table.put_photo(conn, t["photos"], data, ext, name=o.old if o else Path(key).name,
                                  by=o.by if o else "", at=o.at if o else "")
        store.backend.register_tables(conn, ("alert_events", "runs"))
    return kept


@dataclass
class CopyResult:
    source: str
    target: str
    alerts: int
    events: int
    runs: int
    photos: int


def copy_store(source, target) -> CopyResult:
    """Copy every alert, event, run and photo of ``source`` into the empty store ``target``
    in one transaction, then compare both; raises :class:`StoreError` if they differ."""
    if not source.ready():
        raise StoreError("there is no store to copy", path=source.path, hint="run `gis weekly` first")
    with target.absence_waived():
        target.ready(create=True)
    if len(target.alerts()) or len(target.events()) or len(target.runs()):
        raise StoreError("the target store is not empty", path=target.path,
                         hint="copy into an empty database (or a new GeoPackage path)")
    alerts, events, runs = source.alerts(), source.events(), source.runs()
    pt = source.t["photos"]
    with source.backend.reading() as conn:
        photos = [dict(r._mapping) for r in conn.execute(sa.select(pt))]
    with target.transaction(by="gis store copy", command="store copy") as tx:
        if len(alerts):
            tx.insert(alerts)
        ev = events.drop(columns="event_id").to_dict("records")
        if ev:
            tx.conn.execute(target.t["alert_events"].insert(), ev)
        if len(runs):
            tx.conn.execute(target.t["runs"].insert(), runs[RUN_COLUMNS].to_dict("records"))
        if photos:
            tx.conn.execute(target.t["photos"].insert(), photos)
    _compare(source, target)
    return CopyResult(str(source.path), str(target.path), len(alerts), len(events), len(runs), len(photos))


def _compare(source, target) -> None:
    a, b = source.alerts(), target.alerts()
    problems = []
    if not a.drop(columns="geometry").equals(b.drop(columns="geometry")):
        problems.append("alerts' attributes")
    elif not all(shapely.equals_exact(a.geometry.values, b.geometry.values, tolerance=1e-9)):
        problems.append("alerts' geometries")
    cols = EVENT_COLUMNS[1:]
    if not source.events()[cols].reset_index(drop=True).equals(target.events()[cols].reset_index(drop=True)):
        problems.append("audit log")
    if not _same(source.runs(), target.runs(), "run_id"):
        problems.append("run log")
    if not _same(source.photos()[PHOTO_COLUMNS], target.photos()[PHOTO_COLUMNS], "sha256"):
        problems.append("photos")
    with target.backend.reading() as conn:
        bad = photo_table.bad_photos(conn, target.t["photos"])
    if bad:
        problems.append(f"photo bytes ({len(bad)})")
    if problems:
        raise StoreError("the copy differs from the store in: " + ", ".join(problems), path=target.path,
                         hint="the workspace still uses its old store; empty the target and copy again")


def _same(x: pd.DataFrame, y: pd.DataFrame, key: str) -> bool:
    x = x.sort_values(key).reset_index(drop=True).astype(object).where(x.notna(), None)
    y = y.sort_values(key).reset_index(drop=True).astype(object).where(y.notna(), None)
    return x.astype(str).equals(y.astype(str))


def point_workspace(toml: Path, store: str) -> None:
    """Make ``gis.toml`` name ``store`` (its ``store = ...`` line replaced, or added)."""
    text = toml.read_text(encoding="utf-8")
    line = 'store = "' + store.replace("\\", "\\\\").replace('"', '\\"') + '"'
    new, n = re.subn(r"(?m)^store\s*=.*$", lambda m: line, text, count=1)
    if n == 0:
        new = line + "\n" + text
    write_text_atomic(toml, new)


def move_store(ws, location: str) -> CopyResult:
    """``gis store copy``: the workspace's store copied to ``location`` (a postgresql:// URL or
    a new .gpkg path, relative to the workspace), verified, then named by its gis.toml."""
    from gis.alerts.backends import is_url
    from gis.alerts.store import open_store

    source = ws.open_store()
    where = location if is_url(location) else str((ws.root / location).resolve())
    if not is_url(location) and Path(where).exists():
        raise StoreError("a file is already there", path=where, hint="name a new .gpkg path")
    target = open_store(where, crs=ws.working_crs, store_dir=ws.store_dir)
    res = copy_store(source, target)
    point_workspace(ws.toml, location)
    rec = source.record()
    target.record_path = ws.state_path
    target.write_record(commits=int(rec.get("commits", 0)) + 1, last_run=rec.get("last_run", ""))
    return res
