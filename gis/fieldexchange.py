"""Field exchange with patrol teams through a GeoPackage QGIS and QField open.

:func:`export_district` writes a district's alerts that need field work
(new, dispatched, illegal) to ``patrol.gpkg``: layer ``alerts`` with kind,
area, project, parcel, status, before/after chips (embedded as PNG blobs and
as files in ``<name>_files/chips/`` that the ``chip_before``/``chip_after``
paths point to), plus the time and revision of the export per alert. A hidden
table ``gis_export`` keeps what each alert looked like when exported. New
alerts are marked dispatched in the store: sending them out is dispatching.

:func:`import_field` reads back what patrols recorded (``status``, ``note``,
``photo`` paths relative to the GeoPackage, ``updated_by``). An alert changed
both in the field and in the store since the export is a conflict: nothing
is written and :class:`ConflictError` lists the ids, unless the caller says
which side wins (``prefer="field"`` or ``"store"``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyogrio

from gis.atomic import atomic_path
from gis.errors import AlertNotFoundError, ConflictError, InputError
from gis.lifecycle import apply_verdict, photo_key, store_photo
from gis.store import AlertStore, now_iso

FIELD_STATUSES = ("new", "dispatched", "illegal")
EXPORT_COLUMNS = ["alert_id", "kind", "status", "verdict", "area_m2", "area_mu", "confidence",
                  "project_id", "parcel_id", "district", "first_seen", "last_seen", "post_freeze",
                  "freeze_date", "note", "updated_by", "chip_before", "chip_after"]
#: What a patrol may edit; everything else in the exported layer is for reading.
EDITABLE = ("status", "note", "photo")


@dataclass
class ExportResult:
    path: Path
    alert_ids: list[str]
    dispatched: list[str]
    exported_at: str


@dataclass
class ImportResult:
    applied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    kept_store: list[str] = field(default_factory=list)
    photos: int = 0


def export_district(store: AlertStore, district: str, out: str | os.PathLike, *, by: str = "export",
                    dispatch: bool = True, today: dt.date | None = None) -> ExportResult:
    """Write ``district``'s alerts needing field work to the GeoPackage ``out``."""
    out = Path(out)
    alerts = store.alerts()
    if district not in set(alerts["district"]):
        known = sorted(d for d in set(alerts["district"]) if d)
        raise InputError(f"no alerts in district {district!r}", path=store.path,
                         hint="districts with alerts: " + (", ".join(known) or "none yet"))
    ids = alerts.loc[(alerts["district"] == district) & alerts["status"].isin(FIELD_STATUSES), "alert_id"]
    ids = sorted(ids)
    at = now_iso()
    to_dispatch = sorted(alerts.loc[alerts["alert_id"].isin(ids) & (alerts["status"] == "new"), "alert_id"])
    if dispatch and to_dispatch:
        with store.transaction(by=by, command=f"alerts export {district}") as tx:
            for aid in to_dispatch:
                apply_verdict(tx, aid, status="dispatched", by=by, at=at, today=today)
        alerts = store.alerts()
    sel = alerts[alerts["alert_id"].isin(ids)].copy()
    files = out.with_name(out.stem + "_files")
    for col in ("chip_before", "chip_after"):
        rel = []
        for p in sel[col]:
            if p and (store.store_dir / p).exists():
                dest = files / "chips" / Path(p).name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(store.store_dir / p, dest)
                rel.append(f"{files.name}/chips/{dest.name}")
            else:
                rel.append("")
        sel[col + "_file"] = rel
    layer = sel[EXPORT_COLUMNS + ["geometry"]].copy()
    layer["chip_before"], layer["chip_after"] = sel["chip_before_file"], sel["chip_after_file"]
    layer["photo"] = ""
    layer["exported_at"] = at
    layer["export_rev"] = sel["rev"].to_numpy()
    with atomic_path(out) as tmp:
        # no R-tree: its triggers call GDAL-only SQL functions, which would stop plain SQLite
        # (ours below, or a field tool's) from updating rows; a patrol file is small anyway
        pyogrio.write_dataframe(layer, tmp, layer="alerts", driver="GPKG", geometry_type="Unknown",
                                layer_options={"SPATIAL_INDEX": "NO"})
        with contextlib.closing(sqlite3.connect(tmp)) as con, con:
            # chips inside the GeoPackage too, so the one file is enough in the field
            for col in ("chip_before", "chip_after"):
                con.execute(f"ALTER TABLE alerts ADD COLUMN {col}_img BLOB")
                for aid, p in zip(sel["alert_id"], sel[col]):
                    if p and (store.store_dir / p).exists():
                        con.execute(f"UPDATE alerts SET {col}_img = ? WHERE alert_id = ?",
                                    ((store.store_dir / p).read_bytes(), aid))
            con.execute("CREATE TABLE gis_export (alert_id TEXT PRIMARY KEY, rev INTEGER, status TEXT, "
                        "note TEXT, photos TEXT, updated_by TEXT, exported_at TEXT, store TEXT, district TEXT)")
            con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier) "
                        "VALUES ('gis_export', 'attributes', 'gis_export')")
            con.executemany("INSERT INTO gis_export VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [(r.alert_id, int(r.rev), r.status, r.note, r.photos, r.updated_by, at,
                              str(store.path), district) for r in sel.itertuples()])
    return ExportResult(out, ids, to_dispatch if dispatch else [], at)


def _read_patrol(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not path.exists():
        raise InputError("patrol GeoPackage not found", path=path, hint="check the path")
    try:
        layer = pyogrio.read_dataframe(path, layer="alerts", read_geometry=False)
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            snap = pd.read_sql_query("SELECT * FROM gis_export", con)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pd.errors.DatabaseError) as exc:
        raise InputError(f"not a patrol GeoPackage written by `gis alerts export` ({exc})", path=path,
                         layer="alerts", hint="import the file that export wrote (edited in QGIS/QField)") from None
    for col in ("status", "note", "photo", "updated_by"):
        layer[col] = layer[col].fillna("").astype(str) if col in layer else ""
    snap = snap.fillna("")
    return layer, snap


def import_field(store: AlertStore, patrol: str | os.PathLike, *, by: str | None = None,
                 prefer: str | None = None, today: dt.date | None = None) -> ImportResult:
    """Apply verdicts, notes and photos recorded in ``patrol`` to the store."""
    if prefer not in (None, "field", "store"):
        raise InputError(f"prefer={prefer!r}", hint='use "field" or "store"')
    patrol = Path(patrol)
    layer, snap = _read_patrol(patrol)
    rows = layer.merge(snap, on="alert_id", how="left", suffixes=("", "_exp"), validate="one_to_one")
    current = store.alerts().set_index("alert_id")
    unknown = sorted(set(rows["alert_id"]) - set(current.index))
    if unknown:
        raise AlertNotFoundError("alerts in the patrol file are not in the store", path=patrol,
                                 ids=unknown, hint="import into the store the file was exported from")
    cur = current.loc[rows["alert_id"]].reset_index()
    rows["photo"] = rows["photo"].str.replace("\\", "/")
    field_photos = rows["photo"].map(lambda s: [p.strip() for p in s.split(";") if p.strip()])
    field_changed = ((rows["status"] != rows["status_exp"]) | (rows["note"] != rows["note_exp"])
                     | (field_photos.map(len) > 0)).to_numpy()
    store_changed = (cur["rev"].to_numpy() != pd.to_numeric(rows["rev"]).to_numpy())
    # already in the store (a second import of the same file): nothing to do, no conflict
    same = ((cur["status"] == rows["status"]) & (cur["note"] == rows["note"])).to_numpy()
    srcs = [[patrol.parent / p for p in ps] for ps in field_photos]
    result = ImportResult()
    missing = [str(p) for ps in srcs for p in ps if not p.is_file()]
    if missing:
        raise InputError("photos named in the patrol file are missing", path=patrol, ids=missing,
                         hint="copy the photo folder (e.g. DCIM) next to the GeoPackage")
    stored = [[photo_key(p) for p in ps] for ps in srcs]  # named by content, copied once applied
    already = [set(stored_k) <= set(c.split(";")) for stored_k, c in zip(stored, cur["photos"])]
    todo = field_changed & ~(same & pd.Series(already).to_numpy())
    conflict = todo & store_changed
    result.conflicts = sorted(rows.loc[conflict, "alert_id"])
    if result.conflicts and prefer is None:
        raise ConflictError("alerts changed both in the field and in the store since export",
                            path=patrol, ids=result.conflicts,
                            hint="compare them with `gis alerts show`, then import again with "
                            "--prefer field or --prefer store")
    if prefer == "store":
        result.kept_store = result.conflicts
        todo &= ~conflict
    result.unchanged = sorted(set(rows.loc[~todo, "alert_id"]) - set(result.kept_store))
    if not todo.any():
        return result
    with store.transaction(by=by or "field import", command=f"alerts import {patrol.name}") as tx:
        for k in todo.nonzero()[0]:
            r = rows.iloc[k]
            who = r["updated_by"] if r["updated_by"] and r["updated_by"] != r["updated_by_exp"] else (by or "field")
            apply_verdict(tx, r["alert_id"], status=r["status"] or cur.iloc[k]["status"], by=who,
                          note=r["note"] if r["note"] != r["note_exp"] else None, photos=stored[k],
                          today=today)
            for src, rel in zip(srcs[k], stored[k]):
                store_photo(store.store_dir, src)
                tx.event(r["alert_id"], "photo", "photos", src.name, rel, by=who)
            result.photos += len(stored[k])
            result.applied.append(r["alert_id"])
    return result
