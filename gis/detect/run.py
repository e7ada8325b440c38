"""Change detection over a scene: the steps, in order (:func:`detect_changes`).

1. :func:`gis.imagery.pair.open_pair` validates the images and fixes the grid;
   :func:`gis.detect.detectors.load_detector` the model, if any.
2. Windows (512 px blocks, one tile of a tiled file) that intersect the zone
   (``within``: red lines, or any polygon layer such as town office boundaries,
   镇办辖区, read by :func:`read_zone`) plus the buffer are listed, each cropped
   to the zone it holds (:func:`gis.imagery.windows.zone_windows`); nothing else
   is read, so the cost follows the area processed, not the image's.
3. Scene statistics (radiometric matching, thresholds) and the co-registration
   come from a sample of up to 24 of them (:mod:`gis.detect.sampling`,
   :mod:`gis.detect.scene`); those windows are not decoded again.
4. Each window is an independent :class:`~gis.detect.window.WindowTask`, run by
   :func:`~gis.detect.window.run_window`: this process runs the sampled ones
   while a scheduler (:mod:`gis.detect.pool`) runs the others, in ``workers``
   processes, on a Dask cluster (``scheduler``) or here.
5. The objects become one table, pieces cut by window edges are merged, and
   each change is joined with red lines, parcels and the structure inventory
   (:mod:`gis.detect.output`).

Progress is reported as ``progress(done, total)``: windows done, windows in all.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np
import shapely

from gis.clearance.layers import guess_kind, read_inventory, read_parcels, read_raw, read_redlines
from gis.detect.detectors import load_detector
from gis.detect.features import SceneStats
from gis.detect.objects import KINDS, MIN_AREA
from gis.detect.output import COLUMNS, MaskWriter, attach, frame, merge_edges
from gis.detect.pool import Scheduler, scheduler_for
from gis.detect.sampling import WORK_RES, sample_scene, work_factor
from gis.detect.scene import estimate_stats
from gis.detect.window import WindowTask, run_window
from gis.errors import EmptyLayerError, GeometryTypeError, MissingCRSError, RasterAlignmentError
from gis.geometry import POLYGONAL, polygonal
from gis.imagery.pair import ImagePair, common_extent, open_pair
from gis.imagery.reading import COLLAR_FRINGE_PX, WindowData, close_datasets, gdal_env
from gis.imagery.windows import zone_windows
from gis.schema import m2_to_mu

log = logging.getLogger(__name__)

__all__ = ["detect_changes", "read_zone", "COLUMNS", "Progress"]

#: a progress report: windows done, windows in all
Progress = Callable[[int, int], None]


def detect_changes(before, after, *, dsm_before=None, dsm_after=None, within=None, inventory=None,
                   parcels=None, model=None, min_area=None, buffer=20.0, workers=1, mask_out=None,
                   progress: Progress | None = None, band_map=None, block: int = 512,
                   work_res: float = WORK_RES, register: bool = True,
                   scheduler: str | Scheduler | None = None) -> gpd.GeoDataFrame:
    """Change polygons between two orthophotos, on the after image's grid and CRS.

    Columns: kind (new_structure | new_crops | demolished | other), area_m2,
    area_mu, confidence [0, 1], project_id, parcel_id, in_inventory, geometry.
    ``within``: red lines (their project_id is joined to each change), or any polygon
    layer (town office boundaries, 镇办辖区: project_id stays empty); only the
    windows it meets (+ ``buffer`` m) are read. None: the whole image.
    ``min_area`` (m2) overrides the per-kind defaults (20 m2 structures, 100 m2 crops).
    ``model``: a ``gis model train`` joblib file or an ``.onnx`` change model
    (see :func:`gis.detect.detectors.load_detector`).
    ``progress``: called as ``progress(done, total)`` after each window.
    ``work_res``: pixel size (m) detection works at; finer imagery is area-averaged.
    ``register``: measure how far the before image's content sits from the after
    image's and read it shifted to match (see :mod:`gis.detect.register`).
    ``scheduler``: where the window tasks run instead of ``workers`` processes: a
    Dask cluster's address (``tcp://host:8786``), ``local:N`` (a cluster of N
    processes started for this run), or a scheduler of :mod:`gis.detect.pool`
    (left open). The result is the same wherever they run.
    """
    if progress is not None and progress is not False and not callable(progress):
        raise TypeError(f"progress must be a function progress(done, total), not {progress!r}")
    # the worker processes start (forkserver, each importing the window task: ~1 s),
    # or the cluster connects, while this process validates the images and samples the scene
    # one OpenCV thread: a window's maps are at most 512 x 512 px, too small for its
    # thread pool to win back what it costs to start and join (measured on the
    # 20,000 px bench pair, one worker: ~0.3 s more CPU and no shorter run with two
    # threads); and ``workers`` processes are the parallelism, each single-threaded
    n_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with scheduler_for(scheduler, workers) as tasks_on, gdal_env():
            return _detect(tasks_on, before, after, dsm_before, dsm_after, within, inventory, parcels, model,
                           min_area, buffer, mask_out, progress or None, band_map, block, work_res, register)
    finally:
        cv2.setNumThreads(n_threads)
        close_datasets()


def _detect(scheduler, before, after, dsm_before, dsm_after, within, inventory, parcels, model, min_area,
            buffer, mask_out, progress, band_map, block, work_res, register) -> gpd.GeoDataFrame:
    pair = open_pair(before, after, dsm_before, dsm_after, band_map)
    detector = load_detector(model, pair.has_nir)
    # a user's ONNX model sees the imagery at the resolution it was trained on
    factor = 1 if detector.native_resolution else work_factor(pair.grid.res, work_res)
    crs = pair.grid.crs
    within_gdf = _layer(within, crs, read_zone)
    parcels_gdf = _layer(parcels, crs, read_parcels)
    inventory_gdf = _layer(inventory, crs, read_inventory)
    geoms = None if within_gdf is None else within_gdf.geometry.values
    if geoms is not None:
        _check_coverage(within_gdf, common_extent(pair), within if isinstance(within, (str, Path)) else None)
    windows, areas = zone_windows(pair.grid, geoms, buffer=buffer, block=block, factor=factor)
    mins = dict(MIN_AREA) if min_area is None else {k: float(min_area) for k in KINDS}
    sampled: dict[int, WindowData] = {}
    order: list[int] = []
    feats: list = []
    pair, samples = sample_scene(pair, windows, factor, register=register, keep=sampled, order=order)
    stats = estimate_stats(samples, nir=pair.has_nir, res=pair.grid.res * factor, features=feats) \
        if windows else SceneStats()
    detector.check_scene(stats, str(after))  # a trained model made for other imagery warns
    del samples
    # the sampled windows' feature maps are final already (the statistics computed
    # them after the radiometric matching): their tasks reuse them
    sampled_f = {i: f for i, f in zip(order, feats) if i in sampled and f is not None} \
        if len(feats) == len(order) else {}
    tasks = [WindowTask(pair, w, c, stats, mins, area_wkb=a, detector=detector, want_mask=mask_out is not None,
                        factor=factor, index=i) for i, ((w, c), a) in enumerate(zip(windows, areas))]
    log.info("%d windows of %d px to process", len(tasks), block)
    # run them 2 x 2 blocks at a time: a 2x overview's tile covers 2 x 2 blocks, and
    # decoding it once for the four needs them to follow each other (the output
    # keeps the task order whatever the order they run in)
    tasks = sorted(tasks, key=lambda t: (t.window.row_off // (2 * block), t.window.col_off // (2 * block),
                                         t.window.row_off, t.window.col_off))
    mask = MaskWriter(mask_out, pair.grid) if mask_out is not None else None
    try:
        results, empty = _run(scheduler, tasks, sampled, sampled_f, mask, progress)
    except BaseException:
        if mask is not None:
            mask.discard()  # no half-written mask is left
        raise
    if mask is not None:
        mask.commit()
    if empty:
        log.warning("%d window(s) hold no valid data in both images (nodata): no changes there", empty)
    _warn_collar(pair, [collar for _, _, collar in results])
    records = [rec for r in results for rec in r[0]]
    wkbs = [g for r in results for g in r[1]]
    out = merge_edges(frame(records, wkbs, crs), mins)
    return attach(out, within_gdf, parcels_gdf, inventory_gdf)


def _run(scheduler: Scheduler, tasks: list[WindowTask], sampled: dict, features: dict, mask: MaskWriter | None,
         progress: Progress | None) -> tuple[list, int]:
    """Run every task; returns each one's (records, geometries, collar) in task order
    (the output does not depend on which process ran what), and how many windows
    held no valid data. The sampled windows are already decoded here: this process
    runs them while the scheduler takes the others."""
    by_index = {t.index: t for t in tasks}
    pending = scheduler.map([t for t in tasks if t.index not in sampled])
    here = (run_window(by_index[i], sampled.pop(i), features.pop(i, None)) for i in list(sampled))
    results: list = [None] * len(tasks)
    empty = 0
    for done, r in enumerate(itertools.chain(here, pending), 1):
        results[r.index] = (r.records, r.geoms, r.collar)
        empty += r.empty
        if mask is not None:
            mask.write(r.mask, r.core)
        if progress is not None:
            progress(done, len(tasks))
    return results, empty


def _layer(value, crs, reader):
    """A GeoDataFrame (or path, read with ``reader``, a gis.clearance.layers reader)
    in ``crs``; None stays None."""
    if value is None:
        return None
    if not isinstance(value, gpd.GeoDataFrame):
        value = reader(value)
    if value.crs is None:
        raise MissingCRSError("layer has no CRS", hint="set its CRS (e.g. EPSG:4547) and run again")
    # the same authority code (the usual case) needs no comparison of the full
    # definitions (pyproj parses the image CRS's WKT for it: ~12 ms)
    if value.crs.srs.upper() == crs.to_string().upper():
        return value
    return value.to_crs(crs) if value.crs != crs else value


def read_zone(source) -> gpd.GeoDataFrame:
    """The area to examine (``--within``): red lines, read and validated as such
    (:func:`gis.clearance.layers.read_redlines`) when the layer has their id column;
    else any polygon layer as it is (town office boundaries, 镇办辖区, a district):
    its polygons, invalid ones repaired; features without area (lines, points,
    empty) are left out with a warning, and a layer of none is an error."""
    raw = read_raw(source)
    if guess_kind(raw) == "redlines":
        return read_redlines(raw, path=source)
    if not len(raw):
        raise EmptyLayerError("the area layer (--within) has no features", path=source,
                              hint="give the red lines or the polygons of the area to monitor")
    geoms = raw.geometry.values
    bad = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    if bad.any():
        log.warning("%s: %d invalid polygon(s) repaired (make_valid)", source, int(bad.sum()))
        geoms = geoms.copy()
        geoms[bad] = shapely.make_valid(geoms[bad])
    geoms = polygonal(geoms)
    keep = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms) & np.isin(shapely.get_type_id(geoms), POLYGONAL)
    if not keep.any():
        raise GeometryTypeError("the area layer (--within) holds no polygons", path=source,
                                hint="give polygons: red lines, town office boundaries (镇办辖区) or any "
                                     "area to monitor")
    if not keep.all():
        log.warning("%s: %d feature(s) without area (lines, points or empty) left out of the area examined",
                    source, int((~keep).sum()))
    return gpd.GeoDataFrame(raw.drop(columns=raw.geometry.name)[keep], geometry=geoms[keep], crs=raw.crs)


def _check_coverage(redlines, extent, path) -> None:
    """Red lines (or areas) the imagery does not reach are not examined: an error when
    none is reached (the wrong flight, or the wrong layer), else a warning naming them.
    "No changes" must never stand for "not looked at"."""
    geoms = redlines.geometry.values
    ids = redlines["project_id"].astype(str).to_numpy() if "project_id" in redlines else \
        redlines.index.astype(str).to_numpy()
    what = "red-line feature(s)" if "project_id" in redlines else "area feature(s) of --within"
    shapely.prepare(extent)
    outside = ~shapely.intersects(extent, geoms)
    partly = ~outside & ~shapely.covers(extent, geoms)

    def names(sel):
        chosen = list(dict.fromkeys(ids[sel]))
        return ", ".join(chosen[:10]) + (f" and {len(chosen) - 10} more" if len(chosen) > 10 else "")

    if outside.all():
        raise RasterAlignmentError(
            f"the {'red lines' if 'project_id' in redlines else 'areas (--within)'} lie outside the imagery: "
            f"none of {len(geoms)} feature(s) ({names(outside)}) "
            f"meets the ground both images cover {tuple(round(v) for v in extent.bounds)}",
            path=path, layer="redlines",
            hint="give the imagery flown over these projects, or the red lines of the area flown")
    if outside.any():
        log.warning("%s: %d %s outside the imagery were not examined: %s",
                    path or "red lines", int(outside.sum()), what, names(outside))
    if partly.any():
        log.warning("%s: %d %s only partly inside the imagery; the rest was not examined: %s",
                    path or "red lines", int(partly.sum()), what, names(partly))


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
