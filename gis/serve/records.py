"""What the server received from the field: answers keyed by the phone's ids, and photo records.

A phone makes an id for every verdict and photo it records (``client_id``,
``photo_client_id``). The first time one arrives, the answer is kept in
``field_receipts``; when the same id arrives again (the phone lost the
answer, or re-sends a queue after a day offline) the kept answer is returned
and nothing is recorded twice.

``field_photos`` holds one row per photo and alert: SHA-256, where the store
keeps it, who sent it, when and where it was taken and whether that is on
site. Lookups by hash go through :func:`alerts_of_photo`, so a photo is
served only to a user who may see one of its alerts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from gis.serve.tables import field_photos, field_receipts


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def receipt(engine: Engine, client_id: str | None) -> dict | None:
    """The answer kept for ``client_id`` (None: never seen, or no id given)."""
    if not client_id:
        return None
    with engine.connect() as conn:
        row = conn.execute(sa.select(field_receipts).where(field_receipts.c.client_id == client_id)).first()
    return None if row is None else {**dict(row._mapping), "answer": json.loads(row.answer)}


def keep_receipt(engine: Engine, client_id: str | None, *, kind: str, username: str, alert_id: str,
                 answer: dict) -> dict:
    """Keep the answer for ``client_id``; if another request kept one first, that one wins."""
    if not client_id:
        return answer
    try:
        with engine.begin() as conn:
            conn.execute(field_receipts.insert().values(
                client_id=client_id, kind=kind, username=username, alert_id=str(alert_id), at=_now(),
                answer=json.dumps(answer, ensure_ascii=False, default=str)))
    except IntegrityError:
        first = receipt(engine, client_id)
        return first["answer"] if first else answer
    return answer


def add_photo_record(engine: Engine, **values: Any) -> dict:
    """Record a photo of an alert (once per hash and alert); return the kept record."""
    values.setdefault("uploaded_at", _now())
    try:
        with engine.begin() as conn:
            conn.execute(field_photos.insert().values(**values))
    except IntegrityError:
        pass  # the same photo of the same alert: the first record stands
    return photo_record(engine, values["sha256"], values["alert_id"])


def photo_record(engine: Engine, sha256: str, alert_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(field_photos).where(field_photos.c.sha256 == sha256,
                                                         field_photos.c.alert_id == str(alert_id))).first()
    return None if row is None else dict(row._mapping)


def photos_of(engine: Engine, alert_ids: Iterable[str]) -> dict[str, list[dict]]:
    """alert id -> its photo records, oldest first."""
    ids = [str(a) for a in alert_ids]
    out: dict[str, list[dict]] = {a: [] for a in ids}
    if not ids:
        return out
    q = sa.select(field_photos).order_by(field_photos.c.photo_id)
    if len(ids) < 500:
        q = q.where(field_photos.c.alert_id.in_(ids))
    with engine.connect() as conn:
        for row in conn.execute(q):
            if row.alert_id in out:
                out[row.alert_id].append(dict(row._mapping))
    return out


def alerts_of_photo(engine: Engine, sha256: str) -> list[str]:
    """Ids of the alerts a photo (by hash) was recorded for."""
    with engine.connect() as conn:
        return list(conn.execute(sa.select(field_photos.c.alert_id)
                                 .where(field_photos.c.sha256 == sha256)).scalars())


def photos_off_site(engine: Engine) -> list[dict]:
    """Every photo taken farther from its alert than allowed, newest first (for the office)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(field_photos).where(field_photos.c.on_site.is_(False))
                            .order_by(field_photos.c.photo_id.desc()))
        return [dict(r._mapping) for r in rows]
