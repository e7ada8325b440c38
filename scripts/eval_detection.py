#!/usr/bin/env python
"""Evaluate change detection on labelled pairs (A/ B/ label/, e.g. LEVIR-CD samples).

Each tile's PNGs are written as GeoTIFFs with 0.5 m pixels in CGCS2000 GK CM
114E (EPSG:4547) and run through gis.detect.detect_changes (the code path of
`gis detect`), the binary change raster (``mask_out``) is compared with the
label. Printed per tile and overall:

- pixel F1 / precision / recall (TP, FP, FN summed over tiles; label > 127);
- object recall: label components >= 50 px, detected when >= 30 % covered;
- false alarms per tile: predicted components with < 10 % overlap with labels;
- throughput (MP/s of tile pixels, end to end, including GeoTIFF reading);
- the peers in peer-predictions/ on the same tiles, for comparison.

``--train-leave-one-out``: for each tile, a classifier is trained on the other
tiles only (never on the tile it is scored on) and passed as ``model=``.
``--look GAIN,GAMMA,SATURATION``: both dates of each scored tile are first
re-rendered so (gis.synthetic.render.restyle), as a later flight processed
otherwise would show the same ground; training tiles are left as they are.
``--no-register``: without co-registration (gis.detect.register), in training
and detection. ``--pictures DIR``: a PNG per tile to look at (before | after |
after with the result: found green, false red, missed blue).

    python scripts/eval_detection.py --pairs ../shared/data/levir-cd-samples [--train-leave-one-out] [--no-register] [--look 0.8,1,1] [--json out.json] [--pictures DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import rasterio
from rasterio.features import rasterize
from rasterio.transform import from_origin

from gis.detect import detect_changes
from gis.detect.classifier import save_model
from gis.detect.objects import GREENHOUSE_BRIGHTNESS
from gis.detect.training import read_pair_folder, train_from_pairs
from gis.synthetic.render import restyle

CRS = "EPSG:4547"
BUILDING_KINDS = ("new_structure", "demolished")


def write_tif(path: Path, arr: np.ndarray, k: int, res: float) -> None:
    # tiles side by side, 1 km apart, so every tile has its own ground
    tf = from_origin(400000 + k * 1000.0, 3500000.0, res, res)
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                       dtype="uint8", crs=CRS, transform=tf) as dst:
        dst.write(np.clip(np.rint(arr), 0, 255).astype("uint8"))


def building_mask(changes, after: np.ndarray, transform) -> np.ndarray:
    """LEVIR labels are building change: score new structures and demolitions, plus the
    large bright objects the detector re-labels as greenhouses (new_crops): they were
    found by the structure detector, and LEVIR's white warehouse roofs look just so."""
    shape = after.shape[1:]
    if len(changes) == 0:
        return np.zeros(shape, bool)
    ids = rasterize(zip(changes.geometry.values, np.arange(1, len(changes) + 1)), out_shape=shape,
                    transform=transform, fill=0, dtype="int32")
    n = len(changes) + 1
    bright = np.bincount(ids.ravel(), weights=after[:3].mean(0).ravel(), minlength=n) / \
        np.maximum(np.bincount(ids.ravel(), minlength=n), 1)
    kind = np.array([""] + list(changes["kind"]))
    keep = np.isin(kind, BUILDING_KINDS) | ((kind == "new_crops") & (bright >= GREENHOUSE_BRIGHTNESS))
    keep[0] = False
    return keep[ids]


def object_scores(pred: np.ndarray, label: np.ndarray) -> tuple[int, int, int]:
    """(label objects, detected label objects, false-alarm predicted objects)."""
    n, lab, st, _ = cv2.connectedComponentsWithStats(label.astype(np.uint8), connectivity=8)
    big = np.flatnonzero(st[:, cv2.CC_STAT_AREA] >= 50)
    big = big[big > 0]
    covered = np.bincount(lab[pred], minlength=n)
    detected = int((covered[big] >= 0.3 * st[big, cv2.CC_STAT_AREA]).sum())
    m, plab, pst, _ = cv2.connectedComponentsWithStats(pred.astype(np.uint8), connectivity=8)
    hit = np.bincount(plab[label], minlength=m)
    fa = int(((hit[1:] < 0.1 * pst[1:, cv2.CC_STAT_AREA])).sum())
    return len(big), detected, fa


def picture(path: Path, before: np.ndarray, after: np.ndarray, pred: np.ndarray, label: np.ndarray) -> None:
    """before | after | after with the result: found green, false red, missed blue."""
    from PIL import Image

    rgb = [np.moveaxis(x[:3], 0, -1).astype(np.uint8) for x in (before, after)]
    over = rgb[1].astype(np.float32)
    for sel, colour in ((pred & label, (0, 255, 0)), (pred & ~label, (255, 0, 0)), (~pred & label, (0, 80, 255))):
        over[sel] = 0.45 * over[sel] + 0.55 * np.array(colour, np.float32)
    gap = np.full((rgb[0].shape[0], 6, 3), 255, np.uint8)
    Image.fromarray(np.hstack([rgb[0], gap, rgb[1], gap, over.astype(np.uint8)])).save(path)


def f1(tp, fp, fn):
    p = tp / max(tp + fp, 1)
    r = tp / max(tp + fn, 1)
    return (2 * p * r / max(p + r, 1e-12), p, r)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", required=True, type=Path)
    ap.add_argument("--train-leave-one-out", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-register", action="store_true",
                    help="no co-registration, in training or detection (as before it existed)")
    ap.add_argument("--pictures", type=Path, default=None,
                    help="Write a PNG per tile here: before | after | after with the result "
                         "(green found, red false, blue missed).")
    ap.add_argument("--look", type=lambda v: tuple(float(x) for x in v.split(",")), default=None,
                    metavar="GAIN,GAMMA,SATURATION",
                    help="Score each tile re-rendered so (both dates), e.g. 0.8,1,1: 20 %% darker.")
    args = ap.parse_args(argv)
    if args.look is not None and len(args.look) != 3:
        ap.error("--look takes three numbers: GAIN,GAMMA,SATURATION")
    if args.pictures:
        args.pictures.mkdir(parents=True, exist_ok=True)
    tiles = read_pair_folder(args.pairs)
    rows, tot = [], np.zeros(3, np.int64)
    objs = np.zeros(3, np.int64)
    seconds, pixels = 0.0, 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for k, (name, before, after, label, res) in enumerate(tiles):
            if args.look is not None:
                before, after = restyle(before, *args.look), restyle(after, *args.look)
            a, b, m = tmp / f"{name}_A.tif", tmp / f"{name}_B.tif", tmp / f"{name}_mask.tif"
            write_tif(a, before, k, res)
            write_tif(b, after, k, res)
            model = None
            if args.train_leave_one_out:
                model = tmp / f"{name}.joblib"
                save_model(train_from_pairs(args.pairs, exclude=(name,), register=not args.no_register), model)
            t0 = time.perf_counter()
            changes = detect_changes(a, b, model=model, mask_out=m, register=not args.no_register)
            seconds += time.perf_counter() - t0
            pixels += label.size
            with rasterio.open(m) as src:
                pred = building_mask(changes, after, src.transform)
            tp, fp, fn = int((pred & label).sum()), int((pred & ~label).sum()), int((~pred & label).sum())
            tot += (tp, fp, fn)
            if args.pictures:
                picture(args.pictures / f"{name}.png", before, after, pred, label)
            o = object_scores(pred, label)
            objs += o
            rows.append({"tile": name, "f1": f1(tp, fp, fn)[0], "precision": f1(tp, fp, fn)[1],
                         "recall": f1(tp, fp, fn)[2], "label_objects": o[0], "detected": o[1],
                         "false_alarms": o[2], "polygons": len(changes)})
            print(f"{name:28s} F1 {rows[-1]['f1']:.3f}  P {rows[-1]['precision']:.3f}  R {rows[-1]['recall']:.3f}  "
                  f"objects {o[1]}/{o[0]}  false alarms {o[2]}")
    F, P, R = f1(*tot)
    overall = {"mode": "leave-one-out trained" if args.train_leave_one_out else "unsupervised", "look": args.look,
               "pixel_f1": F, "precision": P, "recall": R,
               "object_recall": objs[1] / max(objs[0], 1), "false_alarms_per_tile": objs[2] / len(tiles),
               "tiles": len(tiles), "mp_per_s": pixels / 1e6 / max(seconds, 1e-9)}
    print(f"\noverall ({overall['mode']}, {len(tiles)} tiles): pixel F1 {F:.3f}  precision {P:.3f}  recall {R:.3f}  "
          f"object recall {overall['object_recall']:.3f}  false alarms/tile {overall['false_alarms_per_tile']:.2f}  "
          f"throughput {overall['mp_per_s']:.2f} MP/s")
    peers = {}
    pdir = args.pairs / "peer-predictions"
    if pdir.is_dir():
        names = {t[0]: t[3] for t in tiles}
        for peer in sorted(p for p in pdir.iterdir() if p.is_dir()):
            acc = np.zeros(3, np.int64)
            for f in sorted(peer.glob("*.png")):
                if f.stem not in names:
                    continue
                with rasterio.open(f) as src:
                    pred = src.read(1) > 127
                lab = names[f.stem]
                acc += (int((pred & lab).sum()), int((pred & ~lab).sum()), int((~pred & lab).sum()))
            peers[peer.name] = f1(*acc)[0]
        print("peers on their tiles: " + ", ".join(f"{k} {v:.3f}" for k, v in peers.items()))
    if args.json:
        args.json.write_text(json.dumps({"overall": overall, "tiles": rows, "peers": peers}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
