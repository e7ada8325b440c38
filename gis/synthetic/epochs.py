"""Survey imagery and a real weekly cycle for the demo county.

:func:`write_demo_epochs` renders three survey dates of the demo county with
:mod:`gis.synthetic.render` (1 m pixels, same background seed, so epochs differ only
by what is planted here) and writes the demo workspace's ``gis.toml``:

* 2026-10-31: the baseline; a shantytown house in P04 still stands.
* 2026-11-07: new houses and a greenhouse in P01 (after its 03-01 freeze),
  a house in P02 (before its 11-10 freeze), crops in P07, a house outside
  every red line; the P04 house is demolished.
* 2026-11-14: a P01 house has grown, new houses in P02 (now after its
  freeze) and P05, a greenhouse in P03, another house outside red lines.

Each epoch has a 2 m DSM too (so detection also sees the demolition).

The weekly runs over these epochs, with patrol verdicts in between, are the
demo scenario of :mod:`gis.demo`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import box

from gis.clearance.layers import read_redlines
from gis.synthetic.render import render_dsm, render_orthophoto
from gis.workspace import init_workspace

log = logging.getLogger(__name__)

#: Weekly survey flights; the last run (three days after the last flight) is the demo's "today".
DEMO_DATES = (dt.date(2026, 10, 31), dt.date(2026, 11, 7), dt.date(2026, 11, 14))
RESOLUTION = 1.0
IMAGE_SEED = 7


@dataclass(frozen=True)
class Site:
    """One planted feature: where, what, and in which epochs it stands."""

    name: str
    project: str  # project id, or "" for outside every red line
    kind: str  # structure | crop
    size: tuple[float, float]
    first: int = 1  # index of the first epoch showing it
    last: int = 2  # index of the last epoch showing it
    grown: tuple[float, float] | None = None  # size from epoch ``first + 1`` on
    style: str = ""  # roof colour or crop kind
    height: float = 4.0


SITES = (
    Site("P01 house A", "P01", "structure", (14, 12), grown=(20, 15), style="blue", height=7),
    Site("P01 house B", "P01", "structure", (12, 10), style="grey", height=4),
    Site("P01 greenhouse", "P01", "crop", (40, 24), style="greenhouse"),
    Site("P02 house", "P02", "structure", (12, 12), style="grey", height=4),
    Site("P07 crops", "P07", "crop", (50, 50), style="crop"),
    Site("outside house", "", "structure", (12, 10), style="blue", height=4),
    Site("P04 old house", "P04", "structure", (16, 12), first=0, last=0, style="dark", height=6),
    Site("P02 house 2", "P02", "structure", (12, 10), first=2, style="blue", height=4),
    Site("P03 greenhouse", "P03", "crop", (40, 40), first=2, style="greenhouse"),
    Site("P05 house", "P05", "structure", (14, 10), first=2, style="grey", height=7),
    Site("outside house 2", "", "structure", (10, 10), first=2, style="blue", height=4),
)


def _slots(red: gpd.GeoDataFrame, project: str, bounds, n: int) -> list[shapely.Point]:
    """``n`` spots at least 70 m apart for a project's sites, inside its red line (nearest
    its centre first); for ``project`` "" spots far from every red line."""
    if project:
        geom = red.loc[red["project_id"] == project].geometry.iloc[0]
        zone, centre = geom.buffer(-8), geom.representative_point()
    else:
        zone = shapely.box(*bounds).buffer(-100).difference(red.union_all().buffer(120))
        centre = shapely.box(*bounds).centroid
    zone = zone.buffer(-10)  # sites are centred on their spot: keep 10 m of room
    xmin, ymin, xmax, ymax = zone.bounds
    step = 10.0 if project else 40.0
    xs, ys = np.meshgrid(np.arange(xmin, xmax, step), np.arange(ymin, ymax, step))
    xs, ys = xs.ravel(), ys.ravel()
    shapely.prepare(zone)
    inside = shapely.contains_xy(zone, xs, ys)
    pts = shapely.points(xs[inside], ys[inside])
    pts = pts[np.argsort(shapely.distance(pts, centre), kind="stable")]
    chosen: list[shapely.Point] = []
    for p in pts:  # greedy, a few thousand candidates at most
        if all(p.distance(c) >= 70 for c in chosen):
            chosen.append(p)
            if len(chosen) == n:
                return chosen
    raise RuntimeError(f"no room for {n} demo sites in {project or 'the county outside red lines'}")


def planted(county, epoch: int) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The structures and crops standing at epoch ``epoch`` (0, 1, 2) of a county
    (a DemoCounty or :class:`CountyFiles`: its red lines and bounds)."""
    red = read_redlines(county.redlines)
    projects = sorted({s.project for s in SITES})
    slots = {p: iter(_slots(red, p, county.bounds, sum(s.project == p for s in SITES))) for p in projects}
    rows = []
    for s in SITES:
        a = next(slots[s.project])  # every site keeps its slot whatever the epoch
        if not s.first <= epoch <= s.last:
            continue
        w, h = s.grown if s.grown and epoch > s.first else s.size
        rows.append({"name": s.name, "kind": s.kind, "style": s.style, "height": s.height,
                     "geometry": box(a.x - w / 2, a.y - h / 2, a.x + w / 2, a.y + h / 2)})
    gdf = gpd.GeoDataFrame(pd.DataFrame(rows, columns=["name", "kind", "style", "height", "geometry"]),
                           geometry="geometry", crs=red.crs)
    structures = gdf[gdf["kind"] == "structure"].rename(columns={"style": "roof"})
    crops = gdf[gdf["kind"] == "crop"].rename(columns={"style": "crop"})
    return structures, crops


def _render_epoch(county, out: Path, k: int, date: dt.date, resolution: float) -> tuple:
    structures, crops = planted(county, k)
    path = out / "imagery" / f"ortho_{date.isoformat()}.tif"
    render_orthophoto(path, bounds=county.bounds, resolution=resolution, crs=county.crs,
                      structures=structures, crops=crops, seed=IMAGE_SEED, date=date)
    # DSMs (2 m; detection resamples them) let detection see the demolition
    dsm = out / "imagery" / f"dsm_{date.isoformat()}.tif"
    render_dsm(dsm, bounds=county.bounds, resolution=2 * resolution, crs=county.crs,
               structures=structures, seed=IMAGE_SEED, date=date)
    log.info("rendered %s (%d structures, %d crops)", path, len(structures), len(crops))
    return date, path, dsm


def write_demo_epochs(county, out_dir: str | os.PathLike, *, resolution: float = RESOLUTION,
                      overwrite: bool = True, workers: int = 1) -> Path:
    """Render the demo epochs into ``out_dir/imagery`` and write ``out_dir/gis.toml``.

    Epochs are rendered in ``workers`` processes (rendering is single-threaded numpy).
    """
    out = Path(out_dir)
    (out / "imagery").mkdir(parents=True, exist_ok=True)
    county = CountyFiles(county.redlines, county.parcels, county.previous_parcels, county.inventory,
                    tuple(county.bounds), str(county.crs))
    jobs = [(county, out, k, date, resolution) for k, date in enumerate(DEMO_DATES)]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            epochs = list(ex.map(_render_epoch, *zip(*jobs)))
    else:
        epochs = [_render_epoch(*j) for j in jobs]
    return init_workspace(out, redlines=county.redlines, parcels=county.parcels,
                          previous_parcels=county.previous_parcels, inventory=county.inventory,
                          epochs=epochs, working_crs=county.crs, overwrite=overwrite)


@dataclass(frozen=True)
class CountyFiles:
    """What rendering and :func:`planted` need of a DemoCounty, as a picklable value."""

    redlines: Path
    parcels: Path
    previous_parcels: Path | None
    inventory: Path | None
    bounds: tuple
    crs: str
