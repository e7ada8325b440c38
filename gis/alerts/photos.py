"""Field photos in the store, by content: the ``photos`` table.

A photo is stored once under the SHA-256 of its bytes (its key, as alerts
name it, is ``photos/<sha256>.<ext>``), with its original file name, size,
when and by whom it was uploaded, and when and where it was taken when the
photo says so (EXIF ``DateTimeOriginal`` and GPS, read with Pillow). It is
checked to be a JPEG, PNG, HEIC/HEIF or WebP by content before it is
written (:func:`gis.alerts.lifecycle.photo_kind`), its hash is verified again
on every read, and no command deletes it.

Both backends keep the bytes in the table (so a web server on another
machine serves them from PostGIS). A GeoPackage store also keeps a copy of
each photo as a file under ``photos/`` beside it, as gis 0.1.0 did, for
QGIS's attachment widget and people browsing the folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from gis.atomic import atomic_path
from gis.errors import PhotoError, StoreCorruptError

log = logging.getLogger(__name__)

PHOTO_DIR = "photos"


def photo_key(sha256: str, ext: str) -> str:
    return f"{PHOTO_DIR}/{sha256}{ext}"


def split_key(key: str) -> tuple[str, str]:
    """``photos/<sha256>.<ext>`` -> (sha256, ".ext")."""
    name = Path(key).name
    stem, dot, ext = name.partition(".")
    return stem, (dot + ext) if dot else ""


def exif_facts(data: bytes) -> dict[str, Any]:
    """``taken_at`` (ISO), ``lat`` and ``lon`` (WGS 84 degrees) from a photo's EXIF, when it has them."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            exif = im.getexif()
    except Exception:  # noqa: BLE001 - any image Pillow cannot read simply has no facts
        return {}
    out: dict[str, Any] = {}
    taken = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)  # DateTimeOriginal, DateTime
    if taken:
        try:
            out["taken_at"] = dt.datetime.strptime(str(taken).strip("\x00 "), "%Y:%m:%d %H:%M:%S").isoformat()
        except ValueError:
            pass
    gps = exif.get_ifd(0x8825)
    try:
        lat = _degrees(gps[2]) * (-1 if str(gps.get(1, "N")).upper().startswith("S") else 1)
        lon = _degrees(gps[4]) * (-1 if str(gps.get(3, "E")).upper().startswith("W") else 1)
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            out["lat"], out["lon"] = lat, lon
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
        pass
    return out


def _degrees(dms) -> float:
    d, m, s = (float(v) for v in dms)
    return d + m / 60 + s / 3600


def put_photo(conn: sa.Connection, table: sa.Table, data: bytes, ext: str, *, name: str, by: str,
              at: str) -> str:
    """Store ``data`` (already checked to be a photo of kind ``ext``) once; return its key."""
    sha = hashlib.sha256(data).hexdigest()
    if conn.execute(sa.select(table.c.sha256).where(table.c.sha256 == sha)).first() is None:
        conn.execute(table.insert().values(sha256=sha, ext=ext, name=name, size=len(data),
                                           uploaded_at=at, uploaded_by=by, data=data,
                                           **exif_facts(data)))
    return photo_key(sha, ext)


def get_photo(conn: sa.Connection, table: sa.Table, key: str, *, where: str = "") -> bytes:
    """The bytes of the photo ``key``, verified against its hash."""
    sha, _ = split_key(key)
    data = conn.execute(sa.select(table.c.data).where(table.c.sha256 == sha)).scalar()
    if data is None:
        raise PhotoError(f"no photo {key} in the store", path=where,
                         hint="list an alert's photos with `gis alerts show`")
    data = bytes(data)
    if hashlib.sha256(data).hexdigest() != sha:
        raise StoreCorruptError(f"photo {key}: its bytes no longer match their SHA-256", path=where,
                                hint="restore the store from a backup (`gis store restore`); "
                                     "`gis store check` lists every damaged photo")
    return data


def bad_photos(conn: sa.Connection, table: sa.Table) -> list[str]:
    """Keys of the photos whose bytes do not match their hash (read one at a time)."""
    bad = []
    for sha, ext in conn.execute(sa.select(table.c.sha256, table.c.ext)).all():
        data = conn.execute(sa.select(table.c.data).where(table.c.sha256 == sha)).scalar()
        if data is None or hashlib.sha256(bytes(data)).hexdigest() != sha:
            bad.append(photo_key(sha, ext))
    return bad


def write_file_copy(store_dir: Path, key: str, data: bytes) -> None:
    """The photo as a file under the store folder (GeoPackage stores), unless it is there."""
    target = Path(store_dir) / key
    if target.exists():
        return
    with atomic_path(target) as tmp:
        Path(tmp).write_bytes(data)


def read_folder_photos(store_dir: Path, keys: list[str]) -> dict[str, bytes]:
    """Photo files of a gis 0.1.0 store (``photos/<sha256>.<ext>`` beside it) whose bytes
    match their names; a missing or altered file is logged and left for `gis store check`."""
    found: dict[str, bytes] = {}
    for key in keys:
        path = Path(store_dir) / key
        sha, _ = split_key(key)
        try:
            data = path.read_bytes()
        except OSError:
            log.warning("photo %s named by an alert is missing from %s", key, store_dir)
            continue
        if hashlib.sha256(data).hexdigest() != sha:
            log.warning("photo file %s does not match its hash: not taken into the store", path)
            continue
        found[key] = data
    return found
