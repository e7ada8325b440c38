"""Benchmark of alert matching and store commits (gis.alerts.identity, gis.alerts.store).

    python scripts/bench_alerts.py --alerts 20000

N random changes become alerts, then N grown changes (x1.3 side) are matched
to them, and both states are committed to a GeoPackage store in a temp folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time

import geopandas as gpd
import numpy as np
import shapely

from gis.alerts.identity import update_alerts
from gis.alerts.store import empty_alerts, open_store


def changes(rng, x, y, s, scale):
    g = shapely.box(x, y, x + s * scale, y + s * scale)
    kind = np.where(rng.random(len(x)) < 0.7, "new_structure", "new_crops")
    return gpd.GeoDataFrame({"kind": kind, "confidence": 0.9, "project_id": "", "parcel_id": "",
                             "in_inventory": False}, geometry=g, crs="EPSG:4547")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=20000)
    n = ap.parse_args().alerts
    rng = np.random.default_rng(0)
    x, y, s = rng.uniform(0, 30000, n), rng.uniform(0, 30000, n), rng.uniform(5, 20, n)
    t = time.perf_counter()
    up = update_alerts(empty_alerts("EPSG:4547"), changes(rng, x, y, s, 1.0), epoch_date=dt.date(2026, 3, 1),
                       previous_date=dt.date(2026, 2, 1))
    print(f"update_alerts, {n} new alerts: {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    up2 = update_alerts(up.alerts, changes(rng, x, y, s, 1.3), epoch_date=dt.date(2026, 3, 8),
                        previous_date=dt.date(2026, 3, 1))
    print(f"update_alerts, {n} changes over {n} alerts: {time.perf_counter() - t:.2f} s "
          f"({len(up2.updated_ids)} updated, {len(up2.new_ids)} new)")
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(os.path.join(tmp, "store.gpkg"), crs="EPSG:4547")
        for label, u in (("first", up), ("second", up2)):
            t = time.perf_counter()
            with store.transaction(by="bench") as tx:
                tx.alerts = u.alerts
                tx.add_events(u.events)
            print(f"{label} commit ({len(u.events)} events): {time.perf_counter() - t:.2f} s, "
                  f"{os.path.getsize(store.path) / 1e6:.1f} MB")
        t = time.perf_counter()
        print(f"read {len(store.alerts())} alerts: {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
