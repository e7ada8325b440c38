"""Benchmark: gis overlay + figures against geopandas.overlay + groupby.

Builds a synthetic cadastre (a jittered grid of irregular 8-vertex parcels of
0.1 ha in EPSG:4547, CGCS2000 3-degree GK CM 114E) and star-shaped red lines
of 20-200 ha that overlap, then times, each in its own fresh process so that
peak memory is its own:

(a)  gis in memory: ``gis.clearance.pipeline.clearance`` on the two GeoDataFrames —
     validation, overlay and project + district figures, end to end;
(a') gis streamed: ``gis.clearance.pipeline.clearance`` in batches, from the GeoParquet files,
     reading included (what ``gis overlay`` does for large files);
(b)  plain geopandas: ``geopandas.overlay(how="intersection")`` then a
     groupby of areas by project and status class.

The data is built once and written to GeoParquet in a temporary folder;
each variant loads it in its own process.

Both must give the same total and per-project areas (relative 1e-9).

    python scripts/bench_overlay.py --parcels 1000000 --redlines 500
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ORIGIN = (400_000.0, 3_300_000.0)
CELL = 1000.0 ** 0.5  # 0.1 ha parcels


def build(n_parcels: int, n_redlines: int, seed: int = 7):
    import geopandas as gpd
    import shapely

    from gis.synthetic.county import jittered_cadastre
    from gis.schema import STATUSES

    rng = np.random.default_rng(seed)
    side = int(round(n_parcels ** 0.5))
    geoms = jittered_cadastre(side, side, CELL, ORIGIN, seed=seed)
    n = len(geoms)
    extent = side * CELL
    cx = shapely.get_x(shapely.centroid(geoms))
    parcels = gpd.GeoDataFrame({
        "parcel_id": np.char.add("Q", np.arange(n).astype(str)),
        "district": np.char.add("D", ((cx - ORIGIN[0]) // (extent / 6)).astype(int).astype(str)),
        "status": rng.choice(STATUSES, n),
        "houses": rng.integers(0, 3, n),
        "graves": rng.integers(0, 2, n),
    }, geometry=geoms, crs="EPSG:4547")

    # star-shaped red lines, 20-200 ha
    k = 24
    area_ha = rng.uniform(20, 200, n_redlines)
    r_mean = np.sqrt(area_ha * 10_000 / np.pi)
    centres = rng.uniform(0.05 * extent, 0.95 * extent, (n_redlines, 2)) + ORIGIN
    angles = np.linspace(0, 2 * np.pi, k, endpoint=False)
    radii = r_mean[:, None] * np.where(np.arange(k) % 2 == 0, 1.15, 0.8) * rng.uniform(0.9, 1.1, (n_redlines, k))
    ring = np.stack([centres[:, None, 0] + radii * np.cos(angles),
                     centres[:, None, 1] + radii * np.sin(angles)], axis=-1)
    ring = np.concatenate([ring, ring[:, :1]], axis=1)
    red = gpd.GeoDataFrame({
        "project_id": [f"R{i:04d}" for i in range(n_redlines)],
        "district": "D0",
        "name": [f"项目{i}" for i in range(n_redlines)],
    }, geometry=shapely.polygons(ring), crs="EPSG:4547")
    return parcels, red


def load(folder: str):
    import geopandas as gpd

    return gpd.read_parquet(f"{folder}/parcels.parquet"), gpd.read_parquet(f"{folder}/redlines.parquet")


def _answer(projects):
    m2 = 10000 / 15
    return (dict(zip(projects["project_id"], projects["total_mu"] * m2)),
            dict(zip(projects["project_id"], projects["acquired_mu"] * m2)))


def run_gis(folder: str):
    """(a) in memory: the stages of clearance() on GeoDataFrames, each timed."""
    from gis.clearance import figures
    from gis.clearance import layers
    from gis.clearance import overlay

    parcels, red = load(folder)
    t0 = time.perf_counter()
    crs = layers.common_working_crs([red, parcels])
    r = layers.read_redlines(red, working_crs=crs)
    p = layers.read_parcels(parcels, working_crs=crs)
    t1 = time.perf_counter()
    pieces = overlay.overlay_parcels(p, r)
    t2 = time.perf_counter()
    projects = figures.project_figures(pieces, p, r)
    figures.district_figures(pieces, p, r, projects)
    t3 = time.perf_counter()
    stages = {"validate": t1 - t0, "overlay": t2 - t1, "figures": t3 - t2}
    return (t3 - t0, *_answer(projects), len(pieces), None, stages)


def run_gis_stream(folder: str):
    """(a') streamed from the file: reading included, batches of DEFAULT_BATCH (100k) parcels."""
    from gis.clearance.pipeline import DEFAULT_BATCH, clearance

    t0 = time.perf_counter()
    c = clearance(f"{folder}/redlines.parquet", f"{folder}/parcels.parquet", batch_size=DEFAULT_BATCH)
    elapsed = time.perf_counter() - t0
    return (elapsed, *_answer(c.projects), len(c.pieces), None, None)


def run_geopandas(folder: str):
    """(b) geopandas.overlay(how="intersection") + groupby by project and status class."""
    import geopandas as gpd

    from gis.schema import ACQUIRED_FROM, STATUS_RANK

    t_read = time.perf_counter()
    parcels, red = load(folder)
    t0 = time.perf_counter()
    pieces = gpd.overlay(parcels, red[["project_id", "geometry"]], how="intersection", keep_geom_type=True)
    pieces["area"] = pieces.geometry.area
    pieces = pieces[pieces["area"] > 0]
    pieces["acquired"] = pieces["area"].where(pieces["status"].map(STATUS_RANK) >= ACQUIRED_FROM, 0.0)
    sums = pieces.groupby("project_id")[["area", "acquired"]].sum()
    elapsed = time.perf_counter() - t0
    return elapsed, sums["area"].to_dict(), sums["acquired"].to_dict(), len(pieces), t0 - t_read, None


RUNNERS = {"gis": run_gis, "gis-stream": run_gis_stream, "geopandas": run_geopandas}


def child(which: str, folder: str) -> None:
    t, per_project, acquired, n_pieces, read_time, stages = RUNNERS[which](folder)
    print(json.dumps({"time": t, "peak_rss": peak_rss(), "per_project": per_project, "acquired": acquired,
                      "pieces": n_pieces, "read_time": read_time, "stages": stages}))


def peak_rss() -> int:
    """This process's peak resident memory in bytes.

    VmHWM belongs to the address space, which exec replaces; ru_maxrss would
    carry over the high-water mark of the parent that forked us.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def write_data(folder: str, n_parcels: int, n_redlines: int) -> None:
    """Build the benchmark's layers into ``folder`` (made if missing) as GeoParquet."""
    parcels, red = build(n_parcels, n_redlines)
    os.makedirs(folder, exist_ok=True)
    parcels.to_parquet(os.path.join(folder, "parcels.parquet"))
    red.to_parquet(os.path.join(folder, "redlines.parquet"))


def measure(which: str, folder: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", which, "--data", folder],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(a: dict, b: dict, rtol: float = 1e-9) -> list[str]:
    problems = []
    for key in ("per_project", "acquired"):
        pa, pb = a[key], b[key]
        ta, tb = sum(pa.values()), sum(pb.values())
        if abs(ta - tb) > rtol * max(abs(tb), 1.0):
            problems.append(f"{key} total differs: {ta!r} vs {tb!r}")
        for pid, vb in pb.items():
            va = pa.get(pid, 0.0)
            if abs(va - vb) > rtol * max(abs(vb), 1.0):
                problems.append(f"{key} {pid}: {va!r} vs {vb!r}")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parcels", type=int, default=100_000)
    ap.add_argument("--redlines", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each; the median is reported")
    ap.add_argument("--child", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--build", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.build:
        write_data(args.build, args.parcels, args.redlines)
        return 0
    if args.child:
        child(args.child, args.data)
        return 0

    with tempfile.TemporaryDirectory(prefix="bench_overlay_") as folder:
        # built in its own process: this one stays small while it spawns the runs
        subprocess.run([sys.executable, __file__, "--build", folder, "--parcels", str(args.parcels),
                        "--redlines", str(args.redlines)], check=True)
        runs = {w: [measure(w, folder) for _ in range(args.repeat)] for w in RUNNERS}
    med = {w: sorted(r, key=lambda x: x["time"])[len(r) // 2] for w, r in runs.items()}
    a, s_, b = med["gis"], med["gis-stream"], med["geopandas"]
    problems = compare(a, b) + compare(s_, b)
    gb = 2 ** 30
    print(f"parcels {args.parcels:,}  red lines {args.redlines}  pieces gis {a['pieces']:,} / geopandas {b['pieces']:,}")
    print(f"(a) gis clearance, in memory        {a['time']:7.2f} s   peak RSS {a['peak_rss'] / gb:5.2f} GB")
    print(f"(b) geopandas.overlay + groupby     {b['time']:7.2f} s   peak RSS {b['peak_rss'] / gb:5.2f} GB")
    print("    stages of (a): " + ", ".join(f"{k} {v:.2f} s" for k, v in a["stages"].items()))
    print(f"speed-up (b)/(a): {b['time'] / a['time']:.2f}x   "
          f"(without edge validation, which (b) does not do: "
          f"{b['time'] / (a['time'] - a['stages']['validate']):.2f}x)")
    read_b = b["time"] + b["read_time"]
    print(f"(a') gis streamed from GeoParquet   {s_['time']:7.2f} s   peak RSS {s_['peak_rss'] / gb:5.2f} GB"
          f"   (b incl. reading the file: {read_b:.2f} s, speed-up {read_b / s_['time']:.2f}x)")
    print("areas agree (relative 1e-9): " + ("yes" if not problems else "NO"))
    for p in problems[:10]:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
