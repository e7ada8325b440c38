#!/usr/bin/env python
"""Benchmark detection on a Dask cluster against the single-process run.

Builds (or reuses) the synthetic SIZE x SIZE px pair of scripts/bench_detect.py
(default 20,000 px at 0.5 m) and times `gis detect` end to end (a subprocess:
imports, validation, the cluster's start, detection, GeoPackage) over the whole
image (a 两违 run over a town's area; `--within-redlines` limits it to the
red lines, ~10 % of it), in alternating runs of:

- the single-process run (no option);
- `--scheduler local:1` and `--scheduler local:2` (a LocalCluster of 1 or 2 worker
  processes of one thread, started by the command);
- `--workers 2`, the process pool, for reference.

Each output is checked to be the single-process one (same rows, same polygons).
Prints the medians, the speed-up over the single-process run, the overhead of
the scheduler at one worker ((local:1 - single) / single; target <= 10 %), the
speed-up at two (target >= 1.7x on a 2-core machine), the pixels per second per
core and the CPU time of each variant (all its processes: what a run costs
whatever the machine's load).

    python scripts/bench_scale.py [--size 20000] [--repeat 3] [--keep DIR [--reuse]] [--within-redlines]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_detect import build, run_detect  # noqa: E402 - the pair and the timing of bench_detect

VARIANTS = {"single": [], "local:1": ["--scheduler", "local:1"], "local:2": ["--scheduler", "local:2"],
            "workers 2": ["--workers", "2"]}
CORES = {"single": 1, "local:1": 1, "local:2": 2, "workers 2": 2}


def same_output(a: Path, b: Path) -> bool:
    one, two = gpd.read_file(a), gpd.read_file(b)
    cols = [c for c in one.columns if c != "geometry"]
    return len(one) == len(two) and one[cols].equals(two[cols]) and \
        bool(shapely.equals_exact(one.geometry.values, two.geometry.values, tolerance=0).all())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3, help="Runs of each variant; medians are reported.")
    ap.add_argument("--keep", type=Path, default=None, help="Build the pair here and keep it.")
    ap.add_argument("--reuse", action="store_true", help="Reuse the pair already built in --keep DIR.")
    ap.add_argument("--within-redlines", action="store_true", help="Only the red lines (~10 %%), not the whole image.")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="Comma-separated, of: " + ", ".join(VARIANTS))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--overlay", type=int, default=None, metavar="PARCELS",
                    help="Time `gis overlay` of this many parcels (x 500 red lines) instead of detection.")
    args = ap.parse_args(argv)
    if args.overlay:
        return overlay_scale(args.overlay, args.repeat, args.keep, args.json)
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
    gis = Path(sys.executable).with_name("gis")
    base = [str(gis), "detect", "--before", str(before), "--after", str(after), "--no-progress"]
    if args.within_redlines:
        base += ["--within", str(red)]
    names = [v.strip() for v in args.variants.split(",")]
    if "single" not in names:
        names.insert(0, "single")
    walls: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    rss: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.repeat):  # alternating: the machine may be shared, its speed drifts
        for n in names:
            ta, cpu, peak, _ = run_detect(base + VARIANTS[n] + ["--out", str(out / f"{n.replace(' ', '_')}.gpkg")])
            walls[n].append(ta)
            cpus[n].append(cpu)
            rss[n].append(peak)
    identical = {n: same_output(out / "single.gpkg", out / f"{n.replace(' ', '_')}.gpkg") for n in names}
    px = args.size ** 2 if not args.within_redlines else None
    if px is None:
        from gis.imagery import open_pair, windows_within
        pair = open_pair(before, after)
        wins = windows_within(pair.grid, gpd.read_file(red).geometry.values, buffer=20.0, block=512)
        px = sum(w.width * w.height for w, _ in wins)
    single = float(np.median(walls["single"]))
    res = {"size": args.size, "processed_mp": px / 1e6, "repeat": args.repeat, "variants": {}}
    print(f"{px / 1e6:.0f} MP per image processed; medians of {args.repeat} alternating runs")
    print(f"{'variant':<10} {'wall s':>8} {'speed-up':>9} {'MP/s/core':>10} {'CPU s':>7} {'RSS GB':>7}  same output")
    for n in names:
        w, c = float(np.median(walls[n])), float(np.median(cpus[n]))
        r = {"wall_s": w, "speedup": single / w, "mp_per_s_per_core": px / 1e6 / w / CORES[n], "cpu_s": c,
             "mp_per_cpu_s": px / 1e6 / c, "peak_rss_gb": max(rss[n]) / 1e9, "identical": identical[n],
             "runs_s": walls[n], "cpu_runs_s": cpus[n]}
        res["variants"][n] = r
        print(f"{n:<10} {w:8.2f} {r['speedup']:8.2f}x {r['mp_per_s_per_core']:10.1f} {c:7.1f} "
              f"{r['peak_rss_gb']:7.2f}  {identical[n]}   runs {', '.join(f'{t:.2f}' for t in walls[n])}")
    if "local:1" in res["variants"]:
        over = res["variants"]["local:1"]["wall_s"] / single - 1
        res["overhead_local1"] = over
        print(f"scheduler overhead at one worker: {100 * over:+.1f} % (target <= 10 %)")
    if "local:2" in res["variants"]:
        print(f"speed-up at two workers: {res['variants']['local:2']['speedup']:.2f}x (target >= 1.7x)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    if tmp:
        tmp.cleanup()
    return 0 if all(identical.values()) else 1


OVERLAY_VARIANTS = {"single": [], "local:1": ["--scheduler", "local:1"], "local:2": ["--scheduler", "local:2"]}


def overlay_scale(n_parcels: int, repeat: int, keep: Path | None, json_out: Path | None) -> int:
    """`gis overlay` end to end (a subprocess: imports, reading, validation, the cluster's
    start, overlay, figures, GeoPackage) on the cadastre of scripts/bench_overlay.py written
    as a GeoPackage, single-process against `--scheduler local:1` and `local:2`, in
    alternating runs; each variant's figures checked equal to the single run's (1e-9)."""
    from bench_overlay import build
    from compare_figures import differences

    tmp = tempfile.TemporaryDirectory() if keep is None else None
    out = Path(tmp.name) if tmp else keep
    out.mkdir(parents=True, exist_ok=True)
    parcels_path, red_path = out / "parcels.gpkg", out / "redlines.gpkg"
    if not parcels_path.exists():
        parcels, red = build(n_parcels, 500)
        parcels.to_file(parcels_path, driver="GPKG", engine="pyogrio")
        red.to_file(red_path, driver="GPKG", engine="pyogrio")
    gis = Path(sys.executable).with_name("gis")
    base = [str(gis), "overlay", "--redlines", str(red_path), "--parcels", str(parcels_path), "--force"]
    walls: dict[str, list[float]] = {n: [] for n in OVERLAY_VARIANTS}
    cpus: dict[str, list[float]] = {n: [] for n in OVERLAY_VARIANTS}
    rss: dict[str, list[float]] = {n: [] for n in OVERLAY_VARIANTS}
    for _ in range(repeat):
        for n, extra in OVERLAY_VARIANTS.items():
            ta, cpu, peak, _ = run_detect(base + extra + ["--out", str(out / f"o_{n.replace(':', '')}.gpkg")])
            walls[n].append(ta)
            cpus[n].append(cpu)
            rss[n].append(peak)
    single = float(np.median(walls["single"]))
    res = {"parcels": n_parcels, "repeat": repeat, "variants": {}}
    print(f"gis overlay of {n_parcels:,} parcels x 500 red lines (GeoPackage); medians of {repeat} alternating runs")
    print(f"{'variant':<10} {'wall s':>8} {'speed-up':>9} {'CPU s':>7} {'RSS GB':>7}  same figures")
    for n in OVERLAY_VARIANTS:
        w, c = float(np.median(walls[n])), float(np.median(cpus[n]))
        same = not differences(str(out / "o_single.gpkg"), str(out / f"o_{n.replace(':', '')}.gpkg"))
        res["variants"][n] = {"wall_s": w, "speedup": single / w, "cpu_s": c, "peak_rss_gb": max(rss[n]) / 1e9,
                              "identical": same, "runs_s": walls[n]}
        print(f"{n:<10} {w:8.2f} {single / w:8.2f}x {c:7.1f} {max(rss[n]) / 1e9:7.2f}  {same}   "
              f"runs {', '.join(f'{t:.2f}' for t in walls[n])}")
    over = res["variants"]["local:1"]["wall_s"] / single - 1
    print(f"scheduler overhead at one worker: {100 * over:+.1f} % (target <= 10 %)")
    print(f"speed-up at two workers: {res['variants']['local:2']['speedup']:.2f}x (target >= 1.7x)")
    if json_out:
        json_out.write_text(json.dumps(res, indent=1))
    if tmp:
        tmp.cleanup()
    return 0 if all(v["identical"] for v in res["variants"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
