"""A deterministic synthetic county for the demo, tests and benchmarks.

Six districts on a 4 km x 3 km patch of CGCS2000 / 3-degree Gauss-Kruger
CM 114E (EPSG:4547), about 4,800 irregular parcels on a jittered grid, and
eight projects of different kinds (a road and a greenway that overlap, a
canal, an industrial park, a shantytown, ...) with deadlines, freeze dates
and a realistic spread of clearance statuses. Five projects have a start
date (开工日期), so the bulletin counts progress against time (序时进度) and
finds some behind it (滞后); the other three have none, as real red lines
often lack one. Real files come with Chinese headers and status names, so
the demo parcels and red lines are written that way too; the structure
inventory uses English headers.

Everything is drawn from one seeded generator: the same seed gives the same
county, byte for byte in its attributes.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.atomic import atomic_path
from gis.labels import STATUS as STATUS_LABELS
from gis.schema import PARCELS, REDLINES, STATUSES

DEMO_SEED = 20261121
DEMO_CRS = "EPSG:4547"
#: South-west corner of the county (near 114.13E, 30.64N).
ORIGIN = (512_000.0, 3_390_000.0)
WIDTH, HEIGHT, CELL = 4000.0, 3000.0, 50.0
#: South row west to east, then north row west to east.
DISTRICTS = ("西城区", "南湖区", "临港区", "东城区", "高新区", "北山区")


@dataclass
class DemoCounty:
    folder: Path
    redlines: Path
    parcels: Path
    previous_parcels: Path
    inventory: Path
    bounds: tuple[float, float, float, float]
    crs: str = DEMO_CRS
    #: The demo's "today": the last weekly run, three days after the last survey flight.
    as_of: dt.date = dt.date(2026, 11, 17)


def jittered_cadastre(nx: int, ny: int, cell: float, origin=(0.0, 0.0), *, jitter: float = 0.15,
                      seed: int = 0) -> np.ndarray:
    """``nx * ny`` irregular 8-vertex parcels tiling a rectangle without gaps.

    Corners and edge midpoints of a regular grid are jittered; each edge
    point is shared by the two parcels either side, so the parcels tile the
    rectangle exactly (outer border kept straight). Row-major from the
    south-west.
    """
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.arange(nx + 1, dtype=float), np.arange(ny + 1, dtype=float))
    corners = np.stack([gx, gy], axis=-1) * cell
    corners[1:-1, 1:-1] += rng.uniform(-jitter, jitter, (ny - 1, nx - 1, 2)) * cell
    hmid = (corners[:, :-1] + corners[:, 1:]) / 2.0  # (ny+1, nx) on horizontal edges
    hmid[1:-1, :, 1] += rng.uniform(-jitter, jitter, (ny - 1, nx)) * cell * 0.6
    vmid = (corners[:-1, :] + corners[1:, :]) / 2.0  # (ny, nx+1) on vertical edges
    vmid[:, 1:-1, 0] += rng.uniform(-jitter, jitter, (ny, nx - 1)) * cell * 0.6
    ring = np.stack([
        corners[:-1, :-1], hmid[:-1, :], corners[:-1, 1:], vmid[:, 1:],
        corners[1:, 1:], hmid[1:, :], corners[1:, :-1], vmid[:, :-1], corners[:-1, :-1],
    ], axis=2)  # (ny, nx, 9, 2)
    ring = ring.reshape(nx * ny, 9, 2) + np.asarray(origin)
    return shapely.polygons(ring)


def _corridor(points, width: float) -> shapely.Geometry:
    return shapely.buffer(shapely.LineString(points), width / 2.0, cap_style="flat", join_style="round")


#: The day clearance work started (开工日期), for progress against time (序时进度). The road,
#: the industrial park and the shantytown lag behind; the school is done and the canal, just
#: started, is ahead. The unfunded projects and the resettlement housing have none yet.
_START_DATES = {"P01": "2026-01-10", "P02": "2026-11-01", "P03": "2026-03-15", "P04": "2026-01-20",
                "P06": "2026-01-05"}


def _redlines() -> gpd.GeoDataFrame:
    x0, y0 = ORIGIN
    def p(x, y):
        return (x0 + x, y0 + y)
    rows = [
        # id, name, type, leader, unit, deadline, funded, freeze_date, geometry
        ("P01", "金沙大道新建工程", "道路", "张建国", "县交通运输局", "2026-09-30", True, "2026-03-01",
         _corridor([p(100, 1500), p(1500, 1560), p(2600, 1450), p(3900, 1520)], 60)),
        ("P02", "东干渠整治工程", "水利", "李明华", "县水利局", "2027-03-31", True, "2026-11-10",
         _corridor([p(2900, 2950), p(2800, 2300), p(3050, 1800), p(2950, 900), p(3150, 100)], 40)),
        ("P03", "高新技术产业园一期", "产业", "王志强", "高新区管委会", "2026-12-31", True, "2026-04-01",
         shapely.Polygon([p(2200, 1900), p(2850, 1950), p(2800, 2500), p(2150, 2450)])),
        ("P04", "老城片区棚户区改造", "棚改", "赵雪梅", "县住建局", "2026-10-31", True, "2026-02-01",
         shapely.Polygon([p(300, 2200), p(750, 2150), p(800, 2600), p(450, 2700), p(280, 2500)])),
        ("P05", "临港物流园", "物流", "陈海波", "临港区管委会", "2027-06-30", False, "2026-07-01",
         shapely.Polygon([p(3300, 300), p(3850, 320), p(3830, 800), p(3320, 780)])),
        ("P06", "第三中学扩建", "公共服务", "刘芳", "县教育局", "2026-08-31", True, "2026-01-15",
         shapely.Polygon([p(1200, 400), p(1420, 410), p(1410, 620), p(1190, 610)])),
        ("P07", "南湖安置小区", "安置房", "周立新", "南湖区政府", "2027-01-31", True, "2026-06-01",
         shapely.Polygon([p(1700, 500), p(2050, 520), p(2030, 850), p(1680, 830)])),
        ("P08", "滨江生态绿道", "生态", "孙海燕", "县自然资源局", "2027-05-31", False, "2026-08-01",
         _corridor([p(1300, 1700), p(2000, 1480), p(2700, 1300), p(3600, 1200)], 50)),
    ]
    gdf = gpd.GeoDataFrame(
        [r[:-1] for r in rows],
        columns=["project_id", "name", "project_type", "leader", "unit", "deadline", "funded", "freeze_date"],
        geometry=[r[-1] for r in rows], crs=DEMO_CRS,
    )
    gdf["deadline"] = pd.to_datetime(gdf["deadline"])
    gdf["freeze_date"] = pd.to_datetime(gdf["freeze_date"])
    gdf["start_date"] = pd.to_datetime(gdf["project_id"].map(_START_DATES))
    gdf.insert(2, "district", _district_of(gdf.geometry.centroid))
    return gdf


def _district_of(points: gpd.GeoSeries) -> np.ndarray:
    """Districts are a 3 x 2 grid of the county."""
    col = np.clip(((points.x - ORIGIN[0]) // (WIDTH / 3)).astype(int), 0, 2)
    row = np.clip(((points.y - ORIGIN[1]) // (HEIGHT / 2)).astype(int), 0, 1)
    return np.asarray(DISTRICTS)[row * 3 + col]


#: How far each project has got: probabilities of the six statuses.
_PROGRESS = {
    "P01": (0.00, 0.05, 0.10, 0.20, 0.25, 0.40),
    "P02": (0.15, 0.35, 0.30, 0.15, 0.05, 0.00),
    "P03": (0.00, 0.10, 0.15, 0.35, 0.20, 0.20),
    "P04": (0.05, 0.10, 0.25, 0.30, 0.20, 0.10),
    "P05": (0.60, 0.30, 0.10, 0.00, 0.00, 0.00),
    "P06": (0.00, 0.00, 0.05, 0.10, 0.15, 0.70),
    "P07": (0.10, 0.20, 0.30, 0.25, 0.10, 0.05),
    "P08": (0.40, 0.40, 0.15, 0.05, 0.00, 0.00),
}
_LAND_USES = ("耕地", "宅基地", "林地", "园地", "坑塘水面", "建设用地")
_LAND_USE_P = (0.46, 0.22, 0.10, 0.10, 0.05, 0.07)


def _parcels(redlines: gpd.GeoDataFrame, rng: np.random.Generator) -> gpd.GeoDataFrame:
    nx, ny = int(WIDTH / CELL), int(HEIGHT / CELL)
    geoms = jittered_cadastre(nx, ny, CELL, ORIGIN, seed=int(rng.integers(2**31)))
    n = len(geoms)
    centres = gpd.GeoSeries(shapely.centroid(geoms), crs=DEMO_CRS)
    district = _district_of(centres)
    land_use = rng.choice(_LAND_USES, n, p=_LAND_USE_P)
    houses = np.where(land_use == "宅基地", rng.integers(1, 4, n), 0)
    households = np.where(houses > 0, houses + rng.integers(0, 2, n), 0)
    graves = np.where(rng.random(n) < 0.08, rng.integers(1, 6, n), 0)
    special = np.where(np.isin(land_use, ("园地", "耕地")) & (rng.random(n) < 0.15), 1, 0)
    attach = np.where(rng.random(n) < 0.25, rng.integers(1, 3, n), 0)

    # Status follows the project the parcel's centre lies in (first by id).
    status_idx = np.zeros(n, dtype=int)
    r_idx, p_idx = shapely.STRtree(geoms).query(redlines.geometry.to_numpy(), predicate="intersects")
    project_of = np.full(n, -1)
    for r, p_ in sorted(zip(r_idx, p_idx), reverse=True):
        project_of[p_] = r
    draws = rng.random(n)
    for r, pid in enumerate(redlines["project_id"]):
        sel = project_of == r
        cdf = np.cumsum(_PROGRESS[pid])
        status_idx[sel] = np.minimum(np.searchsorted(cdf, draws[sel] * cdf[-1]), 5)
    # outside any project: mostly nothing happening, a few early surveys
    outside = project_of < 0
    status_idx[outside] = np.where(draws[outside] < 0.1, 1, 0)
    status = np.asarray(STATUSES)[status_idx]
    start = np.datetime64("2026-01-05")
    status_date = start + (rng.integers(0, 300, n) * (status_idx > 0)).astype("timedelta64[D]")
    status_date = np.where(status_idx > 0, status_date, np.datetime64("NaT"))

    return gpd.GeoDataFrame({
        "parcel_id": [f"{d[:2]}-{i:05d}" for i, d in enumerate(district)],
        "district": district,
        "owner_type": np.where(land_use == "建设用地", "国有", "集体"),
        "land_use": land_use,
        "status": status,
        "status_date": pd.to_datetime(status_date),
        "houses": houses, "households": households, "graves": graves,
        "special_crops": special, "attachments": attach,
    }, geometry=geoms, crs=DEMO_CRS)


def _previous_snapshot(parcels: gpd.GeoDataFrame, redlines: gpd.GeoDataFrame,
                       rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Last week's parcels: some projects' parcels were one status behind."""
    prev = parcels.copy()
    moving = {"P01", "P03", "P04", "P07"}  # the projects with progress this week
    red = redlines[redlines["project_id"].isin(moving)]
    _, p_idx = shapely.STRtree(prev.geometry.to_numpy()).query(red.geometry.to_numpy(), predicate="contains")
    rank = prev["status"].map({s: i for i, s in enumerate(STATUSES)}).to_numpy()
    candidates = np.unique(p_idx)
    candidates = candidates[rank[candidates] > 0]
    stepped = candidates[rng.random(len(candidates)) < 0.15]
    # make sure every moving project has at least one change
    for geom in red.geometry:
        inside = candidates[shapely.within(prev.geometry.to_numpy()[candidates], geom)]
        if len(inside):
            stepped = np.union1d(stepped, inside[:1])
    rank[stepped] -= 1
    prev["status"] = np.asarray(STATUSES)[rank]
    return prev


def _inventory(parcels: gpd.GeoDataFrame, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """House footprints (about 10 x 12 m) on parcels that have houses."""
    has = parcels["houses"].to_numpy() > 0
    rows = np.repeat(np.flatnonzero(has), parcels["houses"].to_numpy()[has])
    centres = shapely.centroid(parcels.geometry.to_numpy()[rows])
    k = np.arange(len(rows))
    # several houses on one parcel stand side by side
    nth = pd.Series(rows).groupby(rows).cumcount().to_numpy()
    cx = shapely.get_x(centres) + (nth - 1) * 13.0
    cy = shapely.get_y(centres) + rng.uniform(-6, 6, len(rows))
    w = rng.uniform(8, 12, len(rows))
    h = rng.uniform(9, 14, len(rows))
    boxes = shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    survey = np.datetime64("2025-11-01") + rng.integers(0, 60, len(rows)).astype("timedelta64[D]")
    return gpd.GeoDataFrame({
        "structure_id": [f"H{j:05d}" for j in k],
        "parcel_id": parcels["parcel_id"].to_numpy()[rows],
        "survey_date": pd.to_datetime(survey),
        "floors": rng.choice([1, 2, 3], len(rows), p=[0.45, 0.45, 0.10]),
    }, geometry=boxes, crs=DEMO_CRS)


def _with_chinese_headers(gdf: gpd.GeoDataFrame, schema) -> gpd.GeoDataFrame:
    out = gdf.copy()
    if "status" in out:
        out["status"] = out["status"].map(STATUS_LABELS["zh"])
    return out.rename(columns={c.name: c.zh for c in schema.columns})


def _write(gdf: gpd.GeoDataFrame, path: Path, layer: str) -> None:
    with atomic_path(path) as tmp:
        gdf.to_file(tmp, layer=layer, driver="GPKG", engine="pyogrio")


def make_demo_county(out_dir: str | os.PathLike, seed: int = DEMO_SEED) -> DemoCounty:
    """Write the demo county's layers into ``out_dir`` and say where they are."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    red = _redlines()
    parcels = _parcels(red, rng)
    previous = _previous_snapshot(parcels, red, rng)
    inventory = _inventory(parcels, rng)
    county = DemoCounty(
        folder=out,
        redlines=out / "redlines.gpkg",
        parcels=out / "parcels.gpkg",
        previous_parcels=out / "parcels_previous.gpkg",
        inventory=out / "structures.gpkg",
        bounds=(ORIGIN[0], ORIGIN[1], ORIGIN[0] + WIDTH, ORIGIN[1] + HEIGHT),
    )
    _write(_with_chinese_headers(red, REDLINES), county.redlines, "项目红线")
    _write(_with_chinese_headers(parcels, PARCELS), county.parcels, "宗地")
    _write(_with_chinese_headers(previous, PARCELS), county.previous_parcels, "宗地")
    _write(inventory, county.inventory, "structures")
    return county
