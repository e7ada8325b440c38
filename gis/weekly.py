"""The weekly run: new imagery -> changes -> alerts -> figures -> maps and bulletin.

:func:`run_weekly` holds the store's run lock for the whole run (a second run
is refused, not queued; people's verdicts and notes are written meanwhile),
detects changes between the previous epoch and the new
one (and, for projects whose freeze baseline is older than the previous
epoch, between that baseline and the new one), updates the alerts, writes
their chips, computes the clearance figures and commits everything to the
store in one transaction. Maps and the bulletin are written after the commit
(atomic files of their own). Same inputs twice change nothing but the run log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from gis.alerts.identity import (freeze_baseline, growing_alerts, overlap_pairs, project_freeze_dates,
                                  update_alerts, waiting_for_verdict)
from gis.alerts.chips import write_chips
from gis.errors import CoverageError, GisError, OutputWriteError, WorkspaceError
from gis.alerts.store import now_iso
from gis.workspace import DEFAULT_THRESHOLDS, Epoch, Workspace, load_workspace

log = logging.getLogger(__name__)

#: a progress report, as everywhere in gis: ``progress(done, total)``
Progress = Callable[[int, int], None]
#: the steps of a run, as reported to ``progress``: step ``done`` is ``STEPS[done - 1]``
STEPS = ("figures", "detect", "alerts", "chips", "commit", "maps")


@dataclass
class WeeklySummary:
    run_id: str
    epoch: str
    previous_epoch: str
    changes: int = 0
    new_alerts: int = 0
    updated_alerts: int = 0
    suppressed: int = 0
    merged: int = 0
    new_by_district_kind: list[dict[str, Any]] = field(default_factory=list)
    new_post_freeze: int = 0
    growing: list[str] = field(default_factory=list)
    waiting_days: int = int(DEFAULT_THRESHOLDS["waiting_days"])
    waiting: list[dict[str, Any]] = field(default_factory=list)
    overdue_projects: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    #: the verdict model detection ran with and its false-alarm rate, and the retraining
    #: after the commit (gis.detect.champion); empty without a model or [model] retrain
    model: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_sha256(path: str | os.PathLike | None) -> str:
    if path is None:
        return ""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _default_detect() -> Callable[..., gpd.GeoDataFrame]:
    try:
        from gis.detect import detect_changes
    except ImportError as exc:
        raise GisError("change detection (gis.detect) is not available", hint=str(exc)) from None
    return detect_changes


def _detect_run(ws: Workspace, cur: Epoch, prev: Epoch, redlines: gpd.GeoDataFrame,
                detect: Callable[..., gpd.GeoDataFrame], workers: int = 1,
                windows: Progress | None = None, scheduler: Any = None,
                model: str | None = None) -> gpd.GeoDataFrame:
    """Changes since the previous epoch, plus changes since older freeze baselines;
    ``model``: the workspace's current verdict model (file), if one runs."""
    # detection keeps its per-kind minimum areas; the workspace minimum is applied to alerts
    kw: dict[str, Any] = dict(inventory=ws.inventory, parcels=ws.parcels)
    if model is not None:
        kw["model"] = model
    if windows is not None:
        kw["progress"] = windows  # detection reports (windows done, windows in all)
    if workers > 1:
        kw["workers"] = workers
    if scheduler is not None:
        kw["scheduler"] = scheduler  # a started one: every comparison of the run shares it
    week = detect(str(prev.ortho), str(cur.ortho), dsm_before=prev.dsm, dsm_after=cur.dsm, **kw)
    week = week.to_crs(ws.working_crs) if week.crs is not None else week.set_crs(ws.working_crs)
    week["since"] = prev.date
    parts = [week]
    dates = [e.date for e in ws.epochs]
    freeze = project_freeze_dates(redlines, ws.freeze_dates)
    by_base: dict[dt.date, list[str]] = {}
    for pid, f in sorted(freeze.items()):
        base = freeze_baseline(f, dates)
        if base is not None and base < prev.date:
            by_base.setdefault(base, []).append(pid)
    for base, pids in sorted(by_base.items()):
        b = ws.epoch(base)
        within = redlines[redlines["project_id"].astype(str).isin(pids)]
        extra = detect(str(b.ortho), str(cur.ortho), dsm_before=b.dsm, dsm_after=cur.dsm,
                       within=within, **kw)
        extra = extra.to_crs(ws.working_crs) if extra.crs is not None else extra.set_crs(ws.working_crs)
        # a change since the baseline covers what changed this week at the same place
        # (a house and its new extension): keep the whole footprint, not the increment
        seen = overlap_pairs(extra.geometry.values, week.geometry.values)
        seen = seen[seen["ratio"] >= ws.thresholds["overlap_ratio"]]
        parts[0] = parts[0].drop(week.index[np.unique(seen["j"].to_numpy())], errors="ignore")
        extra["since"] = base
        parts.append(extra)
        log.info("freeze baseline %s: %d further changes in %d projects", base, len(extra), len(pids))
    out = pd.concat(parts, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=ws.working_crs)


def _scheduler(scheduler: Any):
    """A context giving a started scheduler: one started from an address (closed
    after), or the one given (None included) as it is."""
    if not isinstance(scheduler, str):
        return contextlib.nullcontext(scheduler)
    from gis.detect.pool import scheduler_for  # with detection (see _default_detect)

    return scheduler_for(scheduler)


def _empty_changes(crs: Any) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"kind": [], "area_m2": [], "confidence": [], "project_id": [],
                             "parcel_id": [], "in_inventory": []}, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def run_weekly(workspace: Workspace | str | os.PathLike, epoch: dt.date | str | None = None,
               progress: bool | Progress = False, *, detect: Callable[..., gpd.GeoDataFrame] | None = None,
               today: dt.date | None = None, maps: bool = True, by: str = "weekly",
               out_dir: str | os.PathLike | None = None, workers: int = 1,
               detect_progress: Progress | None = None, scheduler: Any = None) -> WeeklySummary:
    """Run one weekly cycle on ``epoch`` (default: the latest) and return its summary.

    ``progress`` may be a callable ``progress(done, total)``, called as each step
    starts (step ``done`` of ``total``, named ``STEPS[done - 1]``), and
    ``detect_progress`` one called as detection's windows are done (windows done,
    windows in all): the CLI drives its bar with both; ``progress=True`` only logs
    the steps. ``detect`` replaces gis.detect.detect_changes
    (tests); ``today`` is the run date (status_since of new alerts, overdue
    projects, alerts waiting for a verdict); ``out_dir`` overrides the
    workspace's out folder for the map and bulletin; ``workers`` goes to detection,
    and so does ``scheduler`` (a Dask cluster's address or ``local:N``, started for
    the detection step, or a started :mod:`gis.detect.pool` scheduler).
    """
    ws = workspace if isinstance(workspace, Workspace) else load_workspace(workspace)
    # the library never prints: a callable drives the CLI's bar, True only logs the steps

    def report(step: str, done: int, total: int) -> None:
        if callable(progress):
            progress(done, total)
        elif progress:
            log.info("weekly: %s (%d/%d)", step, done, total)

    today = today or dt.date.today()
    cur = ws.epoch(epoch)
    prev = ws.previous_epoch(cur)
    store = ws.open_store()
    started = now_iso()
    run_id = f"{started}-{uuid.uuid4().hex[:8]}"
    step = iter(range(1, len(STEPS) + 1))
    with store.run_lock("weekly"):  # a second run is refused; people's writes are not
        report("figures", next(step), len(STEPS))
        clear = ws.clearance(today)  # read layers, overlay, figures, as gis.toml says
        check_coverage(ws, clear.redlines, [e for e in (cur, prev) if e is not None])
        report("detect", next(step), len(STEPS))
        if prev is None:
            changes = _empty_changes(ws.working_crs)
            log.info("epoch %s is the first: it is the baseline, nothing to compare", cur.date)
        else:
            with _scheduler(scheduler) as tasks_on:
                changes = _detect_run(ws, cur, prev, clear.redlines, detect or _default_detect(), workers,
                                      detect_progress, tasks_on, model=_current_model(ws))
        report("alerts", next(step), len(STEPS))
        th = ws.thresholds
        before = store.alerts()  # read now, committed at the end: people's writes go on meanwhile
        up = update_alerts(before, changes, epoch_date=cur.date,
                           previous_date=prev.date if prev else None,
                           epoch_dates=[e.date for e in ws.epochs], redlines=clear.redlines,
                           parcels=clear.parcels, freeze_dates=ws.freeze_dates,
                           overlap_ratio=th["overlap_ratio"], growth=th["growth"],
                           min_area_m2=th["min_area_m2"], run_date=today, now=started, by=by)
        report("chips", next(step), len(STEPS))
        try:
            alerts = _with_chips(up.alerts, ws, store.store_dir, cur, prev)
        except OutputWriteError as exc:  # nothing is committed
            raise OutputWriteError(f"{exc.message}; nothing was committed, the store is unchanged",
                                   path=exc.path, hint="free disk space or make the store's folder "
                                                       "writable, then run `gis weekly` again") from exc
        report("commit", next(step), len(STEPS))
        inputs = {str(p.relative_to(ws.root) if p.is_relative_to(ws.root) else p): file_sha256(p)
                  for p in (ws.redlines, ws.parcels, ws.previous_parcels, ws.inventory,
                            cur.ortho, cur.dsm, *((prev.ortho, prev.dsm) if prev else ()))
                  if p is not None}
        summary = _summary(run_id, cur, prev, changes, up, alerts, clear, th, today)
        # one short transaction: new alerts inserted, the run's own columns merged into
        # the others (a verdict, note or photo recorded while detecting is kept)
        with store.transaction(by=by, command="weekly", run_id=run_id) as tx:
            tx.merge_run(before, alerts)
            tx.add_events([{**e, "by": by} for e in up.events])
            tx.run = {"run_id": run_id, "command": "weekly", "epoch": cur.date.isoformat(),
                      "previous_epoch": prev.date.isoformat() if prev else "", "started": started,
                      "finished": now_iso(), "inputs": inputs, "parameters": th,
                      "counts": {"changes": summary.changes, "new": summary.new_alerts,
                                 "updated": summary.updated_alerts, "suppressed": summary.suppressed,
                                 "merged": summary.merged},
                      "host": socket.gethostname(), "pid": os.getpid()}
    summary.model = _learn(ws, store, cur)  # after the commit: a failed retraining loses nothing
    report("maps", next(step), len(STEPS))
    if maps:
        try:
            summary.outputs = _write_products(ws, clear, store, cur, prev, today, out_dir)
        except OSError as exc:  # a full disk, a folder that cannot be written
            err = OutputWriteError(
                f"run {run_id} on the epoch {cur.date} was committed to the store, but its map and "
                f"bulletin could not be written ({exc.strerror or exc})",
                path=exc.filename or out_dir or ws.out,
                hint="free disk space or make the folder writable, then run `gis weekly` again "
                     "(the same inputs change nothing in the alerts) to write them")
            err.summary = summary  # what was committed, for a library caller
            raise err from exc
    return summary


@dataclass
class WorkspaceRun:
    """One workspace's part of :func:`run_weekly_many`: its summary, or the error that
    stopped it (nothing of it committed)."""

    workspace: Path
    summary: WeeklySummary | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        """One line for people: what the run did, or why it failed."""
        if self.error is not None:
            return f"{self.workspace}: failed, {type(self.error).__name__}: {self.error}"
        s = self.summary
        return (f"{self.workspace}: epoch {s.epoch}, {s.changes} changes, {s.new_alerts} new alerts, "
                f"{s.updated_alerts} updated, committed as run {s.run_id}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"workspace": str(self.workspace), "ok": self.ok}
        if self.error is not None:
            e = self.error
            out["error"] = e.to_dict() if isinstance(e, GisError) else {"error": type(e).__name__,
                                                                         "message": str(e)}
        else:
            out["summary"] = self.summary.to_dict()
        return out


def run_weekly_many(workspaces: list[str | os.PathLike], epoch: dt.date | str | None = None, *,
                    scheduler: Any = None, workers: int = 1, **kw: Any) -> list[WorkspaceRun]:
    """:func:`run_weekly` on each workspace in turn (a city's counties), each committed
    to its own store on its own; one that fails is reported in its
    :class:`WorkspaceRun` (the error kept, logged) and the others still run.

    ``scheduler`` (an address or ``local:N``) is started once and shared by every
    workspace's detection; ``kw`` goes to each :func:`run_weekly`. The list follows
    ``workspaces``.
    """
    runs = []
    with _scheduler(scheduler) as tasks_on:
        for root in workspaces:
            run = WorkspaceRun(Path(root))
            try:
                run.summary = run_weekly(root, epoch, scheduler=tasks_on, workers=workers, **kw)
            except (GisError, OSError, ValueError, KeyError) as exc:
                # a workspace's own trouble (its inputs, its store, its disk); a bug
                # elsewhere is not caught and stops the run with its traceback
                log.error("workspace %s: %s: %s", root, type(exc).__name__, exc)
                run.error = exc
            runs.append(run)
    return runs


def check_coverage(ws: Workspace, redlines: gpd.GeoDataFrame, epochs: list[Epoch]) -> None:
    """Refuse an epoch whose orthophoto has image data on less than
    ``thresholds.min_coverage`` of the red lines' area (see :mod:`gis.imagery.coverage`):
    detection reports nothing where there is no data, and an all-nodata image would
    read as a week without changes."""
    from gis.imagery.coverage import valid_share
    from gis.imagery.pair import check_raster

    for e in epochs:  # a damaged file is named now, not by GDAL's error in the middle of the run
        check_raster(e.ortho)
    minimum = ws.thresholds["min_coverage"]
    if minimum > 1:
        raise WorkspaceError(f"thresholds.min_coverage = {minimum} is more than 1", path=ws.toml,
                             hint="give a share of the red lines' area between 0 and 1, e.g. 0.5")
    if minimum <= 0 or redlines.empty:
        return
    for e in epochs:
        share = valid_share(e.ortho, redlines.geometry.values, redlines.crs)
        log.info("orthophoto of %s: image data on %.1f %% of the red lines", e.date, 100 * share)
        if share < minimum:
            raise CoverageError(
                f"the orthophoto of {e.date} has image data on {100 * share:.1f} % of the red lines' area, "
                f"less than the {100 * minimum:.0f} % a weekly run needs: no changes would be found on ground "
                "it does not show. Nothing was run or committed", path=e.ortho,
                hint="give the complete orthophoto of that date in gis.toml (or fix its nodata value or "
                     "mask); to accept a partial flight, lower thresholds.min_coverage in gis.toml")


def _with_chips(alerts: gpd.GeoDataFrame, ws: Workspace, store_dir: Path, cur: Epoch,
                prev: Epoch | None) -> gpd.GeoDataFrame:
    """After chips for alerts seen in this epoch; before chips for those still without one."""
    a = alerts.copy()
    margin = ws.thresholds["chip_margin_m"]
    seen = (a["last_seen"] == cur.date.isoformat()).to_numpy()
    if seen.any():
        a.loc[seen, "chip_after"] = write_chips(a[seen], cur.ortho, store_dir, which="after",
                                                date=cur.date.isoformat(), margin=margin)
    need = seen & (a["chip_before"] == "").to_numpy()
    if prev is not None and need.any():
        a.loc[need, "chip_before"] = write_chips(a[need], prev.ortho, store_dir, which="before",
                                                 date=prev.date.isoformat(), margin=margin)
    return a


def _summary(run_id, cur, prev, changes, up, alerts, clear, th, today) -> WeeklySummary:
    s = WeeklySummary(run_id=run_id, epoch=cur.date.isoformat(),
                      previous_epoch=prev.date.isoformat() if prev else "",
                      changes=len(changes), new_alerts=len(up.new_ids),
                      updated_alerts=len(up.updated_ids), suppressed=up.suppressed, merged=len(up.merged_ids))
    new = alerts[alerts["alert_id"].isin(up.new_ids)]
    if len(new):
        counts = new.groupby(["district", "kind"]).size().reset_index(name="count")
        s.new_by_district_kind = counts.to_dict("records")
        s.new_post_freeze = int(new["post_freeze"].sum())
    # the bulletin lists alerts by the same two rules (gis.alerts.identity)
    s.growing = sorted(growing_alerts(alerts)["alert_id"])
    s.waiting_days = int(th["waiting_days"])
    waiting = waiting_for_verdict(alerts, today, s.waiting_days)
    s.waiting = [{"alert_id": r.alert_id, "district": r.district, "status": r.status,
                  "since": r.status_since, "days": int(r.waiting_days)} for r in waiting.itertuples()]
    proj = clear.projects
    if "overdue" in proj:
        od = proj[proj["overdue"].fillna(False).astype(bool)]
        s.overdue_projects = [{"project_id": str(r.get("project_id", "")), "name": str(r.get("name", "")),
                               "district": str(r.get("district", "")), "deadline": str(r.get("deadline", ""))[:10]}
                              for r in od.to_dict("records")]
    return s


def _write_products(ws: Workspace, clear, store, cur: Epoch, prev: Epoch | None,
                    today: dt.date, out_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Map and bulletin of this week: the bulletin is dated by the survey (``cur``), not the run's day."""
    from gis.products.webmap import write_clearance_map
    from gis.products.bulletin import write_workspace_bulletin

    folder = Path(out_dir) if out_dir else (ws.out or ws.root / "out")
    folder.mkdir(parents=True, exist_ok=True)
    alerts = store.alerts()
    stamp = cur.date.isoformat()
    return {
        "map": str(write_clearance_map(clear, folder / f"clearance_{stamp}.html", alerts=alerts,
                                       store_dir=store.store_dir, orthophoto=cur.ortho, lang=ws.lang,
                                       as_of=today)),
        # the survey week ending on this epoch's date (days waiting to the run's date);
        # its 期号 from the store's runs (this one included)
        "bulletin": str(write_workspace_bulletin(ws, clear, alerts, folder / f"bulletin_{stamp}.html",
                                                 xlsx=folder / f"figures_{stamp}.xlsx", as_of=cur.date,
                                                 runs=store.runs(), run_date=today)),
    }


def _current_model(ws: Workspace) -> str | None:
    """The file of the verdict model that runs in this workspace (``gis model use``), or None."""
    path = ws.store_dir / "models" / "registry.json"
    if not path.exists():  # no model ever trained: nothing to import
        return None
    from gis.detect.champion import Registry  # with detection (see _default_detect)

    reg = Registry(ws.store_dir)
    return str(reg.model_path(reg.current)) if reg.current else None


def _learn(ws: Workspace, store, cur: Epoch) -> dict[str, Any]:
    """The verdict model's part of the summary, and its retraining with ``[model] retrain =
    true`` (:func:`gis.detect.champion.weekly_model`); {} in a workspace that never had one."""
    if not (ws.store_dir / "models").exists() and "[model]" not in ws.toml.read_text(encoding="utf-8"):
        return {}
    from gis.detect.champion import weekly_model  # see _current_model

    return weekly_model(ws, store, cur.date.isoformat())


def format_summary(s: WeeklySummary) -> str:
    """A short plain-text summary for people (the CLI prints it)."""
    lines = [f"weekly run {s.epoch} (compared with {s.previous_epoch or 'nothing: first epoch'}): "
             f"{s.changes} changes, {s.new_alerts} new alerts ({s.new_post_freeze} after a freeze date), "
             f"{s.updated_alerts} updated, {s.suppressed} suppressed, {s.merged} merged"]
    if s.new_by_district_kind:
        lines.append("new alerts by district and kind:")
        lines += [f"  {r['district'] or '-'}  {r['kind']}: {r['count']}" for r in s.new_by_district_kind]
    lines.append(f"growing alerts: {', '.join(s.growing) if s.growing else 'none'}")
    if s.waiting:
        lines.append(f"waiting for a verdict more than {s.waiting_days} days: {len(s.waiting)}")
        lines += [f"  {w['alert_id']}  {w['district']}  {w['status']} since {w['since']} ({w['days']} days)"
                  for w in s.waiting[:20]]
        if len(s.waiting) > 20:
            lines.append(f"  ... and {len(s.waiting) - 20} more (gis alerts list --status new)")
    else:
        lines.append(f"waiting for a verdict more than {s.waiting_days} days: none")
    if s.overdue_projects:
        lines.append("overdue projects: " + ", ".join(
            f"{p['project_id']} {p['name']} ({p['deadline']})" for p in s.overdue_projects))
    else:
        lines.append("overdue projects: none")
    if s.model:
        from gis.detect.champion import model_line  # see _current_model

        lines.append(model_line(s.model))
    for k, v in s.outputs.items():
        lines.append(f"{k}: {v}")
    return "\n".join(lines)
