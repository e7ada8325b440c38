"""Benchmark the clearance map: HTML size and load time in headless Chromium.

    .venv/bin/python scripts/bench_map.py                 # 1k, 10k, 100k parcels
    .venv/bin/python scripts/bench_map.py --sizes 1000    # what the test runs

For each size a synthetic county is built (irregular 8-vertex parcels from
gis.synthetic.county.jittered_cadastre, statuses drawn at random, 20 red lines, 200
alerts), the map is written with gis.products.webmap.write_clearance_map, and opened in
headless Chromium with the network off. "load" is the time from navigation
until the parcels are painted (window.gisReady, set two animation frames
after the layers were added). One line of results per size; --json for a
machine-readable list.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.synthetic.county import jittered_cadastre

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import Browser  # noqa: E402  (test tooling: tests/browser.py)
from gis.products.webmap import write_clearance_map
from gis.schema import STATUSES

CRS = "EPSG:4547"
ORIGIN = (512_000.0, 3_390_000.0)


def synthetic_clearance(n: int, *, seed: int = 0, cell: float = 25.0) -> SimpleNamespace:
    """About ``n`` parcels, 20 red lines and 200 alerts; what write_clearance_map reads."""
    rng = np.random.default_rng(seed)
    nx = int(math.ceil(math.sqrt(n * 4 / 3)))
    ny = int(math.ceil(n / nx))
    geoms = jittered_cadastre(nx, ny, cell, ORIGIN, seed=seed)[:n]
    parcels = gpd.GeoDataFrame({
        "parcel_id": [f"P{i:07d}" for i in range(n)],
        "district": rng.choice(["西城区", "东城区", "南湖区", "北山区"], n),
        "owner_type": rng.choice(["集体", "国有"], n),
        "land_use": rng.choice(["耕地", "林地", "宅基地"], n),
        "status": rng.choice(STATUSES, n, p=[.5, .2, .1, .1, .05, .05]),
        "status_date": pd.to_datetime("2026-11-01") - pd.to_timedelta(rng.integers(0, 300, n), "D"),
        "houses": rng.integers(0, 3, n),
    }, geometry=geoms, crs=CRS)
    w, h = nx * cell, ny * cell
    cx = ORIGIN[0] + rng.uniform(0.1, 0.9, 20) * w
    cy = ORIGIN[1] + rng.uniform(0.1, 0.9, 20) * h
    size = min(w, h) / 12
    red = gpd.GeoDataFrame({
        "project_id": [f"R{i:02d}" for i in range(20)],
        "name": [f"项目{i}" for i in range(20)],
        "district": "西城区",
    }, geometry=shapely.box(cx - size, cy - size, cx + size, cy + size), crs=CRS)
    projects = pd.DataFrame({"project_id": red["project_id"], "total_mu": 100.0, "acquired_mu": 50.0,
                             "delivered_mu": 20.0, "completion_rate": 0.5, "clean_land_rate": 0.2,
                             "overdue": False})
    ax = ORIGIN[0] + rng.uniform(0, w, 200)
    ay = ORIGIN[1] + rng.uniform(0, h, 200)
    alerts = gpd.GeoDataFrame({
        "alert_id": [f"A{i:04d}" for i in range(200)],
        "kind": rng.choice(["new_structure", "new_crops", "demolished", "other"], 200),
        "status": rng.choice(["new", "dispatched", "illegal", "legal", "closed"], 200),
        "verdict": "", "area_m2": 150.0, "first_seen": "2026-11-14", "last_seen": "2026-11-21",
        "post_freeze": True, "chip_before": "", "chip_after": "",
    }, geometry=shapely.box(ax, ay, ax + 12, ay + 12), crs=CRS)
    return SimpleNamespace(redlines=red, parcels=parcels, pieces=None, projects=projects), alerts


def bench(sizes, out_dir: Path, *, repeat: int = 1) -> list[dict]:
    results = []
    with Browser(timeout=120) as browser:
        for n in sizes:
            clearance, alerts = synthetic_clearance(n)
            out = out_dir / f"bench_{n}.html"
            t0 = time.perf_counter()
            write_clearance_map(clearance, out, alerts=alerts, as_of="2026-11-21")
            write_s = time.perf_counter() - t0
            loads = [browser.open(out, ready="window.gisReady === true") for _ in range(repeat)]
            drawn = browser.evaluate("window.gisLayers.parcels.drawn")
            results.append({"parcels": n, "html_mb": round(out.stat().st_size / 1e6, 2),
                            "write_s": round(write_s, 2), "load_s": round(min(loads), 2),
                            "drawn": drawn, "failed_requests": len(browser.failed_requests),
                            "external_requests": len(browser.external_requests)})
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=2, help="loads per size; the fastest is reported")
    ap.add_argument("--out", type=Path, default=None, help="keep the HTML files here")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        results = bench(args.sizes, out, repeat=args.repeat)
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{'parcels':>8} {'HTML MB':>8} {'write s':>8} {'load s':>7}  drawn  failed")
        for r in results:
            print(f"{r['parcels']:>8} {r['html_mb']:>8} {r['write_s']:>8} {r['load_s']:>7}  "
                  f"{r['drawn']:>6} {r['failed_requests'] + r['external_requests']:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
