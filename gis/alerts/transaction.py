"""One write transaction on the alert store, and the alerts' frame shape.

A :class:`Transaction` is handed out by :meth:`gis.alerts.store.AlertStore.transaction`
over an open database transaction. It writes rows, never a whole file:

* :meth:`Transaction.alert` reads one alert (locking its row on PostGIS);
* :meth:`Transaction.update` changes some columns of one alert a person
  edited, only if its ``rev`` is still the one read (``UPDATE ... WHERE
  alert_id = ? AND rev = ?``), and bumps ``rev``; otherwise :class:`ConflictError`;
* :meth:`Transaction.merge_run` writes a weekly run's result: new alerts
  inserted, and on existing ones only the columns a run owns that changed
  (never status, verdict, note, photos or rev), so a verdict recorded while
  the run was detecting is kept;
* :meth:`Transaction.put_photo` stores a photo's bytes by content;
* :meth:`Transaction.event` and ``run`` add to the audit and run logs.

:attr:`Transaction.alerts` still offers every alert as a GeoDataFrame to edit
in place (loaded on first use); what changed in it is written row by row
when the transaction ends, each row checked against its ``rev``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa

from gis.alerts import photos as photo_table
from gis.alerts.backends import now_iso
from gis.alerts.tables import ALERT_COLUMNS, RUN_COLUMNS, RUN_OWNED
from gis.errors import AlertNotFoundError, ConflictError, StoreError


def empty_alerts(crs: Any = None) -> gpd.GeoDataFrame:
    return normalise_alerts(gpd.GeoDataFrame({c: [] for c in ALERT_COLUMNS},
                                             geometry=gpd.GeoSeries([], crs=crs), crs=crs))


def normalise_alerts(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Every contract column present with its kind; no NaN in text columns."""
    out = gdf.copy()
    for col, kind in ALERT_COLUMNS.items():
        if col not in out:
            out[col] = {"str": "", "float": np.nan, "int": 0, "bool": False}[kind]
        if kind == "str":
            out[col] = out[col].fillna("").astype(str).replace({"None": "", "nan": ""})
        elif kind == "float":
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
        elif kind == "int":
            out[col] = pd.to_numeric(out[col], errors="coerce").fillna(0).astype(np.int64)
        else:
            out[col] = out[col].astype(object).where(out[col].notna(), False).astype(bool)
    cols = list(ALERT_COLUMNS) + [c for c in out.columns if c not in ALERT_COLUMNS and c != "geometry"]
    out = gpd.GeoDataFrame(out[cols], geometry=out.geometry, crs=gdf.crs)
    return out.sort_values("alert_id", kind="stable").reset_index(drop=True)


def frame_of_rows(rows: Sequence[Any], backend, crs: Any) -> gpd.GeoDataFrame:
    """Alerts from database rows (the columns of ALERT_COLUMNS, then the geometry)."""
    cols = list(ALERT_COLUMNS)
    df = pd.DataFrame([tuple(r)[:-1] for r in rows], columns=cols)
    geoms = backend.decode([r[-1] for r in rows]) if rows else np.array([], dtype=object)
    return normalise_alerts(gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs))


def series_of_row(row: Sequence[Any], backend) -> pd.Series:
    """One alert from one database row, as :func:`normalise_alerts` would give it (fast: no frame)."""
    vals: dict[str, Any] = {}
    for (col, kind), v in zip(ALERT_COLUMNS.items(), tuple(row)[:-1]):
        if kind == "str":
            v = "" if v is None or str(v) in ("None", "nan") else str(v)
        elif kind == "float":
            v = np.nan if v is None else float(v)
        elif kind == "int":
            v = 0 if v is None else int(v)
        else:
            v = bool(v) if v is not None else False
        vals[col] = v
    vals["geometry"] = backend.decode([tuple(row)[-1]])[0]
    return pd.Series(vals, dtype=object)


def _plain(v: Any) -> Any:
    """numpy scalars and NaN as the database wants them."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def _differs(old: np.ndarray, new: np.ndarray, kind: str) -> np.ndarray:
    if kind == "float":
        o, n = old.astype(float), new.astype(float)
        return ~((o == n) | (np.isnan(o) & np.isnan(n)))
    return old != new


def _geom_differs(old: Sequence[Any], new: Sequence[Any]) -> np.ndarray:
    """Per row: do the two geometries differ (compared by their WKB, None included)?"""
    ow, nw = shapely.to_wkb(np.asarray(old, dtype=object)), shapely.to_wkb(np.asarray(new, dtype=object))
    return np.fromiter((x != y for x, y in zip(ow, nw)), dtype=bool, count=len(ow))


class Transaction:
    """The pending writes of one store transaction (see the module docstring)."""

    def __init__(self, store, conn: sa.Connection, *, by: str, run_id: str = "") -> None:
        self.store = store
        self.conn = conn
        self.by = by
        self.run_id = run_id
        self.events: list[dict[str, Any]] = []
        self.run: dict[str, Any] | None = None
        self.files: list[tuple[str, bytes]] = []  # photo copies to write beside the store after commit
        self.geometry_changed = False  # the GeoPackage's extent is refreshed only then
        self._alerts: gpd.GeoDataFrame | None = None
        self._loaded: gpd.GeoDataFrame | None = None
        self._t = store.t

    # --- the audit log ---------------------------------------------------------------
    def event(self, alert_id: str, action: str, field: str = "", old: Any = "", new: Any = "",
              *, by: str | None = None, at: str | None = None) -> None:
        self.events.append({"at": at or now_iso(), "by": by or self.by, "run_id": self.run_id,
                            "alert_id": alert_id, "action": action, "field": field,
                            "old": "" if old is None else str(old), "new": "" if new is None else str(new)})

    def add_events(self, events: pd.DataFrame | list[dict]) -> None:
        rows = events.to_dict("records") if isinstance(events, pd.DataFrame) else events
        at = now_iso()
        for r in rows:
            self.event(r["alert_id"], r["action"], r.get("field", ""), r.get("old", ""),
                       r.get("new", ""), by=r.get("by"), at=at)

    # --- one alert ---------------------------------------------------------------------
    def alert(self, alert_id: str) -> pd.Series:
        """The alert as it is now, its row locked for this transaction (PostGIS)."""
        t = self._t["alerts"]
        cols = [t.c[c] for c in ALERT_COLUMNS] + [self.store.backend.geom_select(t)]
        q = sa.select(*cols).where(t.c.alert_id == str(alert_id))
        if self.store.kind != "gpkg":
            q = q.with_for_update(of=t)
        rows = self.conn.execute(q).all()
        if not rows:
            raise AlertNotFoundError(f"no alert {alert_id!r} in the store", ids=[alert_id],
                                     hint="list alert ids with `gis alerts list`")
        return series_of_row(rows[0], self.store.backend)

    def update(self, alert_id: str, changes: dict[str, Any], *, rev: int, bump: bool = True) -> None:
        """Write ``changes`` to the alert if its ``rev`` is still ``rev``; ``rev + 1`` when ``bump``."""
        t = self._t["alerts"]
        values = {c: _plain(v) for c, v in changes.items() if c not in ("rev", "geometry")}
        if "geometry" in changes:
            values["geom"] = self.store.backend.encode([changes["geometry"]], self.store.srid)[0]
        if bump:
            values["rev"] = t.c.rev + 1
        done = self.conn.execute(t.update().where((t.c.alert_id == str(alert_id)) & (t.c.rev == int(rev)))
                                 .values(**values))
        if done.rowcount == 1:
            return
        now = self.conn.execute(sa.select(t.c.rev).where(t.c.alert_id == str(alert_id))).scalar()
        if now is None:
            raise AlertNotFoundError(f"no alert {alert_id!r} in the store", ids=[alert_id])
        raise ConflictError(f"alert {alert_id} changed since it was read (revision {rev} was read, "
                            f"the store has revision {now}); nothing was written", path=self.store.path,
                            ids=[alert_id], hint="look at the alert again (`gis alerts show`) and record "
                            "the change on the current revision")

    # --- photos ---------------------------------------------------------------------------
    def put_photo(self, data: bytes, ext: str, *, name: str, by: str | None = None) -> str:
        """Store a photo (already checked to be one, of kind ``ext``); return its key."""
        key = photo_table.put_photo(self.conn, self._t["photos"], data, ext, name=name,
                                    by=by or self.by, at=now_iso())
        self.files.append((key, data))
        return key

    def ensure_photo(self, key: str, *, name: str = "", by: str | None = None) -> None:
        """Take a photo already copied under the store folder (``key``) into the photos table."""
        sha, ext = photo_table.split_key(key)
        t = self._t["photos"]
        if self.conn.execute(sa.select(t.c.sha256).where(t.c.sha256 == sha)).first() is not None:
            return
        found = photo_table.read_folder_photos(self.store.store_dir, [key])
        if key not in found:
            raise StoreError(f"photo {key} is not in the store folder or does not match its hash",
                             path=self.store.store_dir, hint="record the photo again from its original")
        self.put_photo(found[key], ext, name=name or Path(key).name, by=by)

    # --- a weekly run's result ----------------------------------------------------------
    def merge_run(self, before: gpd.GeoDataFrame, after: gpd.GeoDataFrame) -> None:
        """Insert the run's new alerts; on existing ones write the run's own columns that changed.

        ``before`` is what the run read, ``after`` what it computed. ``growing`` is left
        alone on an alert a person changed meanwhile (its growth reference moved).
        """
        t = self._t["alerts"]
        old_ids = set(before["alert_id"])
        new = after[~after["alert_id"].isin(old_ids)]
        if len(new):
            self.insert(new)
        b = before.set_index("alert_id")
        a = after[after["alert_id"].isin(old_ids)].set_index("alert_id").reindex(b.index)
        if a.empty:
            return
        revs = dict(self.conn.execute(sa.select(t.c.alert_id, t.c.rev)).all())
        touched = pd.Series([revs.get(i) for i in b.index], index=b.index) != b["rev"]
        cols = [c for c in RUN_OWNED if c in a]
        mask = np.column_stack([_differs(b[c].to_numpy(), a[c].to_numpy(), ALERT_COLUMNS[c]) for c in cols]
                               + [_geom_differs(b.geometry.values, a.geometry.values)])
        mask[touched.to_numpy(), cols.index("growing")] = False
        names = cols + ["geometry"]
        keys = [tuple(np.flatnonzero(m)) for m in mask]
        for pattern in sorted(set(k for k in keys if k)):
            sel = np.array([i for i, k in enumerate(keys) if k == pattern])
            changed = [names[j] for j in pattern]
            columns = [list(a.geometry.values[sel]) if c == "geometry" else [_plain(v) for v in a[c].to_numpy()[sel]]
                       for c in changed] + [b.index.to_numpy()[sel].tolist()]
            self.store.backend.bulk_update(self.conn, ["geom" if c == "geometry" else c for c in changed],
                                           list(zip(*columns)), self.store.srid)
            self.geometry_changed |= "geometry" in changed

    def insert(self, alerts: gpd.GeoDataFrame) -> None:
        """New alerts (ids not in the store)."""
        t = self._t["alerts"]
        geoms = self.store.backend.encode(alerts.geometry.values, self.store.srid)
        recs = [{c: _plain(v) for c, v in zip(ALERT_COLUMNS, row)}
                for row in alerts[list(ALERT_COLUMNS)].itertuples(index=False, name=None)]
        for r, g in zip(recs, geoms):
            r["geom"] = g
        self.geometry_changed = True
        self.conn.execute(t.insert().values({"geom": sa.bindparam("geom", type_=t.c.geom.type)}), recs)

    # --- the whole table, edited in place --------------------------------------------
    @property
    def alerts(self) -> gpd.GeoDataFrame:
        if self._alerts is None:
            t = self._t["alerts"]
            cols = [t.c[c] for c in ALERT_COLUMNS] + [self.store.backend.geom_select(t)]
            rows = self.conn.execute(sa.select(*cols).order_by(t.c.alert_id)).all()
            self._loaded = frame_of_rows(rows, self.store.backend, self.store.crs)
            self._alerts = self._loaded.copy()
        return self._alerts

    @alerts.setter
    def alerts(self, value: gpd.GeoDataFrame) -> None:
        _ = self.alerts  # what it was, to compare with
        self._alerts = value

    def flush(self) -> None:
        """Write what changed in :attr:`alerts`, then the audit and run logs."""
        if self._alerts is not None:
            self._flush_frame(normalise_alerts(self._alerts))
        if self.events:  # straight to the driver: a weekly run may bring 100,000 events
            cols = ("at", "by", "run_id", "alert_id", "action", "field", "old", "new")
            mark = self.store.backend.placeholder
            self.conn.exec_driver_sql(
                f'INSERT INTO alert_events ({", ".join(chr(34) + c + chr(34) for c in cols)}) '
                f'VALUES ({", ".join([mark] * len(cols))})',
                [tuple(e[c] for c in cols) for e in self.events])
        if self.run is not None:
            run = {k: self.run.get(k) for k in RUN_COLUMNS}
            for k in ("inputs", "parameters", "counts"):
                run[k] = json.dumps(run[k] or {}, ensure_ascii=False, sort_keys=True)
            self.conn.execute(self._t["runs"].insert().values(**run))
        if self.geometry_changed:
            self.store.backend.refresh_extent(self.conn)

    def _flush_frame(self, after: gpd.GeoDataFrame) -> None:
        before = self._loaded
        gone = sorted(set(before["alert_id"]) - set(after["alert_id"]))
        if gone:
            raise StoreError("alerts are never deleted from the store", ids=gone, path=self.store.path)
        new = after[~after["alert_id"].isin(set(before["alert_id"]))]
        if len(new):
            self.insert(new)
        b = before.set_index("alert_id")
        a = after.set_index("alert_id").loc[b.index]
        diff = {c: _differs(b[c].to_numpy(), a[c].to_numpy(), k) for c, k in ALERT_COLUMNS.items()
                if c != "alert_id"}
        diff["geometry"] = _geom_differs(b.geometry.values, a.geometry.values)
        for i in np.flatnonzero(np.any(np.column_stack(list(diff.values())), axis=1)):
            changes = {c: (a.geometry.iloc[i] if c == "geometry" else a[c].iloc[i])
                       for c, d in diff.items() if d[i]}
            if "rev" in changes:  # the caller set the new revision itself
                changes["rev"] = int(changes["rev"])
            self.geometry_changed |= "geometry" in changes
            self.update(b.index[i], changes, rev=int(b["rev"].iloc[i]), bump=False)
            if "rev" in changes:
                self.conn.execute(self._t["alerts"].update().where(
                    self._t["alerts"].c.alert_id == b.index[i]).values(rev=changes["rev"]))
