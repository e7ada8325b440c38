"""The scene as detection sees it: work resolution, sampled blocks, co-registration.

Scene statistics (radiometric matching, thresholds: :mod:`gis.detect.scene`)
come from a sample of up to :data:`SAMPLE_WINDOWS` blocks spread over the
windows to process, of which only the first tile is read
(:func:`sample_windows`). The same blocks tell how far the before image's
content sits from the after image's (:mod:`gis.detect.register`):
:func:`sample_scene` returns the pair read shifted to match, and the blocks
read again that way. Detection and training both start here, so a model sees
the features the detector will show it.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import rasterio
from rasterio.windows import Window

from gis.detect.register import MAX_SHIFT_PX, estimate_offset
from gis.imagery.pair import ImagePair
from gis.imagery.reading import gdal_env, read_window

log = logging.getLogger(__name__)

__all__ = ["sample_scene", "sample_windows", "work_factor", "WORK_RES", "SAMPLE_WINDOWS", "SAMPLE_PX"]

#: blocks sampled for the scene statistics and the co-registration
SAMPLE_WINDOWS = 24
#: a sampled window is read up to this size (px): one tile of a tiled file
SAMPLE_PX = 512
#: detection works at about this pixel size (m): a 20 m2 house is still 20 pixels,
#: and there are 4x fewer pixels to process than at 0.5 m
WORK_RES = 1.0


def work_factor(res: float, work_res: float = WORK_RES) -> int:
    """Whole image pixels (of size ``res``) per work pixel: imagery finer than
    ``work_res`` is area-averaged by this factor."""
    return max(1, int(work_res / res + 1e-6))


def sample_windows(pair: ImagePair, windows: list, n: int, factor: int, keep: dict | None = None,
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
        with gdal_env():
            wd = read_window(pair, w, factor)
        if keep is not None and w == windows[i][0]:
            keep[i] = wd
        yield wd.before, wd.after, wd.valid, wd.dsm_before, wd.dsm_after


def sample_scene(pair: ImagePair, windows: list, factor: int, *, register: bool = True,
                 keep: dict | None = None, order: list | None = None) -> tuple[ImagePair, list]:
    """The pair (co-registered when ``register``) and its scene sample blocks, as
    :func:`sample_windows` reads them. When the before image is found offset, the blocks are
    read again, shifted (``keep`` and ``order`` then describe the second reading)."""
    order = [] if order is None else order
    samples = list(sample_windows(pair, windows, SAMPLE_WINDOWS, factor, keep, order))
    shifted = _registered(pair, samples, [windows[i][1] for i in order], windows, factor) \
        if register and samples else None
    if shifted is None:
        return pair, samples
    for seen in (keep, order):
        if seen is not None:
            seen.clear()
    return shifted, list(sample_windows(shifted, windows, SAMPLE_WINDOWS, factor, keep, order))


def _centre(w: Window, factor: int) -> tuple[float, float]:
    """Centre (col, row) of the part of window ``w`` :func:`sample_windows` reads, in work pixels."""
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
