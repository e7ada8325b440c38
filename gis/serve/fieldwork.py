"""Verdicts and photos from the field: check, store once, answer; and alerts as JSON.

The route handlers of :mod:`gis.serve.api` and the batch of ``POST /api/sync``
call the same two functions, :func:`submit_verdict` and :func:`submit_photo`:

1. the alert is looked up and the user checked (an alert outside the user's
   districts is "not found", exactly as one that does not exist);
2. an id the phone sent before gets the answer kept the first time
   (:mod:`gis.serve.records`): a re-send is a no-op;
3. every upload is checked (:func:`gis.serve.photos.read_upload`) and the
   transition too, before anything is stored;
4. one store write (:mod:`gis.serve.storage`), with the phone's ``rev`` as an
   optimistic check: a stale one is a 409 carrying the server's alert;
5. each photo's position is compared with the alert: farther than
   ``photo_max_distance_m`` is "not on site" (kept, and shown to the office).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
from collections.abc import Mapping
from typing import Any, BinaryIO

import geopandas as gpd
import pandas as pd

from gis.alerts.lifecycle import check_transition
from gis.errors import AlertNotFoundError, ConflictError, GisError, InputError, UploadError
from gis.schema import FALSE_ALARM_REASONS
from gis.serve import permissions, records, storage
from gis.serve.accounts import User
from gis.serve.deps import error_body
from gis.serve.photos import distance_to_alert, photo_position, read_upload
from gis.serve.queries import days_without_verdict

#: Fields of an alert answered to the phone and other API clients.
ALERT_FIELDS = ("alert_id", "district", "status", "kind", "area_mu", "area_m2", "rev", "project_id",
                "parcel_id", "first_seen", "last_seen", "seen_count", "post_freeze", "growing",
                "status_since", "verdict", "note", "freeze_date", "confidence", "updated_by", "updated_at")
MAX_BATCH = 200
_CHIP_DATE = re.compile(r"_(\d{4}-\d{2}-\d{2})_(?:before|after)\.png$")


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def alerts_json(frame: pd.DataFrame, ctx, *, detail: bool = False) -> list[dict[str, Any]]:
    """Alerts as the API answers them: fields, centroid and outline in EPSG:4326, photos."""
    if frame.empty:
        return []
    geo = frame.to_crs("EPSG:4326") if frame.crs is not None else frame
    photos = records.photos_of(ctx.engine, frame["alert_id"])
    waits = days_without_verdict(frame)  # None once the alert has a verdict
    out = []
    for (idx, row), g in zip(frame.iterrows(), geo.geometry):
        item = {k: _plain(row[k]) for k in ALERT_FIELDS if k in row}
        item["days_waiting"] = None if pd.isna(waits[idx]) else int(waits[idx])
        for which in ("before", "after"):
            chip = str(row.get(f"chip_{which}") or "")
            item[f"has_chip_{which}"] = bool(chip)
            dated = _CHIP_DATE.search(chip)  # chips/<alert>_<survey date>_<which>.png
            item[f"chip_{which}_date"] = dated.group(1) if dated else None
        if g is not None and not g.is_empty:
            c = g.centroid
            item["lon"], item["lat"] = round(c.x, 7), round(c.y, 7)
            item["geometry"] = g.__geo_interface__
        mine = photos.get(str(row["alert_id"]), [])
        item["photos"] = [{"sha256": p["sha256"], "url": f"/api/photos/{p['sha256']}",
                           "on_site": p["on_site"], "distance_m": p["distance_m"],
                           "taken_at": p["taken_at"], "uploaded_by": p["uploaded_by"]} for p in mine]
        item["not_on_site"] = sum(1 for p in mine if p["on_site"] is False)
        if detail:
            item["redline"] = ctx.outlines.outline("redline", row["project_id"])
            item["parcel"] = ctx.outlines.outline("parcel", row["parcel_id"])
            ev = storage.events_of(ctx.store, row["alert_id"])
            item["history"] = [{k: _plain(e[k]) for k in ("at", "by", "action", "field", "old", "new")}
                               for _, e in ev.iterrows()]
            reasons = [h["new"] for h in item["history"] if h["field"] == "reason"]
            item["reason"] = reasons[-1] if reasons else ""
        out.append(item)
    return out


def alert_json(row: pd.Series, ctx, *, detail: bool = True) -> dict[str, Any]:
    frame = gpd.GeoDataFrame([row.drop("geometry")], geometry=[row.geometry], crs=ctx.crs)
    return alerts_json(frame, ctx, detail=detail)[0]


def visible_alert(ctx, user: User, alert_id: str) -> pd.Series:
    """The alert if ``user`` may see it; "not found" otherwise, exactly as for a missing one."""
    row = storage.find_alert(ctx.store, alert_id)
    if row is None or not permissions.can_view_alert(user, row):
        raise AlertNotFoundError(f"no alert {alert_id!r}", ids=[alert_id],
                                 hint="list your alerts with GET /api/alerts")
    return row


def _int_or_none(value: Any, what: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise InputError(f"{what} {value!r} is not a whole number", hint=f"send {what} as a number") from None


def _replay(ctx, user: User, client_id: str | None) -> dict | None:
    kept = records.receipt(ctx.engine, client_id)
    if kept is None:
        return None
    if kept["username"] != user.username:
        raise InputError(f"client_id {client_id!r} was used by another user",
                         hint="make a new id (a UUID) for each verdict and photo")
    return {**kept["answer"], "replayed": True}


def given(meta: Mapping[str, Any], *names: str) -> Any:
    """The first of ``names`` that ``meta`` holds a value for (an empty form field is no value)."""
    for name in names:
        v = meta.get(name)
        if v is not None and str(v).strip() != "":
            return v
    return None


def _place(ctx, row: pd.Series, upload, meta: Mapping[str, Any], user: User, key: str) -> dict:
    # the photo's own position (photo_lat/photo_lon), else the phone's when it sent the photo (lat/lon)
    pos = photo_position(upload.data, given(meta, "photo_lat", "lat"), given(meta, "photo_lon", "lon"),
                         given(meta, "taken_at"))
    dist = distance_to_alert(row.geometry, ctx.crs, pos["lat"], pos["lon"])
    on_site = None if dist is None else dist <= ctx.settings.photo_max_distance_m
    return records.add_photo_record(
        ctx.engine, sha256=upload.sha256, alert_id=str(row["alert_id"]), key=key, name=upload.name,
        size=len(upload.data), uploaded_by=user.username, distance_m=dist, on_site=on_site,
        photo_client_id=meta.get("photo_client_id") or None, **pos)


def submit_verdict(ctx, user: User, alert_id: str, fields: Mapping[str, Any],
                   photos: list[tuple[BinaryIO, str, Mapping[str, Any]]] = ()) -> dict[str, Any]:
    """Record a verdict (status, note, reason, photos) from the field; return the updated alert."""
    row = visible_alert(ctx, user, alert_id)
    permissions.check_record_verdict(user, row)
    client_id = (fields.get("client_id") or "").strip() or None
    replayed = _replay(ctx, user, client_id)
    if replayed is not None:
        return replayed
    status = (fields.get("status") or "").strip() or row["status"]
    reason = (fields.get("reason") or "").strip() or None
    if reason is not None and reason not in FALSE_ALARM_REASONS:
        raise InputError(f"unknown false-alarm reason {reason!r}", hint="use one of " + ", ".join(FALSE_ALARM_REASONS))
    if reason is not None and status != "false_alarm":
        raise InputError("a reason is given only with status false_alarm", hint="leave reason empty")
    rev = _int_or_none(fields.get("rev"), "rev")
    note = fields.get("note")
    check_transition(alert_id, row["status"], status)
    limit = ctx.settings.upload_limit_bytes
    uploads = [(read_upload(f, name, limit=limit, sha256=meta.get("sha256")), meta) for f, name, meta in photos]
    try:
        keys = storage.record_verdict(ctx.store, alert_id, by=user.username, status=status,
                                      note=None if note is None else str(note), reason=reason,
                                      expected_rev=rev, photos=[up for up, _ in uploads])
    except ConflictError as exc:
        exc.current = alert_json(storage.find_alert(ctx.store, alert_id), ctx)
        raise
    for (up, meta), key in zip(uploads, keys):
        _place(ctx, row, up, {**fields, **meta}, user, key)
    answer = alert_json(storage.find_alert(ctx.store, alert_id), ctx)
    return records.keep_receipt(ctx.engine, client_id, kind="verdict", username=user.username,
                                alert_id=alert_id, answer=answer)


def submit_photo(ctx, user: User, alert_id: str, stream: BinaryIO, name: str,
                 meta: Mapping[str, Any]) -> dict[str, Any]:
    """One photo of an alert on its own; answers the SHA-256 the server stored."""
    row = visible_alert(ctx, user, alert_id)
    permissions.check_upload_photo(user, row)
    client_id = (meta.get("photo_client_id") or "").strip() or None
    replayed = _replay(ctx, user, client_id)
    if replayed is not None:
        return replayed
    up = read_upload(stream, name, limit=ctx.settings.upload_limit_bytes, sha256=meta.get("sha256"))
    key = storage.add_photo(ctx.store, alert_id, up, by=user.username)
    rec = _place(ctx, row, up, meta, user, key)
    answer = {"alert_id": alert_id, "sha256": rec["sha256"], "stored": True, "size": rec["size"],
              "on_site": rec["on_site"], "distance_m": rec["distance_m"], "url": f"/api/photos/{rec['sha256']}"}
    return records.keep_receipt(ctx.engine, client_id, kind="photo", username=user.username,
                                alert_id=alert_id, answer=answer)


def _photo_of_item(p: Mapping[str, Any]) -> tuple[BinaryIO, str, Mapping[str, Any]]:
    try:
        data = base64.b64decode(str(p.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        raise UploadError("a photo's data is not base64", hint="send the bytes base64-encoded") from None
    return io.BytesIO(data), str(p.get("name") or "photo"), p


def sync_batch(ctx, user: User, items: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Queued items (``type`` verdict or photo, photos base64 in ``data``), answered one by one.

    A refused item is answered with its error and reason; the others go on.
    """
    if len(items) > MAX_BATCH:
        raise InputError(f"{len(items)} items in one batch (at most {MAX_BATCH})", hint="send the queue in parts")
    out = []
    for k, item in enumerate(items):
        ident = item.get("client_id") or item.get("photo_client_id") or ""
        try:
            if not isinstance(item, Mapping):
                raise InputError(f"item {k} is not an object", hint="send a list of objects")
            alert_id = str(item.get("alert_id", ""))
            if item.get("type") == "photo":
                f, name, meta = _photo_of_item(item)
                body = submit_photo(ctx, user, alert_id, f, name, meta)
            elif item.get("type", "verdict") == "verdict":
                body = submit_verdict(ctx, user, alert_id, item,
                                      [_photo_of_item(p) for p in item.get("photos") or ()])
            else:
                raise InputError(f"unknown item type {item.get('type')!r}", hint="use verdict or photo")
            out.append({"index": k, "client_id": ident, "status": 200, "ok": True, "result": body})
        except GisError as exc:
            body = error_body(exc)
            out.append({"index": k, "client_id": ident, "status": body["status"], "ok": False, "error": body})
    return out
