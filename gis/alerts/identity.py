"""From changes to alerts that keep their identity across runs.

Pure functions over GeoDataFrames. :func:`update_alerts` takes the store's
alerts and one run's changes and returns the new alerts table plus the audit
events, following these rules (all deterministic, so a re-run on the same
inputs changes nothing):

* A change overlapping an *open* alert (new, dispatched, illegal) by at least
  ``overlap_ratio`` of the smaller of the two is that alert: last_seen,
  seen_count, area, geometry and confidence are updated, and ``growing`` is set
  when the area exceeds the area at verdict (else at first sighting) by more
  than ``growth``. Status, verdict, notes and photos are never touched.
* An extension: a change of the same kind within ``adjacent_m`` (2 m) of an
  open alert that does not overlap it enough is that alert growing; the
  alert's footprint becomes the union. (Any change covering less than half of
  the alert adds to its footprint; one covering more replaces it.) So does a
  further change of the alert's kind lying mostly outside it: a house grown on
  two sides is seen as two strips, and both join its alert
  (:func:`grows_alert`).
* Merge: a change overlapping several open alerts updates the oldest (earliest
  first_seen, then smallest id); the others get ``ref_alert_id`` = that alert.
* Split: several changes overlapping one open alert: the one with the largest
  overlap updates it; the others that are not its growth (another kind, or
  lying mostly inside its footprint) open new alerts referencing it.
* A change over a *closed* footprint (false alarm, legal, demolished, closed)
  is suppressed unless it grew by more than ``growth`` or its kind differs;
  then it opens a new alert referencing the closed one.
* ``post_freeze`` is true for new structures/crops in a project whose freeze
  date lies at or before the freeze baseline (the latest epoch dated on or
  before the freeze date) when the change was seen against imagery at or
  after that baseline: built or planted after the freeze, not compensable
  (never for structures the detection matched to the inventory survey).

The rules the weekly summary and the bulletin list alerts by live here too, so
the two cannot disagree: :func:`growing_alerts` (open alerts whose area grew
past the threshold) and :func:`waiting_for_verdict` (alerts without a verdict
for more than the workspace's ``waiting_days``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.schema import OPEN_ALERT_STATUSES, WAITING_FOR_VERDICT, m2_to_mu
from gis.alerts.store import normalise_alerts

#: Fields a run may change on an existing alert, and so records in the audit log.
RUN_FIELDS = ("last_seen", "seen_count", "area_m2", "growing", "post_freeze", "freeze_date",
              "ref_alert_id", "project_id", "parcel_id", "district")


@dataclass
class AlertUpdate:
    alerts: gpd.GeoDataFrame
    events: list[dict[str, Any]] = field(default_factory=list)
    new_ids: list[str] = field(default_factory=list)
    updated_ids: list[str] = field(default_factory=list)
    merged_ids: list[str] = field(default_factory=list)
    suppressed: int = 0


def overlap_pairs(a: np.ndarray, b: np.ndarray) -> pd.DataFrame:
    """Pairs (i of a, j of b) that intersect, with overlap area and ratio.

    ratio = intersection area / area of the smaller of the two, so a house
    that grew (or shrank) still matches its earlier footprint.
    """
    if len(a) == 0 or len(b) == 0:
        return pd.DataFrame({"i": [], "j": [], "inter": [], "ratio": []}).astype(
            {"i": int, "j": int})
    tree = shapely.STRtree(b)
    i, j = tree.query(a, predicate="intersects")
    inter = shapely.area(shapely.intersection(a[i], b[j]))
    smaller = np.minimum(shapely.area(a[i]), shapely.area(b[j]))
    ratio = np.divide(inter, smaller, out=np.zeros_like(inter), where=smaller > 0)
    return pd.DataFrame({"i": i, "j": j, "inter": inter, "ratio": ratio})


def is_growing(area_m2, reference_m2, growth: float) -> np.ndarray:
    """True where an area exceeds its reference (the area at verdict, else at first
    sighting) by more than ``growth`` (gis.toml ``thresholds.growth``, 0.2 = 20 %)."""
    return np.asarray(area_m2, dtype=float) > (1 + growth) * np.asarray(reference_m2, dtype=float)


def growing_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    """The open alerts flagged as growing (a settled one that grows opens a new alert)."""
    if not len(alerts) or "growing" not in alerts:
        return alerts.iloc[:0]
    growing = alerts["growing"].fillna(False).astype(bool)
    return alerts[growing & alerts["status"].isin(OPEN_ALERT_STATUSES)]


def waiting_for_verdict(alerts: pd.DataFrame, as_of: dt.date | str | pd.Timestamp,
                        threshold_days: int) -> pd.DataFrame:
    """Alerts still without a verdict (new, dispatched) more than ``threshold_days``
    after their status last changed (``status_since``; ``first_seen`` when empty).

    Returns those rows with ``waiting_days`` added, longest wait first.
    ``threshold_days`` is gis.toml ``thresholds.waiting_days``.
    """
    if not len(alerts):
        return alerts.iloc[:0].assign(waiting_days=pd.Series(dtype=int))
    day = pd.Timestamp(as_of).normalize()
    blank = pd.Series("", index=alerts.index)
    since = alerts.get("status_since", blank).fillna("").astype(str)
    since = pd.to_datetime(since.where(since != "", alerts.get("first_seen", blank)), errors="coerce")
    days = (day - since.dt.normalize()).dt.days
    out = alerts[alerts["status"].isin(WAITING_FOR_VERDICT) & (days > threshold_days)].copy()
    out["waiting_days"] = days[out.index].astype(int)
    return out.sort_values(["waiting_days", "alert_id"], ascending=[False, True], kind="stable")


def _largest_overlap(geoms: np.ndarray, layer: gpd.GeoDataFrame, column: str) -> np.ndarray:
    """Value of ``column`` in the layer feature that overlaps each geometry most ('' if none)."""
    out = np.full(len(geoms), "", dtype=object)
    if layer is None or len(layer) == 0 or column not in layer:
        return out
    pairs = overlap_pairs(geoms, layer.geometry.values)
    pairs = pairs[pairs["inter"] > 0].sort_values(["i", "inter"], ascending=[True, False])
    best = pairs.drop_duplicates("i")
    out[best["i"].to_numpy()] = layer[column].astype(str).to_numpy()[best["j"].to_numpy()]
    return out


def freeze_baseline(freeze: dt.date, epoch_dates: Iterable[dt.date]) -> dt.date | None:
    """The latest epoch dated on or before the freeze date (None when there is none)."""
    earlier = [d for d in epoch_dates if d <= freeze]
    return max(earlier) if earlier else None


def project_freeze_dates(redlines: gpd.GeoDataFrame | None,
                         overrides: Mapping[str, dt.date] | None = None) -> dict[str, dt.date]:
    """project_id -> freeze date: the red-line column, overridden by gis.toml."""
    out: dict[str, dt.date] = {}
    if redlines is not None and "freeze_date" in redlines:
        fd = pd.to_datetime(redlines["freeze_date"], errors="coerce")
        for pid, d in zip(redlines["project_id"].astype(str), fd):
            if pd.notna(d):
                out[pid] = d.date()
    out.update({str(k): v for k, v in (overrides or {}).items()})
    return out


def attach_context(changes: gpd.GeoDataFrame, *, redlines: gpd.GeoDataFrame | None = None,
                   parcels: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Fill project_id, parcel_id and district from the layers where detection left them empty."""
    out = changes.copy()
    geoms = out.geometry.values
    for col in ("project_id", "parcel_id", "district"):
        if col not in out:
            out[col] = ""
        out[col] = out[col].fillna("").astype(str).replace({"None": "", "nan": ""})
    empty = out["project_id"] == ""
    if empty.any():
        out.loc[empty, "project_id"] = _largest_overlap(geoms[empty.to_numpy()], redlines, "project_id")
    empty = out["parcel_id"] == ""
    if empty.any():
        out.loc[empty, "parcel_id"] = _largest_overlap(geoms[empty.to_numpy()], parcels, "parcel_id")
    # district: where the change physically is (the parcel's town office, whose patrol
    # goes there), else the project's, else the nearest red line's
    empty = (out["district"] == "").to_numpy()
    if empty.any() and parcels is not None and "district" in parcels:
        out.loc[empty, "district"] = _largest_overlap(geoms[empty], parcels, "district")
    if redlines is not None and len(redlines) and "district" in redlines:
        by_project = dict(zip(redlines["project_id"].astype(str), redlines["district"].astype(str)))
        out["district"] = np.where(out["district"] == "", out["project_id"].map(by_project).fillna(""),
                                   out["district"])
    empty = (out["district"] == "").to_numpy()
    if empty.any() and redlines is not None and len(redlines) and "district" in redlines:
        tree = shapely.STRtree(redlines.geometry.values)
        _, j = tree.query_nearest(geoms[empty], all_matches=False, return_distance=False)
        out.loc[empty, "district"] = redlines["district"].astype(str).to_numpy()[j]
    return out


def _adjacent_pairs(ch: gpd.GeoDataFrame, alerts: gpd.GeoDataFrame, distance: float,
                    exclude: set) -> pd.DataFrame:
    """Changes within ``distance`` of an open alert of the same kind (not already matched)."""
    cols = {"i": [], "j": [], "inter": [], "ratio": [], "first_seen": [], "alert_id": []}
    if len(ch) == 0 or len(alerts) == 0 or distance <= 0:
        return pd.DataFrame(cols).astype({"i": int, "j": int, "inter": float, "ratio": float})
    tree = shapely.STRtree(alerts.geometry.values)
    i, j = tree.query(ch.geometry.values, predicate="dwithin", distance=distance)
    ok = (np.isin(alerts["status"].to_numpy()[j], OPEN_ALERT_STATUSES)
          & (alerts["kind"].to_numpy()[j] == ch["kind"].to_numpy()[i]) & ~np.isin(i, list(exclude)))
    i, j = i[ok], j[ok]
    return pd.DataFrame({"i": i, "j": j, "inter": np.zeros(len(i)), "ratio": np.zeros(len(i)),
                         "first_seen": alerts["first_seen"].to_numpy()[j],
                         "alert_id": alerts["alert_id"].to_numpy()[j]})


def grows_alert(others: pd.DataFrame, ch: gpd.GeoDataFrame, alerts: gpd.GeoDataFrame,
                epoch_iso: str) -> np.ndarray:
    """Per further change of an alert (one that is not its largest overlap): is it the alert growing?

    A change of the alert's kind is its growth when it is an extension (within
    ``adjacent_m``, not overlapping enough), when most of it lies outside the
    alert's footprint (a strip added to a house), or when the alert was
    already updated from this epoch (a re-run: the alert's footprint holds the
    strips it grew by). Otherwise (another kind, or a part lying mostly inside
    the footprint) it split off and opens a new alert.
    """
    if not len(others):
        return np.zeros(0, dtype=bool)
    i, j = others["i"].to_numpy(), others["j"].to_numpy()
    same_kind = ch["kind"].to_numpy()[i] == alerts["kind"].to_numpy()[j]
    area = shapely.area(ch.geometry.values[i])
    inside = np.divide(others["inter"].to_numpy(dtype=float), area, out=np.zeros(len(i)), where=area > 0)
    rerun = alerts["last_seen"].to_numpy()[j] == epoch_iso
    return same_kind & (others["extend"].to_numpy(dtype=bool) | (inside < 0.5) | rerun)


def _post_freeze(changes: pd.DataFrame, freeze: Mapping[str, dt.date],
                 epoch_dates: list[dt.date], since: dt.date | None) -> tuple[np.ndarray, np.ndarray]:
    """Per change: built after its project's freeze? and that freeze date (ISO or '')."""
    baseline = {pid: freeze_baseline(f, epoch_dates) for pid, f in freeze.items()}  # per project
    fdate = pd.to_datetime(changes["project_id"].map(freeze), errors="coerce")
    base = pd.to_datetime(changes["project_id"].map(baseline), errors="coerce")
    seen_from = pd.to_datetime(changes["since"] if "since" in changes
                               else pd.Series(since, index=changes.index), errors="coerce")
    post = (fdate.notna() & seen_from.notna() & (changes["kind"] != "demolished")
            & (base.isna() | (seen_from >= base)))
    iso = fdate.dt.strftime("%Y-%m-%d").fillna("")
    return post.to_numpy(dtype=bool), iso.to_numpy(dtype=object)


def update_alerts(
    alerts: gpd.GeoDataFrame,
    changes: gpd.GeoDataFrame,
    *,
    epoch_date: dt.date,
    previous_date: dt.date | None = None,
    epoch_dates: Iterable[dt.date] = (),
    redlines: gpd.GeoDataFrame | None = None,
    parcels: gpd.GeoDataFrame | None = None,
    freeze_dates: Mapping[str, dt.date] | None = None,
    overlap_ratio: float = 0.3,
    growth: float = 0.2,
    min_area_m2: float = 0.0,
    adjacent_m: float = 2.0,
    run_date: dt.date | None = None,
    now: str = "",
    by: str = "weekly",
) -> AlertUpdate:
    """Apply one run's ``changes`` (seen at ``epoch_date``) to ``alerts``."""
    alerts = normalise_alerts(alerts)
    crs = alerts.crs or changes.crs
    if changes.crs is not None and crs is not None and changes.crs != crs:
        changes = changes.to_crs(crs)
    epoch_iso = epoch_date.isoformat()
    run_iso = (run_date or dt.date.today()).isoformat()
    now = now or run_iso
    ch = changes[shapely.area(changes.geometry.values) >= min_area_m2].copy()
    ch = attach_context(ch, redlines=redlines, parcels=parcels)
    # a stable order for everything that follows: north to south, west to east
    c = shapely.centroid(ch.geometry.values)
    ch["_y"], ch["_x"] = -np.round(shapely.get_y(c), 2), np.round(shapely.get_x(c), 2)
    ch = ch.sort_values(["_y", "_x"], kind="stable").reset_index(drop=True)
    ch["area_m2"] = shapely.area(ch.geometry.values)
    freeze = project_freeze_dates(redlines, freeze_dates)
    dates = sorted(set(epoch_dates) | {epoch_date} | ({previous_date} if previous_date else set()))
    ch["_post"], ch["_freeze"] = _post_freeze(ch, freeze, dates, previous_date)
    if "confidence" not in ch:
        ch["confidence"] = np.nan
    if "in_inventory" not in ch:
        ch["in_inventory"] = False
    ch["in_inventory"] = ch["in_inventory"].astype("boolean").fillna(False).astype(bool)
    # a structure recorded in the inventory survey (摸底) was there at the freeze
    ch["_post"] &= ~ch["in_inventory"].to_numpy()

    result = AlertUpdate(alerts=alerts)
    all_pairs = overlap_pairs(ch.geometry.values, alerts.geometry.values)
    pairs = all_pairs[all_pairs["ratio"] >= overlap_ratio].copy()
    status = alerts["status"].to_numpy()
    pairs["open"] = np.isin(status[pairs["j"].to_numpy()], OPEN_ALERT_STATUSES)
    # an extension built onto an open alert (same kind, touching it, not overlapping
    # enough) is that alert growing, not a new one
    ext = _adjacent_pairs(ch, alerts, adjacent_m, exclude=set(pairs.loc[pairs["open"], "i"]))
    pairs = pd.concat([pairs.assign(extend=False), ext.assign(open=True, extend=True)], ignore_index=True)
    pairs["first_seen"] = alerts["first_seen"].to_numpy()[pairs["j"].to_numpy()]
    pairs["alert_id"] = alerts["alert_id"].to_numpy()[pairs["j"].to_numpy()]

    # --- merge: each change picks the oldest open alert it overlaps -------------
    open_pairs = pairs[pairs["open"]]
    pick = open_pairs.sort_values(["i", "first_seen", "alert_id"]).drop_duplicates("i")
    # --- split: each picked alert keeps the change with the largest overlap -----
    keep = pick.sort_values(["j", "inter", "i"], ascending=[True, False, True]).drop_duplicates("j")
    others = pick[~pick["i"].isin(keep["i"])]
    # ... unless the further change is the alert growing (see grows_alert)
    grows = grows_alert(others, ch, alerts, epoch_iso)
    split, grown = others.loc[~grows], others.loc[grows]
    kept_alert_of_change = dict(zip(split["i"], split["alert_id"]))
    updated_js = set(keep["j"])
    merged = open_pairs[~open_pairs["j"].isin(updated_js)].merge(
        pick[["i", "alert_id"]].rename(columns={"alert_id": "keeper"}), on="i")
    merged = merged.sort_values(["j", "keeper"]).drop_duplicates("j")

    a = alerts.copy()
    before = a.copy()
    # updates of matched open alerts (vectorised over the matched rows)
    if len(keep):
        j, i = keep["j"].to_numpy(), keep["i"].to_numpy()
        newer = a["last_seen"].to_numpy()[j] < epoch_iso
        same_or_newer = a["last_seen"].to_numpy()[j] <= epoch_iso
        jj, ii = j[same_or_newer], i[same_or_newer]
        a.loc[j[newer], "seen_count"] = a["seen_count"].to_numpy()[j[newer]] + 1
        a.loc[j[newer], "last_seen"] = epoch_iso
        geoms = a.geometry.values.copy()
        # a change covering most of the alert is its new footprint; a smaller one (an
        # extension, or part of it seen again) adds to it, so alerts do not shrink
        cover = keep["inter"].to_numpy() / np.maximum(shapely.area(geoms[j]), 1e-9)
        cover = cover[same_or_newer]
        geoms[jj] = np.where(cover >= 0.5, ch.geometry.values[ii],
                             shapely.union(geoms[jj], ch.geometry.values[ii]))
        # further changes that are the alert growing (its new strips) join its footprint
        grow_of = grown.groupby("j")["i"].apply(list).to_dict()
        post_of = np.zeros(len(a), dtype=bool)
        for jx in jj:
            if jx in grow_of:
                geoms[jx] = shapely.union_all([geoms[jx], *ch.geometry.values[grow_of[jx]]])
                post_of[jx] = ch["_post"].to_numpy()[grow_of[jx]].any()
        a = a.set_geometry(gpd.GeoSeries(geoms, crs=crs, index=a.index))
        a.loc[jj, "area_m2"] = shapely.area(geoms[jj])
        a.loc[jj, "area_mu"] = m2_to_mu(shapely.area(geoms[jj]))
        a.loc[jj, "confidence"] = ch["confidence"].to_numpy()[ii]
        ref_area = np.where(np.isnan(a["verdict_area_m2"].to_numpy()[jj]),
                            a["first_area_m2"].to_numpy()[jj], a["verdict_area_m2"].to_numpy()[jj])
        a.loc[jj, "growing"] = is_growing(a["area_m2"].to_numpy()[jj], ref_area, growth)
        a.loc[jj, "post_freeze"] = a["post_freeze"].to_numpy()[jj] | ch["_post"].to_numpy()[ii] | post_of[jj]
        for col, src in (("freeze_date", "_freeze"), ("project_id", "project_id"),
                         ("parcel_id", "parcel_id"), ("district", "district")):
            cur = a[col].to_numpy()[jj]
            a.loc[jj, col] = np.where(cur == "", ch[src].to_numpy()[ii], cur)
    if len(merged):
        a.loc[merged["j"].to_numpy(), "ref_alert_id"] = merged["keeper"].to_numpy()

    # --- changes over closed footprints only ------------------------------------
    matched_open = set(pick["i"])
    closed = pairs[~pairs["open"] & ~pairs["i"].isin(matched_open)]
    closed = closed.sort_values(["i", "inter", "alert_id"], ascending=[True, False, True]).drop_duplicates("i")
    ci, cj = closed["i"].to_numpy(), closed["j"].to_numpy()
    ref_area = np.where(np.isnan(a["verdict_area_m2"].to_numpy()[cj]), a["area_m2"].to_numpy()[cj],
                        a["verdict_area_m2"].to_numpy()[cj])
    grew = is_growing(ch["area_m2"].to_numpy()[ci], ref_area, growth)
    ch_kind, a_kind = ch["kind"].to_numpy()[ci], a["kind"].to_numpy()[cj]
    # a demolition seen where an alert was closed as demolished is the expected outcome
    expected = (ch_kind == "demolished") & np.isin(a["status"].to_numpy()[cj], ("demolished", "closed"))
    reopen = (grew | (ch_kind != a_kind)) & ~expected
    result.suppressed = int((~reopen).sum())
    ref_of_change = {**kept_alert_of_change,
                     **dict(zip(ci[reopen], closed["alert_id"].to_numpy()[reopen]))}

    # --- new alerts: unmatched changes, split-offs and reopened footprints -------
    taken = set(pairs["i"]) - set(split["i"]) - set(ci[reopen])
    new_i = np.setdiff1d(np.arange(len(ch)), np.fromiter(taken, dtype=int, count=len(taken)))
    prefix = f"A{epoch_date:%Y%m%d}-"
    used = a["alert_id"][a["alert_id"].str.startswith(prefix)].str[len(prefix):]
    start = int(pd.to_numeric(used, errors="coerce").max()) if len(used) else 0
    start = 0 if np.isnan(start) else start
    ids = [f"{prefix}{start + n + 1:04d}" for n in range(len(new_i))]
    if len(new_i):
        sub = ch.iloc[new_i]
        new = gpd.GeoDataFrame({
            "alert_id": ids, "kind": sub["kind"].astype(str).to_numpy(), "status": "new",
            "verdict": "", "area_m2": sub["area_m2"].to_numpy(),
            "area_mu": m2_to_mu(sub["area_m2"].to_numpy()),
            "confidence": sub["confidence"].to_numpy(dtype=float),
            "project_id": sub["project_id"].to_numpy(), "parcel_id": sub["parcel_id"].to_numpy(),
            "district": sub["district"].to_numpy(), "first_seen": epoch_iso, "last_seen": epoch_iso,
            "seen_count": 1, "growing": False, "post_freeze": sub["_post"].to_numpy(),
            "freeze_date": sub["_freeze"].to_numpy(), "note": "", "updated_by": by,
            "updated_at": now, "chip_before": "", "chip_after": "",
            "ref_alert_id": pd.Series(new_i).map(ref_of_change).fillna("").to_numpy(),
            "status_since": run_iso,
            "first_area_m2": sub["area_m2"].to_numpy(), "verdict_area_m2": np.nan, "photos": "",
            "in_inventory": sub["in_inventory"].to_numpy(), "rev": 0,
        }, geometry=sub.geometry.values, crs=crs)
        a = pd.concat([a, new], ignore_index=True) if len(a) else new
        for aid, ref in zip(ids, new["ref_alert_id"]):
            result.events.append(_event(now, by, aid, "created", "status", "", "new"))
            if ref:
                result.events.append(_event(now, by, aid, "references", "ref_alert_id", "", ref))
    result.alerts = normalise_alerts(gpd.GeoDataFrame(a, geometry="geometry", crs=crs))
    result.new_ids = ids
    result.merged_ids = sorted(merged["alert_id"].tolist()) if len(merged) else []

    # audit events for what the run changed on existing alerts
    b = before.set_index("alert_id")
    after = result.alerts.set_index("alert_id").loc[b.index]
    changed_any = np.zeros(len(b), dtype=bool)
    for col in RUN_FIELDS:
        old, new_v = b[col].to_numpy(), after[col].to_numpy()
        if b[col].dtype == float:
            diff = ~np.isclose(old.astype(float), new_v.astype(float), rtol=1e-9, equal_nan=True)
        else:
            diff = old != new_v
        changed_any |= diff
        for aid, o, n in zip(b.index[diff], old[diff], new_v[diff]):
            o_s, n_s = (f"{o:.1f}", f"{n:.1f}") if col == "area_m2" else (o, n)
            result.events.append(_event(now, by, aid, "run_update", col, o_s, n_s))
    result.updated_ids = sorted(b.index[changed_any])
    return result


def _event(at: str, by: str, alert_id: str, action: str, field: str, old: Any, new: Any) -> dict:
    return {"at": at, "by": by, "alert_id": alert_id, "action": action, "field": field,
            "old": str(old), "new": str(new)}
