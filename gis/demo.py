"""The demo scenario: the synthetic county, three weekly runs, patrol verdicts, every product.

:func:`run_demo` is what ``gis demo`` (and ``make demo``) runs, end to end:

1. the demo county's layers (:mod:`gis.synthetic.county`): 6 districts,
   8 projects, ~4,800 parcels, last week's snapshot, structures;
2. its survey imagery (:mod:`gis.synthetic.epochs`): three dates with planted
   new houses and crops, inside and outside red lines, before and after
   freeze dates, and a demolition; and the workspace's ``gis.toml``;
3. one weekly run per survey date (:func:`run_demo_cycle`), each dated three
   days after its flight, with patrol verdicts recorded after the second run
   (one illegal house, one false alarm), so the last run shows growth,
   suppression and alerts waiting for a verdict;
4. the products in the maps folder: the clearance map and bulletin of the
   last run under stable names, the figures (GeoPackage and workbook), the
   battle map (作战图) of the industrial park and a printable PNG. The maps
   folder is the workspace's ``out`` folder (gis.toml), so ``gis weekly``,
   ``gis report`` and ``gis serve`` of the demo workspace find and write
   the products there too (the served figures page offers its bulletin).

The demo writes its layers, imagery and ``gis.toml`` into its folder, so it
refuses a folder that holds another workspace unless told to replace it. Run
again in its own folder, it starts afresh: the earlier demo's alert store (its
alerts, verdicts, runs, chips, backups and the workspace's record of it) is
removed first, so every run of the demo shows the same thing
(:attr:`DemoResult.started_afresh` says so). Another workspace's store is
never touched.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio

from gis.alerts.chips import CHIP_DIR
from gis.alerts.identity import overlap_pairs
from gis.alerts.lifecycle import set_alert
from gis.alerts.photos import PHOTO_DIR
from gis.alerts.safety import BACKUP_DIR
from gis.atomic import write_text_atomic
from gis.clearance.pipeline import write_clearance
from gis.errors import ProtectedOutputError
from gis.products.staticmap import write_static_map
from gis.products.webmap import write_clearance_map
from gis.synthetic.county import DEMO_SEED, make_demo_county
from gis.synthetic.epochs import RESOLUTION, CountyFiles, planted, write_demo_epochs
from gis.weekly import Progress, WeeklySummary, run_weekly
from gis.workspace import STATE_NAME, TOML_NAME, Workspace, load_workspace, tomllib

log = logging.getLogger(__name__)

#: The project whose battle map (作战图) the demo draws: the industrial park.
BATTLE_MAP_PROJECT = "P03"

#: Patrol verdicts recorded after the second run: (site, statuses in order, note).
VERDICTS = (
    ("P01 house A", ("dispatched", "illegal"), "在建砖房，冻结后新建，已责令停工"),
    ("P07 crops", ("dispatched", "false_alarm"), "季节性作物，非抢种"),
)

#: The demo's steps, as ``progress(done, total)`` reports them (step ``done`` is ``STEPS[done - 1]``).
STEPS = ("demo county layers", "survey imagery", "weekly run 1", "weekly run 2", "weekly run 3",
         "figures, battle map, PNG")
#: The step of the first weekly run.
FIRST_RUN = STEPS.index("weekly run 1") + 1


@dataclass
class DemoResult:
    """What the demo made: the last weekly run's summary, the workspace and the products."""

    summary: WeeklySummary
    workspace: Path
    outputs: list[Path] = field(default_factory=list)
    #: The files of an earlier demo's alert store removed before this run (empty: there was none).
    removed: list[Path] = field(default_factory=list)

    @property
    def started_afresh(self) -> bool:
        """True when an earlier demo's alert store was removed first."""
        return bool(self.removed)

    @property
    def notice(self) -> str:
        """What a person is told about the earlier demo ('' when there was none)."""
        if not self.removed:
            return ""
        return (f"{self.workspace} held an earlier demo: started afresh (its alert store, verdicts, "
                "chips and backups were removed)")


def run_demo(out: str | os.PathLike, maps_dir: str | os.PathLike, *, seed: int = DEMO_SEED,
             workers: int = 2, force: bool = False, progress: Progress | None = None,
             weekly_progress: Progress | None = None, resolution: float = RESOLUTION) -> DemoResult:
    """Build the demo county in ``out``, run its weekly cycle and write every product to ``maps_dir``.

    ``workers`` processes detect changes. ``progress(done, total)`` is called
    as each of :data:`STEPS` starts, ``weekly_progress`` as each step of a
    weekly run does (:data:`gis.weekly.STEPS`). Without ``force`` a folder
    holding another workspace (not the demo's) is refused with
    :class:`~gis.errors.ProtectedOutputError`, before anything is written.
    The demo's own folder starts afresh (:func:`remove_demo_store`).
    ``resolution`` is the imagery's pixel size in metres (coarser: faster).
    """
    out, maps_dir = Path(out), Path(maps_dir)
    if not force:
        refuse_other_workspace(out)
    removed = remove_demo_store(out)
    report = progress or (lambda done, total: None)
    maps_dir.mkdir(parents=True, exist_ok=True)
    report(1, len(STEPS))
    county = make_demo_county(out, seed=seed)
    report(2, len(STEPS))
    write_demo_epochs(county, out, resolution=resolution)
    use_products_folder(out, maps_dir)
    summary = run_demo_cycle(out, maps_dir, progress=progress, weekly_progress=weekly_progress, workers=workers)

    report(len(STEPS), len(STEPS))
    snap = load_workspace(out).snapshot(county.as_of)
    c = snap.clearance
    write_clearance(c, maps_dir / "figures.gpkg", xlsx=maps_dir / "figures.xlsx")
    write_clearance_map(c, maps_dir / f"battle_{BATTLE_MAP_PROJECT}.html", alerts=snap.alerts,
                        store_dir=snap.store_dir, orthophoto=snap.epoch.ortho, project=BATTLE_MAP_PROJECT,
                        as_of=county.as_of)
    write_static_map(c, maps_dir / "clearance.png", alerts=snap.alerts)

    # stable names for the latest week, beside the dated ones the weekly run wrote
    for key, name in (("map", "clearance.html"), ("bulletin", "bulletin.html")):
        if key in summary.outputs:
            shutil.copyfile(summary.outputs[key], maps_dir / name)
    dated_xlsx = maps_dir / f"figures_{summary.epoch}.xlsx"
    if dated_xlsx.exists():
        shutil.copyfile(dated_xlsx, maps_dir / "bulletin.xlsx")
    names = ("clearance.html", f"battle_{BATTLE_MAP_PROJECT}.html", "clearance.png", "bulletin.html",
             "bulletin.xlsx", "figures.gpkg", "figures.xlsx")
    return DemoResult(summary=summary, workspace=out,
                      outputs=[maps_dir / n for n in names if (maps_dir / n).exists()], removed=removed)


def use_products_folder(demo_dir: str | os.PathLike, maps_dir: str | os.PathLike) -> None:
    """Make ``maps_dir`` the demo workspace's ``out`` folder (gis.toml), where its products go.

    Stored relative to the workspace (``out = "../../maps"`` for ``make demo``),
    like every path of gis.toml.
    """
    toml = Path(demo_dir) / TOML_NAME
    rel = Path(os.path.relpath(Path(maps_dir).resolve(), Path(demo_dir).resolve())).as_posix()
    line = "out = " + json.dumps(rel, ensure_ascii=False)  # a JSON string is a TOML basic string
    text = toml.read_text(encoding="utf-8")
    text, found = re.subn(r"(?m)^out = .*$", lambda _: line, text, count=1)  # top level: before any [table]
    write_text_atomic(toml, text if found else f"{line}\n{text}")


def _demo_toml(out: Path) -> dict | None:
    """``out``'s gis.toml when it is one the demo wrote (its red lines are the demo's file), else None."""
    toml = out / TOML_NAME
    try:
        cfg = tomllib.loads(toml.read_text(encoding="utf-8"))
        red = cfg.get("layers", {}).get("redlines")
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError, AttributeError):
        return None
    return cfg if red == "redlines.gpkg" else None  # what the demo writes


def is_demo_workspace(out: Path) -> bool:
    """True when ``out`` holds a workspace the demo wrote."""
    return _demo_toml(Path(out)) is not None


def remove_demo_store(out: Path) -> list[Path]:
    """Remove an earlier demo's alert store from the demo workspace ``out``; return what was removed.

    The GeoPackage (and its SQLite journal files), its chips, photos and
    backups, and the workspace's record of the store. Only in a folder the
    demo wrote (:func:`is_demo_workspace`), and only a GeoPackage inside it:
    a store named elsewhere (``GIS_STORE``, a PostGIS URL, a path outside
    the folder) is kept.
    """
    out = Path(out)
    cfg = _demo_toml(out)
    if cfg is None or os.environ.get("GIS_STORE"):
        return []
    store = (out / str(cfg.get("store", "store.gpkg"))).resolve()
    if not store.is_relative_to(out.resolve()) or store.suffix.lower() != ".gpkg":
        return []
    removed = []
    for path in [store, *(store.with_name(store.name + s) for s in ("-wal", "-shm", "-journal")),
                 *(store.parent / d for d in (CHIP_DIR, PHOTO_DIR, BACKUP_DIR)), out / STATE_NAME]:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(path)
    if removed:
        log.info("demo: removed the earlier demo's alert store in %s", out)
    return removed


def refuse_other_workspace(out: Path) -> None:
    """The demo writes its layers, imagery and gis.toml into ``out``: never over another workspace's."""
    if (out / TOML_NAME).is_file() and not is_demo_workspace(out):
        raise ProtectedOutputError(
            "the folder holds a workspace that is not the demo's; the demo would replace its layers, "
            "imagery and gis.toml", path=out,
            hint="give the demo another --out folder, or pass --force to replace that workspace")


def run_demo_cycle(demo_dir: str | os.PathLike, maps_dir: str | os.PathLike | None = None, *,
                   progress: Progress | None = None, weekly_progress: Progress | None = None,
                   workers: int = 1) -> WeeklySummary:
    """Run the weekly cycle over the demo epochs in order; return the last run's summary.

    Each run is dated three days after its survey; the verdicts of
    :data:`VERDICTS` are recorded the day after the second run. Map and
    bulletin of the last run are written to ``maps_dir`` (default: the
    workspace's out folder). ``progress`` hears of run ``k`` (from 0) as step
    ``FIRST_RUN + k`` of :data:`STEPS`; ``weekly_progress`` goes to each run.
    """
    ws = load_workspace(demo_dir)
    store = ws.open_store()
    summary = None
    for k, epoch in enumerate(ws.epochs):
        if progress is not None:
            progress(FIRST_RUN + k, len(STEPS))
        summary = run_weekly(ws, epoch.date, progress=weekly_progress or False,
                             today=epoch.date + dt.timedelta(days=3), maps=k == len(ws.epochs) - 1,
                             out_dir=maps_dir, workers=workers)
        if k == 1:
            record_verdicts(ws, store, epoch.date + dt.timedelta(days=4))
    return summary


def record_verdicts(ws: Workspace, store, day: dt.date) -> None:
    """Verdicts as patrols would record them, on the alerts at the planted sites of the second epoch."""
    county = CountyFiles(ws.redlines, ws.parcels, None, None, _bounds(ws), ws.working_crs)
    structures, crops = planted(county, 1)
    sites = pd.concat([structures, crops]).set_index("name")
    alerts = store.alerts()
    for name, statuses, note in VERDICTS:
        pairs = overlap_pairs(alerts.geometry.values, np.array([sites.loc[name].geometry]))
        if pairs.empty:
            log.warning("demo: no alert at %s, no verdict recorded", name)
            continue
        k = int(pairs.sort_values("inter").iloc[-1]["i"])
        aid, current = alerts["alert_id"].iloc[k], alerts["status"].iloc[k]
        if current != "new" and current not in statuses:
            continue  # someone else decided already
        # a re-run of the demo on its own store finds the verdicts recorded: nothing to do
        todo = statuses[statuses.index(current) + 1:] if current in statuses else statuses
        for st in todo:
            set_alert(store, aid, status=st, by="巡查队", note=note if st == statuses[-1] else None,
                      today=day)


def _bounds(ws: Workspace) -> tuple[float, float, float, float]:
    """The county's extent: that of its first orthophoto."""
    with rasterio.open(ws.epochs[0].ortho) as src:
        return tuple(src.bounds)
