"""Evidence packs (违法建设证据材料): one A4 PDF per alert, for enforcement.

Once a patrol records "illegal", the office documents the case: a structure
built after a project's freeze date is not compensated, and a demolition
order needs evidence. :func:`write_evidence` writes one alert's pack and
:func:`write_evidence_batch` one per alert of a district and status. A pack
holds, in Chinese: the case number (the alert id), a location map (the alert,
its red line and parcel on the orthophoto, scale bar and north arrow, see
:mod:`gis.products.casemap`), the centroid in the workspace's CGCS2000
projected CRS and in CGCS2000 longitude / latitude (EPSG:4490), the area in
m² and mu, project, parcel, district, the freeze date and whether the change
appeared after it, the survey dates with the before / after chips of the
first sighting and of the latest, every field photo with its time, position
and distance from the alert, the verdict history from the audit log, and
the date it was made.

The PDF is written with fpdf2 and embeds a subset of a CJK font found on the
system (Debian's fonts-noto-cjk). Text from the store (notes, names) is data:
it is written as plain text, never read as markup. A chip or photo that is
missing or unreadable is said so in the pack ("图片缺失"), never a crash.
Alert ids name the output files of a batch, so an id with path characters is
refused (:func:`check_alert_id`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from pyproj import CRS, Transformer
from shapely.geometry import Point

from gis.alerts.photos import read_folder_photos
from gis.alerts.store import AlertStore
from gis.atomic import write_bytes_atomic
from gis.clearance.layers import read_parcels, read_redlines
from gis.errors import (AlertNotFoundError, GisWarning, InputError, OutputPathError, OutputWriteError,
                        PhotoError, StoreCorruptError)
from gis.labels import label
from gis.outputs import check_output, workspace_files
from gis.products.casemap import MapLayers, location_map_png
from gis.products.evidencepdf import render_pdf
from gis.workspace import Workspace, load_workspace

__all__ = ["Evidence", "Photo", "Picture", "alert_photos", "check_alert_id", "gather_evidence",
           "write_evidence", "write_evidence_batch", "CGCS2000_GEOGRAPHIC"]

log = logging.getLogger(__name__)

#: CGCS2000 longitude / latitude.
CGCS2000_GEOGRAPHIC = "EPSG:4490"
#: What an alert id may be to name a file: letters, digits, '-', '_' and inner dots.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")


@dataclass
class Picture:
    """A chip of imagery or a field photo as printed: its bytes (None: missing) and caption."""

    caption: str
    data: bytes | None = None
    problem: str = ""


@dataclass
class Photo:
    """A field photo named by an alert, with what is known of it."""

    key: str
    data: bytes | None
    name: str = ""
    taken_at: str = ""
    uploaded_at: str = ""
    uploaded_by: str = ""
    lat: float | None = None
    lon: float | None = None
    problem: str = ""


@dataclass
class Evidence:
    """Everything one pack prints; :func:`gather_evidence` fills it."""

    alert: pd.Series
    crs: CRS
    made: dt.date
    project: dict[str, str] = field(default_factory=dict)
    parcel: dict[str, str] = field(default_factory=dict)
    centroid_xy: tuple[float, float] = (0.0, 0.0)
    centroid_lonlat: tuple[float, float] = (0.0, 0.0)
    freeze_statement: str = ""
    surveys: list[tuple[str, str]] = field(default_factory=list)
    chips: list[Picture] = field(default_factory=list)
    photos: list[tuple[Photo, list[str]]] = field(default_factory=list)  # (photo, caption lines)
    history: list[tuple[str, str, str]] = field(default_factory=list)  # (when, who, what)
    map_png: bytes | None = None
    basemap: str = ""
    source: str = ""


def check_alert_id(alert_id: Any) -> str:
    """``alert_id`` when it may name a file (``A20260415-0003``); an :class:`InputError` otherwise."""
    text = "" if alert_id is None else str(alert_id)
    if not _SAFE_ID.fullmatch(text) or ".." in text:
        raise InputError(f"alert id {text!r} cannot name an evidence file: it holds path characters",
                         ids=[text], hint="alert ids are letters, digits, '-' and '_'; "
                         "list them with `gis alerts list`")
    return text


def alert_photos(store: AlertStore, alert: pd.Series) -> list[Photo]:
    """The alert's field photos with their bytes and facts; a photo that cannot be read has
    ``data`` None and says why in ``problem``. The one place photos are read from the store."""
    keys = [k for k in str(alert.get("photos") or "").split(";") if k]
    facts = store.photos()
    by_sha = {str(r["sha256"]): r for r in facts.to_dict("records")} if len(facts) else {}
    out = []
    for key in keys:
        sha = Path(key).name.partition(".")[0]
        fact = by_sha.get(sha, {})
        data, problem = None, ""
        try:
            data = store.photo(key)
        except StoreCorruptError:
            problem = "图片损坏（与其哈希不符）"
        except (PhotoError, AlertNotFoundError):  # not in the table: a copy in the store folder?
            data = read_folder_photos(store.store_dir, [key]).get(key)
            problem = "" if data is not None else "图片缺失"
        out.append(Photo(key=key, data=data, name=_text(fact.get("name")), taken_at=_text(fact.get("taken_at")),
                         uploaded_at=_text(fact.get("uploaded_at")), uploaded_by=_text(fact.get("uploaded_by")),
                         lat=_number(fact.get("lat")), lon=_number(fact.get("lon")), problem=problem))
    return out


def _text(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and v != v) else str(v)


def _number(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


@dataclass
class CaseLayers:
    """The workspace layers a pack draws, read once for a batch."""

    redlines: gpd.GeoDataFrame
    parcels: gpd.GeoDataFrame


def _read_layers(ws: Workspace, crs: Any) -> CaseLayers:
    """Red lines and parcels in the alerts' CRS (repairs were reported by the weekly run)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GisWarning)
        red = read_redlines(ws.redlines, working_crs=crs, min_redline_m2=ws.min_redline_m2,
                            id_from_layer=ws.id_from_layer)
        parcels = read_parcels(ws.parcels, working_crs=crs)
    return CaseLayers(red, parcels)


def _row(frame: gpd.GeoDataFrame, column: str, value: Any):
    if not value or column not in frame:
        return None
    hit = frame[frame[column].astype(str) == str(value)]
    return hit.iloc[0] if len(hit) else None


def gather_evidence(ws: Workspace, store: AlertStore, alert_id: str, *, alerts: gpd.GeoDataFrame | None = None,
                    layers: CaseLayers | None = None, made: dt.date | None = None) -> Evidence:
    """Collect what the pack of ``alert_id`` prints (unknown id: :class:`AlertNotFoundError`)."""
    alerts = store.alerts() if alerts is None else alerts
    hit = alerts[alerts["alert_id"] == str(alert_id)]
    if not len(hit):
        store.alert(str(alert_id))  # raises AlertNotFoundError naming the store
        raise AlertNotFoundError(f"no alert {alert_id!r} in the store", path=store.path)
    a = hit.iloc[0]
    crs = CRS.from_user_input(alerts.crs or ws.working_crs)
    layers = layers or _read_layers(ws, crs)
    geom = a.geometry
    c = geom.centroid
    lon, lat = Transformer.from_crs(crs, CGCS2000_GEOGRAPHIC, always_xy=True).transform(c.x, c.y)
    ev = Evidence(alert=a, crs=crs, made=made or dt.date.today(), centroid_xy=(c.x, c.y),
                  centroid_lonlat=(lon, lat), source=store.name)
    red = _row(layers.redlines, "project_id", a["project_id"])
    par = _row(layers.parcels, "parcel_id", a["parcel_id"])
    if red is not None:
        ev.project = {"project_id": str(red["project_id"]), "name": _text(red.get("name")),
                      "district": _text(red.get("district"))}
    if par is not None:
        ev.parcel = {"parcel_id": str(par["parcel_id"]), "owner_type": _text(par.get("owner_type")),
                     "land_use": _text(par.get("land_use")), "status": _text(par.get("status"))}
    dates = sorted(e.date.isoformat() for e in ws.epochs)
    ev.freeze_statement = freeze_statement(a, dates)
    ev.surveys = _surveys(a, dates)
    ev.chips = _chips(a, dates, store.store_dir)
    ev.photos = [(p, photo_caption(p, geom, crs)) for p in alert_photos(store, a)]
    ev.history = verdict_history(store.events(), str(a["alert_id"]))
    ortho = next((e.ortho for e in ws.epochs if e.date.isoformat() == a["last_seen"]), None)
    ev.map_png = location_map_png(MapLayers(
        alert=geom, crs=crs, redline=red.geometry if red is not None else None,
        parcel=par.geometry if par is not None else None, alert_label=f"预警图斑 {a['alert_id']}",
        redline_label=f"项目红线 {a['project_id']}" if red is not None else "",
        parcel_label=f"宗地 {a['parcel_id']}" if par is not None else "", ortho=ortho))
    ev.basemap = f"{a['last_seen']} 正射影像" if ortho else "空白底图（无影像）"
    return ev


def _previous(dates: list[str], day: str) -> str:
    earlier = [d for d in dates if d < day]
    return earlier[-1] if earlier else ""


def freeze_statement(a: pd.Series, dates: list[str]) -> str:
    """Whether the change appeared after its project's freeze date, in one sentence."""
    freeze = _text(a.get("freeze_date"))[:10]
    first = _text(a.get("first_seen"))
    before = _previous(dates, first)
    seen = f"前期 {before} 影像未见，{first} 影像首次发现" if before else f"{first} 影像首次发现"
    if not freeze:
        return ("不在项目红线内，无冻结日期" if not _text(a.get("project_id"))
                else "项目未设冻结日期，无法判断是否冻结日后新增")
    if bool(a.get("post_freeze")):
        return f"是：冻结日期 {freeze}；{seen}，变化出现在冻结日之后"
    return f"否：冻结日期 {freeze}；{seen}，不能确认变化出现在冻结日之后"


def _surveys(a: pd.Series, dates: list[str]) -> list[tuple[str, str]]:
    first, last = _text(a.get("first_seen")), _text(a.get("last_seen"))
    rows = [("首次发现", f"{first}（对比前期影像 {_previous(dates, first) or '无'}）")]
    rows.append(("最近发现", f"{last}，共发现 {int(a.get('seen_count') or 1)} 期"))
    between = [d for d in dates if first <= d <= last]
    if between:
        rows.append(("比对影像", "、".join(between)))
    return rows


def _chip(store_dir: Path, rel: str, caption: str) -> Picture:
    path = Path(store_dir) / rel
    try:
        data = path.read_bytes()
    except OSError:
        return Picture(caption, None, "图片缺失")
    return Picture(caption, data)


def _chips(a: pd.Series, dates: list[str], store_dir: Path) -> list[Picture]:
    """Before / after chips of the first sighting and of the latest (``chips/<id>_<date>_<which>.png``)."""
    aid = check_alert_id(a["alert_id"])
    first, last = _text(a.get("first_seen")), _text(a.get("last_seen"))
    before = _previous(dates, first)
    pics = [_chip(store_dir, f"chips/{aid}_{before}_before.png" if before else _text(a.get("chip_before")),
                  f"首次发现·前期 {before or '无'}"),
            _chip(store_dir, f"chips/{aid}_{first}_after.png", f"首次发现·后期 {first}")]
    if last and last != first:
        prev = _previous(dates, last)
        rel = next((r for r in (f"chips/{aid}_{prev}_after.png", f"chips/{aid}_{prev}_before.png")
                    if (Path(store_dir) / r).is_file()), f"chips/{aid}_{prev}_after.png")
        pics += [_chip(store_dir, rel, f"最近一期·前期 {prev}"),
                 _chip(store_dir, f"chips/{aid}_{last}_after.png", f"最近一期·后期 {last}")]
    return pics


def photo_caption(photo: Photo, geom, crs: CRS) -> list[str]:
    """The lines printed under a photo: name, when taken, who uploaded it when, where, hash."""
    taken = photo.taken_at.replace("T", " ") if photo.taken_at else "未记录"
    up = " ".join(v for v in (photo.uploaded_by, beijing_time(photo.uploaded_at) if photo.uploaded_at else "") if v)
    return [photo.name or Path(photo.key).name, f"拍摄时间：{taken}", *([f"上传：{up}"] if up else []),
            *photo_position(photo, geom, crs), f"SHA-256：{Path(photo.key).name.partition('.')[0][:16]}…"]


def photo_position(photo: Photo, geom, crs: CRS) -> list[str]:
    """Where a photo was taken (GPS from its EXIF) and how far from the alert polygon."""
    if photo.lat is None or photo.lon is None:
        return ["位置：照片未记录位置"]
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(photo.lon, photo.lat)
    d = geom.distance(Point(x, y))
    return [f"位置：{photo.lon:.6f}°E，{photo.lat:.6f}°N",
            "与图斑距离：0 m（位于图斑内）" if d == 0 else f"与图斑距离：{d:,.0f} m"]


def _status_word(code: str) -> str:
    return label("alert_status", code)


#: Audit-log fields people recorded, with their Chinese names.
_FIELDS = {"status": "状态", "verdict": "核查结论", "note": "备注"}


def verdict_history(events: pd.DataFrame, alert_id: str) -> list[tuple[str, str, str]]:
    """(when, who, what) of the alert's audit log: detection, dispatch, verdicts, notes, photos.

    The weekly runs' updates of area and last sighting are left out (the pack
    shows the latest of them); a photo's key is left out for its file name.
    """
    ev = events[events["alert_id"] == alert_id]
    rows = []
    for e in ev.to_dict("records"):
        action, fld = _text(e.get("action")), _text(e.get("field"))
        old, new = _text(e.get("old")), _text(e.get("new"))
        if action == "created":
            what = "航拍比对发现变化，生成预警"
        elif action == "set" and fld in ("status", "verdict"):
            what = (f"{_FIELDS[fld]}：{_status_word(old)} → {_status_word(new)}" if old
                    else f"{_FIELDS[fld]}：{_status_word(new)}")
        elif action == "set" and fld == "note":
            what = f"备注：{new}"
        elif action == "photo":
            what = f"上传现场照片 {old}"
        elif action == "export":
            what = f"派发巡查（导出 {new}）"
        else:
            continue
        rows.append((beijing_time(_text(e.get("at"))), _text(e.get("by")), what))
    return rows


#: China Standard Time (北京时间): the audit log is kept in UTC, people read local time.
BEIJING = dt.timezone(dt.timedelta(hours=8))


def beijing_time(iso: str) -> str:
    """``2026-04-15T02:30:00+00:00`` -> ``2026-04-15 10:30``; a time without zone is shown as it is."""
    try:
        t = dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if t.tzinfo is not None:
        t = t.astimezone(BEIJING)
    return t.strftime("%Y-%m-%d %H:%M")


def write_evidence(workspace: Workspace | str | os.PathLike, alert_id: str, out: str | os.PathLike, *,
                   made: dt.date | None = None, force: bool = False) -> Path:
    """Write the evidence pack of ``alert_id`` to ``out`` (a PDF); return its path."""
    ws = workspace if isinstance(workspace, Workspace) else load_workspace(workspace)
    out = check_output(out, "pdf", protected=workspace_files(ws), force=force)
    store = ws.open_store()
    ev = gather_evidence(ws, store, str(alert_id), made=made)
    return _write(out, render_pdf(ev), str(alert_id))


def _write(target: Path, data: bytes, alert_id: str) -> Path:
    try:
        return write_bytes_atomic(target, data)
    except OSError as exc:
        raise OutputWriteError(f"cannot write the evidence pack of {alert_id} ({exc.strerror or exc})",
                               path=target, hint="free disk space or make the folder writable, "
                               "then run again") from exc


def write_evidence_batch(workspace: Workspace | str | os.PathLike, out_dir: str | os.PathLike, *,
                         district: str | None = None, statuses: tuple[str, ...] = ("illegal",),
                         made: dt.date | None = None, force: bool = False) -> list[Path]:
    """One pack per alert of ``district`` (all when None) whose status is in ``statuses``,
    named ``<alert_id>.pdf`` in ``out_dir``; return the paths written."""
    ws = workspace if isinstance(workspace, Workspace) else load_workspace(workspace)
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise OutputPathError("the batch output is a file, not a folder", path=folder,
                              hint="give a folder (it is created when missing)")
    store = ws.open_store()
    alerts = store.alerts()
    chosen = alerts[alerts["status"].isin(statuses)]
    if district:
        chosen = chosen[chosen["district"] == district]
    ids = [check_alert_id(i) for i in chosen["alert_id"]]  # every id checked before any is written
    targets = [check_output(folder / f"{i}.pdf", "pdf", protected=workspace_files(ws), force=force) for i in ids]
    if not ids:
        return []
    layers = _read_layers(ws, CRS.from_user_input(alerts.crs or ws.working_crs))
    written = []
    for aid, target in zip(ids, targets):
        ev = gather_evidence(ws, store, aid, alerts=alerts, layers=layers, made=made)
        written.append(_write(target, render_pdf(ev), aid))
        log.info("evidence pack of %s written to %s", aid, target)
    return written
