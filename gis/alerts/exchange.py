"""Field exchange with patrol teams through a GeoPackage QGIS and QField open.

:func:`export_district` writes a district's alerts that need field work
(new, dispatched, illegal) to ``patrol.gpkg``: layer ``alerts`` with kind,
area, project, parcel, status, false-alarm reason, before/after chips (embedded as PNG blobs and
as files in ``<name>_files/chips/`` that the ``chip_before``/``chip_after``
paths point to), plus the time and revision of the export per alert. A hidden
table ``gis_export`` keeps what each alert looked like when exported, the
export's id, its district and the store's file name (never the server's
path). The layer is typed MultiPolygon and carries a QGIS form in
``layer_styles`` (:mod:`gis.alerts.patrolform`): QField shows ``status`` and
``reason`` as dropdowns of Chinese words and stores the codes. New alerts are marked dispatched in the store: sending them out is
dispatching; the store's audit log records each exported alert with the
export's id.

:func:`import_field` reads back what patrols recorded (``status``, ``note``,
``reason`` of a false alarm, ``photo`` paths relative to the GeoPackage,
``updated_by``). Every problem of the file is found before anything is written
and reported at once, each alert id with its problem. The file is untrusted input:

* it may rule only on the alerts exported to it, as the store's audit log
  (not the file) records them; any other row is refused with
  :class:`NotExportedError`, whatever ``prefer`` says;
* it may only bring photos that travel with it: names relative to its own
  folder that, resolved (symlinks too), stay inside that folder; anything
  else is refused with one message whether or not such a file exists, so a
  patrol file cannot read or probe the server's files; and each photo must
  be a JPEG, PNG, HEIC/HEIF or WebP by content (:func:`gis.alerts.lifecycle.check_photo`).

An alert changed both in the field and in the store since the export is a
conflict: nothing is written and :class:`ConflictError` lists the ids,
unless the caller says which side wins (``prefer="field"`` or ``"store"``);
with ``prefer`` the valid rows are applied and the others (invalid transitions,
bad photos, unknown reasons, unknown alert ids) are skipped and listed. A row for an alert of the store
not exported to the file makes it refused whole, whatever ``prefer`` says.
Problems of several kinds raise one :class:`LayerValidationError` listing them.
An import is one store transaction; an alert edited by someone else between
the import's comparison and its write is a conflict too, never overwritten.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import pandas as pd
import pyogrio

from gis.atomic import atomic_path
from gis.errors import (AlertNotFoundError, ConflictError, DuplicateIdError, GisError, InputError,
                        InvalidTransitionError, InvalidValueError, LayerValidationError, NotExportedError,
                        PhotoError)
from gis.alerts.lifecycle import apply_verdict, check_transition, photo_key, read_photo
from gis.alerts.patrolform import write_form
from gis.alerts.store import AlertStore, now_iso
from gis.labels import REASON
from gis.schema import FALSE_ALARM_REASONS, OPEN_ALERT_STATUSES

log = logging.getLogger(__name__)

#: Alerts sent to the field: the open ones.
FIELD_STATUSES = OPEN_ALERT_STATUSES
EXPORT_COLUMNS = ["alert_id", "kind", "status", "verdict", "area_m2", "area_mu", "confidence",
                  "project_id", "parcel_id", "district", "first_seen", "last_seen", "post_freeze",
                  "freeze_date", "note", "updated_by", "chip_before", "chip_after"]
#: What a patrol may edit; everything else in the exported layer is for reading.
EDITABLE = ("status", "note", "photo", "reason")
#: Columns the hidden ``gis_export`` table must have for an import.
SNAPSHOT_COLUMNS = ("alert_id", "rev", "status", "note", "photos", "updated_by", "exported_at",
                    "store", "district", "export_id")
#: The audit-log action recording that an alert went out in an export.
EXPORT_ACTION = "export"


@dataclass
class ExportResult:
    path: Path
    alert_ids: list[str]
    dispatched: list[str]
    exported_at: str
    export_id: str = ""


@dataclass
class ImportResult:
    applied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    kept_store: list[str] = field(default_factory=list)
    photos: int = 0
    #: With ``prefer``: alert id -> why its row was not applied.
    skipped: dict[str, str] = field(default_factory=dict)


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
    export_id = uuid.uuid4().hex
    to_dispatch = sorted(alerts.loc[alerts["alert_id"].isin(ids) & (alerts["status"] == "new"), "alert_id"])
    if ids:
        with store.transaction(by=by, command=f"alerts export {district}") as tx:
            for aid in to_dispatch if dispatch else ():
                apply_verdict(tx, aid, status="dispatched", by=by, at=at, today=today)
            for aid in ids:  # what the import will accept verdicts for
                tx.event(aid, EXPORT_ACTION, "export_id", "", export_id, by=by)
        alerts = store.alerts()
    sel = alerts[alerts["alert_id"].isin(ids)].copy()
    files = out.with_name(out.stem + "_files")
    chips = {col: _chip_files(store.store_dir, sel[col]) for col in ("chip_before", "chip_after")}
    for col, srcs in chips.items():
        rel = []
        for src in srcs:
            if src is not None:
                dest = files / "chips" / src.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
                rel.append(f"{files.name}/chips/{dest.name}")
            else:
                rel.append("")
        sel[col + "_file"] = rel
    layer = sel[EXPORT_COLUMNS + ["geometry"]].copy()
    layer["chip_before"], layer["chip_after"] = sel["chip_before_file"], sel["chip_after_file"]
    layer["photo"] = ""
    layer["reason"] = ""  # a false alarm's reason: a dropdown in QField
    layer["exported_at"] = at
    layer["export_rev"] = sel["rev"].to_numpy()
    with atomic_path(out) as tmp:
        # no R-tree: its triggers call GDAL-only SQL functions, which would stop plain SQLite
        # (ours below, or a field tool's) from updating rows; a patrol file is small anyway
        pyogrio.write_dataframe(layer, tmp, layer="alerts", driver="GPKG", geometry_type="MultiPolygon",
                                promote_to_multi=True, layer_options={"SPATIAL_INDEX": "NO"})
        with contextlib.closing(sqlite3.connect(tmp)) as con, con:
            # chips inside the GeoPackage too, so the one file is enough in the field
            for col, srcs in chips.items():
                con.execute(f"ALTER TABLE alerts ADD COLUMN {col}_img BLOB")
                for aid, src in zip(sel["alert_id"], srcs):
                    if src is not None:
                        con.execute(f"UPDATE alerts SET {col}_img = ? WHERE alert_id = ?",
                                    (src.read_bytes(), aid))
            con.execute("CREATE TABLE gis_export (alert_id TEXT PRIMARY KEY, rev INTEGER, status TEXT, "
                        "note TEXT, photos TEXT, updated_by TEXT, exported_at TEXT, store TEXT, "
                        "district TEXT, export_id TEXT)")
            con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier) "
                        "VALUES ('gis_export', 'attributes', 'gis_export')")
            # the store by its file name only: the server's folders are none of the field's business
            con.executemany(f"INSERT INTO gis_export VALUES ({', '.join('?' * len(SNAPSHOT_COLUMNS))})",
                            [(r.alert_id, int(r.rev), r.status, r.note, r.photos, r.updated_by, at,
                              store.name, district, export_id) for r in sel.itertuples()])
            # the QGIS form: status and reason as dropdowns in QGIS and QField
            write_form(con, "alerts", [c for c in layer.columns if c != "geometry"])
    return ExportResult(out, ids, to_dispatch if dispatch else [], at, export_id)


def _chip_files(store_dir: Path, names: pd.Series) -> list[Path | None]:
    """The chip files the store names, only those inside its folder (a chip is optional)."""
    files = [_inside(store_dir, n) for n in names]
    for n, f in zip(names, files):
        if n and f is None:
            log.warning("chip %r is missing or not inside the store folder %s: exported without it",
                        n, store_dir)
    return files


def _inside(root: Path, name: str) -> Path | None:
    """The file ``name`` (relative to ``root``) resolves to, if it is one inside ``root``.

    None for an empty name, an absolute one (``/etc/passwd``, ``C:\\x``, ``\\\\host\\x``),
    one that escapes with ``..`` or through a symlink, and one that is not an existing
    regular file: callers cannot tell these apart, so neither can whoever wrote ``name``.
    """
    name = str(name).strip().replace("\\", "/")
    if (not name or "\x00" in name or PurePosixPath(name).is_absolute()
            or PureWindowsPath(name).drive or PureWindowsPath(name).is_absolute()):
        return None
    root = root.resolve()
    try:
        path = (root / name).resolve()
    except (OSError, RuntimeError):  # a symlink loop, a name too long
        return None
    if not path.is_relative_to(root):
        return None
    return path if path.is_file() else None


@dataclass
class _Export:
    """What a patrol file says about the export that wrote it."""

    export_id: str
    district: str
    store: str
    exported_at: str


def _not_a_patrol_file(path: Path, why: str) -> InputError:
    return InputError(f"not a patrol GeoPackage written by `gis alerts export` ({why})", path=path,
                      layer="alerts", hint="import the file that export wrote (edited in QGIS/QField)")


def _read_patrol(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, _Export]:
    if not path.exists():
        raise InputError("patrol GeoPackage not found", path=path, hint="check the path")
    try:
        layer = pyogrio.read_dataframe(path, layer="alerts", read_geometry=False)
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            snap = pd.read_sql_query("SELECT * FROM gis_export", con)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pd.errors.DatabaseError,
            sqlite3.Error) as exc:
        raise _not_a_patrol_file(path, str(exc)) from None
    missing = [c for c in SNAPSHOT_COLUMNS if c not in snap] + [c for c in ("alert_id",) if c not in layer]
    if missing:
        raise _not_a_patrol_file(path, "no column " + ", ".join(missing)
                                 + "; a file from an older gis has no export id: export the district again")
    for col in ("alert_id", "status", "note", "photo", "updated_by", "reason"):
        layer[col] = layer[col].fillna("").astype(str) if col in layer else ""
    snap = snap.fillna("")
    snap["alert_id"] = snap["alert_id"].astype(str)
    for name, ids in (("alerts", layer["alert_id"]), ("gis_export", snap["alert_id"])):
        dup = sorted(set(ids[ids.duplicated()]))
        if dup:
            raise DuplicateIdError("the same alert appears in several rows", path=path, layer=name, ids=dup,
                                   hint="keep one row per alert (delete the copies in QGIS/QField) and import again")
    exports = snap[["export_id", "district", "store", "exported_at"]].drop_duplicates()
    if len(exports) > 1 or (len(exports) and not exports["export_id"].iloc[0]):
        raise _not_a_patrol_file(path, "gis_export does not describe one export")
    info = _Export(*exports.iloc[0]) if len(exports) else _Export("", "", "", "")
    return layer, snap, info


def _not_exported(store: AlertStore, patrol: Path, ids: pd.Series, snap: pd.DataFrame, info: _Export,
                  events: pd.DataFrame, known: set[str]) -> list[str]:
    """The rows' alerts (of the ``known`` ones, in the store) not exported to ``patrol``, as
    the store's audit log records them.

    The file's own ``gis_export`` table is checked too, but it is part of the file and
    could be edited: the store's record of the export decides. A file the store never
    exported at all is refused at once.
    """
    bad = set(ids) - set(snap["alert_id"])
    if ids.empty:
        return []
    recorded = set(events.loc[(events["action"] == EXPORT_ACTION) & (events["new"] == info.export_id), "alert_id"])
    if not recorded:
        raise NotExportedError(
            f"this patrol file (export {info.export_id} of district {info.district!r} from store "
            f"{info.store!r}) was not exported from this store", path=patrol,
            hint=f"import it into the workspace whose store exported it, not {store.name}")
    return sorted((bad | (set(ids) - recorded)) & known)


@dataclass
class _Problem:
    """Why one row of a patrol file cannot be applied."""

    alert_id: str
    kind: str  # not_exported, unknown, conflict, outside_photo, transition, reason, photo
    text: str
    error: GisError | None = None
    photo: str = ""


def _refusal(problems: list[_Problem], patrol: Path, info: _Export) -> GisError:
    """One error for all the problems of a patrol file: the usual error when they are of one
    kind, else one listing each alert id with its problem."""
    kinds = {p.kind for p in problems}
    ids = sorted({p.alert_id for p in problems})
    if kinds == {"not_exported"}:
        what = f"alert {ids[0]} was" if len(ids) == 1 else "alerts were"
        return NotExportedError(
            f"{what} not exported to this patrol file", path=patrol, layer="alerts",
            ids=ids if len(ids) > 1 else None,
            hint=f"the file carries only the alerts of district {info.district!r} exported at "
                 f"{info.exported_at}; delete the other rows and record their verdicts in their own "
                 "district's patrol file")
    if kinds == {"unknown"}:
        return AlertNotFoundError("alerts in the patrol file are not in the store", path=patrol, ids=ids,
                                  hint="import into the store the file was exported from")
    if kinds == {"conflict"}:
        return ConflictError("alerts changed both in the field and in the store since export",
                             path=patrol, ids=ids, hint=CONFLICT_HINT)
    if kinds == {"outside_photo"}:
        return PhotoError("photos named in the patrol file are missing or not inside its folder",
                          path=patrol, layer="alerts", ids=[p.photo for p in problems], hint=PHOTO_HINT)
    if len(problems) == 1 and problems[0].error is not None:
        return problems[0].error
    listing = "; ".join(f"{p.alert_id}: {p.text}" for p in sorted(problems, key=lambda p: p.alert_id))
    hints = [CONFLICT_HINT] if "conflict" in kinds else []
    if kinds & {"outside_photo", "photo"}:
        hints.append(PHOTO_HINT)
    hints.append("correct or delete the other rows in QGIS/QField and import again")
    err = LayerValidationError(f"{len(ids)} alerts of the patrol file cannot be imported ({listing})",
                               path=patrol, layer="alerts", hint="; ".join(hints),
                               problems=[(p.alert_id, p.text) for p in problems])
    err.ids = ids
    return err


CONFLICT_HINT = ("compare them with `gis alerts show`, then import again with "
                 "--prefer field or --prefer store")
PHOTO_HINT = ("name each photo relative to the GeoPackage's folder (e.g. DCIM/IMG_0001.jpg) "
              "and copy the photo folder next to the GeoPackage")
#: Reason codes by code and by their words (a patrol may type the word).
REASON_CODES = {**{r: r for r in FALSE_ALARM_REASONS},
                **{w: r for lang in REASON for r, w in REASON[lang].items()}}


def _photo_keys(patrol: Path, aid: str, names: list[str]) -> tuple[list[Path], list[str], list[_Problem]]:
    """The files a row's photo names point to (all inside the patrol file's folder), their
    store keys, and the problems of those that cannot be used.

    A name that is absolute, escapes the folder (``..``, a symlink) or names no file gets
    one and the same refusal, so a patrol file can neither read nor probe other files.
    """
    srcs, keys, problems = [], [], []
    for name in names:
        src = _inside(patrol.parent, name)
        if src is None:
            problems.append(_Problem(aid, "outside_photo", f"photo {name!r} is missing or not inside "
                                     "the patrol file's folder", photo=name))
            continue
        try:
            keys.append(photo_key(src))
        except PhotoError as exc:
            problems.append(_Problem(aid, "photo", f"photo {name!r}: {exc.message}", exc, photo=name))
            continue
        srcs.append(src)
    return srcs, keys, problems


def _verdict_problems(patrol: Path, aid: str, current: str, status: str, reason: str) -> list[_Problem]:
    """What is wrong with a row's status and reason, as the web app checks them."""
    out = []
    try:
        check_transition(aid, current, status)
    except InvalidTransitionError as exc:
        out.append(_Problem(aid, "transition", f"is {current!r} and cannot become {status!r} ({exc.hint})", exc))
    if reason and reason not in FALSE_ALARM_REASONS:
        out.append(_Problem(aid, "reason", f"unknown false-alarm reason {reason!r}", InvalidValueError(
            f"alert {aid}: unknown false-alarm reason {reason!r}", path=patrol, layer="alerts", ids=[aid],
            hint="use one of " + ", ".join(FALSE_ALARM_REASONS))))
    elif reason and status != "false_alarm":
        why = f"a false-alarm reason is given only with status false_alarm, not {status!r}"
        out.append(_Problem(aid, "reason", why, InvalidValueError(
            f"alert {aid}: {why}", path=patrol, layer="alerts", ids=[aid], hint="leave reason empty")))
    return out


def _last_reasons(events: pd.DataFrame) -> dict[str, str]:
    """Alert id -> the false-alarm reason last recorded for it."""
    ev = events[(events["action"] == "set") & (events["field"] == "reason")]
    return dict(zip(ev["alert_id"], ev["new"]))


def import_field(store: AlertStore, patrol: str | os.PathLike, *, by: str | None = None,
                 prefer: str | None = None, today: dt.date | None = None) -> ImportResult:
    """Apply verdicts, notes, false-alarm reasons and photos recorded in ``patrol`` to the store.

    Every problem of the file is found before anything is written. Without ``prefer``
    any problem is raised, all of them in one error, and nothing is applied. With
    ``prefer`` conflicts are settled by it, the valid rows are applied and the others
    are listed in :attr:`ImportResult.skipped`; the problems are raised (nothing applied)
    when no row is left to apply, and always when a row is for an alert not exported
    to the file.
    """
    if prefer not in (None, "field", "store"):
        raise InputError(f"prefer={prefer!r}", hint='use "field" or "store"')
    patrol = Path(patrol)
    layer, snap, info = _read_patrol(patrol)
    events = store.events()
    current = store.alerts().set_index("alert_id")
    unknown = sorted(set(layer["alert_id"]) - set(current.index))
    not_exported = _not_exported(store, patrol, layer["alert_id"], snap, info, events, set(current.index))
    problems = [_Problem(aid, "not_exported", "not exported to this patrol file") for aid in not_exported]
    problems += [_Problem(aid, "unknown", "not in the store") for aid in unknown]
    rows = layer[~layer["alert_id"].isin(not_exported + unknown)].merge(
        snap, on="alert_id", how="left", suffixes=("", "_exp"), validate="one_to_one").reset_index(drop=True)
    cur = current.loc[rows["alert_id"]].reset_index()
    last_reason = _last_reasons(events)
    reasons = [REASON_CODES.get(r.strip(), r.strip()) for r in rows["reason"]]
    field_photos = rows["photo"].map(lambda s: [p.strip() for p in s.split(";") if p.strip()])
    field_changed = ((rows["status"] != rows["status_exp"]) | (rows["note"] != rows["note_exp"])
                     | (field_photos.map(len) > 0) | (rows["reason"].str.strip() != "")).to_numpy()
    store_changed = (cur["rev"].to_numpy() != pd.to_numeric(rows["rev"]).to_numpy())
    # already in the store (a second import of the same file): nothing to do, no conflict
    same = ((cur["status"] == rows["status"]) & (cur["note"] == rows["note"])).to_numpy()
    photos = [_photo_keys(patrol, aid, names) for aid, names in zip(rows["alert_id"], field_photos)]
    already = [not bad and set(keys) <= set(c.split(";")) and reason in ("", last_reason.get(aid, ""))
               for (_, keys, bad), c, reason, aid in zip(photos, cur["photos"], reasons, rows["alert_id"])]
    todo = field_changed & ~(same & pd.Series(already, dtype=bool).to_numpy())
    conflict = todo & store_changed
    result = ImportResult(conflicts=sorted(rows.loc[conflict, "alert_id"]))
    if prefer == "store":
        result.kept_store = result.conflicts
        todo &= ~conflict
    refused = set(not_exported) | set(unknown)
    for k in todo.nonzero()[0]:
        aid, status, reason = rows["alert_id"].iloc[k], rows["status"].iloc[k] or cur["status"].iloc[k], reasons[k]
        mine = list(photos[k][2])
        if conflict[k] and prefer is None:  # which side wins decides what else to check
            mine.append(_Problem(aid, "conflict", "changed both in the field and in the store since export"))
        else:
            mine += _verdict_problems(patrol, aid, cur["status"].iloc[k], status, reason)
        problems += mine
        if mine:
            refused.add(aid)
    todo &= ~rows["alert_id"].isin(refused).to_numpy()
    if problems and (prefer is None or not_exported or not todo.any()):
        raise _refusal(problems, patrol, info)
    result.skipped = {aid: "; ".join(p.text for p in problems if p.alert_id == aid) for aid in sorted(refused)}
    result.unchanged = sorted(set(rows.loc[~todo, "alert_id"]) - set(result.kept_store) - refused)
    if not todo.any():
        return result
    with store.transaction(by=by or "field import", command=f"alerts import {patrol.name}") as tx:
        for k in todo.nonzero()[0]:
            r = rows.iloc[k]
            who = r["updated_by"] if r["updated_by"] and r["updated_by"] != r["updated_by_exp"] else (by or "field")
            srcs = photos[k][0]
            rels = [tx.put_photo(*read_photo(src), name=src.name, by=who) for src in srcs]
            # on the revision this import compared with: an alert changed since is a conflict
            apply_verdict(tx, r["alert_id"], status=r["status"] or cur.iloc[k]["status"], by=who,
                          note=r["note"] if r["note"] != r["note_exp"] else None, photos=rels,
                          today=today, rev=int(cur.iloc[k]["rev"]))
            old = last_reason.get(r["alert_id"], "")
            if reasons[k] and reasons[k] != old:  # as the web app records it
                tx.event(r["alert_id"], "set", "reason", old, reasons[k], by=who)
            for src, rel in zip(srcs, rels):
                tx.event(r["alert_id"], "photo", "photos", src.name, rel, by=who)
            result.photos += len(rels)
            result.applied.append(r["alert_id"])
    return result
