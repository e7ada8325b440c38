"""Alert statuses, the transitions allowed between them, and recording verdicts.

new -> dispatched (sent to a patrol team) -> illegal / legal (permit exists) /
false_alarm -> (illegal) demolished -> closed. A desk check may close a new
alert as a false alarm without dispatching it. Anything else raises
:class:`InvalidTransitionError` naming the allowed next statuses.

A verdict is evidence: :func:`set_alert` records who set what and when in the
audit log, stores field photos in the store by their content hash (so the
original can be deleted afterwards, and the same photo twice is stored once)
and writes all of it in one short store transaction: the alert's row,
checked against its revision, and its audit events. A photo must be
one by content (JPEG, PNG, HEIC/HEIF or WebP, :func:`check_photo`), whatever
its name says; it is stored under the extension of what it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from gis.atomic import atomic_path
from gis.errors import InputError, InvalidTransitionError, PhotoError
from gis.alerts.store import AlertStore, Transaction, now_iso
from gis.schema import ALERT_STATUSES, VERDICT_STATUSES

#: Alert status -> the statuses it may become (codes of :data:`gis.schema.ALERT_STATUSES`).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("dispatched", "false_alarm"),
    "dispatched": ("illegal", "legal", "false_alarm"),
    "illegal": ("demolished",),
    "legal": ("closed",),
    "false_alarm": ("closed",),
    "demolished": ("closed",),
    "closed": (),
}
PHOTO_DIR = "photos"


def check_transition(alert_id: str, current: str, requested: str) -> None:
    """Raise InvalidTransitionError unless ``current -> requested`` is allowed (or a no-op)."""
    if requested not in ALERT_STATUSES:
        raise InvalidTransitionError(
            f"alert {alert_id}: unknown status {requested!r}", ids=[alert_id],
            hint="use one of " + ", ".join(ALERT_STATUSES))
    if requested == current:
        return
    allowed = TRANSITIONS.get(current, ())
    if requested not in allowed:
        nxt = ", ".join(allowed) if allowed else "none (the alert is closed)"
        raise InvalidTransitionError(
            f"alert {alert_id} is {current!r} and cannot become {requested!r}", ids=[alert_id],
            hint=f"allowed next statuses from {current!r}: {nxt}")


#: Brands of an ISO-BMFF ``ftyp`` box that make the file a HEIC/HEIF image.
HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"})
HEIF_BRANDS = HEIC_BRANDS | {b"mif1", b"msf1", b"heif"}
#: Bytes of a photo's start that :func:`photo_kind` looks at.
PHOTO_HEAD = 64


def photo_kind(head: bytes) -> str | None:
    """The file extension of a photo from its first bytes (``.jpg``, ``.png``, ``.webp``,
    ``.heic``, ``.heif``), or None when they are not those of JPEG, PNG, WebP or HEIF.

    Judged by content, never by name, so the web app can call it on an upload's bytes.
    """
    if head[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[4:8] == b"ftyp":
        size = int.from_bytes(head[:4], "big")
        # major brand, then the compatible brands (skipping the minor version)
        brands = {head[8:12]} | {head[i:i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
        if brands & HEIC_BRANDS:
            return ".heic"
        if brands & HEIF_BRANDS:
            return ".heif"
    return None


def check_photo(photo: str | os.PathLike) -> str:
    """Raise :class:`PhotoError` unless ``photo`` is a non-empty JPEG, PNG, HEIC/HEIF or
    WebP file (judged by its content); return the extension it is stored under."""
    src = _existing(photo)
    with open(src, "rb") as f:
        return _kind_or_raise(f.read(PHOTO_HEAD), src)


def _existing(photo: str | os.PathLike) -> Path:
    src = Path(photo)
    if not src.is_file():
        raise PhotoError("photo not found", path=src, hint="check the path of the photo")
    return src


def _kind_or_raise(head: bytes, src: Path) -> str:
    if not head:
        raise PhotoError("the photo is an empty file (0 bytes)", path=src,
                         hint="copy the photo again from the camera or phone")
    kind = photo_kind(head)
    if kind is None:
        raise PhotoError("not a photo: its content is not JPEG, PNG, HEIC/HEIF or WebP", path=src,
                         hint="give the photo file as the camera or phone wrote it")
    return kind


def _key(f: BinaryIO, src: Path) -> str:
    """Check and hash the open photo ``f``: ``photos/<sha256 of the content>.<ext>``."""
    kind = _kind_or_raise(f.read(PHOTO_HEAD), src)
    f.seek(0)
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return f"{PHOTO_DIR}/{h.hexdigest()}{kind}"


def photo_key(photo: str | os.PathLike) -> str:
    """``photos/<sha256 of the content>.<ext>``: where the photo lives in the store folder.

    The photo is checked (:func:`check_photo`); the extension comes from its content,
    never from its name.
    """
    src = _existing(photo)
    with open(src, "rb") as f:
        return _key(f, src)


def store_photo(store_dir: str | os.PathLike, photo: str | os.PathLike) -> str:
    """Copy ``photo`` to ``store_dir/photos/<sha256>.<ext>``; return that path relative to store_dir.

    The content is checked, hashed and copied from one open file, so what is stored
    is what was checked even if the name is replaced meanwhile.
    """
    src = _existing(photo)
    with open(src, "rb") as f:
        rel = _key(f, src)
        target = Path(store_dir) / rel
        if not target.exists():  # content-addressed: an existing file is this photo already
            f.seek(0)
            with atomic_path(target) as tmp, open(tmp, "wb") as out:
                shutil.copyfileobj(f, out, 1 << 20)
    return rel


def read_photo(photo: str | os.PathLike) -> tuple[bytes, str]:
    """The bytes of a photo file and the extension of what it is (checked by content)."""
    src = _existing(photo)
    data = src.read_bytes()
    return data, _kind_or_raise(data[:PHOTO_HEAD], src)


def apply_verdict(tx: Transaction, alert_id: str, *, status: str | None, by: str, note: str | None = None,
                  photos: Iterable[str] = (), at: str | None = None, today: dt.date | None = None,
                  rev: int | None = None) -> None:
    """Change one alert in a pending transaction: one row, checked against its revision.

    ``status`` None keeps the current one; ``photos`` are keys (``photos/<sha256>.<ext>``)
    already in the transaction (:meth:`Transaction.put_photo`) or copied under the store
    folder (:func:`store_photo`). ``rev`` is the revision the caller saw (a web form, a
    patrol file): if the alert changed since, :class:`ConflictError` and nothing is written.
    """
    row = tx.alert(alert_id)
    seen = int(row["rev"]) if rev is None else int(rev)
    current = row["status"]
    status = status or current
    check_transition(alert_id, current, status)
    at = at or now_iso()
    day = (today or dt.date.today()).isoformat()
    changes: dict[str, Any] = {}
    if status != current:
        changes["status"] = status
        changes["status_since"] = day
        if status in VERDICT_STATUSES:
            changes["verdict"] = status
            # growth is measured from the area the patrol saw
            changes["verdict_area_m2"] = float(row["area_m2"])
            changes["growing"] = False
    if note is not None and note != row["note"]:
        changes["note"] = note
    existing = [p for p in row["photos"].split(";") if p]
    added = [p for p in photos if p not in existing]
    for key in added:
        tx.ensure_photo(key, by=by)
    if added:
        changes["photos"] = ";".join(existing + added)
    if not changes:
        if rev is not None and seen != int(row["rev"]):
            tx.update(alert_id, {}, rev=seen, bump=False)  # names the conflict
        return
    for col, new in changes.items():
        if col not in ("status_since", "verdict_area_m2", "growing"):
            tx.event(alert_id, "set", col, row[col], new, by=by)
    changes.update(updated_by=by, updated_at=at)
    tx.update(alert_id, changes, rev=seen)


def set_alert(store: AlertStore, alert_id: str, *, status: str | None = None, by: str,
              note: str | None = None, photos: Iterable[str | os.PathLike] = (),
              today: dt.date | None = None, rev: int | None = None) -> pd.Series:
    """Record a status/verdict, note and photos for one alert in one transaction; return it.

    ``rev``: the revision the caller saw; an alert changed since is a :class:`ConflictError`.
    """
    if not by or not str(by).strip():
        raise InputError("who set the verdict is required", hint="pass --by NAME")
    current = store.alert(alert_id)  # raises AlertNotFoundError before reading any photo
    check_transition(alert_id, current["status"], status or current["status"])
    photos = list(photos)
    loaded = [read_photo(p) for p in photos]  # every photo checked before any is stored
    with store.transaction(by=by, command=f"alerts set {alert_id}") as tx:
        keys = [tx.put_photo(data, ext, name=Path(p).name, by=by) for p, (data, ext) in zip(photos, loaded)]
        apply_verdict(tx, alert_id, status=status, by=by, note=note, photos=keys, today=today, rev=rev)
        for src, key in zip(photos, keys):
            tx.event(alert_id, "photo", "photos", Path(src).name, key, by=by)
    return store.alert(alert_id)
