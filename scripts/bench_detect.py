#!/usr/bin/env python
"""Benchmark `gis detect` against a plain full read of both images.

Builds a synthetic SIZE x SIZE px (default 20,000) DEFLATE-tiled RGB pair at
0.5 m: a 2,048 px scene pair from gis.synthetic.render (before, and after with planted
houses and crops) repeated over the image, plus red lines covering ~10 % of it.
Then times, in one run:

(a) `gis detect` end to end (a subprocess: validation, windows, detection,
    polygons, GeoPackage), with --workers W;
(b) a plain full read of both images with rasterio, block by block, W threads.

With --overviews the pair gets internal 2x/4x overviews built by averaging, as a
COG orthophoto usually has: detection (1 m work pixels) then decodes the 2x
overview, a quarter of the pixels; (b) still reads full resolution.

Prints the ratio (a)/(b) (target <= 0.5), the throughput over the pixels
actually processed per core (target >= 25 MP/s: pixels / wall time / workers), the
same pixels per CPU second the detect run used (user + system time of all its
processes and threads: what a run costs whatever the machine's load or threads),
and peak RSS of the detect process (all its processes; target < 1.5 GB for much
larger pairs: memory is windowed).

    python scripts/bench_detect.py [--size 20000] [--workers 2] [--keep DIR [--reuse]] [--overviews]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.windows import Window

from gis.synthetic.render import render_orthophoto

CRS = "EPSG:4547"
RES = 0.5
TILE = 2048
X0, Y0 = 500000.0, 3400000.0


def build(out: Path, size: int) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(7)
    ext = TILE * RES
    houses = [shapely.box(x, y, x + w, y + w) for x, y, w in
              zip(rng.uniform(50, ext - 80, 25), rng.uniform(50, ext - 80, 25), rng.uniform(10, 18, 25))]
    st = gpd.GeoDataFrame({"roof": ["blue", "grey"] * 12 + ["red"]},
                          geometry=gpd.GeoSeries(houses).translate(X0, Y0), crs=CRS)
    crops = gpd.GeoDataFrame({"crop": ["crop", "orchard", "greenhouse"]},
                             geometry=[shapely.box(X0 + 100, Y0 + 100, X0 + 160, Y0 + 150),
                                       shapely.box(X0 + 500, Y0 + 700, X0 + 570, Y0 + 760),
                                       shapely.box(X0 + 800, Y0 + 300, X0 + 840, Y0 + 320)], crs=CRS)
    bounds = (X0, Y0, X0 + ext, Y0 + ext)
    small_b, small_a = out / "tile_before.tif", out / "tile_after.tif"
    render_orthophoto(small_b, bounds=bounds, resolution=RES, crs=CRS, seed=11, epoch=1)
    render_orthophoto(small_a, bounds=bounds, resolution=RES, crs=CRS, seed=11, epoch=2,
                      structures=st, crops=crops)
    paths = []
    top = Y0 + ext
    for src_path, name in ((small_b, "before.tif"), (small_a, "after.tif")):
        with rasterio.open(src_path) as src:
            tile = src.read()
        prof = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs=CRS,
                    transform=from_origin(X0, top, RES, RES), tiled=True, blockxsize=512, blockysize=512,
                    compress="deflate", predictor=2, num_threads="ALL_CPUS", BIGTIFF="YES")
        with rasterio.open(out / name, "w", **prof) as dst:
            for r in range(0, size, TILE):
                h = min(TILE, size - r)
                strip = np.concatenate([tile[:, :h]] * (size // TILE + 1), axis=2)[:, :, :size]
                dst.write(strip, window=Window(0, r, size, h))
        paths.append(out / name)
    # red lines: 20 squares covering ~10 % of the image
    side = size * RES * np.sqrt(0.10 / 20)
    xs = rng.uniform(0, size * RES - side, 20)
    ys = rng.uniform(0, size * RES - side, 20)
    red = gpd.GeoDataFrame({"project_id": [f"P{i:02d}" for i in range(20)], "name": [f"project {i}" for i in range(20)],
                            "district": ["bench"] * 20},
                           geometry=[shapely.box(X0 + x, top - size * RES + y, X0 + x + side, top - size * RES + y + side)
                                     for x, y in zip(xs, ys)], crs=CRS)
    red.to_file(out / "redlines.gpkg", layer="redlines")
    return paths[0], paths[1], out / "redlines.gpkg"


def add_overviews(paths) -> None:
    """Internal 2x and 4x overviews, pixel averages (gdaladdo -r average), if missing."""
    for p in paths:
        with rasterio.open(p, "r+") as dst:
            if not dst.overviews(1):
                with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS", COMPRESS_OVERVIEW="DEFLATE", PREDICTOR_OVERVIEW=2):
                    dst.build_overviews([2, 4], Resampling.average)


def full_read(paths, threads: int) -> float:
    t0 = time.perf_counter()
    for p in paths:
        with rasterio.open(p) as src:
            wins = [w for _, w in src.block_windows(1)]
        def read(chunk):
            with rasterio.open(p) as s:
                for w in chunk:
                    s.read(window=w)
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(read, [wins[i::threads] for i in range(threads)]))
    return time.perf_counter() - t0


def run_detect(cmd) -> tuple[float, float, int, str]:
    """Wall time, CPU time (user + system of the command, its threads and its worker
    processes), peak total RSS (sampled every 20 ms) and stdout of one `gis detect` run.

    The command's own CPU time is exact (its rusage once reaped); worker processes
    are forkserver children the command never reaps, so theirs is the last value
    sampled (every 20 ms: a worker's last few ms may be missed)."""
    import psutil

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps, peak = psutil.Process(proc.pid), 0
    cpu_seen: dict[int, float] = {}  # pid -> last user + system time
    while proc.poll() is None:
        try:
            procs = [ps, *ps.children(recursive=True)]
            total = 0
            for p in procs:
                with p.oneshot():
                    total += p.memory_info().rss
                    t = p.cpu_times()
                    cpu_seen[p.pid] = t.user + t.system
            peak = max(peak, total)
        except psutil.Error:
            pass
        time.sleep(0.02)
    ta = time.perf_counter() - t0
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"gis detect failed: {stderr}")
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    main_seen = cpu_seen.pop(proc.pid, 0.0)
    cpu = max(own, main_seen) + sum(cpu_seen.values())
    return ta, cpu, peak, stdout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="Build the data here and keep it.")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true", help="Reuse the pair already built in --keep DIR.")
    ap.add_argument("--overviews", action="store_true",
                    help="Give the pair internal 2x/4x average overviews (as a COG has) first.")
    ap.add_argument("--repeat", type=int, default=3, help="Runs of each timing; medians are reported.")
    args = ap.parse_args(argv)
    tmp = tempfile.TemporaryDirectory() if args.keep is None else None
    out = Path(tmp.name) if tmp else args.keep
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.reuse and (out / "after.tif").exists():
        before, after, red = out / "before.tif", out / "after.tif", out / "redlines.gpkg"
        with rasterio.open(after) as src:
            args.size = src.width
    else:
        before, after, red = build(out, args.size)
        print(f"built {args.size}x{args.size} px pair in {time.perf_counter() - t0:.1f} s")
    if args.overviews:
        t1 = time.perf_counter()
        add_overviews([before, after])
        print(f"overviews ready in {time.perf_counter() - t1:.1f} s")
    with rasterio.open(after) as src:
        ovr = src.overviews(1)
    gis = Path(sys.executable).with_name("gis")
    cmd = [str(gis), "detect", "--before", str(before), "--after", str(after), "--within", str(red),
           "--workers", str(args.workers), "--no-progress", "--out", str(out / "changes.gpkg")]
    # the machine may be shared: medians of --repeat alternating runs
    tas, tbs, rss, cpus = [], [], [], []
    for _ in range(args.repeat):
        ta, cpu, peak, stdout = run_detect(cmd)
        tas.append(ta)
        cpus.append(cpu)
        rss.append(peak)
        tbs.append(full_read([before, after], args.workers))
    ta, tb, rss_gb = float(np.median(tas)), float(np.median(tbs)), max(rss) / 1e9
    cpu = float(np.median(cpus))
    from gis.imagery import open_pair, windows_within
    pair = open_pair(before, after)
    wins = windows_within(pair.grid, gpd.read_file(red).geometry.values, buffer=20.0, block=512)
    processed = sum(w.width * w.height for w, _ in wins)
    res = {"size": args.size, "workers": args.workers, "overviews": ovr, "detect_s": ta, "full_read_s": tb, "ratio": ta / tb,
           "processed_mp": processed / 1e6, "processed_share": processed / args.size ** 2,
           "mp_per_s_per_core": processed / 1e6 / ta / args.workers, "peak_rss_gb": rss_gb,
           "detect_cpu_s": cpu, "mp_per_cpu_s": processed / 1e6 / cpu,
           "output": stdout.strip(), "detect_runs_s": tas, "detect_cpu_runs_s": cpus, "full_read_runs_s": tbs}
    print(f"(a) gis detect end to end: {ta:.2f} s   (b) full read of both images: {tb:.2f} s   "
          f"ratio (a)/(b) = {ta / tb:.2f} (target <= 0.5)")
    print(f"processed {processed / 1e6:.0f} MP per image ({100 * res['processed_share']:.1f} % of it): "
          f"{res['mp_per_s_per_core']:.1f} MP/s per core (target >= 25); peak RSS of the detect run "
          f"(all processes) {rss_gb:.2f} GB; medians of {args.repeat} runs; overviews {ovr or 'none'}")
    print(f"CPU time of the detect run (user + system, all its processes and threads): {cpu:.2f} s, "
          f"{res['mp_per_cpu_s']:.1f} MP per CPU second; runs: wall "
          f"{', '.join(f'{t:.2f}' for t in tas)} s, CPU {', '.join(f'{c:.2f}' for c in cpus)} s")
    print(stdout.strip())
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
