#!/usr/bin/env python
"""A simulated season of the verdict loop on labelled pairs (A/ B/ label/, e.g. LEVIR-CD samples).

The tiles are split into weeks (seeded). Each week, for each way of detecting,
the current detector runs on that week's tiles (the code path of `gis detect`,
tiles written as GeoTIFFs as in eval_detection.py) and is scored against the
labels; then a simulated patrol judges every alert from the labels (illegal
when >= 30 % of it is labelled change, else a false alarm, reason
image_artefact) and reports each labelled structure the detector missed with
probability ``--report`` (0.3, seeded: patrols see only part of the ground);
the loop retrains on every verdict so far, and next week's tiles are scored
with the result. Every week's tiles are scored by a model that never saw them.

Ways of detecting:

- ``unsupervised``: no learning (the default of `gis detect`);
- ``filter P=1.0``: today's `gis model train --alerts` object model over the
  unsupervised candidates (the detector's own threshold);
- ``cascade P=x``: the same with the proposer's building threshold times x
  (more candidates for the model to judge);
- ``replace``: a segment model trained from the verdict polygons (verdict
  positives and reported misses are change, everything else not) replaces the
  unsupervised building score.

A learning way starts unsupervised; a model trained after a week is promoted
by the rule of gis.detect.champion (``--always`` promotes every model instead).

    python scripts/eval_verdicts.py --pairs ../shared/data/levir-cd-samples [--weeks 5] [--report 0.3] [--seed 0] [--proposers 1.0,0.8,0.6] [--always] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import rasterio
from rasterio.features import rasterize, shapes
from shapely.geometry import shape

from eval_detection import building_mask, f1, object_scores, write_tif
from gis.detect import classifier as C
from gis.detect import detect_changes
from gis.detect.champion import challenge
from gis.detect.scene import estimate_stats
from gis.detect.training import JUDGED_CHANGE, object_rows, read_pair_folder
from gis.detect.verdicts import PATROL, VerdictData

CRS = "EPSG:4547"
#: a labelled structure a patrol can report: at least this many m2
MIN_STRUCTURE_M2 = 20.0


def judge(changes, label: np.ndarray, transform) -> np.ndarray:
    """1 (illegal) where >= 30 % of the alert is labelled change, else 0 (false alarm)."""
    out = []
    for g in changes.geometry.values:
        m = rasterize([(g, 1)], out_shape=label.shape, transform=transform, fill=0, dtype="uint8").astype(bool)
        out.append(int(m.any() and label[m].mean() >= JUDGED_CHANGE))
    return np.array(out, np.uint8)


def missed_structures(pred: np.ndarray, label: np.ndarray, transform, res: float, rng, report: float) -> list:
    """Labelled structures the detection covers less than 30 %, each reported with probability ``report``."""
    n, lab = cv2.connectedComponents(label.astype(np.uint8), connectivity=8)
    size = np.bincount(lab.ravel(), minlength=n)
    cov = np.bincount(lab[pred], minlength=n)
    out = []
    for i in range(1, n):
        if size[i] * res * res < MIN_STRUCTURE_M2 or cov[i] >= JUDGED_CHANGE * size[i]:
            continue
        if rng.random() < report:
            geoms = [shape(s) for s, v in shapes(lab.astype(np.int32), mask=lab == i, transform=transform) if v == i]
            out.append(max(geoms, key=lambda g: g.area))
    return out


class Way:
    """One way of detecting, with its verdicts so far and its current model."""

    def __init__(self, name: str, proposer: float | None, segments: bool = False):
        self.name, self.proposer, self.segments = name, proposer, segments
        self.model: dict | None = None
        self.X, self.y, self.groups, self.detector_rows = [], [], [], []
        self.seg_X, self.seg_y = [], []
        self.verdicts = 0
        self.promoted: list[str] = []

    @property
    def learns(self) -> bool:
        return self.proposer is not None or self.segments


def work_pair(before, after, res):
    """Both dates area-averaged to ~1 m work pixels, as detection reads them."""
    k = max(1, int(1.0 / res + 1e-6))
    size = (-(-before.shape[2] // k), -(-before.shape[1] // k))
    shrink = (lambda a: np.stack([cv2.resize(b, size, interpolation=cv2.INTER_AREA) for b in a.astype(np.float32)]))
    return shrink(before), shrink(after), res * k, k


def learn_segments(way: Way, tile, changes, y, reported, transform):
    name, before, after, label, res = tile
    b, a, wres, k = work_pair(before, after, res)
    pos = [g for g, v in zip(changes.geometry.values, y) if v] + reported
    tf = transform * transform.scale(k, k)
    lab = rasterize([(g, 1) for g in pos], out_shape=b.shape[1:], transform=tf, fill=0, dtype="uint8").astype(bool) \
        if pos else np.zeros(b.shape[1:], bool)
    stats = estimate_stats([(b, a, np.ones(b.shape[1:], bool))], res=wres)
    X, yy = C.pair_samples(b, a, lab, wres, stats, nir=False)
    way.seg_X.append(X)
    way.seg_y.append(yy)


def retrain(way: Way, week: int, always: bool) -> None:
    """Train a challenger on every verdict so far; promote it by the rule of
    gis.detect.champion (or always)."""
    if way.segments:
        y = np.concatenate(way.seg_y)
        if len(np.unique(y)) == 2:
            way.model = C.fit(np.concatenate(way.seg_X), y, mode="segments", nir=False)
            way.promoted.append(f"w{week}")
        return
    y = np.concatenate(way.y)
    if len(np.unique(y)) < 2:
        return
    g = np.concatenate(way.groups)
    det = np.concatenate(way.detector_rows)
    data = VerdictData(X=np.concatenate(way.X), y=y, weight=np.ones(len(y)), groups=g.astype(str),
                       keys=np.array([f"{i}" for i in range(len(y))]),
                       source=np.where(det, "detector", PATROL), summary={})
    model, decision = challenge(data, way.model)
    model["proposer"] = way.proposer
    if always or decision.promote:
        way.model = model
        way.promoted.append(f"w{week}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", required=True, type=Path)
    ap.add_argument("--weeks", type=int, default=5)
    ap.add_argument("--report", type=float, default=0.3, help="probability a patrol reports a missed structure")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--proposers", default="1.0,0.8,0.6", help="proposer threshold shares of the cascades")
    ap.add_argument("--no-replace", action="store_true", help="leave out the segment model trained on verdicts")
    ap.add_argument("--always", action="store_true", help="promote every retrained model (no champion rule)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    tiles = read_pair_folder(args.pairs)
    order = np.random.default_rng(args.seed).permutation(len(tiles))
    weeks = [sorted(int(i) for i in w) for w in np.array_split(order, args.weeks)]
    ways = [Way("unsupervised", None)] + \
        [Way(f"{'filter' if float(p) == 1 else 'cascade'} P={float(p):.1f}", float(p))
         for p in args.proposers.split(",")] + ([] if args.no_replace else [Way("replace", None, segments=True)])
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = {}
        for k, (name, before, after, label, res) in enumerate(tiles):
            a, b = tmp / f"{name}_A.tif", tmp / f"{name}_B.tif"
            write_tif(a, before, k, res)
            write_tif(b, after, k, res)
            paths[k] = (a, b)
        for w, idx in enumerate(weeks, start=1):
            for way in ways:
                rng = np.random.default_rng([args.seed, w, len(way.name)])
                tot, objs = np.zeros(3, np.int64), np.zeros(3, np.int64)
                for k in idx:
                    name, before, after, label, res = tiles[k]
                    a, b = paths[k]
                    m = tmp / f"{name}_mask.tif"
                    # no model yet: unsupervised, as a workspace starts
                    ch = detect_changes(a, b, model=way.model, mask_out=m)
                    with rasterio.open(m) as src:
                        transform = src.transform
                    pred = building_mask(ch, after, transform)
                    tot += (int((pred & label).sum()), int((pred & ~label).sum()), int((~pred & label).sum()))
                    objs += object_scores(pred, label)
                    if not way.learns:
                        continue
                    ch = ch[ch["kind"].isin(("new_structure", "demolished", "new_crops"))]
                    y = judge(ch, label, transform)
                    reported = missed_structures(pred, label, transform, res, rng, args.report)
                    way.verdicts += len(y) + len(reported)
                    if way.segments:
                        learn_segments(way, tiles[k], ch, y, reported, transform)
                        continue
                    geoms = list(ch.geometry.values) + reported
                    if not geoms:
                        continue
                    X, _ = object_rows(a, b, geoms, crs=CRS)
                    way.X.append(X)
                    way.y.append(np.concatenate([y, np.ones(len(reported), np.uint8)]))
                    way.groups.append(np.full(len(geoms), w))
                    way.detector_rows.append(np.r_[np.ones(len(y), bool), np.zeros(len(reported), bool)])
                F = f1(*tot)[0]
                row = {"week": w, "way": way.name, "tiles": len(idx), "pixel_f1": F,
                       "object_recall": objs[1] / max(objs[0], 1), "false_alarms_per_tile": objs[2] / len(idx),
                       "tp_fp_fn": tot.tolist(), "objects": objs.tolist(), "verdicts": way.verdicts,
                       "model": way.promoted[-1] if way.promoted else "-"}
                table.append(row)
                recall = f"{row['object_recall']:.3f}" if objs[0] else "  -  "  # no labelled structure
                print(f"week {w} {way.name:14s} F1 {F:.3f}  object recall {recall}  "
                      f"false alarms/tile {row['false_alarms_per_tile']:.2f}  verdicts so far {way.verdicts}  "
                      f"model {row['model']}", flush=True)
                if way.learns and w < len(weeks):  # the last week's model would score nothing
                    retrain(way, w, args.always)
    print("\nseason, weeks 2 on (every tile scored by a model that never saw it):")
    summary = {}
    for way in ways:
        rows = [r for r in table if r["way"] == way.name and r["week"] >= 2]
        tot = np.sum([r["tp_fp_fn"] for r in rows], axis=0)
        objs = np.sum([r["objects"] for r in rows], axis=0)
        n = sum(r["tiles"] for r in rows)
        s = {"pixel_f1": f1(*tot)[0], "object_recall": objs[1] / max(objs[0], 1),
             "false_alarms_per_tile": objs[2] / max(n, 1), "tiles": n, "promoted": way.promoted}
        summary[way.name] = s
        print(f"{way.name:14s} F1 {s['pixel_f1']:.3f}  object recall {s['object_recall']:.3f}  "
              f"false alarms/tile {s['false_alarms_per_tile']:.2f}  ({n} tiles; models promoted after "
              f"{', '.join(way.promoted) or 'none'})")
    if args.json:
        args.json.write_text(json.dumps({"weeks": weeks, "table": table, "season": summary}, indent=1,
                                        default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
