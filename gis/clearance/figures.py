"""Clearance figures: per project, per district, rankings and red/black lists.

Definitions (README.md, "How the figures are counted"; from the mobilisation speeches):

- completion rate (征地完成率) = acquired area (status compensated or later) /
  total area of the parcels inside red lines;
- clean-land rate (净地率) = delivered area / total area;
- counts still to clear = houses, households, graves, special crops and
  attachments of parcels not yet demolished, pro-rated by the share of the
  parcel that lies inside;
- progress ratio (进度占比率) = projects with any parcel status change since
  the previous snapshot / all projects (有进度项目个数 ÷ 总项目个数);
- ranking (红黑榜): districts by completion rate (1 = best; ties by clean-land
  rate, then name); top three the red list, bottom three the black list, and a
  district with an overdue project is left off the red list (gis.toml
  ``[bulletin]`` may rank by another figure, or size the lists by count or
  share: :func:`rank_districts`);
- overdue: deadline passed and not all land delivered;
- progress against time (序时进度): for a project with a start date and a
  deadline, the share of that time elapsed; a project whose completion rate
  is below it is behind schedule (滞后): :func:`schedule_figures`.

A project counts the land of its own pieces. A district counts each piece of
land once, even where red lines overlap, and by the *parcel's* district.
Rates are computed from square metres, never from rounded mu.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd

from gis.clearance.overlay import parcel_inside_area
from gis.schema import ACQUIRED_FROM, CLEARED_FROM, COUNT_COLUMNS, DELIVERED, RANK_FIGURES, STATUS_RANK, m2_to_mu

#: Size of each of the red and black lists.
LIST_SIZE = 3

FIGURE_COLUMNS = [
    "total_mu", "acquired_mu", "delivered_mu", "completion_rate", "clean_land_rate",
    *(f"{c}_left" for c in COUNT_COLUMNS),
]


#: Columns of the ``project_figures`` and ``district_figures`` tables, in the
#: order the GeoPackage and the workbook show them.
PROJECT_TABLE = ["project_id", "name", "district", "project_type", "total_mu", "acquired_mu",
                 "delivered_mu", "completion_rate", "clean_land_rate", "houses_left",
                 "households_left", "graves_left", "special_crops_left", "attachments_left",
                 "deadline", "overdue", "progressed"]
DISTRICT_TABLE = ["district", "total_mu", "acquired_mu", "delivered_mu", "completion_rate",
                  "clean_land_rate", "houses_left", "households_left", "graves_left",
                  "special_crops_left", "attachments_left", "projects", "projects_progressed",
                  "progress_ratio", "overdue_projects", "rank", "list"]


def project_table(projects: pd.DataFrame) -> pd.DataFrame:
    """The columns of :data:`PROJECT_TABLE` that ``projects`` has, in that order."""
    return projects[[col for col in PROJECT_TABLE if col in projects.columns]]


def district_table(districts: pd.DataFrame) -> pd.DataFrame:
    """The columns of :data:`DISTRICT_TABLE` that ``districts`` has, in that order."""
    return districts[[col for col in DISTRICT_TABLE if col in districts.columns]]


def _area_sums(frame: pd.DataFrame, area_m2: np.ndarray, share: np.ndarray, by: str) -> pd.DataFrame:
    """Sum areas by status class and pro-rated counts left, grouped by ``by``."""
    rank = frame["status"].map(STATUS_RANK).to_numpy()
    data = {
        by: frame[by].to_numpy(),
        "total_m2": area_m2,
        "acquired_m2": np.where(rank >= ACQUIRED_FROM, area_m2, 0.0),
        "delivered_m2": np.where(rank >= DELIVERED, area_m2, 0.0),
    }
    not_cleared = rank < CLEARED_FROM
    for c in COUNT_COLUMNS:
        data[f"{c}_left"] = np.where(not_cleared, frame[c].to_numpy() * share, 0.0)
    return pd.DataFrame(data).groupby(by, sort=True).sum()


def _finish(sums: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=sums.index)
    total = sums["total_m2"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["total_mu"] = m2_to_mu(total)
        out["acquired_mu"] = m2_to_mu(sums["acquired_m2"].to_numpy())
        out["delivered_mu"] = m2_to_mu(sums["delivered_m2"].to_numpy())
        out["completion_rate"] = np.where(total > 0, sums["acquired_m2"] / total, np.nan)
        out["clean_land_rate"] = np.where(total > 0, sums["delivered_m2"] / total, np.nan)
    for c in COUNT_COLUMNS:
        out[f"{c}_left"] = sums[f"{c}_left"].to_numpy()
    out["_total_m2"] = total
    out["_delivered_m2"] = sums["delivered_m2"].to_numpy()
    return out


def _no_land_is_zero(figs: pd.DataFrame) -> pd.DataFrame:
    """Projects or districts with no land inside red lines: areas and counts 0, rates undefined."""
    sums = [c for c in figs.columns if c in FIGURE_COLUMNS or c.startswith("_")]
    sums = [c for c in sums if c not in ("completion_rate", "clean_land_rate")]
    figs[sums] = figs[sums].fillna(0.0)
    return figs


def progressed_projects(
    pieces: gpd.GeoDataFrame, parcels: pd.DataFrame, previous: pd.DataFrame | None
) -> pd.Series | None:
    """Per project: did any of its parcels change status since ``previous``?

    A parcel missing from the previous snapshot counts as ``not_started``
    there. ``None`` when there is no previous snapshot to compare with.
    """
    if previous is None:
        return None
    before = previous.set_index("parcel_id")["status"]
    now = parcels.set_index("parcel_id")["status"]
    was = before.reindex(now.index).fillna("not_started")
    changed_parcels = set(now.index[(was != now).to_numpy()])
    changed = pieces["parcel_id"].isin(changed_parcels)
    return changed.groupby(pieces["project_id"]).any()


def project_figures(
    pieces: gpd.GeoDataFrame,
    parcels: pd.DataFrame,
    redlines: pd.DataFrame,
    *,
    previous: pd.DataFrame | None = None,
    as_of: dt.date | None = None,
) -> pd.DataFrame:
    """One row per project (every red line, even those with no parcels)."""
    as_of = as_of or dt.date.today()
    at = pieces["_parcel"].to_numpy()  # row of each piece's parcel
    rows = pd.DataFrame({"project_id": pieces["project_id"].to_numpy(), "status": pieces["status"].to_numpy(),
                         **{c: parcels[c].to_numpy()[at] for c in COUNT_COLUMNS}})
    figs = _finish(_area_sums(rows, pieces["area_m2"].to_numpy(), pieces["share"].to_numpy(), "project_id"))

    meta_cols = [c for c in ("project_id", "name", "district", "project_type", "leader", "unit",
                             "deadline", "freeze_date", "funded", "start_date") if c in redlines.columns]
    out = pd.DataFrame(redlines[meta_cols]).set_index("project_id").join(figs, how="left")
    out = _no_land_is_zero(out)
    deadline = pd.to_datetime(out["deadline"]) if "deadline" in out else pd.Series(pd.NaT, index=out.index)
    past = (deadline < pd.Timestamp(as_of)).to_numpy(dtype=bool)  # NaT compares False
    out["overdue"] = past & (out["_delivered_m2"] < out["_total_m2"]).to_numpy()
    progressed = progressed_projects(pieces, parcels, previous)
    out["progressed"] = (progressed.reindex(out.index).fillna(False).astype(bool)
                         if progressed is not None else pd.NA)
    out = out.drop(columns=["_total_m2", "_delivered_m2"]).reset_index()
    return out.sort_values("project_id", kind="stable").reset_index(drop=True)


def district_figures(
    pieces: gpd.GeoDataFrame,
    parcels: pd.DataFrame,
    redlines: pd.DataFrame,
    projects: pd.DataFrame,
    *,
    inside_area: np.ndarray | None = None,
    parcel_area: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per district: land counted once, ranked, with red/black lists.

    ``projects`` is the output of :func:`project_figures` (for the progress
    ratio and overdue counts, by the project's own district). The streamed
    path, which never holds every parcel's geometry, passes each parcel's
    ``inside_area`` and ``parcel_area`` instead.
    """
    area = parcel_inside_area(pieces, len(parcels)) if inside_area is None else inside_area
    if parcel_area is None:
        parcel_area = parcels.geometry.area.to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(area > 0, area / parcel_area, 0.0)
    touched = area > 0
    frame = pd.DataFrame(parcels[[c for c in ("district", "status", *COUNT_COLUMNS)]])[touched]
    figs = _finish(_area_sums(frame, area[touched], np.minimum(share[touched], 1.0), "district"))

    proj = projects.groupby("district").agg(
        projects=("project_id", "size"),
        projects_progressed=("progressed", lambda s: s.sum() if s.notna().all() else np.nan),
        overdue_projects=("overdue", "sum"),
    )
    districts = sorted(set(figs.index) | set(proj.index))
    out = figs.reindex(districts)
    out = _no_land_is_zero(out)
    out = out.join(proj, how="left")
    out["projects"] = out["projects"].fillna(0).astype(int)
    out["overdue_projects"] = out["overdue_projects"].fillna(0).astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["progress_ratio"] = np.where(out["projects"] > 0,
                                         out["projects_progressed"] / out["projects"], np.nan)
    out = out.drop(columns=["_total_m2", "_delivered_m2"])
    out.index.name = "district"
    return rank_districts(out.reset_index())


def rank_districts(figs: pd.DataFrame, *, size: int = LIST_SIZE, share: float | None = None,
                   by: str = "completion_rate", overdue_off_red: bool = True) -> pd.DataFrame:
    """Rank by ``by`` (default the completion rate; ties: clean-land rate, then name) and mark the lists.

    Districts without the figure (no land in any red line) rank last. Each
    list holds ``size`` districts, or ``share`` of them (rounded half up, at
    least one) when given; with few districts the lists shrink so that no
    district is on both: each takes at most half. With ``overdue_off_red`` a
    district with an overdue project (``overdue_projects`` > 0) keeps its rank
    but is left off the red list; its place is not given to the next one.
    """
    if by not in figs.columns:
        raise KeyError(f"cannot rank districts by {by!r}: no such figure; use one of {', '.join(RANK_FIGURES)}")
    key = pd.DataFrame({
        "c": -figs[by].astype(float).fillna(-np.inf),
        "k": -figs["clean_land_rate"].fillna(-1.0) if "clean_land_rate" in figs else 0.0,
        "n": figs["district"].astype(str),
    })
    order = key.sort_values(["c", "k", "n"], kind="stable").index
    ranked = figs.loc[order].reset_index(drop=True)
    ranked["rank"] = np.arange(1, len(ranked) + 1)
    n = list_length(len(ranked), size=size, share=share)
    ranked["list"] = ""
    if n:
        ranked.loc[: n - 1, "list"] = "red"
        ranked.loc[len(ranked) - n:, "list"] = "black"
        if overdue_off_red and "overdue_projects" in ranked:
            late = ranked["overdue_projects"].fillna(0).astype(float).to_numpy() > 0
            ranked.loc[late & (ranked["list"] == "red").to_numpy(), "list"] = ""
    return ranked


def list_length(n_districts: int, *, size: int = LIST_SIZE, share: float | None = None) -> int:
    """How many districts each of the red and black lists takes (at most half of them)."""
    if share is not None:
        size = max(1, int(np.floor(share * n_districts + 0.5))) if n_districts else 0
    return min(int(size), n_districts // 2)


def schedule_figures(projects: pd.DataFrame, as_of: dt.date, start_dates=None) -> pd.DataFrame:
    """Progress against time (序时进度) of each project with a start date and a deadline.

    ``start_dates`` (project id -> date, gis.toml ``[start_dates]``) override the
    red lines' ``start_date`` column. Adds ``start_date``, ``time_elapsed`` (the
    share of the time from start to deadline that has passed at ``as_of``,
    0..1), ``schedule_gap`` (completion rate minus time elapsed) and
    ``behind_schedule`` (滞后: completion below the time elapsed); missing where
    a date is missing or the deadline is not after the start.
    """
    out = projects.copy()
    start = pd.to_datetime(out["start_date"], errors="coerce") if "start_date" in out \
        else pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns]")
    if start_dates:
        given = out["project_id"].astype(str).map({str(k): v for k, v in start_dates.items()})
        start = pd.to_datetime(given, errors="coerce").fillna(start)
    end = pd.to_datetime(out["deadline"], errors="coerce") if "deadline" in out else start * np.nan
    span = (end - start).dt.days.astype(float)
    elapsed = (pd.Timestamp(as_of) - start).dt.days.astype(float)
    valid = span > 0
    out["start_date"] = start.dt.date.where(start.notna(), None)
    out["time_elapsed"] = np.where(valid, np.clip(elapsed / span.where(valid), 0.0, 1.0), np.nan)
    out["schedule_gap"] = out["completion_rate"].astype(float) - out["time_elapsed"]
    behind = out["schedule_gap"] < -1e-9
    out["behind_schedule"] = behind.astype(object).where(out["schedule_gap"].notna(), None)
    return out


def district_schedule(schedule: pd.DataFrame) -> pd.DataFrame:
    """Per district: projects behind schedule and the mean schedule gap of those with dates."""
    dated = schedule[schedule["schedule_gap"].notna()]
    g = dated.groupby("district")
    return pd.DataFrame({"behind_projects": g["behind_schedule"].sum().astype(int),
                         "schedule_gap": g["schedule_gap"].mean()})
