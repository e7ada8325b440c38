"""The weekly bulletin (周通报): its tables, its numbering, and where they are written.

What the leaders and inspectors read each week: a short written summary,
headline figures each marked this week (本周) or cumulative (累计), per-project
and per-district tables (completion rate, clean-land rate, progress ratio,
counts left, overdue), progress against time (序时进度), the red list and black
list (红黑榜) with their rule, new alerts this week by district and kind, growing
alerts, alerts waiting for a verdict more than the workspace's
``waiting_days`` (gis.toml), and a progress chart.

The bulletin follows the survey week, never the wall clock: its "as of" day is
the survey date of the run (the epoch), its period the seven days ending then,
and it names the two surveys it compares. Its 期号 counts the weekly runs the
store recorded in that year (:func:`bulletin_number`), so a re-run of a week
keeps its number. :func:`write_workspace_bulletin` gathers all of that from a
workspace; ``gis report`` and ``gis weekly`` both call it.

:func:`bulletin_tables` computes every table once; the HTML
(:mod:`gis.products.bulletinpage`) and the xlsx are two renderings of the same
tables, so they cannot disagree. Which alerts are growing or waiting is decided
by :func:`gis.alerts.identity.growing_alerts` and
:func:`gis.alerts.identity.waiting_for_verdict`, the rules of the weekly summary
too. Every word comes from :mod:`gis.labels`.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from gis.alerts.identity import growing_alerts, waiting_for_verdict
from gis.atomic import write_text_atomic
from gis.clearance.figures import district_schedule, list_length, rank_districts, schedule_figures
from gis.labels import BULLETIN_SHEETS, table
from gis.products.bulletinpage import bulletin_html, labelled, rule_text
from gis.products.excel import DECIMAL, INTEGER, PERCENT, Sheet, write_workbook
from gis.schema import OPEN_ALERT_STATUSES
from gis.workspace import DEFAULT_THRESHOLDS, BulletinSettings

log = logging.getLogger(__name__)

__all__ = ["write_bulletin", "bulletin_tables", "write_bulletin_xlsx", "write_workspace_bulletin",
           "bulletin_number", "DEFAULT_WAITING_DAYS", "WEEK_DAYS"]

#: Alerts without a verdict for more days than this are listed, unless the caller
#: passes the workspace's own ``thresholds.waiting_days``.
DEFAULT_WAITING_DAYS = int(DEFAULT_THRESHOLDS["waiting_days"])
#: A bulletin's week: the seven days ending on its survey date.
WEEK_DAYS = 7
PROJECT_COLUMNS = ["project_id", "name", "district", "total_mu", "acquired_mu", "delivered_mu",
                   "completion_rate", "clean_land_rate", "houses_left", "households_left", "graves_left",
                   "special_crops_left", "attachments_left", "deadline", "overdue", "progressed"]
DISTRICT_COLUMNS = ["rank", "district", "total_mu", "acquired_mu", "delivered_mu", "completion_rate",
                    "clean_land_rate", "projects", "projects_progressed", "progress_ratio",
                    "overdue_projects", "behind_projects", "schedule_gap", "houses_left", "graves_left", "list"]
SCHEDULE_COLUMNS = ["project_id", "name", "district", "start_date", "deadline", "time_elapsed",
                    "completion_rate", "schedule_gap", "behind_schedule"]
LIST_COLUMNS = ["rank", "district", "completion_rate", "clean_land_rate", "progress_ratio", "overdue_projects"]
ALERT_COLUMNS = ["alert_id", "kind", "status", "district", "project_id", "parcel_id", "area_m2", "area_mu",
                 "first_seen", "last_seen", "post_freeze", "status_since", "note"]
#: Headline figures and their scope: this week (本周) or cumulative (累计).
HEADLINE = (("n_projects", "cumulative"), ("total_mu", "cumulative"), ("acquired_mu", "cumulative"),
            ("delivered_mu", "cumulative"), ("completion_rate", "cumulative"),
            ("clean_land_rate", "cumulative"), ("progress_ratio", "this_week"),
            ("overdue_projects", "cumulative"), ("behind_projects", "cumulative"),
            ("alerts_new", "this_week"), ("alerts_new_post_freeze", "this_week"),
            ("alerts_open", "cumulative"), ("alerts_post_freeze", "cumulative"))
RATE_FIGURES = {"completion_rate", "clean_land_rate", "progress_ratio"}


def bulletin_tables(clearance, *, alerts=None, as_of=None, period_start=None, lang: str = "zh",
                    waiting_days: int = DEFAULT_WAITING_DAYS, settings: BulletinSettings | None = None,
                    start_dates=None, compared=None, number: int | None = None,
                    run_date=None) -> dict[str, pd.DataFrame]:
    """Every table of the bulletin, in canonical (English) column names.

    ``as_of`` is the survey date of the week (default: the clearance's); the
    period is the :data:`WEEK_DAYS` days ending then unless ``period_start``
    says otherwise. Overdue projects, days waiting and new alerts are counted
    at ``as_of``; alerts first seen after it are left out (a re-run of an
    earlier week shows that week). ``settings`` is gis.toml ``[bulletin]`` (the
    red/black list rule), ``start_dates`` gis.toml ``[start_dates]``,
    ``compared`` the survey dates (earlier, this) the week compared, ``number``
    the 期号. Days waiting for a verdict count to ``run_date``, the day the
    week's run was made (default ``as_of``); ``waiting_days`` is the
    workspace's ``thresholds.waiting_days``.
    """
    settings = settings or BulletinSettings()
    as_of = pd.Timestamp(as_of or getattr(clearance, "as_of", None) or dt.date.today()).normalize()
    start = (pd.Timestamp(period_start).normalize() if period_start is not None
             else as_of - pd.Timedelta(days=WEEK_DAYS - 1))
    T = table("bulletin", lang)
    sched = schedule_figures(_overdue_at(clearance.projects, as_of), as_of.date(), start_dates)
    projects = sched[[c for c in PROJECT_COLUMNS if c in sched.columns]].copy()
    schedule = sched.loc[sched["time_elapsed"].notna(), SCHEDULE_COLUMNS].sort_values(
        ["schedule_gap", "project_id"], kind="stable").reset_index(drop=True)
    by_district = district_schedule(sched)
    districts = _ranked_districts(clearance.districts, sched, by_district, settings)

    total = districts["total_mu"].sum()  # districts count land once (overlapping projects)
    acquired, delivered = districts["acquired_mu"].sum(), districts["delivered_mu"].sum()
    n_proj = len(projects)
    progressed = int(projects["progressed"].eq(True).sum()) if "progressed" in projects else 0

    a = _alerts_frame(alerts)
    first = pd.to_datetime(a["first_seen"], errors="coerce")
    a = a[~(first > as_of)]  # not yet seen in this week's survey
    first = first[a.index]
    new = a[(first >= start) & (first <= as_of)]
    open_mask = a["status"].isin(OPEN_ALERT_STATUSES)
    values = {
        "n_projects": n_proj, "total_mu": round(total, 2), "acquired_mu": round(acquired, 2),
        "delivered_mu": round(delivered, 2), "completion_rate": acquired / total if total else np.nan,
        "clean_land_rate": delivered / total if total else np.nan,
        "progress_ratio": progressed / n_proj if n_proj else np.nan,
        "overdue_projects": int(projects["overdue"].eq(True).sum()),
        "behind_projects": int(schedule["behind_schedule"].eq(True).sum()) if len(schedule) else np.nan,
        "alerts_new": len(new), "alerts_new_post_freeze": int(new["post_freeze"].sum()),
        "alerts_open": int(open_mask.sum()), "alerts_post_freeze": int((a["post_freeze"] & open_mask).sum()),
    }
    headline = pd.DataFrame({"scope": [T[s] for _, s in HEADLINE], "figure": [T[k] for k, _ in HEADLINE],
                             "value": pd.Series([values[k] for k, _ in HEADLINE], dtype=object)})
    kinds = table("kind", lang)
    if len(new):
        by = pd.crosstab(new["district"].replace("", "-"), new["kind"].map(kinds).fillna(new["kind"]))
        by["total"] = by.sum(axis=1)
        by = by.reset_index()
    else:
        by = pd.DataFrame(columns=["district", "total"])
    lists = districts[districts["list"].isin(["red", "black"])]
    growing = growing_alerts(a)
    waiting = waiting_for_verdict(a, pd.Timestamp(run_date or as_of).normalize(), waiting_days)
    n_list = list_length(len(districts), size=settings.list_size, share=settings.list_share)
    excluded = districts.loc[(districts["rank"] <= n_list) & districts["overdue_projects"].gt(0)
                             & settings.overdue_off_red, "district"].tolist() if n_list else []
    if not len(schedule):  # no project has a start date: no empty schedule columns in the ranking
        districts = districts.drop(columns=["behind_projects", "schedule_gap"])
    return {
        "headline": headline,
        "projects": projects,
        "schedule": schedule,
        "schedule_districts": _schedule_ranking(by_district),
        "districts": districts[[c for c in DISTRICT_COLUMNS if c in districts.columns]],
        "red_list": lists.loc[lists["list"] == "red", [c for c in LIST_COLUMNS if c in lists]],
        "black_list": lists.loc[lists["list"] == "black", [c for c in LIST_COLUMNS if c in lists]],
        "new_alerts": by,
        "growing": growing[[c for c in ALERT_COLUMNS if c in growing.columns]],
        "waiting": waiting[[c for c in ALERT_COLUMNS + ["waiting_days"] if c in waiting.columns]],
        "_period": pd.DataFrame({
            "start": [start.date()], "end": [as_of.date()], "waiting_days": [int(waiting_days)],
            "days": [(as_of - start).days + 1], "number": [number], "office": [settings.office],
            "before": [pd.Timestamp(compared[0]).date() if compared and compared[0] else None],
            "after": [pd.Timestamp(compared[1]).date() if compared and compared[1] else None],
            "rank_by": [settings.rank_by], "list_size": [settings.list_size],
            "list_share": [settings.list_share], "n_list": [n_list],
            "overdue_off_red": [settings.overdue_off_red], "excluded": ["\t".join(excluded)]}),
        "_values": pd.DataFrame([values]),
    }


def _overdue_at(projects: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The projects with ``overdue`` counted at ``as_of`` (deadline passed, land not all delivered)."""
    out = projects.copy()
    if "deadline" in out:
        past = (pd.to_datetime(out["deadline"], errors="coerce") < as_of).to_numpy(dtype=bool)
        out["overdue"] = past & (out["delivered_mu"] < out["total_mu"]).to_numpy()
    elif "overdue" not in out:
        out["overdue"] = False
    return out


def _ranked_districts(districts: pd.DataFrame, sched: pd.DataFrame, by_district: pd.DataFrame,
                      settings: BulletinSettings) -> pd.DataFrame:
    """The district figures with overdue and schedule counts at the bulletin's day, ranked by its rule."""
    d = districts.drop(columns=["rank", "list", "behind_projects", "schedule_gap"], errors="ignore").copy()
    late = sched.groupby("district")["overdue"].sum()
    d["overdue_projects"] = d["district"].map(late).fillna(0).astype(int)
    d = d.join(by_district, on="district")
    d["behind_projects"] = d["behind_projects"].fillna(0).astype(int)
    return rank_districts(d, size=settings.list_size, share=settings.list_share, by=settings.rank_by,
                          overdue_off_red=settings.overdue_off_red)


def _schedule_ranking(by_district: pd.DataFrame) -> pd.DataFrame:
    """Districts ranked on progress against time: the mean schedule gap of their dated projects."""
    out = by_district.reset_index().sort_values(["schedule_gap", "district"], ascending=[False, True],
                                                kind="stable").reset_index(drop=True)
    out.insert(0, "schedule_rank", np.arange(1, len(out) + 1))
    return out[["schedule_rank", "district", "behind_projects", "schedule_gap"]]


def _alerts_frame(alerts) -> pd.DataFrame:
    cols = {"alert_id": "", "kind": "", "status": "", "district": "", "project_id": "", "parcel_id": "",
            "area_m2": 0.0, "area_mu": 0.0, "first_seen": "", "last_seen": "", "post_freeze": False,
            "growing": False, "status_since": "", "note": ""}
    if alerts is None:
        return pd.DataFrame({k: pd.Series(dtype=type(v)) for k, v in cols.items()})
    a = pd.DataFrame(alerts.drop(columns="geometry", errors="ignore")).copy()
    for k, v in cols.items():
        if k not in a:
            a[k] = v
    a[["post_freeze", "growing"]] = a[["post_freeze", "growing"]].fillna(False).astype(bool)
    for k in ("status_since", "first_seen", "last_seen", "note", "district"):
        a[k] = a[k].fillna("").astype(str)
    return a


def bulletin_number(runs: pd.DataFrame | None, as_of, *, first: int = 1) -> int:
    """The 期号 of the bulletin of the week ending ``as_of``: the weekly runs of its year.

    Counts the distinct survey dates of the store's weekly runs in ``as_of``'s
    year up to ``as_of`` (this week's too, even before its run), from ``first``
    (gis.toml ``[bulletin] first_number``). A re-run of a week does not count again.
    """
    day = pd.Timestamp(as_of).date()
    dates = set()
    if runs is not None and len(runs):
        weekly = runs[runs["command"].astype(str) == "weekly"]
        for value in pd.to_datetime(weekly["epoch"], errors="coerce").dropna():
            if value.year == day.year and value.date() <= day:
                dates.add(value.date())
    dates.add(day)
    return first - 1 + len(dates)


def write_bulletin(clearance, out_html, *, alerts=None, store_dir=None, xlsx=None, as_of=None,
                   lang: str = "zh", period_start=None, waiting_days: int = DEFAULT_WAITING_DAYS,
                   settings: BulletinSettings | None = None, start_dates=None, compared=None,
                   number: int | None = None, run_date=None) -> Path:
    """Write the bulletin HTML (and the xlsx when asked); returns the HTML path.

    The arguments are those of :func:`bulletin_tables`.
    """
    tables = bulletin_tables(clearance, alerts=alerts, as_of=as_of, period_start=period_start, lang=lang,
                             waiting_days=waiting_days, settings=settings, start_dates=start_dates,
                             compared=compared, number=number, run_date=run_date)
    out = write_text_atomic(out_html, bulletin_html(tables, lang))
    if xlsx is not None:
        write_bulletin_xlsx(tables, xlsx, lang=lang)
    log.info("wrote bulletin %s", out)
    return Path(out)


def write_workspace_bulletin(ws, clearance, alerts, out_html, *, as_of, xlsx=None, lang: str | None = None,
                             period_start=None, runs: pd.DataFrame | None = None, run_date=None) -> Path:
    """The bulletin of a workspace's survey week ending ``as_of``: ``gis report`` and ``gis weekly``.

    The surveys compared are the workspace's latest epoch on or before ``as_of``
    and the one before it; the 期号 comes from ``runs`` (the store's run log),
    the office, list rule and start dates from gis.toml; days waiting count to
    ``run_date`` (the weekly run's day; default ``as_of``).
    """
    day = pd.Timestamp(as_of).date()
    upto = [e for e in ws.epochs if e.date <= day]
    cur = upto[-1] if upto else None
    prev = ws.previous_epoch(cur) if cur is not None else None
    return write_bulletin(clearance, out_html, alerts=alerts, xlsx=xlsx, as_of=day, lang=lang or ws.lang,
                          period_start=period_start, waiting_days=int(ws.thresholds["waiting_days"]),
                          settings=ws.bulletin, start_dates=ws.start_dates,
                          compared=(prev.date if prev else None, cur.date if cur else None),
                          number=bulletin_number(runs, day, first=ws.bulletin.first_number), run_date=run_date)


def write_bulletin_xlsx(tables: dict[str, pd.DataFrame], out, *, lang: str = "zh") -> Path:
    """The bulletin's tables, one sheet each, through the one writer of :mod:`gis.products.excel`:
    each sheet titled with the bulletin's period, the rounding and the list rule said in its notes."""
    head, names, T = table("header", lang), table("sheet", lang), table("bulletin", lang)
    period = tables["_period"].iloc[0]
    when = f"{T['period']} {period['start']} ~ {period['end']}"
    if period["number"]:
        when = f"{T['number'].format(year=period['end'].year, n=int(period['number']))}  {when}"
    sheets = []
    for key in BULLETIN_SHEETS:
        frame = tables[key]
        notes = [T["schedule_note"]] if key.startswith("schedule") else []
        if key in ("red_list", "black_list", "districts"):
            notes.append(rule_text(period, lang))
        if any(str(c).endswith("_left") for c in frame.columns):
            notes.append(table("text", lang)["rounding_note"])
        sheets.append(Sheet(names[key], _xlsx_frame(frame, lang), head,
                            {"value": _headline_formats(frame)} if key == "headline" else {},
                            title=f"{T['title']} · {names[key]}  {when}", notes=notes))
    return write_workbook(out, sheets, lang=lang)


def _xlsx_frame(df: pd.DataFrame, lang: str) -> pd.DataFrame:
    """Dates as dates; kinds, alert statuses and lists in the bulletin's language
    (yes/no are the writer's); the rest as computed."""
    out = labelled(df, lang)
    for col in ("deadline", "start_date"):
        if col in out:
            out[col] = pd.to_datetime(out[col]).dt.date
    return out


def _headline_formats(headline: pd.DataFrame) -> list[str]:
    """The headline mixes rates, areas and counts in one column: a format per row."""
    keys = [k for k, _ in HEADLINE]
    return [PERCENT if k in RATE_FIGURES else DECIMAL if k.endswith("_mu") else INTEGER for k in keys]
