"""Training data from a workspace's own verdicts, and the misses patrols report.

Every alert with a verdict in the store is a training example, over every
imagery pair it was seen in: the pair it was first seen in (the epoch before
its first sighting, then that epoch) and, where later runs saw it again, the
same before image with each later epoch (the ground before the change, then
the change as it stood that week). An alert of ``n`` sightings gives ``n``
rows; cross-validation groups rows by epoch (:mod:`gis.detect.champion`), so
one alert's rows never sit on both sides of a fold of one epoch.

Labels (:data:`REASONS`): ``illegal``, ``legal`` and ``demolished`` are real
change (1); ``false_alarm`` is not (0), and its reason decides how much the
row counts or whether it is a change after all:

* ``image_artefact``, ``seasonal_crops``, ``existing_structure``, no reason:
  the detector's own mistakes, 0 at full weight;
* ``temporary_shed``: something was put up, only not a building to pursue:
  0 at half weight, so a few sheds do not teach the model to drop houses;
* ``permit_exists``: a real change that happens to be permitted (what
  ``legal`` says): 1, as for the detector it was right.

Patrol-reported misses (巡查发现, :func:`add_missed`, ``gis alerts add``) are
alerts of source ``patrol``, recorded with their verdict: positives outside
the detector's candidates, the only examples that can teach it what it does
not propose. Their source is the alert's ``created`` event (field
``source``); their id starts with ``P`` and the report date.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely

from gis.alerts.identity import attach_context
from gis.alerts.store import now_iso
from gis.detect import classifier as C
from gis.detect.training import REAL, inside_images, object_rows
from gis.errors import InputError, ModelError
from gis.schema import ALERT_KINDS, FALSE_ALARM_REASONS, m2_to_mu

log = logging.getLogger(__name__)

__all__ = ["VerdictData", "verdict_examples", "verdict_data", "fit_verdicts", "add_missed", "REASONS",
           "PROPOSER", "KEEP", "PATROL"]

#: false-alarm reason -> (label, weight) of its rows (see the module docstring)
REASONS: dict[str, tuple[int, float]] = {
    "image_artefact": (0, 1.0), "seasonal_crops": (0, 1.0), "existing_structure": (0, 1.0),
    "temporary_shed": (0, 0.5), "permit_exists": (1, 1.0), "": (0, 1.0)}
assert set(REASONS) - {""} == set(FALSE_ALARM_REASONS)
#: the building threshold of a cascade's proposer, as a share of the scene's threshold:
#: more candidates than the unsupervised detector proposes on its own, for the model to judge
#: (scripts/eval_verdicts.py, docs/evaluation.md)
PROPOSER = 0.8
#: a cascade keeps a candidate the model scores at least this
KEEP = 0.5
#: the source of an alert a patrol reported (its ``created`` event's ``source``)
PATROL = "patrol"
#: verdicts a patrol-reported miss may carry: something was built
MISSED_VERDICTS = ("illegal", "legal")


@dataclass
class VerdictData:
    """Feature rows of verdict examples, ready to fit (:func:`fit_verdicts`)."""

    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    #: the after epoch of each row (ISO date): cross-validation folds follow it
    groups: np.ndarray
    #: ``alert_id@after``: which rows a model has seen
    keys: np.ndarray
    #: ``detector`` or ``patrol``
    source: np.ndarray
    nir: bool = False
    lab_ref: list[float] | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    def subset(self, sel: np.ndarray) -> VerdictData:
        return VerdictData(self.X[sel], self.y[sel], self.weight[sel], self.groups[sel], self.keys[sel],
                           self.source[sel], self.nir, self.lab_ref, dict(self.summary))


def _label(verdict: str, reason: str) -> tuple[int, float] | None:
    if verdict in REAL:
        return 1, 1.0
    if verdict == "false_alarm":
        return REASONS.get(reason, REASONS[""])
    return None


def verdict_examples(ws, store=None) -> gpd.GeoDataFrame:
    """One row per (alert with a verdict, pair of epochs it was seen in): alert_id, kind,
    source, verdict, reason, label, weight, before, after (ISO dates), geometry."""
    store = store or ws.open_store()
    alerts = store.alerts()
    cols = ["alert_id", "kind", "source", "verdict", "reason", "label", "weight", "before", "after"]
    empty = gpd.GeoDataFrame({c: [] for c in cols}, geometry=gpd.GeoSeries([], crs=alerts.crs), crs=alerts.crs)
    if alerts.empty:
        return empty
    ev = store.events()
    reason = ev[(ev["action"] == "set") & (ev["field"] == "reason")].groupby("alert_id")["new"].last()
    patrol = set(ev.loc[(ev["action"] == "created") & (ev["field"] == "source") & (ev["new"] == PATROL),
                        "alert_id"])
    seen = ev[ev["field"] == "last_seen"].groupby("alert_id")["new"].agg(set)
    dates = [e.date.isoformat() for e in ws.epochs]
    rows = []
    for a in alerts.itertuples():
        verdict = (a.verdict or "").strip() or a.status
        why = str(reason.get(a.alert_id, "")) if verdict == "false_alarm" else ""
        lab = _label(verdict, why)
        if lab is None or a.first_seen not in dates:
            continue
        i = dates.index(a.first_seen)
        if i == 0:
            continue  # seen on the first epoch: there is no imagery before it
        when = {a.first_seen, a.last_seen} | seen.get(a.alert_id, set())
        for d in sorted(w for w in when if w in dates and w >= a.first_seen):
            rows.append({"alert_id": a.alert_id, "kind": a.kind,
                         "source": PATROL if a.alert_id in patrol else "detector", "verdict": verdict,
                         "reason": why, "label": lab[0], "weight": lab[1], "before": dates[i - 1],
                         "after": d, "geometry": a.geometry})
    if not rows:
        return empty
    return gpd.GeoDataFrame(pd.DataFrame(rows, columns=cols + ["geometry"]), geometry="geometry", crs=alerts.crs)


def verdict_data(ws, store=None, *, register: bool = True, examples: gpd.GeoDataFrame | None = None) -> VerdictData:
    """The feature rows of :func:`verdict_examples`, pair by pair of epochs."""
    ex = verdict_examples(ws, store) if examples is None else examples
    if len(ex) == 0:
        raise ModelError("the store holds no verdicts to learn from", path=ws.toml,
                         hint="record verdicts (gis alerts set, the patrol app) after a weekly run, then train")
    Xs, keep, refs, nir = [], [], [], False
    ex = ex.reset_index(drop=True)
    order = []
    for (b, a), part in ex.groupby(["before", "after"], sort=True):
        before, after = ws.epoch(b).ortho, ws.epoch(a).ortho
        inside = inside_images(before, after, part.geometry.values, ex.crs)
        if not inside.all():
            log.warning("%d verdict(s) lie outside the imagery of %s -> %s and are skipped",
                        int((~inside).sum()), b, a)
        part = part[inside]
        if part.empty:
            continue
        X, scene = object_rows(before, after, part.geometry.values, crs=ex.crs, register=register)
        Xs.append(X)
        order.extend(part.index.tolist())
        refs.append(scene["lab_ref"])
        nir = scene["nir"]
        keep.append(len(part))
    if not Xs:
        raise ModelError("no verdict lies on the workspace's imagery", path=ws.toml,
                         hint="check the epochs in gis.toml")
    sub = ex.loc[order]
    data = VerdictData(X=np.concatenate(Xs), y=sub["label"].to_numpy(np.uint8),
                       weight=sub["weight"].to_numpy(np.float64), groups=sub["after"].to_numpy(str),
                       keys=(sub["alert_id"] + "@" + sub["after"]).to_numpy(str),
                       source=sub["source"].to_numpy(str), nir=nir,
                       lab_ref=[float(v) for v in np.mean(refs, axis=0)])
    data.summary = summarise(sub)
    return data


def summarise(ex: pd.DataFrame) -> dict[str, Any]:
    """What a model learnt from, for people (``gis model list``)."""
    alerts = ex.drop_duplicates("alert_id")
    return {"rows": int(len(ex)), "alerts": int(len(alerts)),
            "real": int((alerts["label"] == 1).sum()), "false": int((alerts["label"] == 0).sum()),
            "patrol_reported": int((alerts["source"] == PATROL).sum()),
            "reasons": {k: int(v) for k, v in alerts.loc[alerts["verdict"] == "false_alarm", "reason"]
                        .replace("", "none").value_counts().items()},
            "epochs": sorted(set(ex["after"]))}


def fit_verdicts(data: VerdictData, *, seed: int = 0, labels: np.ndarray | None = None,
                 proposer: float = PROPOSER, keep: float = KEEP) -> dict:
    """A cascade model (``mode="objects"``) from verdict rows; ``labels`` replaces the
    verdicts' (a test's deliberately bad set)."""
    y = data.y if labels is None else np.asarray(labels, np.uint8)
    if len(np.unique(y)) < 2:
        raise ModelError(f"need both real changes and false alarms among the verdicts, found "
                         f"{int(y.sum())} real and {int((1 - y).sum())} false",
                         hint="record more verdicts (false_alarm and illegal/legal), then train again")
    model = C.fit(data.X, y, mode="objects", nir=data.nir, seed=seed, sample_weight=data.weight)
    model.update(proposer=float(proposer), keep=float(keep), lab_ref=data.lab_ref,
                 trained_on=dict(data.summary), keys=sorted(set(data.keys.tolist())))
    return model


# --- patrol-reported misses ------------------------------------------------------------


def _epoch_on(ws, day: dt.date):
    dated = [e for e in ws.epochs if e.date <= day]
    if not dated:
        raise InputError(f"no imagery epoch on or before {day}", path=ws.toml,
                         hint="record the miss after the first weekly run's epoch")
    return dated[-1]


def add_missed(ws, geometry: shapely.Geometry, *, kind: str = "new_structure", verdict: str = "illegal",
               by: str, note: str = "", day: dt.date | None = None, crs: Any = None) -> pd.Series:
    """Record a change patrols found and the detector missed (巡查发现) as a new alert of
    source ``patrol`` with its verdict; return it. ``geometry`` is in ``crs`` (default the
    workspace's working CRS); it belongs to the latest epoch on or before ``day``."""
    if not by or not str(by).strip():
        raise InputError("who found it is required", hint="pass --by NAME")
    if kind not in ALERT_KINDS:
        raise InputError(f"unknown kind {kind!r}", hint="use one of " + ", ".join(ALERT_KINDS))
    if verdict not in MISSED_VERDICTS:
        raise InputError(f"a reported miss is a change that was built: verdict {verdict!r} is not one",
                         hint="use one of " + ", ".join(MISSED_VERDICTS))
    g = gpd.GeoSeries([geometry], crs=crs or ws.working_crs).to_crs(ws.working_crs)
    geom = g.iloc[0]
    if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon") or geom.area <= 0:
        raise InputError("the reported change must be a polygon with an area",
                         hint="give --wkt POLYGON((...)) or --lon/--lat with --radius-m")
    day = day or dt.date.today()
    epoch = _epoch_on(ws, day)
    with rasterio.open(epoch.ortho) as src:
        bounds = gpd.GeoSeries([shapely.box(*src.bounds)], crs=src.crs).to_crs(ws.working_crs).iloc[0]
    if not geom.intersects(bounds):
        raise InputError(f"the reported change lies outside the orthophoto of {epoch.date}", path=epoch.ortho,
                         hint="check the coordinates (--lon/--lat are WGS 84 degrees; --wkt is in the "
                              f"working CRS {ws.working_crs} unless --crs says otherwise)")
    clear = ws.clearance(day)
    row = attach_context(gpd.GeoDataFrame({"project_id": [""], "parcel_id": [""], "district": [""]},
                                          geometry=[geom], crs=ws.working_crs),
                         redlines=clear.redlines, parcels=clear.parcels).iloc[0]
    store = ws.open_store()
    now, when, area = now_iso(), epoch.date.isoformat(), float(geom.area)
    with store.transaction(by=by, command="alerts add") as tx:
        prefix = f"P{day:%Y%m%d}-"
        ids = [a for a in tx.alerts["alert_id"] if a.startswith(prefix)]
        aid = f"{prefix}{len(ids) + 1:04d}"
        new = gpd.GeoDataFrame([{
            "alert_id": aid, "kind": kind, "status": verdict, "verdict": verdict, "area_m2": area,
            "area_mu": float(m2_to_mu(area)), "confidence": 1.0, "project_id": row["project_id"],
            "parcel_id": row["parcel_id"], "district": row["district"], "first_seen": when, "last_seen": when,
            "seen_count": 0, "growing": False, "post_freeze": False, "freeze_date": "", "note": note or "",
            "updated_by": by, "updated_at": now, "chip_before": "", "chip_after": "", "ref_alert_id": "",
            "status_since": day.isoformat(), "first_area_m2": area, "verdict_area_m2": area, "photos": "",
            "in_inventory": False, "rev": 1, "geometry": geom}], geometry="geometry", crs=ws.working_crs)
        tx.insert(new)
        tx.event(aid, "created", "source", "", PATROL)
        tx.event(aid, "set", "status", "", verdict)
        if note:
            tx.event(aid, "set", "note", "", note)
    return store.alert(aid)
