"""The served app's one adapter to the alert store: the same store functions as the CLI.

Everything the web app reads from or writes to the store goes through here,
so a change of the store layer is met in this one module:

* :func:`open_engine`: the store's own SQLAlchemy engine (GeoPackage or
  PostGIS), with the served app's tables (:mod:`gis.serve.tables`) created in it;
* reading alerts, their audit log and photos (``store.alerts()``,
  ``store.alert(id)``, ``store.events()``, ``store.photo(key)``);
* writing verdicts, dispatches and bulk changes in one store transaction
  each, with :func:`gis.alerts.lifecycle.apply_verdict`, the rule
  ``gis alerts set`` uses, checked against the ``rev`` the phone saw
  (:class:`gis.errors.ConflictError` when the alert changed meanwhile);
* photos stored content-addressed by the store (``Transaction.put_photo``:
  ``photos/<sha256>.<ext>``, verified on read).

A write that meets a busy store (another writer of a GeoPackage held it too
long) is tried again for a while; within one process GeoPackage writes take
turns, since SQLite has one writer at a time anyway.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
from sqlalchemy.engine import Engine

from gis.alerts.lifecycle import apply_verdict, check_transition
from gis.errors import AlertNotFoundError, StoreLockedError
from gis.schema import PARCELS, REDLINES
from gis.serve.tables import ensure_tables

log = logging.getLogger(__name__)

#: How long a write keeps trying while the store is busy.
BUSY_WAIT_S = 20.0
_gpkg_writer = threading.Lock()


def open_store(ws):
    """The workspace's alert store; an empty one is started on a workspace that has none yet."""
    store = ws.open_store()
    if not store.ready():
        store.init()
    return store


def open_engine(ws, store=None) -> Engine:
    """The engine of the store's database, with the served app's tables in it."""
    store = store if store is not None else open_store(ws)
    ensure_tables(store.engine)
    return store.engine


def _write(store, *, by: str, command: str, body: Callable[[Any], Any]) -> Any:
    """Run ``body(tx)`` in one store transaction; again while the store is busy."""
    deadline = time.monotonic() + BUSY_WAIT_S
    turn = _gpkg_writer if store.kind == "gpkg" else contextlib.nullcontext()
    while True:
        try:
            with turn, store.transaction(by=by, command=command) as tx:
                return body(tx)
        except StoreLockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --- reading ----------------------------------------------------------------------


def alerts(store) -> gpd.GeoDataFrame:
    return store.alerts()


def find_alert(store, alert_id: str) -> pd.Series | None:
    """The alert, or None when there is none with that id."""
    try:
        return store.alert(str(alert_id))
    except AlertNotFoundError:
        return None


def events_of(store, alert_id: str) -> pd.DataFrame:
    ev = store.events()
    return ev[ev["alert_id"] == str(alert_id)]


def photo_bytes(store, sha256: str) -> tuple[bytes, str] | None:
    """(bytes, extension) of the stored photo with this hash, verified by the store; None if none."""
    photos = store.photos()
    hit = photos[photos["sha256"] == sha256]
    if hit.empty:
        return None
    ext = str(hit["ext"].iloc[0])
    return store.photo(f"photos/{sha256}{ext}"), ext


def workspace_districts(ws) -> list[str]:
    """Every district / town office the workspace's layers and alerts name."""
    found: set[str] = set()
    for path, schema in ((ws.redlines, REDLINES), (ws.parcels, PARCELS)):
        try:
            frame = pyogrio.read_dataframe(path, read_geometry=False)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
            log.warning("districts not read from %s: %s", path, exc)
            continue
        names = schema.aliases()
        for col in frame.columns:
            if names.get(str(col).strip().lower()) == "district":
                found |= {str(v) for v in frame[col].dropna()}
    found |= {str(v) for v in open_store(ws).alerts()["district"] if v}
    return sorted(d for d in found if d)


class LayerOutlines:
    """Red line and parcel outlines in EPSG:4326, read once, for an alert's small map."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self._frames: dict[str, gpd.GeoDataFrame | None] = {}

    def _frame(self, path: Path, schema) -> gpd.GeoDataFrame | None:
        key = str(path)
        if key not in self._frames:
            try:
                gdf = pyogrio.read_dataframe(path)
                names = schema.aliases()
                gdf = gdf.rename(columns={c: names.get(str(c).strip().lower(), c) for c in gdf.columns
                                          if c != "geometry"})
                self._frames[key] = gdf.to_crs("EPSG:4326") if gdf.crs else None
            except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
                log.warning("outlines not read from %s: %s", path, exc)
                self._frames[key] = None
        return self._frames[key]

    def outline(self, kind: str, ident: str) -> dict | None:
        path, schema = (self.ws.redlines, REDLINES) if kind == "redline" else (self.ws.parcels, PARCELS)
        gdf = self._frame(path, schema)
        if gdf is None or not ident or schema.id_column not in gdf:
            return None
        hit = gdf[gdf[schema.id_column].astype(str) == str(ident)]
        if hit.empty:
            return None
        return hit.geometry.iloc[0].__geo_interface__


# --- writing ----------------------------------------------------------------------


def record_verdict(store, alert_id: str, *, by: str, status: str | None, note: str | None = None,
                   reason: str | None = None, expected_rev: int | None = None,
                   photos: Iterable[Any] = ()) -> list[str]:
    """Status, note, false-alarm reason and photos (checked uploads) of one alert, in one transaction;
    returns the photos' keys.

    Raises :class:`ConflictError` when ``expected_rev`` is given and the alert's
    ``rev`` differs (nothing is written), :class:`InvalidTransitionError` for a
    status the lifecycle does not allow from the current one.
    """
    photos = list(photos)

    def body(tx):
        keys = [tx.put_photo(up.data, up.kind, name=up.name, by=by) for up in photos]
        apply_verdict(tx, alert_id, status=status, by=by, note=note, photos=keys, rev=expected_rev)
        if reason:
            tx.event(alert_id, "set", "reason", "", reason, by=by)
        for up, key in zip(photos, keys):
            tx.event(alert_id, "photo", "photos", up.name, key, by=by)
        return keys

    return _write(store, by=by, command=f"serve verdict {alert_id}", body=body)


def add_photo(store, alert_id: str, upload: Any, *, by: str) -> str:
    """One more photo on an alert; returns its key. Photos only add up: no conflict, ``rev`` kept."""

    def body(tx):
        key = tx.put_photo(upload.data, upload.kind, name=upload.name, by=by)
        row = tx.alert(alert_id)
        have = [p for p in str(row["photos"]).split(";") if p]
        if key not in have:
            tx.update(alert_id, {"photos": ";".join(have + [key])}, rev=int(row["rev"]), bump=False)
            tx.event(alert_id, "photo", "photos", upload.name, key, by=by)
        return key

    return _write(store, by=by, command=f"serve photo {alert_id}", body=body)


def change_status(store, alert_ids: list[str], status: str, *, by: str, team: str = "") -> list[str]:
    """Set many alerts to ``status`` in one transaction (all or none); ``team`` names a dispatch."""

    def body(tx):
        for aid in alert_ids:  # every transition checked before any is applied
            check_transition(aid, tx.alert(aid)["status"], status)
        for aid in alert_ids:
            apply_verdict(tx, aid, status=status, by=by)
            if team:
                tx.event(aid, "dispatch", "team", "", team, by=by)
        return list(alert_ids)

    return _write(store, by=by, command=f"serve {status} x{len(alert_ids)}", body=body)
