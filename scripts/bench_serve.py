"""Benchmark of `gis serve`: concurrent simulated patrol clients against the PostGIS store.

Not a timed test. Starts a private PostgreSQL + PostGIS (tests/pg.py), builds
a workspace over the demo county with one alert per client, makes one patrol
user per client, starts `gis serve --workers W` as a real process, then runs
CLIENTS threads at once; each logs in and, ROUNDS times, lists its alerts
(GET /api/alerts), opens one (GET /api/alerts/{id}) and records a verdict
with a photo of about 2 MB (POST /api/alerts/{id}/verdict, multipart). It
prints requests per second and the median and p95 latency per endpoint, and
checks that every photo arrived: the store holds each one and serves bytes
with the hash the client computed.

    .venv/bin/python scripts/bench_serve.py [--clients 50] [--rounds 3] [--workers 4] [--gpkg]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
from PIL import Image
from shapely.geometry import box

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "tests"))

from alertsdata import DATES, FakeDetect, changes, make_workspace  # noqa: E402
from pg import start_for_tests  # noqa: E402
from serve_fixtures import ServerProcess  # noqa: E402
from storedata import use_store  # noqa: E402

from gis.serve import accounts  # noqa: E402
from gis.serve.storage import open_engine  # noqa: E402
from gis.weekly import run_weekly  # noqa: E402
from gis.workspace import load_workspace  # noqa: E402

PASSWORD = "bench-password"
PHOTO_BYTES = 2 * 1024 * 1024


def photo(seed: int) -> bytes:
    """A real JPEG of about 2 MB (noise compresses badly), distinct per seed."""
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 255, (1000, 1000, 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=97)
    data = buf.getvalue()
    if len(data) < PHOTO_BYTES:  # pad with a JPEG comment-free tail: still a JPEG by content
        data += bytes(PHOTO_BYTES - len(data))
    return data


def build(root: Path, store: str, clients: int) -> dict[str, str]:
    """A workspace with one alert per client; returns user -> its alert id."""
    root = use_store(make_workspace(root), store)
    bounds = gpd.read_file(load_workspace(root).parcels).total_bounds
    x0, y0, x1, y1 = bounds
    n = int(np.ceil(np.sqrt(clients)))
    spots = [box(x0 + (i + 0.5) * (x1 - x0) / n, y0 + (j + 0.5) * (y1 - y0) / n,
                 x0 + (i + 0.5) * (x1 - x0) / n + 20, y0 + (j + 0.5) * (y1 - y0) / n + 20)
             for i in range(n) for j in range(n)][:clients]
    run_weekly(root, DATES[1], detect=FakeDetect({DATES[1].isoformat(): changes(
        *[("new_structure", g) for g in spots])}), maps=False)
    ws = load_workspace(root)
    alerts = ws.open_store().alerts().sort_values("alert_id")
    engine = open_engine(ws)
    mine = {}
    for k, (aid, district) in enumerate(zip(alerts["alert_id"], alerts["district"])):
        name = f"bench{k:03d}"
        accounts.add_user(engine, name, PASSWORD, role="patrol", districts=[district])
        mine[name] = aid
    return mine


def client_run(url: str, name: str, aid: str, photos: list[bytes], timings, failures, sent):
    with httpx.Client(base_url=url, timeout=120) as c:
        t = time.perf_counter()
        r = c.post("/api/login", json={"username": name, "password": PASSWORD, "device": "bench"})
        timings["POST /api/login"].append(time.perf_counter() - t)
        if r.status_code != 200:
            failures.append((name, "login", r.status_code, r.text[:200]))
            return
        c.headers["Authorization"] = f"Bearer {r.json()['token']}"
        for k, data in enumerate(photos):
            for label, call in (("GET /api/alerts", lambda: c.get("/api/alerts")),
                                ("GET /api/alerts/{id}", lambda: c.get(f"/api/alerts/{aid}"))):
                t = time.perf_counter()
                r = call()
                timings[label].append(time.perf_counter() - t)
                if r.status_code != 200:
                    failures.append((name, label, r.status_code, r.text[:200]))
                    return
            rev = r.json()["rev"]
            digest = hashlib.sha256(data).hexdigest()
            form = {"status": "dispatched", "note": f"round {k}", "rev": str(rev),
                    "client_id": f"{name}-{k}", "sha256": digest}
            t = time.perf_counter()
            r = c.post(f"/api/alerts/{aid}/verdict", data=form,
                       files=[("photo", (f"IMG_{k}.jpg", data, "image/jpeg"))])
            timings["POST /api/alerts/{id}/verdict (2 MB photo)"].append(time.perf_counter() - t)
            if r.status_code != 200:
                failures.append((name, "verdict", r.status_code, r.text[:200]))
                return
            sent.append((name, digest))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--gpkg", action="store_true", help="the GeoPackage store instead of PostGIS")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        pg = None if args.gpkg else start_for_tests()
        try:
            store = "store.gpkg" if pg is None else pg.url(pg.new_database())
            t0 = time.perf_counter()
            mine = build(Path(tmp) / "ws", store, args.clients)
            print(f"workspace, {len(mine)} alerts and users in {time.perf_counter() - t0:.1f} s "
                  f"({'GeoPackage' if pg is None else 'PostGIS'} store)")
            srv = ServerProcess(Path(tmp) / "ws", extra_args=["--workers", str(args.workers)]).start()
            timings: dict[str, list[float]] = defaultdict(list)
            failures: list = []
            sent: list = []
            photos = [[photo(k * 100 + r) for r in range(args.rounds)] for k in range(len(mine))]
            threads = [threading.Thread(target=client_run, args=(srv.url, name, aid, photos[k],
                                                                 timings, failures, sent))
                       for k, (name, aid) in enumerate(mine.items())]
            t0 = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            wall = time.perf_counter() - t0
            total = sum(len(v) for v in timings.values())
            print(f"\n{args.clients} clients x {args.rounds} rounds, {args.workers} workers: "
                  f"{total} requests in {wall:.1f} s = {total / wall:.1f} req/s")
            print(f"{'endpoint':<46} {'n':>5} {'req/s':>7} {'median ms':>10} {'p95 ms':>8}")
            for label, xs in timings.items():
                xs = sorted(xs)
                p95 = xs[min(len(xs) - 1, int(0.95 * len(xs)))]
                print(f"{label:<46} {len(xs):>5} {len(xs) / wall:>7.1f} {statistics.median(xs) * 1000:>10.0f} "
                      f"{p95 * 1000:>8.0f}")
            store_shas = set(load_workspace(Path(tmp) / "ws").open_store().photos()["sha256"])
            missing = [d for _, d in sent if d not in store_shas]
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                c.headers["Authorization"] = "Bearer " + srv_login(srv.url, next(iter(mine)))
                served_ok = sum(hashlib.sha256(c.get(f"/api/photos/{d}").content).hexdigest() == d
                                for n, d in sent if n == next(iter(mine)))
            print(f"\nphotos sent {len(sent)}, in the store {len(sent) - len(missing)}, missing {len(missing)}; "
                  f"served back with matching hash (one client's): {served_ok}")
            print(f"failures: {len(failures)}" + "".join(f"\n  {f}" for f in failures[:10]))
            srv.stop()
        finally:
            if pg is not None:
                pg.stop()


def srv_login(url: str, name: str) -> str:
    return httpx.post(url + "/api/login", json={"username": name, "password": PASSWORD}).json()["token"]


if __name__ == "__main__":
    main()
