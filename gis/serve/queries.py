"""Alert filters, the patrol's priority order and the team workload, over the store's alerts.

Filters compare values (never build query text), so a filter with SQL in it
matches nothing. Every list starts from
:func:`gis.serve.permissions.alerts_for_user`: a filter can narrow what a
user sees, never widen it. Days waiting for a verdict are counted by the
bulletin's and the weekly summary's one rule,
:func:`gis.alerts.identity.waiting_for_verdict`; the overdue threshold is the
workspace's ``thresholds.waiting_days`` (:func:`waiting_threshold`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import pandas as pd

from gis.alerts.identity import waiting_for_verdict
from gis.errors import InputError
from gis.schema import OPEN_ALERT_STATUSES
from gis.serve.permissions import alerts_for_user

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class AlertFilters:
    """What the alert table and ``GET /api/alerts`` can be narrowed by (empty: no filter)."""

    district: str = ""
    project: str = ""
    kind: str = ""
    status: str = ""
    post_freeze: bool | None = None
    growing: bool | None = None
    waiting_over: int | None = None  # days without a verdict (gis.alerts.identity.waiting_for_verdict)
    open_only: bool = False

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> "AlertFilters":
        def flag(name: str) -> bool | None:
            v = str(params.get(name, "") or "").strip().lower()
            if v in ("", "any"):
                return None
            if v in _TRUE:
                return True
            if v in _FALSE:
                return False
            raise InputError(f"filter {name}={v!r} is not yes or no", hint=f"use {name}=1 or {name}=0")

        waiting = str(params.get("waiting_over", "") or "").strip()
        if waiting and not waiting.isdigit():
            raise InputError(f"filter waiting_over={waiting!r} is not a number of days",
                             hint="use e.g. waiting_over=3")
        text = {f.name: str(params.get(f.name, "") or "").strip()[:200]
                for f in fields(cls) if f.type == "str"}
        return cls(**text, post_freeze=flag("post_freeze"), growing=flag("growing"),
                   waiting_over=int(waiting) if waiting else None, open_only=bool(flag("open_only")))

    def as_params(self) -> dict[str, str]:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v not in ("", None, False):
                out[f.name] = "1" if v is True else str(v)
        return out


def waiting_threshold(ws: Any) -> int:
    """The workspace's overdue threshold: gis.toml ``thresholds.waiting_days``, as the bulletin uses it."""
    return int(ws.thresholds["waiting_days"])


def days_without_verdict(frame: pd.DataFrame, today: dt.date | None = None) -> pd.Series:
    """Days each alert still without a verdict (new, dispatched) has waited; NA for the others.

    :func:`gis.alerts.identity.waiting_for_verdict` counts them (since the
    last status change, else since first seen), so the office, the patrol app,
    the weekly summary and the bulletin agree.
    """
    waiting = waiting_for_verdict(frame, today or dt.date.today(), -1)
    return waiting["waiting_days"].reindex(frame.index).astype("Int64")


def overdue(frame: pd.DataFrame, waiting_over: int, today: dt.date | None = None) -> pd.Series:
    """True for the alerts waiting for a verdict more than ``waiting_over`` days (the bulletin's list)."""
    return pd.Series(frame.index.isin(waiting_for_verdict(frame, today or dt.date.today(), waiting_over).index),
                     index=frame.index)


def filter_alerts(frame: pd.DataFrame, user: Any, flt: AlertFilters,
                  today: dt.date | None = None) -> pd.DataFrame:
    """The alerts ``user`` may see, narrowed by ``flt``."""
    a = alerts_for_user(frame, user)
    for col, value in (("district", flt.district), ("project_id", flt.project), ("kind", flt.kind),
                       ("status", flt.status)):
        if value:
            a = a[a[col].astype(str) == value]
    if flt.open_only:
        a = a[a["status"].isin(OPEN_ALERT_STATUSES)]
    for col, value in (("post_freeze", flt.post_freeze), ("growing", flt.growing)):
        if value is not None:
            a = a[a[col].astype(bool) == value]
    if flt.waiting_over is not None:
        a = a[overdue(a, flt.waiting_over, today)]
    return a


def patrol_order(frame: pd.DataFrame, today: dt.date | None = None) -> pd.DataFrame:
    """After the freeze date and growing first, then the longest waiting for a verdict (alerts
    with one, e.g. illegal, after those without)."""
    if frame.empty:
        return frame
    wait = days_without_verdict(frame, today).fillna(-1).astype(int)
    key = pd.DataFrame({"pf": ~frame["post_freeze"].astype(bool), "gr": ~frame["growing"].astype(bool),
                        "wait": -wait, "id": frame["alert_id"]}, index=frame.index)
    return frame.loc[key.sort_values(["pf", "gr", "wait", "id"]).index]


def workload(frame: pd.DataFrame, waiting_over: int, today: dt.date | None = None) -> pd.DataFrame:
    """Per district (patrol team): open, dispatched, waiting over ``waiting_over`` days, settled."""
    if frame.empty:
        return pd.DataFrame(columns=["district", "open", "new", "dispatched", "illegal", "overdue", "settled"])
    a = frame.assign(overdue=overdue(frame, waiting_over, today))
    rows = []
    for district, g in a.groupby("district", sort=True):
        rows.append({"district": district, "open": int(g["status"].isin(OPEN_ALERT_STATUSES).sum()),
                     "new": int((g["status"] == "new").sum()),
                     "dispatched": int((g["status"] == "dispatched").sum()),
                     "illegal": int((g["status"] == "illegal").sum()), "overdue": int(g["overdue"].sum()),
                     "settled": int((~g["status"].isin(OPEN_ALERT_STATUSES)).sum())})
    return pd.DataFrame(rows)
