"""Field photos arriving over HTTP: checked before anything is stored, then placed on site.

:func:`read_upload` reads an upload up to the size limit and refuses, with a
clear :class:`gis.errors.UploadError` (HTTP 400) and before anything is
stored: a name with a path in it (``../../x.jpg``), a file over the limit,
content that is not a JPEG, PNG, HEIC/HEIF or WebP photo (judged by
:func:`gis.alerts.lifecycle.photo_kind`, never by the name), and a SHA-256
that does not match what the phone computed.

:func:`photo_position` reads the photo's EXIF GPS position and time when it
has them (Pillow), else takes what the phone sent; :func:`distance_to_alert`
measures in the workspace's projected CRS how far that is from the alert.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import math
from dataclasses import dataclass
from typing import Any, BinaryIO

from PIL import Image, UnidentifiedImageError
from pyproj import Transformer
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from gis.alerts.lifecycle import PHOTO_HEAD, photo_kind
from gis.errors import UploadError

log = logging.getLogger(__name__)

_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867


@dataclass(frozen=True)
class Upload:
    """A checked photo upload, held in memory (at most the size limit)."""

    name: str
    data: bytes
    sha256: str
    kind: str  # the extension of what it is: .jpg, .png, .webp, .heic, .heif


def safe_name(name: str | None) -> str:
    """The uploaded file's name, refused when it carries a path (only shown to people, never used as one)."""
    name = name or "photo"
    if any(c in name for c in "/\\\x00") or name in (".", "..") or not name.isprintable():
        raise UploadError(f"the file name {name!r} contains a path",
                          hint="send the photo with a plain file name such as IMG_0001.jpg")
    return name[:200]


def read_upload(stream: BinaryIO, name: str | None, *, limit: int, sha256: str | None = None) -> Upload:
    """Read and check one uploaded photo (see the module docstring); nothing is stored here."""
    name = safe_name(name)
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise UploadError(f"{name}: the photo is larger than {limit / 1024 / 1024:.0f} MB",
                          hint="send a smaller photo (the phone's camera default is enough)")
    if not data:
        raise UploadError(f"{name}: the photo is empty (0 bytes)", hint="take the photo again")
    kind = photo_kind(data[:PHOTO_HEAD])
    if kind is None:
        raise UploadError(f"{name}: not a photo (its content is not JPEG, PNG, HEIC/HEIF or WebP)",
                          hint="send the photo as the camera wrote it")
    digest = hashlib.sha256(data).hexdigest()
    if sha256 and sha256.strip().lower() != digest:
        raise UploadError(f"{name}: the photo arrived damaged (SHA-256 {digest[:12]}... is not "
                          f"the {sha256.strip()[:12]}... the phone computed)",
                          hint="the phone sends it again from its queue")
    return Upload(name, data, digest, kind)


def _degrees(value: Any, ref: Any) -> float | None:
    try:
        d, m, s = (float(v) for v in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    deg = d + m / 60 + s / 3600
    return -deg if str(ref).upper() in ("S", "W") else deg


def exif_position(data: bytes) -> tuple[float | None, float | None, str | None]:
    """(lat, lon, taken_at ISO) from a photo's EXIF; None where it has none or cannot be read."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            exif = im.getexif()
            gps = exif.get_ifd(_GPS_IFD)
            sub = exif.get_ifd(_EXIF_IFD)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:  # HEIC without a plugin...
        log.debug("no EXIF read from a photo: %s", exc)
        return None, None, None
    lat = _degrees(gps.get(2), gps.get(1)) if gps.get(2) else None
    lon = _degrees(gps.get(4), gps.get(3)) if gps.get(4) else None
    taken = sub.get(_DATETIME_ORIGINAL)
    taken_at = None
    if taken:
        try:
            taken_at = dt.datetime.strptime(str(taken).strip(), "%Y:%m:%d %H:%M:%S").isoformat()
        except ValueError:
            taken_at = None
    return lat, lon, taken_at


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def photo_position(data: bytes, phone_lat: Any = None, phone_lon: Any = None,
                   phone_taken_at: str | None = None) -> dict[str, Any]:
    """Where and when a photo was taken: EXIF first (the camera's own record), else the phone's."""
    lat, lon, taken_at = exif_position(data)
    source = "exif"
    if lat is None or lon is None:
        lat, lon, source = _finite(phone_lat), _finite(phone_lon), "phone"
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        lat = lon = None
        source = ""
    return {"lat": lat, "lon": lon, "position_from": source,
            "taken_at": taken_at or (str(phone_taken_at)[:32] if phone_taken_at else None)}


def distance_to_alert(geometry: BaseGeometry, crs: Any, lat: float | None, lon: float | None) -> float | None:
    """Metres from (lat, lon) to the alert's outline (0 inside), measured in the store's projected CRS."""
    if lat is None or lon is None or geometry is None or geometry.is_empty:
        return None
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    return float(geometry.distance(Point(x, y)))
