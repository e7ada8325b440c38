"""One window's change detection: a task of plain data in, objects out.

:func:`run_window` reads a window of the pair (unless the scene sample already
did), computes its feature maps (:mod:`gis.detect.features`), asks the task's
detector for each kind's mask (:mod:`gis.detect.detectors`), labels the objects
(:func:`gis.detect.objects.components`) and traces their outlines, on the
imagery's own pixels where the detector gives a smooth score. It is a pure
function of a picklable :class:`WindowTask`, so any process can run it
(:mod:`gis.detect.pool`). Worker processes import this module and what it
needs, nothing of the output's tables (geopandas, pandas: ~0.3 s each start).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import rasterio
import shapely
from rasterio.windows import Window

from gis.detect.detectors import Detector, Unsupervised
from gis.detect.features import SceneStats, compute_features
from gis.detect.objects import components, polygonise, refine
from gis.imagery.pair import ImagePair
from gis.imagery.reading import WindowData, gdal_env, read_window
from gis.imagery.windows import area_mask

__all__ = ["WindowTask", "WindowResult", "run_window"]


@dataclass
class WindowTask:
    """One window to examine: plain picklable data (the pair's paths and grid, the scene's
    statistics, the detector), so any process can run it."""

    pair: ImagePair
    window: Window
    core: Window
    stats: SceneStats
    min_area: dict
    area_wkb: bytes | None = None  # red lines + buffer clipped to the window
    detector: Detector = field(default_factory=Unsupervised)
    want_mask: bool = False
    factor: int = 1  # detection works on pixels this many times larger
    index: int = 0


@dataclass
class WindowResult:
    """A window's objects (records and WKB outlines), its change mask if asked for, and
    the black collar it examined."""

    records: list
    geoms: list
    core: Window
    mask: np.ndarray | None = None
    empty: bool = False
    index: int = 0  # the task's
    collar: dict = field(default_factory=dict)  # image -> m² of black collar examined (none: empty)


def run_window(task: WindowTask, data: WindowData | None = None, features: dict | None = None) -> WindowResult:
    """Detect changes in one window. Pure function of the task (no shared state);
    ``data``: the window already read (by the scene sample), else it is read here;
    ``features``: its feature maps already computed (by the scene statistics)."""
    with gdal_env():
        return _run_window(task, data, features)


def _run_window(task: WindowTask, data: WindowData | None, features: dict | None = None) -> WindowResult:
    pair, win, fac = task.pair, task.window, task.factor
    res = pair.grid.res * fac
    wd = data if data is not None else read_window(pair, win, fac)
    valid = wd.valid
    area = None
    if task.area_wkb is not None:
        area = area_mask(shapely.from_wkb(task.area_wkb), valid.shape, wd.transform)
        valid = valid & area
    core = tuple(int(np.ceil(v / fac)) for v in (
        task.core.row_off - win.row_off, task.core.col_off - win.col_off,
        task.core.row_off - win.row_off + task.core.height, task.core.col_off - win.col_off + task.core.width))
    collar = {}
    for name, black in wd.extra.get("collar", {}).items():
        r0, c0, r1, c1 = core
        inside = (black if area is None else black & area)[r0:r1, c0:c1]
        collar[name] = float(np.count_nonzero(inside)) * res * res
    if not wd.valid.any():
        return WindowResult([], [], task.core, None, empty=True, index=task.index, collar=collar)
    det = task.detector
    if features is not None and not det.full_features:
        f = features
    else:
        f = compute_features(wd.before, wd.after, task.stats, nir=pair.has_nir, full=det.full_features, res=res,
                             valid=wd.valid)
    masks, gain = det.detect_window(wd, f, task.stats, res, pair.has_nir)
    masks = {k: (m & valid, c) for k, (m, c) in masks.items()}
    # mean of R, G, B: at object pixels only (a gather then the same float32 sums)
    after = wd.after[:3].reshape(3, -1)
    labels, records = components(masks, res=res, core=core, min_area=task.min_area,
                                 brightness=lambda fg: after[:, fg].mean(0), tall=gain)
    labels, records = det.select(f, labels, records, pair.has_nir)
    boxes = {r["id"]: r.pop("box") for r in records}
    step = fac  # grid pixels per label pixel
    soft = det.outline_scores(masks, gain is not None) if fac > 1 and records else {}
    if soft:
        # outlines on the imagery's own pixels, not the work pixels' staircase
        fine_px = {k: v / pair.grid.res ** 2 for k, v in task.min_area.items()}
        labels, boxes, step = refine(labels, records, soft, valid, fac, fine_px), None, 1
    px = pair.grid.res * step
    polys = polygonise(labels, wd.transform @ rasterio.Affine.scale(step / fac), px, boxes)
    geoms, out = [], []
    for r in records:
        g = polys.get(r["id"])
        if g is None or g.is_empty:
            continue
        r["area_m2"] = r.pop("pixels") * px * px
        r["wid"] = task.index
        geoms.append(shapely.to_wkb(g))
        out.append(r)
    mask = None
    if task.want_mask:
        r0, c0, r1, c1 = (v * fac // step for v in core)
        mask = (labels[r0:r1, c0:c1] > 0).astype(np.uint8)
        if step > 1:  # back to the full grid
            mask = np.repeat(np.repeat(mask, step, 0), step, 1)
        mask = mask[:task.core.height, :task.core.width]
    return WindowResult(out, geoms, task.core, mask, index=task.index, collar=collar)
