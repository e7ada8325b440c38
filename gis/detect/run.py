"""Windowed change detection over a scene: tasks, workers, scene thresholds, output.

1. :func:`gis.imagery.pair.open_pair` validates the images and fixes the grid.
2. Windows (512 px blocks, one tile of a tiled file; objects cut by their edges are
   merged afterwards) that intersect the red lines plus
   the buffer are listed; nothing else is read.
3. Scene statistics (radiometric matching, thresholds) come from a sample of
   up to 24 windows spread over that list (:mod:`gis.detect.scene`); those
   windows are not decoded again.
4. Each window is an independent :class:`WindowTask` run by :func:`run_window`,
   a plain picklable function of plain data: ``workers`` > 1 maps it over a
   process pool; a Dask cluster could map the same function.
5. Objects are joined with red lines, parcels and the structure inventory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.machinery
import logging
import multiprocessing
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.windows import Window

from gis.detect.dsm import height_masks
from gis.detect.features import SceneStats, compute_features
from gis.detect.objects import KINDS, MIN_AREA, components, polygonise, refine
from gis.detect.register import MAX_SHIFT_PX, estimate_offset
from gis.detect.scene import estimate_stats
from gis.detect.spectral import building_mask, clean, demolition_mask
from gis.detect.vegetation import vegetation_mask
from gis.imagery.pair import (
    COLLAR_FRINGE_PX,
    ImagePair,
    WindowData,
    close_datasets,
    common_extent,
    open_pair,
    read_window,
    windows_within,
)
from gis.schema import m2_to_mu

if TYPE_CHECKING:  # imported where used: worker processes only run windows, and
    # geopandas + pandas would add ~0.3 s to every worker pool's start (the classifier,
    # with joblib, ~0.05 s to every run without a model)
    import geopandas as gpd
    import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["detect_changes", "WindowTask", "run_window", "COLUMNS"]

COLUMNS = ["kind", "area_m2", "area_mu", "confidence", "project_id", "parcel_id", "in_inventory"]
SAMPLE_WINDOWS = 24
#: a sampled window is read up to this size (px): one tile of a tiled file
SAMPLE_PX = 512
GDAL_CACHE_MB = 64
#: detection works at about this pixel size (m): a 20 m2 house is still 20 pixels,
#: and there are 4x fewer pixels to process than at 0.5 m
WORK_RES = 1.0
#: an inventory structure covering this share of a change polygon makes it known
INVENTORY_OVERLAP = 0.3


@dataclass
class WindowTask:
    pair: ImagePair
    window: Window
    core: Window
    stats: SceneStats
    min_area: dict
    area_wkb: bytes | None = None  # red lines + buffer clipped to the window
    model: object = None  # classifier dict or OnnxChangeModel
    want_mask: bool = False
    factor: int = 1  # detection works on pixels this many times larger
    index: int = 0
    options: dict = field(default_factory=dict)


@dataclass
class WindowResult:
    records: list
    geoms: list
    core: Window
    mask: np.ndarray | None = None
    empty: bool = False
    index: int = 0  # the task's
    collar: dict = field(default_factory=dict)  # image -> m² of black collar examined (none: empty)


def _gdal_env():
    """The GDAL settings windows are read under. Every block is decoded once, so GDAL's
    block cache (5 % of RAM per process by default) would only grow each process's
    memory. Entered once around many windows (by detect_changes, or for a worker's
    life): entering a rasterio.Env costs about as much as a small window's features,
    and rasterize/shapes enter one of their own when none is active."""
    if rasterio.env.hasenv() and rasterio.env.getenv().get("GDAL_CACHEMAX") == GDAL_CACHE_MB:
        return contextlib.nullcontext()
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)


def run_window(task: WindowTask, data: WindowData | None = None, features: dict | None = None) -> WindowResult:
    """Detect changes in one window. Pure function of the task (no shared state);
    ``data``: the window already read (by the scene sample), else it is read here;
    ``features``: its feature maps already computed (by the scene statistics)."""
    with _gdal_env():
        return _run_window(task, data, features)


def _run_window(task: WindowTask, data: WindowData | None, features: dict | None = None) -> WindowResult:
    pair, win, fac = task.pair, task.window, task.factor
    res = pair.grid.res * fac
    wd = data if data is not None else read_window(pair, win, fac)
    valid = wd.valid
    area = None
    if task.area_wkb is not None:
        area = _area_mask(shapely.from_wkb(task.area_wkb), valid.shape, wd.transform)
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
    model = task.model
    segments_model = isinstance(model, dict) and model["mode"] == "segments"
    objects_model = isinstance(model, dict) and model["mode"] == "objects"
    if segments_model or objects_model:
        from gis.detect import classifier as clf_mod
    if features is not None and not (segments_model or objects_model):
        f = features
    else:
        f = compute_features(wd.before, wd.after, task.stats, nir=pair.has_nir,
                             full=segments_model or objects_model, res=res, valid=wd.valid)
    masks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    t = task.stats.building_threshold
    if segments_model:
        # a light blur of the segment probabilities smooths the superpixel staircase
        p = cv2.GaussianBlur(clf_mod.segment_probability(model, f, res, pair.has_nir), (0, 0), 1.0)
        masks["new_structure"] = (clean(p >= 0.5, 3, 3), p)
    elif model is not None and hasattr(model, "probability"):
        p = model.probability(wd.before, wd.after)
        masks["new_structure"] = (p >= 0.5, p)
    else:
        m, s = building_mask(f, task.stats, res)
        # the confidence is only read at object pixels (see components)
        masks["new_structure"] = (m, lambda fg, s=s: np.clip(s.ravel()[fg] / (2 * t), 0, 1))
    gain = None
    if wd.dsm_before is not None and wd.dsm_after is not None:
        gain, loss, hs = height_masks(wd.dsm_before, wd.dsm_after, f, task.stats, res, pair.has_nir)
        m0, c0 = masks["new_structure"]
        if callable(c0):
            c0 = c0(np.arange(m0.size)).reshape(m0.shape)
        # a height gain confirms a spectral change and finds grey-on-grey ones
        masks["new_structure"] = (m0 | gain, np.maximum(c0, np.where(gain, 0.5 + 0.5 * hs, 0)))
        masks["demolished"] = (loss, 0.5 + 0.5 * hs)
    elif task.options.get("spectral_demolition"):
        # colour alone is a weak witness of demolition (on LEVIR it doubled the false
        # alarms), so without DSMs it is only on when asked for
        m, s = demolition_mask(f, task.stats, res)
        masks["demolished"] = (m & ~masks["new_structure"][0], np.clip(s / (2 * t), 0, 1))
    masks["new_crops"] = vegetation_mask(f, task.stats, res, pair.has_nir)
    masks = {k: (m & valid, c) for k, (m, c) in masks.items()}
    # mean of R, G, B: at object pixels only (a gather then the same float32 sums)
    after = wd.after[:3].reshape(3, -1)
    labels, records = components(masks, res=res, core=core, min_area=task.min_area,
                                 brightness=lambda fg: after[:, fg].mean(0), tall=gain)
    if objects_model and records:
        n = labels.max() + 1
        p = clf_mod.object_probability(model, f, labels, n, pair.has_nir)
        keep_ids = set()
        for r in records:
            r["confidence"] = float(p[r["id"]])
            if p[r["id"]] >= 0.5:
                keep_ids.add(r["id"])
        records = [r for r in records if r["id"] in keep_ids]
        labels = np.where(np.isin(labels, list(keep_ids)), labels, 0)
    boxes = {r["id"]: r.pop("box") for r in records}
    step = fac  # grid pixels per label pixel
    soft = _soft_scores(masks, segments_model, gain is not None) if fac > 1 and records else {}
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


def _soft_scores(masks: dict, segments_model: bool, dsm: bool) -> dict:
    """The score maps (and levels) structure outlines are redrawn from on the fine grid
    (:func:`gis.detect.objects.refine`): the trained model's probability, which is
    smooth. Not the unsupervised building score: redrawn at its threshold, without the
    opening and closing that shaped its mask, objects fell apart (LEVIR false alarms
    4.45 -> 5.00 a tile). Not with DSMs: a height gain has no such map."""
    if segments_model and not dsm:
        return {"new_structure": (masks["new_structure"][1], 0.5)}
    return {}


def _layer(value, crs, reader: str):
    """A GeoDataFrame (or path, read with gis.clearance.layers) in ``crs``; None stays None."""
    import geopandas as gpd

    if value is None:
        return None
    if not isinstance(value, gpd.GeoDataFrame):
        from gis.clearance import layers

        value = getattr(layers, reader)(value)
    if value.crs is None:
        from gis.errors import MissingCRSError
        raise MissingCRSError("layer has no CRS", hint="set its CRS (e.g. EPSG:4547) and run again")
    # the same authority code (the usual case) needs no comparison of the full
    # definitions (pyproj parses the image CRS's WKT for it: ~12 ms)
    if value.crs.srs.upper() == crs.to_string().upper():
        return value
    return value.to_crs(crs) if value.crs != crs else value


def _check_coverage(redlines, extent, path) -> None:
    """Red lines the imagery does not reach are not examined: an error when none is
    reached (the wrong flight, or the wrong layer), else a warning naming them. "No
    changes" must never stand for "not looked at"."""
    geoms = redlines.geometry.values
    ids = redlines["project_id"].astype(str).to_numpy() if "project_id" in redlines else \
        redlines.index.astype(str).to_numpy()
    shapely.prepare(extent)
    outside = ~shapely.intersects(extent, geoms)
    partly = ~outside & ~shapely.covers(extent, geoms)

    def names(sel):
        chosen = list(dict.fromkeys(ids[sel]))
        return ", ".join(chosen[:10]) + (f" and {len(chosen) - 10} more" if len(chosen) > 10 else "")

    if outside.all():
        from gis.errors import RasterAlignmentError
        raise RasterAlignmentError(
            f"the red lines lie outside the imagery: none of {len(geoms)} feature(s) ({names(outside)}) "
            f"meets the ground both images cover {tuple(round(v) for v in extent.bounds)}",
            path=path, layer="redlines",
            hint="give the imagery flown over these projects, or the red lines of the area flown")
    if outside.any():
        log.warning("%s: %d red-line feature(s) outside the imagery were not examined: %s",
                    path or "red lines", int(outside.sum()), names(outside))
    if partly.any():
        log.warning("%s: %d red-line feature(s) only partly inside the imagery; the rest was not examined: %s",
                    path or "red lines", int(partly.sum()), names(partly))


def _sample(pair: ImagePair, windows: list, n: int, factor: int, keep: dict | None = None,
            order: list | None = None):
    """Up to ``n`` windows spread over the list; only the first 512 x 512 px of each is
    read (one tile of a tiled file), which is plenty for statistics. A sampled window
    read whole is put in ``keep`` (index -> WindowData), so it is not decoded twice;
    ``order`` receives the index of each window yielded."""
    idx = np.unique(np.linspace(0, len(windows) - 1, min(n, len(windows))).round().astype(int))
    for i in idx.tolist():
        if order is not None:
            order.append(i)
        w = windows[i][1]
        w = Window(w.col_off, w.row_off, min(w.width, SAMPLE_PX), min(w.height, SAMPLE_PX))
        with _gdal_env():
            wd = read_window(pair, w, factor)
        if keep is not None and w == windows[i][0]:
            keep[i] = wd
        yield wd.before, wd.after, wd.valid, wd.dsm_before, wd.dsm_after


def sample_scene(pair: ImagePair, windows: list, factor: int, *, register: bool = True,
                 keep: dict | None = None, order: list | None = None) -> tuple[ImagePair, list]:
    """The pair (co-registered when ``register``) and its scene sample blocks, as
    :func:`_sample` reads them. When the before image is found offset, the blocks are
    read again, shifted (``keep`` and ``order`` then describe the second reading)."""
    order = [] if order is None else order
    samples = list(_sample(pair, windows, SAMPLE_WINDOWS, factor, keep, order))
    shifted = _registered(pair, samples, [windows[i][1] for i in order], windows, factor) \
        if register and samples else None
    if shifted is None:
        return pair, samples
    for seen in (keep, order):
        if seen is not None:
            seen.clear()
    return shifted, list(_sample(shifted, windows, SAMPLE_WINDOWS, factor, keep, order))


def _centre(w: Window, factor: int) -> tuple[float, float]:
    """Centre (col, row) of the part of window ``w`` :func:`_sample` reads, in work pixels."""
    return ((w.col_off + min(w.width, SAMPLE_PX) / 2) / factor, (w.row_off + min(w.height, SAMPLE_PX) / 2) / factor)


def _registered(pair: ImagePair, samples: list, sampled: list, windows: list, factor: int) -> ImagePair | None:
    """The pair with the before image read shifted onto the after image's content,
    or None when they agree (or the blocks cannot tell, or the grid is rotated).
    ``sampled``: the windows ``samples`` were read from; ``windows``: all."""
    t = pair.grid.transform
    if t.b or t.d:
        return None
    g = estimate_offset(samples, [_centre(w, factor) for w in sampled], pair.before)
    if g is None:
        return None
    # after[r, c] shows before[r - dy, c - dx], (dx, dy) = g @ (c, r, 1) in work pixels:
    # the same as a map of grid pixels (full resolution) onto the before image's
    warp = rasterio.Affine(1 - g[0, 0], -g[0, 1], -factor * g[0, 2], -g[1, 0], 1 - g[1, 1], -factor * g[1, 2])
    # how far each window's ground moves, east and north (m)
    at = np.array([(w.col_off + w.width / 2, w.row_off + w.height / 2) for _, w in windows] or [(0.0, 0.0)])
    moved = np.column_stack(warp @ tuple(at.T)) - at
    east, north = moved[:, 0] * t.a, moved[:, 1] * t.e
    if not g[:, :2].any():
        e, n = -east[0], -north[0]
        log.warning("%s: the same ground lies %.1f m %s and %.1f m %s in the after image compared with the "
                    "before image (phase correlation of the sampled blocks): the before image is read shifted "
                    "to match. Check the two flights' georeferencing if that is unexpected (--no-register "
                    "turns this off)", pair.before, abs(e), "east" if e >= 0 else "west", abs(n),
                    "north" if n >= 0 else "south")
        return dataclasses.replace(pair, before_warp=warp)
    size = np.hypot(east, north)
    if size.max() > MAX_SHIFT_PX * factor * abs(t.a):
        log.warning("%s: the offset from the after image varies over the scene and would reach %.1f m at the "
                    "far windows: not corrected; expect false alarms along edges. Check the two flights' "
                    "georeferencing", pair.before, size.max())
        return None
    # each window is read at its centre's offset: how far the field still moves (m) from
    # the largest window's centre to its corners
    half = max(max(w.width, w.height) for _, w in windows) / 2
    inside = np.abs(g[:, :2]).sum(axis=1).max() * half * abs(t.a)
    log.warning("%s: the same ground lies %.1f-%.1f m apart in the two images, varying across the scene (the "
                "orthophotos differ in scale or rotation; phase correlation of %d sampled blocks): the before "
                "image is read shifted window by window to match%s. Check the two flights' georeferencing if "
                "that is unexpected (--no-register turns this off)", pair.before, size.min(), size.max(),
                len(samples), "" if inside <= 0.75 else
                f", but the offset still varies by up to {inside:.1f} m within a window: expect false alarms "
                "along edges")
    return dataclasses.replace(pair, before_warp=warp)


def _area_mask(area, shape: tuple[int, int], transform) -> np.ndarray:
    """Pixels of a window inside ``area`` (red lines + buffer). OpenCV's fillPoly is ~3x
    cheaper per call than rasterio's rasterize, and most windows need one; the mask
    differs from GDAL's only within a pixel of the outline (the buffer's edge)."""
    if transform.b or transform.d:  # a rotated grid: let GDAL do it
        return rasterize([area], out_shape=shape, transform=transform, fill=0, dtype="uint8").astype(bool)
    shift = 4  # vertices in 1/16 pixel
    rings = []
    for part in shapely.get_parts(area):
        if part.geom_type != "Polygon":
            continue
        for ring in (part.exterior, *part.interiors):
            xy = shapely.get_coordinates(ring)
            # OpenCV puts pixel centres on whole coordinates, GDAL on halves
            col = (xy[:, 0] - transform.c) / transform.a - 0.5
            row = (xy[:, 1] - transform.f) / transform.e - 0.5
            rings.append(np.round(np.column_stack([col, row]) * (1 << shift)).astype(np.int32))
    mask = np.zeros(shape, np.uint8)
    if rings:  # holes: fillPoly fills by the even-odd rule
        cv2.fillPoly(mask, rings, 1, lineType=cv2.LINE_8, shift=shift)
    return mask.view(bool)


def _load_model(model, nir: bool):
    if model is None or isinstance(model, dict):
        return model
    if str(model).lower().endswith(".onnx"):
        from gis.detect.onnx import OnnxChangeModel
        return OnnxChangeModel(model)
    from gis.detect import classifier as clf_mod

    m = clf_mod.load_model(model)
    clf_mod._check_nir(m, nir)
    return m


def _progress(progress, total: int):
    """(step, stop): ``step(done)`` reports windows done; ``stop()`` takes a progress
    bar off the terminal (also when a window fails, so the error is not printed
    below a bar left hanging)."""
    if callable(progress):
        return (lambda done: progress(done, total)), (lambda: None)
    if progress:
        from rich.progress import Progress
        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("detecting", total=total)

        def step(done):
            bar.update(task, completed=done)
            if done >= total:
                bar.stop()
        return step, bar.stop
    return (lambda done: None), (lambda: None)


def detect_changes(before, after, *, dsm_before=None, dsm_after=None, within=None, inventory=None,
                   parcels=None, model=None, min_area=None, buffer=20.0, workers=1, mask_out=None,
                   progress=False, band_map=None, block: int = 512,
                   work_res: float = WORK_RES, register: bool = True) -> gpd.GeoDataFrame:
    """Change polygons between two orthophotos, on the after image's grid and CRS.

    Columns: kind (new_structure | new_crops | demolished | other), area_m2,
    area_mu, confidence [0, 1], project_id, parcel_id, in_inventory, geometry.
    ``min_area`` (m2) overrides the per-kind defaults (20 m2 structures, 100 m2 crops).
    ``model``: a ``gis model train`` joblib file or an ``.onnx`` change model.
    ``work_res``: pixel size (m) detection works at; finer imagery is area-averaged.
    ``register``: measure how far the before image's content sits from the after
    image's and read it shifted to match (see :mod:`gis.detect.register`).
    """
    # the worker processes start (forkserver, each importing this module: ~1 s) while
    # this process validates the images and samples the scene
    pool = _Pool(workers) if workers and workers > 1 else None
    # one OpenCV thread: a window's maps are at most 512 x 512 px, too small for its
    # thread pool to win back what it costs to start and join (measured on the
    # 20,000 px bench pair, one worker: ~0.3 s more CPU and no shorter run with two
    # threads); and ``workers`` processes are the parallelism, each single-threaded
    n_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with _gdal_env():
            return _detect(pool, before, after, dsm_before, dsm_after, within, inventory, parcels, model,
                           min_area, buffer, mask_out, progress, band_map, block, work_res, register)
    finally:
        cv2.setNumThreads(n_threads)
        if pool is not None:
            pool.close()
        close_datasets()


def _detect(pool, before, after, dsm_before, dsm_after, within, inventory, parcels, model, min_area,
            buffer, mask_out, progress, band_map, block, work_res, register) -> gpd.GeoDataFrame:
    pair = open_pair(before, after, dsm_before, dsm_after, band_map)
    loaded = _load_model(model, pair.has_nir)
    factor = max(1, int(work_res / pair.grid.res + 1e-6))
    if loaded is not None and hasattr(loaded, "probability"):
        factor = 1  # a user's ONNX model sees the imagery at the resolution it was trained on
    crs = pair.grid.crs
    within_gdf = _layer(within, crs, "read_redlines")
    parcels_gdf = _layer(parcels, crs, "read_parcels")
    inventory_gdf = _layer(inventory, crs, "read_inventory")
    geoms = None if within_gdf is None else within_gdf.geometry.values
    if geoms is not None:
        _check_coverage(within_gdf, common_extent(pair), within if isinstance(within, (str, Path)) else None)
    windows = windows_within(pair.grid, geoms, buffer=buffer, block=block)
    areas = [None] * len(windows)
    if geoms is not None:
        zone = shapely.buffer(shapely.union_all(geoms), buffer)
        shapely.prepare(zone)
        t = pair.grid.transform
        cropped = []
        for i, (w, _) in enumerate(windows):
            part = shapely.intersection(zone, shapely.box(*rasterio.windows.bounds(w, t)))
            # only the part of the block the zone covers is processed (the block is
            # decoded whole anyway, but features and objects cost by the pixel)
            cw = _crop(w, part, t, factor)
            cropped.append((cw, cw))
            # a zone covering the whole (shrunk) pixel grid of the window leaves every
            # pixel in: no need to rasterize it there
            full = Window(cw.col_off, cw.row_off, -(-cw.width // factor) * factor, -(-cw.height // factor) * factor)
            if not shapely.covers(part, shapely.box(*rasterio.windows.bounds(full, t))):
                areas[i] = shapely.to_wkb(part)
        windows = cropped
    mins = dict(MIN_AREA) if min_area is None else {k: float(min_area) for k in KINDS}
    sampled: dict[int, WindowData] = {}
    order: list[int] = []
    feats: list = []
    pair, samples = sample_scene(pair, windows, factor, register=register, keep=sampled, order=order)
    stats = estimate_stats(samples, nir=pair.has_nir, res=pair.grid.res * factor, features=feats) \
        if windows else SceneStats()
    del samples
    # the sampled windows' feature maps are final already (the statistics computed
    # them after the radiometric matching): their tasks reuse them
    sampled_f = {i: f for i, f in zip(order, feats) if i in sampled and f is not None} \
        if len(feats) == len(order) else {}
    tasks = [WindowTask(pair, w, c, stats, mins, a, loaded, mask_out is not None, factor, i)
             for i, ((w, c), a) in enumerate(zip(windows, areas))]
    log.info("%d windows of %d px to process", len(tasks), block)
    # run them 2 x 2 blocks at a time: a 2x overview's tile covers 2 x 2 blocks, and
    # decoding it once for the four needs them to follow each other (the output
    # keeps the task order whatever the order they run in)
    tasks = sorted(tasks, key=lambda t: (t.window.row_off // (2 * block), t.window.col_off // (2 * block),
                                         t.window.row_off, t.window.col_off))
    step, stop = _progress(progress, len(tasks))
    results: list = [None] * len(tasks)
    empty = 0
    with _writing_mask(mask_out):
        mask_dst = _open_mask(mask_out, pair) if mask_out is not None else None
    try:
        if pool is not None and len(tasks) > 1:
            # the sampled windows are already decoded here: this process runs them
            # while the workers take the others, in chunks (fewer round trips)
            rest = [t for t in tasks if t.index not in sampled]
            by_index = {t.index: t for t in tasks}
            chunk = max(1, min(8, len(rest) // (pool.workers * 4)))
            it = pool.map(rest, chunk)
            done = 0
            for i, wd in sampled.items():
                empty += _collect(run_window(by_index[i], wd, sampled_f.pop(i, None)), results, mask_dst)
                done += 1
                step(done)
            sampled.clear()
            for r in it:
                empty += _collect(r, results, mask_dst)
                done += 1
                step(done)
        else:
            for i, t in enumerate(tasks, 1):
                empty += _collect(run_window(t, sampled.pop(t.index, None), sampled_f.pop(t.index, None)),
                                  results, mask_dst)
                step(i)
    except BaseException:
        stop()
        if mask_dst is not None:
            mask_dst.close()
            Path(mask_dst.name).unlink(missing_ok=True)  # no half-written mask is left
        raise
    stop()  # no windows at all: the bar never reached its end
    if mask_dst is not None:
        with _writing_mask(mask_out):
            mask_dst.close()
            Path(mask_dst.name).replace(mask_out)
    if empty:
        log.warning("%d window(s) hold no valid data in both images (nodata): no changes there", empty)
    _warn_collar(pair, [r[2] for r in results])
    records = [rec for r in results for rec in r[0]]
    wkbs = [g for r in results for g in r[1]]
    out = _merge_edges(_frame(records, wkbs, crs), mins)
    return _attach(out, within_gdf, parcels_gdf, inventory_gdf)


class _Pool:
    """A process pool started in the background: forkserver, not fork (forking a process
    whose GDAL/OpenCV thread pools hold locks can deadlock the children, seen in tests);
    spawn would re-import everything in every worker."""

    def __init__(self, workers: int):
        self.workers = workers
        ctx = multiprocessing.get_context("forkserver" if sys.platform.startswith("linux") else "spawn")
        if ctx.get_start_method() == "forkserver":
            ctx.set_forkserver_preload(["gis.detect.run"])  # workers start with it imported
        # a worker needs nothing from the caller's script, but multiprocessing re-runs a
        # script's imports in every worker unless __main__ has a module spec (the `gis`
        # CLI: ~1.4 s of imports per worker); "__main__" as its name skips that step
        self._main = sys.modules.get("__main__")
        self._hidden = self._main is not None and getattr(self._main, "__spec__", None) is None
        if self._hidden:
            self._main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
        self.ex = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, mp_context=ctx)
        # the first submit starts the processes and waits for them: do it in a thread
        self._warm = threading.Thread(target=self._start, daemon=True)
        self._warm.start()

    def _start(self) -> None:
        try:
            for f in [self.ex.submit(_noop) for _ in range(self.workers)]:
                f.result()
        except Exception as exc:  # noqa: BLE001 - a broken pool shows again in map()
            log.debug("worker pool did not start: %s", exc)

    def map(self, tasks: list, chunk: int):
        self._warm.join()
        return self.ex.map(run_window, tasks, chunksize=chunk)

    def close(self) -> None:
        self._warm.join()
        self.ex.shutdown(wait=True, cancel_futures=True)
        if self._hidden:
            self._main.__spec__ = None


def _noop() -> None:
    return None


def _crop(w: Window, part, transform, factor: int) -> Window:
    """The sub-window of ``w`` holding ``part``, its offsets and size whole multiples of
    ``factor`` from the block's corner (so shrunk pixels stay on one lattice)."""
    if part.is_empty:
        return w
    x0, y0, x1, y1 = part.bounds
    inv = ~transform
    c0, r0 = inv @ (x0, y1)
    c1, r1 = inv @ (x1, y0)
    c0 = max(w.col_off, w.col_off + int(np.floor((c0 - w.col_off) / factor)) * factor)
    r0 = max(w.row_off, w.row_off + int(np.floor((r0 - w.row_off) / factor)) * factor)
    # whole shrunk pixels: an odd width would be resampled by a non-integer ratio
    # (pixels slightly off the lattice the transform assumes)
    c1 = min(w.col_off + w.width, c0 + -(-(int(np.ceil(c1)) - c0) // factor) * factor)
    r1 = min(w.row_off + w.height, r0 + -(-(int(np.ceil(r1)) - r0) // factor) * factor)
    if c1 <= c0 or r1 <= r0:
        return w
    return Window(c0, r0, c1 - c0, r1 - r0)


_WORKER_ENV = None


def _warn_collar(pair: ImagePair, tallies: list[dict]) -> None:
    """Name the ground a black collar kept out: "no changes" there means "not looked at"."""
    for name in ("before", "after"):
        m2 = sum(t.get(name, 0.0) for t in tallies)
        if m2 > 0:
            log.warning("%s: %.0f m² (%.2f mu) of the area examined was left out: pure black (0 in every "
                        "band) in a file that declares no nodata, taken as outside the image (a collar), with "
                        "a fringe of %d px. If that ground was flown, check the mosaic; if not, give the file "
                        "a nodata value or a mask (gdal_edit.py -a_nodata 0) to say so",
                        getattr(pair, name), m2, m2_to_mu(m2), COLLAR_FRINGE_PX)


def _worker_init() -> None:
    """One thread per worker process: the processes are the parallelism, and
    OpenCV's or GDAL's own thread pools in each would only fight over the cores.
    The GDAL settings are entered once, for the worker's life."""
    global _WORKER_ENV
    import cv2

    cv2.setNumThreads(1)
    _WORKER_ENV = _gdal_env()
    _WORKER_ENV.__enter__()


def _collect(r: WindowResult, results: list, mask_dst) -> int:
    """Keep a window's objects in task order (the output does not depend on which
    process ran what) and write its mask."""
    results[r.index] = (r.records, r.geoms, r.collar)
    if mask_dst is not None and r.mask is not None:
        with _writing_mask(mask_dst.name):
            mask_dst.write(r.mask[None], window=r.core)
    return int(r.empty)


@contextlib.contextmanager
def _writing_mask(path):
    """A failed write of the change mask (a full disk, a folder that cannot be
    written) as an :class:`~gis.errors.OutputWriteError` naming the file."""
    from gis.errors import GisError, OutputWriteError

    try:
        yield
    except (OSError, rasterio.errors.RasterioError) as exc:
        if isinstance(exc, GisError):
            raise
        raise OutputWriteError(f"cannot write the change mask ({exc})", path=path,
                               hint="free disk space or give another --mask-out, then run again") from exc


def _open_mask(path, pair: ImagePair):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    g = pair.grid
    return rasterio.open(tmp, "w", driver="GTiff", width=g.width, height=g.height, count=1, dtype="uint8",
                         crs=g.crs, transform=g.transform, tiled=True, blockxsize=256, blockysize=256,
                         compress="deflate", nodata=None, sparse_ok=True)


def _frame(records: list, wkbs: list, crs) -> gpd.GeoDataFrame:
    import geopandas as gpd
    import pandas as pd

    df = pd.DataFrame(records, columns=["kind", "confidence", "area_m2", "edge"])
    geom = shapely.from_wkb(np.array(wkbs, dtype=object)) if wkbs else np.array([], dtype=object)
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geom, crs=crs), crs=crs)
    gdf["area_m2"] = gdf["area_m2"].astype(float)
    gdf["area_mu"] = m2_to_mu(gdf["area_m2"])
    gdf["confidence"] = gdf["confidence"].astype(float).round(3)
    gdf["project_id"] = ""
    gdf["parcel_id"] = ""
    gdf["in_inventory"] = False
    return gdf


def _merge_edges(gdf: gpd.GeoDataFrame, mins: dict) -> gpd.GeoDataFrame:
    """Join the pieces of objects cut by window edges (same kind, touching), then
    apply the minimum area they were spared in their windows."""
    import geopandas as gpd
    import pandas as pd

    edge = gdf["edge"].to_numpy(bool)
    if edge.sum() > 1:
        sub = gdf[edge]
        geoms = sub.geometry.values
        i, j = shapely.STRtree(geoms).query(shapely.buffer(geoms, 1e-6), predicate="intersects")
        same = sub["kind"].to_numpy()[i] == sub["kind"].to_numpy()[j]
        n = len(sub)
        group = _components(i[same], j[same], n)
        area = sub["area_m2"].to_numpy()
        merged = pd.DataFrame({"g": group, "kind": sub["kind"].to_numpy(), "area_m2": area,
                               "cw": sub["confidence"].to_numpy() * area})
        agg = merged.groupby("g").agg(kind=("kind", "first"), area_m2=("area_m2", "sum"), cw=("cw", "sum"))
        geo = gpd.GeoSeries(geoms, crs=gdf.crs).groupby(group).agg(lambda s: shapely.union_all(s.values))
        pieces = gpd.GeoDataFrame({"kind": agg["kind"].to_numpy(), "confidence": (agg["cw"] / agg["area_m2"]).round(3).to_numpy(),
                                   "area_m2": agg["area_m2"].to_numpy(), "edge": False},
                                  geometry=shapely.simplify(np.asarray(geo.values), 0.01), crs=gdf.crs)
        pieces["area_mu"] = m2_to_mu(pieces["area_m2"])
        gdf = pd.concat([gdf[~edge], pieces], ignore_index=True)
    if len(gdf):
        floor = gdf["kind"].map(lambda k: mins.get(k, 20.0)).to_numpy(float)
        gdf = gdf[gdf["area_m2"].to_numpy() >= floor]
    gdf = gdf.drop(columns="edge")
    gdf = gpd.GeoDataFrame(gdf, geometry="geometry", crs=gdf.crs)
    for col, val in (("project_id", ""), ("parcel_id", ""), ("in_inventory", False)):
        gdf[col] = val
    return gdf.reset_index(drop=True)


def _components(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Connected component of each of ``n`` nodes joined by edges (i, j), numbered by
    their lowest node as scipy's connected_components does (min-label propagation with
    pointer jumping; importing scipy.sparse would cost more than the whole merge)."""
    lab = np.arange(n)
    while True:
        m = np.minimum(lab[i], lab[j])
        new = lab.copy()
        np.minimum.at(new, i, m)
        np.minimum.at(new, j, m)
        new = new[new]
        if np.array_equal(new, lab):
            return np.unique(lab, return_inverse=True)[1]
        lab = new


def _largest_overlap(changes: gpd.GeoDataFrame, layer: gpd.GeoDataFrame, column: str) -> pd.Series:
    """Value of ``column`` of the feature covering most of each change ('' if none)."""
    import pandas as pd

    out = pd.Series("", index=changes.index, dtype=object)
    if layer is None or column not in layer.columns or changes.empty:
        return out
    tree = shapely.STRtree(layer.geometry.values)
    i, j = tree.query(changes.geometry.values, predicate="intersects")
    if len(i) == 0:
        return out
    ov = shapely.area(shapely.intersection(changes.geometry.values[i], layer.geometry.values[j]))
    pairs = pd.DataFrame({"i": i, "j": j, "ov": ov}).sort_values("ov", ascending=False).drop_duplicates("i")
    out.iloc[pairs["i"].to_numpy()] = layer[column].astype(str).to_numpy()[pairs["j"].to_numpy()]
    return out


def _attach(changes, within, parcels, inventory) -> gpd.GeoDataFrame:
    import pandas as pd

    changes["project_id"] = _largest_overlap(changes, within, "project_id")
    changes["parcel_id"] = _largest_overlap(changes, parcels, "parcel_id")
    if inventory is not None and not changes.empty:
        tree = shapely.STRtree(inventory.geometry.values)
        i, j = tree.query(changes.geometry.values, predicate="intersects")
        if len(i):
            ov = shapely.area(shapely.intersection(changes.geometry.values[i], inventory.geometry.values[j]))
            share = pd.Series(ov).groupby(i).sum() / changes.geometry.area.to_numpy()[
                np.unique(i)]
            known = share.index[share.to_numpy() >= INVENTORY_OVERLAP]
            changes.loc[changes.index[known], "in_inventory"] = True
    return changes[COLUMNS + ["geometry"]].reset_index(drop=True)
