#!/usr/bin/env python
"""How detection copes with two flights that do not line up, on synthetic pairs.

Renders one synthetic scene (SIZE m square at 0.5 m) for two dates, then makes
"before" orthophotos that disagree with the after image's georeference the way
real deliveries do, each resampled (cubic) onto the after image's grid:

- shift: the whole flight 2 m east, 1 m north;
- scale: the before orthophoto 0.2 % / 0.4 % larger, anchored at the north-west
  corner (another flight height or lens calibration): the offset grows to 2 / 4 m
  per axis across a kilometre;
- rotation: turned 0.1 / 0.2 / 0.3 degree about the north-west corner;
- flight edge: the before flight ends along a ragged diagonal (nodata beyond).

For each, and with co-registration on (the default) and off (--no-register), it
prints the false alarms on an unchanged pair (objects and m²) and how many of the
planted houses and crop fields on a changed pair are found (>= 30 % covered).

    python scripts/eval_registration.py [--size 1024] [--keep DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from rasterio.transform import from_origin
from rasterio.warp import Resampling, reproject

from gis.detect import detect_changes
from gis.synthetic.render import render_orthophoto

CRS = "EPSG:4547"
RES = 0.5
X0, Y0 = 500000.0, 3400000.0


def planted(side: float) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    rng = np.random.default_rng(3)
    n = 24
    x, y = rng.uniform(30, side - 50, n), rng.uniform(30, side - 50, n)
    w, h = rng.uniform(9, 16, n), rng.uniform(9, 16, n)
    houses = gpd.GeoDataFrame({"roof": ["blue", "grey", "red"] * (n // 3)},
                              geometry=shapely.box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h), crs=CRS)
    fields = gpd.GeoDataFrame({"crop": ["crop", "greenhouse", "orchard"]},
                              geometry=[shapely.box(X0 + side * f, Y0 + side * g, X0 + side * f + 50, Y0 + side * g + 40)
                                        for f, g in ((0.2, 0.7), (0.7, 0.3), (0.8, 0.8))], crs=CRS)
    return houses, fields


def misaligned(raw: Path, out: Path, case: str, value: float, side: float) -> Path:
    """``raw`` resampled onto its own grid as a flight that disagrees with it would be."""
    with rasterio.open(raw) as src:
        prof, data = src.profile, src.read()
    nw = from_origin(X0, Y0 + side, RES, RES)
    if case == "flight edge":
        rows, cols = np.mgrid[:data.shape[1], :data.shape[2]]
        n = data.shape[1]
        data[:, cols + rows > 1.4 * n + 0.04 * n * np.sin(rows / 50)] = 0
        prof.update(nodata=0)
        moved = data
    else:
        src_t = {"none": nw,
                 "shift": from_origin(X0 + 2.0, Y0 + side + 1.0, RES, RES),
                 "scale": from_origin(X0, Y0 + side, RES * (1 + value / 100), RES * (1 + value / 100)),
                 "rotation": nw * rasterio.Affine.rotation(value)}[case]
        moved = np.zeros_like(data)
        reproject(data, moved, src_transform=src_t, src_crs=CRS, dst_transform=prof["transform"], dst_crs=CRS,
                  resampling=Resampling.cubic)
    with rasterio.open(out, "w", **prof) as dst:
        dst.write(moved)
    return out


def found(ch: gpd.GeoDataFrame, geoms) -> int:
    return int(sum(ch.geometry.intersection(g).area.sum() / g.area >= 0.3 for g in geoms))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=float, default=1024.0, help="Side of the scene (m).")
    ap.add_argument("--keep", type=Path, default=None, help="Write the images here and keep them.")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    tmp = tempfile.TemporaryDirectory() if args.keep is None else None
    d = Path(tmp.name) if tmp else args.keep
    d.mkdir(parents=True, exist_ok=True)
    side = args.size
    bounds = (X0, Y0, X0 + side, Y0 + side)
    houses, fields = planted(side)
    raw = render_orthophoto(d / "raw.tif", bounds=bounds, resolution=RES, crs=CRS, seed=5, epoch=1)
    same = render_orthophoto(d / "same.tif", bounds=bounds, resolution=RES, crs=CRS, seed=5, epoch=2)
    after = render_orthophoto(d / "after.tif", bounds=bounds, resolution=RES, crs=CRS, seed=5, epoch=3,
                              structures=houses, crops=fields)
    objects = np.concatenate([houses.geometry.values, fields.geometry.values])
    cases = [("none", 0), ("shift", 0), ("scale", 0.2), ("scale", 0.4), ("rotation", 0.1), ("rotation", 0.2),
             ("rotation", 0.3), ("flight edge", 0)]
    rows = []
    print(f"{side:.0f} m square at {RES} m; {len(objects)} planted objects "
          "(false alarms on the unchanged pair: objects / m²; planted objects found)")
    print(f"{'before image':22} {'registered':>22} {'--no-register':>22}")
    for case, value in cases:
        label = {"none": "aligned", "shift": "shifted 2 m E, 1 m N", "scale": f"{value} % larger",
                 "rotation": f"turned {value} deg", "flight edge": "flight ends (nodata)"}[case]
        before = misaligned(raw, d / "before.tif", case, value, side)
        row = {"case": case, "value": value}
        cells = []
        for register in (True, False):
            fa = detect_changes(before, same, register=register)
            ch = detect_changes(before, after, register=register)
            key = "registered" if register else "unregistered"
            row[key] = {"false_alarms": len(fa), "false_alarm_m2": float(fa.area_m2.sum()),
                        "found": found(ch, objects), "planted": len(objects)}
            cells.append(f"{len(fa):3d} / {fa.area_m2.sum():6.0f} m²  {found(ch, objects):2d}/{len(objects)}")
        rows.append(row)
        print(f"{label:22} {cells[0]:>22} {cells[1]:>22}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
