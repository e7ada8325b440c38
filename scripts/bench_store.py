"""Benchmark of the transactional alert store (issue 17), GeoPackage and PostGIS.

    python scripts/bench_store.py --alerts 20000 [--writes 200] [--postgis URL]

For each backend, a store of N alerts (squares in EPSG:4547, one 'created'
event each) is built, then timed:

1. one verdict write (``set_alert``: one note on a random alert, its row and
   audit event in one transaction): median and p95 over ``--writes`` writes;
2. a weekly run's commit in which all N alerts are updated (geometry, area,
   last_seen, seen_count) through :meth:`Transaction.merge_run`, with 3 N
   audit events;
3. sustained writes per second from 8 concurrent writers (threads, each its
   own store object, as 8 people), for ``--seconds`` seconds.

The reference is gis 0.1.0's whole-file commit, rebuilt here as that
release did it (copy the GeoPackage, rewrite the alerts layer with pyogrio,
replace the file): what every verdict cost at N alerts. Without ``--postgis``
a throwaway PostgreSQL server is started (tests/pg.py) and stopped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from gis.alerts.lifecycle import set_alert
from gis.alerts.store import normalise_alerts, open_store

CRS = "EPSG:4547"


def synthetic_alerts(n: int, rng: np.random.Generator) -> gpd.GeoDataFrame:
    x, y, s = rng.uniform(0, 30000, n), rng.uniform(0, 30000, n), rng.uniform(5, 20, n)
    g = shapely.box(x, y, x + s, y + s)
    return normalise_alerts(gpd.GeoDataFrame({
        "alert_id": [f"A20260301-{i:05d}" for i in range(n)], "kind": "new_structure", "status": "new",
        "area_m2": shapely.area(g), "first_seen": "2026-03-01", "last_seen": "2026-03-01", "seen_count": 1,
        "district": rng.choice(["东区", "西区", "高新区"], n), "first_area_m2": shapely.area(g),
    }, geometry=g, crs=CRS))


def build(location: str, alerts: gpd.GeoDataFrame, folder: Path):
    store = open_store(location, crs=CRS, store_dir=folder)
    with store.transaction(by="bench", run_id="build") as tx:
        tx.insert(alerts)
        tx.add_events([{"alert_id": a, "action": "created", "field": "status", "new": "new"}
                       for a in alerts["alert_id"]])
    return store


def verdict_writes(store, ids: list[str], writes: int, rng) -> list[float]:
    times = []
    for k in range(writes):
        aid = ids[int(rng.integers(len(ids)))]
        t = time.perf_counter()
        set_alert(store, aid, by="bench", note=f"note {k}")
        times.append(time.perf_counter() - t)
    return times


def weekly_commit(store) -> float:
    before = store.alerts()
    after = before.copy()
    after = after.set_geometry(shapely.buffer(after.geometry.values, 0.5, join_style="mitre"))
    after["area_m2"] = after.geometry.area
    after["last_seen"], after["seen_count"] = "2026-03-08", after["seen_count"] + 1
    events = [{"alert_id": a, "action": "run_update", "field": f, "old": "", "new": "x"}
              for a in before["alert_id"] for f in ("last_seen", "seen_count", "area_m2")]
    t = time.perf_counter()
    with store.transaction(by="bench", run_id="weekly-bench") as tx:
        tx.merge_run(before, after)
        tx.add_events(events)
        tx.run = {"run_id": "weekly-bench", "command": "weekly", "started": "x", "finished": "x"}
    return time.perf_counter() - t


def sustained(location: str, folder: Path, ids: list[str], seconds: float, writers: int = 8) -> tuple[int, float]:
    stop = time.monotonic() + seconds
    done = [0] * writers
    errors: list[BaseException] = []

    def work(w: int) -> None:
        store = open_store(location, crs=CRS, store_dir=folder)
        rng = np.random.default_rng(100 + w)
        try:
            while time.monotonic() < stop:
                set_alert(store, ids[int(rng.integers(len(ids)))], by=f"w{w}", note=f"w{w}-{done[w]}")
                done[w] += 1
        except BaseException as exc:  # noqa: BLE001 - reported
            errors.append(exc)
        finally:
            store.dispose()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(done), time.perf_counter() - t0


def whole_file_commit(path: Path, alerts: gpd.GeoDataFrame, repeat: int = 3) -> float:
    """gis 0.1.0's commit: copy the store, rewrite its alerts layer, replace the file."""
    pyogrio.write_dataframe(alerts, path, layer="alerts", driver="GPKG", geometry_type="Unknown")
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        tmp = path.with_name(".store.part.gpkg")
        shutil.copyfile(path, tmp)
        pyogrio.write_dataframe(alerts, tmp, layer="alerts", driver="GPKG", geometry_type="Unknown")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench(name: str, location: str, folder: Path, alerts, args, baseline: float) -> None:
    rng = np.random.default_rng(1)
    t = time.perf_counter()
    store = build(location, alerts, folder)
    print(f"[{name}] built {len(alerts)} alerts in {time.perf_counter() - t:.1f} s")
    ids = list(alerts["alert_id"])
    times = sorted(verdict_writes(store, ids, args.writes, rng))
    med, p95 = statistics.median(times), times[int(0.95 * (len(times) - 1))]
    print(f"[{name}] one verdict write: median {med * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms "
          f"({baseline / med:.0f}x faster than the whole-file commit)")
    print(f"[{name}] weekly commit, {len(alerts)} alerts updated, {3 * len(alerts)} events: "
          f"{weekly_commit(store):.2f} s")
    n, secs = sustained(location, folder, ids, args.seconds)
    print(f"[{name}] 8 concurrent writers: {n} writes in {secs:.1f} s = {n / secs:.0f} writes/s")
    store.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=20000)
    ap.add_argument("--writes", type=int, default=200, help="single verdict writes timed")
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of the 8-writer run")
    ap.add_argument("--postgis", default=None, help="URL of an empty PostGIS database (default: start one)")
    ap.add_argument("--only", choices=["gpkg", "postgis"], default=None)
    args = ap.parse_args()
    print(f"gis store benchmark, {args.alerts} alerts, {dt.datetime.now():%Y-%m-%d %H:%M}")
    alerts = synthetic_alerts(args.alerts, np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        baseline = whole_file_commit(folder / "old.gpkg", alerts)
        print(f"[0.1.0] whole-file commit (every verdict): {baseline:.2f} s")
        if args.only in (None, "gpkg"):
            bench("gpkg", str(folder / "store.gpkg"), folder, alerts, args, baseline)
        if args.only in (None, "postgis"):
            if args.postgis:
                bench("postgis", args.postgis, folder, alerts, args, baseline)
            else:
                sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
                from pg import TempPostgres

                with TempPostgres() as pg:
                    bench("postgis", pg.url(pg.new_database("bench")), folder, alerts, args, baseline)


if __name__ == "__main__":
    main()
