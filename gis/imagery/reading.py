"""Reading a window of an image pair on its grid: decoded, shrunk, masked.

:func:`read_window` reads both images (and DSMs) in one window of the after
image's grid, area-averaged by a factor (detection works at ~1 m, decoding at
full resolution), with a validity mask: ground outside either image, nodata,
and a black collar (:func:`black_collar`) are invalid. Files on the grid are
read directly, others through a :class:`~rasterio.vrt.WarpedVRT`; an internal
overview of the right size is used once it is known to hold pixel averages.

The open datasets stay open in each thread for the next window
(:func:`close_datasets` closes them). A failed read becomes a
:class:`~gis.errors.CorruptRasterError` naming the file and where in it
(:func:`decoding`). :func:`gdal_env` is the GDAL configuration windows are read
under.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from gis.errors import CorruptRasterError

if TYPE_CHECKING:  # the pair's types only annotate here: gis.imagery.pair imports this module
    from gis.imagery.pair import Grid, ImagePair

log = logging.getLogger(__name__)

__all__ = ["WindowData", "read_window", "close_datasets", "decoding", "black_collar", "gdal_env",
           "COLLAR_MIN_M2", "COLLAR_FRINGE_PX", "GDAL_CACHE_MB"]

#: GDAL's block cache (MB) while windows are read (see :func:`gdal_env`)
GDAL_CACHE_MB = 64


@dataclass
class WindowData:
    """Both images (and DSMs) in one window, on the grid, shrunk by the factor read at."""

    before: np.ndarray  # float32 (bands, h, w), 0-255 scale, RGB[N]
    after: np.ndarray
    valid: np.ndarray  # bool (h, w): data in both images
    transform: rasterio.Affine
    dsm_before: np.ndarray | None = None  # float32 (h, w), NaN where missing
    dsm_after: np.ndarray | None = None
    extra: dict = field(default_factory=dict)



def _where(window: Window | None, transform, crs) -> str:
    """Where a window lies: its pixels (columns, rows) and, with a transform, its map
    coordinates, so a damaged tile can be found in QGIS or with gdallocationinfo."""
    if window is None:
        return ""
    c0, r0 = int(window.col_off), int(window.row_off)
    c1, r1 = c0 + int(window.width) - 1, r0 + int(window.height) - 1
    text = f" in the block at columns {c0}-{c1}, rows {r0}-{r1}"
    if transform is not None:
        x0, y0, x1, y1 = rasterio.windows.bounds(window, transform)
        text += f" (x {x0:.1f} to {x1:.1f}, y {y0:.1f} to {y1:.1f}{f' in {crs}' if crs else ''})"
    return text


@contextlib.contextmanager
def decoding(path, window: Window | None = None, transform=None, crs=None):
    """Turn a failed read of ``path`` (a corrupt tile, a truncated file) into a
    :class:`~gis.errors.CorruptRasterError` naming the file and, given the window
    read (and its grid's transform), where in it."""
    try:
        yield
    except rasterio.errors.RasterioError as exc:
        cause = exc.__cause__ or exc.__context__  # GDAL's own words ("Read failed" says nothing)
        # The error crosses back from worker processes and Dask workers by pickle: GDAL's
        # own exception classes do not survive exception pickling with their chain (tblib,
        # which Dask installs, fails on their read-only ``args``), so their words go into
        # the message and the chain is cut here.
        exc.__cause__ = exc.__context__ = None
        raise CorruptRasterError(
            f"cannot decode the image data{_where(window, transform, crs)} ({cause or exc})", path=path,
            hint="the file is damaged there; copy or export it again (check it with "
                 "`gdalinfo -checksum FILE`)") from exc


def gdal_env():
    """The GDAL settings windows are read under. Every block is decoded once, so GDAL's
    block cache (5 % of RAM per process by default) would only grow each process's
    memory. Entered once around many windows (by detection, or for a worker's life):
    entering a rasterio.Env costs about as much as a small window's features, and
    rasterize/shapes enter one of their own when none is active."""
    if rasterio.env.hasenv() and rasterio.env.getenv().get("GDAL_CACHEMAX") == GDAL_CACHE_MB:
        return contextlib.nullcontext()
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)


def _on_grid(src, grid: Grid) -> bool:
    return src.crs == grid.crs and src.transform.almost_equals(grid.transform) and \
        (src.width, src.height) == (grid.width, grid.height)


def _shrink(data: np.ndarray, mask: np.ndarray, factor: int):
    """Area-average ``data`` (bands, h, w) by ``factor``; a pixel is valid only if all
    the pixels it averages are (``mask`` None: no validity mask is made)."""
    if factor == 1:
        return data.astype(np.float32), None if mask is None else mask > 0
    h, w = data.shape[1:]
    size = (-(-w // factor), -(-h // factor))
    out = np.empty((len(data), size[1], size[0]), np.float32)
    for i, b in enumerate(data):
        out[i] = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
    if mask is None:
        return out, None
    m = cv2.resize((mask > 0).astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA) == 255
    return out, m


#: open datasets kept per thread (rasterio datasets are not thread-safe); opening a
#: large tiled GeoTIFF reads its header and tile index, which cost as much as
#: decoding a third of a 512 px tile when it was paid again for every window
_OPEN = threading.local()
_MAX_OPEN = 8


def _dataset(path, grid: Grid, resampling, warp=None) -> dict:
    """The open dataset to read ``path`` on ``grid``: the file itself when it is on the
    grid, else a WarpedVRT onto it (its alpha band marks ground outside the source,
    even without a nodata value). Kept open for the next window; a rewritten file
    (new mtime or size) is opened again."""
    cache = getattr(_OPEN, "cache", None)
    if cache is None:
        cache = _OPEN.cache = OrderedDict()
        _OPEN.grid = None
    st = os.stat(path)
    # a Grid's hash or equality goes through its CRS's WKT (~50 us each): the key of
    # the grid last seen is kept (often the same object window after window)
    if _OPEN.grid is not grid:
        _OPEN.grid = grid
        _OPEN.grid_key = (grid.crs.to_wkt(), tuple(grid.transform), grid.width, grid.height)
    key = (str(path), st.st_mtime_ns, st.st_size, _OPEN.grid_key, resampling, warp)
    entry = cache.get(key)
    if entry is not None:
        cache.move_to_end(key)
        return entry
    src = rasterio.open(path)
    entry = {"src": src, "ds": src, "ovr": None, "warp": None}
    on_grid = _on_grid(src, grid)
    if warp is not None and on_grid:
        entry["warp"] = warp  # applied window by window, by whole pixels (see _window_shift)
    elif warp is not None or not on_grid:
        transform = grid.transform if warp is None else grid.transform @ warp
        entry["ds"] = WarpedVRT(src, crs=grid.crs, transform=transform, width=grid.width,
                                height=grid.height, resampling=resampling,
                                # an alpha band of its own is warped along and stays the mask
                                add_alpha=src.nodata is None and ColorInterp.alpha not in src.colorinterp)
        entry["ovr"] = False
    # no nodata, no mask band: asking GDAL for the mask would cost as much as the read
    entry["all_valid"] = all(MaskFlags.all_valid in f for f in entry["ds"].mask_flag_enums)
    # the file itself marks no ground as missing: a black collar would pass for imagery
    entry["bare"] = all(MaskFlags.all_valid in f for f in src.mask_flag_enums)
    if not entry["all_valid"]:
        entry["ovr"] = False  # a pixel is valid only if all it averages are: needs full resolution
    cache[key] = entry
    while len(cache) > _MAX_OPEN:
        _close(cache.popitem(last=False)[1])
    return entry


def _close(entry: dict) -> None:
    if entry["ds"] is not entry["src"]:
        entry["ds"].close()
    entry["src"].close()


def close_datasets() -> None:
    """Close the datasets this thread keeps open (see :func:`read_window`)."""
    cache = getattr(_OPEN, "cache", None)
    while cache:
        _close(cache.popitem(last=False)[1])


def _overview_fits(entry: dict, window: Window, bands, factor: int) -> bool:
    """Can this window be read, already shrunk, from an internal overview? Only an
    overview of exactly ``factor`` on a window on its pixel lattice qualifies."""
    if factor == 1 or entry["ovr"] is False:
        return False
    src = entry["src"]
    # an image of whole shrunk pixels only: else the overview's pixels are not exactly
    # ``factor`` wide and drift off the lattice towards the far edge
    if src.width % factor or src.height % factor or any(factor not in src.overviews(b) for b in bands):
        entry["ovr"] = False
        return False
    return all(int(v) == v and int(v) % factor == 0
               for v in (window.col_off, window.row_off, window.width, window.height))


def _window_shift(entry: dict, window: Window, factor: int) -> tuple[int, int]:
    """Whole pixels (columns, rows) to move ``window`` by in a file on the grid read
    through ``entry["warp"]``: the warp at the window's centre. Whole pixels, because
    a bilinear shift blurs the before image, whose texture then differs from what any
    model was trained on; the rest, under half a pixel, is harmless. A file with an
    internal overview of exactly ``factor`` (which :func:`_read` may use) moves by
    whole work pixels, so its windows stay on the overview's lattice (the rest, under
    half a work pixel, 0.5 m, is still harmless)."""
    steps = entry.setdefault("steps", {})
    step = steps.get(factor)
    if step is None:
        src = entry["src"]
        ovr = factor > 1 and entry["all_valid"] and not (src.width % factor or src.height % factor) and \
            all(factor in src.overviews(b) for b in src.indexes)
        step = steps[factor] = factor if ovr else 1
    cx, cy = window.col_off + window.width / 2, window.row_off + window.height / 2
    x, y = entry["warp"] @ (cx, cy)
    return step * round((x - cx) / step), step * round((y - cy) / step)


def _read(path, grid: Grid, window: Window, bands, resampling, factor: int = 1, warp=None):
    """Bands and validity mask of ``path`` in ``window`` of ``grid`` (warped if needed),
    shrunk by ``factor``.

    A file with an internal overview of exactly ``factor`` (a COG usually has them)
    is read from it: 4x fewer pixels to decode at factor 2. It is used only once the
    first window read both ways agrees (an overview built by averaging equals our
    area average to the grey level; a nearest or cubic one does not, and is ignored)."""
    entry = _dataset(path, grid, resampling, warp)
    src = entry["ds"]
    if entry["warp"] is not None:
        dc, dr = _window_shift(entry, window, factor)
        moved = Window(window.col_off + dc, window.row_off + dr, window.width, window.height)
        if moved.col_off < 0 or moved.row_off < 0 or moved.col_off + moved.width > src.width or \
                moved.row_off + moved.height > src.height:
            return _read_shifted(entry, window, bands, factor, (dc, dr))
        window = moved  # inside the file: read as any window (overviews included)
    if _overview_fits(entry, window, bands, factor):
        shape = (len(bands), window.height // factor, window.width // factor)
        if entry["ovr"]:
            data = src.read(list(bands), window=window, out_shape=shape)
            return data.astype(np.float32), np.ones(shape[1:], bool)
        full = src.read(list(bands), window=window)
        out = _shrink(full, np.full(full.shape[1:], 255, np.uint8), factor)
        ovr = src.read(list(bands), window=window, out_shape=shape).astype(np.float32)
        nearest = full[:, ::factor, ::factor].astype(np.float32)
        if np.abs(ovr - out[0]).max() > 1:
            entry["ovr"] = False
            log.info("%s: its overviews are not pixel averages; reading full resolution", path)
        elif (np.abs(nearest - out[0]) > 1).mean() > 0.05:  # a window with texture: conclusive
            entry["ovr"] = True
            log.info("%s: reading its %dx overview (pixel averages)", path, factor)
        return out
    data = src.read(list(bands), window=window)
    if entry["all_valid"]:  # every pixel valid: no mask to read, shrink or compare
        h, w = data.shape[1:]
        return _shrink(data, None, factor)[0], np.ones((-(-h // factor), -(-w // factor)), bool)
    return _shrink(data, src.dataset_mask(window=window), factor)


#: a black collar's area below which it is taken for clipped shadow, not a collar (m²)
COLLAR_MIN_M2 = 200.0
#: ground next to a collar that is lost with it: the dark fringe that JPEG blocks
#: (8 px) and resampling leave along its edge, in source pixels
COLLAR_FRINGE_PX = 8


def black_collar(data: np.ndarray, factor: int, res: float, valid: np.ndarray | None = None) -> np.ndarray | None:
    """The black collar of a file that declares no nodata, as ``nearblack`` would mark
    it, with a fringe: None when there is none. ``data``: (bands, h, w), already
    shrunk by ``factor`` (an averaged pixel is 0 only if all it covers are);
    ``res``: its pixel size (m); ``valid``: where the file has data at all (ground
    beyond it, read as 0, is missing already and no collar).

    Mosaicking software fills ground outside the flight with pure black (0 in every
    band) and does not always say so; read as imagery, that collar changes to ground
    in the other date and was reported as hectares of new structures. Pure black
    areas of at least :data:`COLLAR_MIN_M2` are collar, and so is the dark
    :data:`COLLAR_FRINGE_PX` fringe around them (and areas reaching the window's edge,
    which may be a collar's tip). Smaller ones are clipped shadows: imagery, and
    evidence (a new house casts one)."""
    if data.min() > 0:  # the common case, at one pass
        return None
    black = ~data.any(axis=0)
    if valid is not None:
        black &= valid
    if not black.any():
        return None
    n, labels, st, _ = cv2.connectedComponentsWithStats(black.view(np.uint8), connectivity=8)
    h, w = black.shape
    x0, y0 = st[:, cv2.CC_STAT_LEFT], st[:, cv2.CC_STAT_TOP]
    # one reaching the window's edge may be the tip of a collar the next window holds
    edge = (x0 == 0) | (y0 == 0) | (x0 + st[:, cv2.CC_STAT_WIDTH] == w) | (y0 + st[:, cv2.CC_STAT_HEIGHT] == h)
    big = (st[:, cv2.CC_STAT_AREA] * res * res >= COLLAR_MIN_M2) | edge
    big[0] = False
    if not big.any():
        return None
    r = -(-COLLAR_FRINGE_PX // factor)
    return cv2.dilate(big[labels].view(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)).view(bool)


def _read_shifted(entry: dict, window: Window, bands, factor: int, shift: tuple[int, int]):
    """:func:`_read` of a file on the grid whose content sits ``shift`` whole pixels
    (columns, rows) off, for a window that shift takes past the file's edge: the
    window that far on, ground beyond the file invalid."""
    src = entry["ds"]
    dc, dr = shift
    w, h = int(window.width), int(window.height)
    c0, r0 = int(window.col_off) + dc, int(window.row_off) + dr
    cc0, rr0 = max(c0, 0), max(r0, 0)
    cc1, rr1 = min(c0 + w, src.width), min(r0 + h, src.height)
    data = np.zeros((len(bands), h, w), src.dtypes[0])
    mask = np.zeros((h, w), np.uint8)
    if cc1 > cc0 and rr1 > rr0:
        inner = Window(cc0, rr0, cc1 - cc0, rr1 - rr0)
        rows, cols = slice(rr0 - r0, rr1 - r0), slice(cc0 - c0, cc1 - c0)
        data[:, rows, cols] = src.read(list(bands), window=inner)
        mask[rows, cols] = 255 if entry["all_valid"] else src.dataset_mask(window=inner)
    return _shrink(data, mask, factor)


def read_window(pair: ImagePair, window: Window, factor: int = 1) -> WindowData:
    """Read both images (and DSMs) in one window of the after grid, shrunk by ``factor``
    (pixel area averaging: detection works at ~1 m, decoding at full resolution).

    The files stay open in this thread for the next window (a task per window
    would otherwise reopen them every time); :func:`close_datasets` closes them."""
    g = pair.grid
    with decoding(pair.after, window, g.transform, g.crs):
        after, ma = _read(pair.after, g, window, pair.bands_after, Resampling.nearest, factor)
    with decoding(pair.before, window, g.transform, g.crs):
        before, mb = _read(pair.before, g, window, pair.bands_before, Resampling.bilinear, factor,
                           pair.before_warp)
    valid = ma & mb
    collar = {}
    for name, path, data, own, resampling, warp in (
            ("after", pair.after, after, ma, Resampling.nearest, None),
            ("before", pair.before, before, mb, Resampling.bilinear, pair.before_warp)):
        if _dataset(path, g, resampling, warp)["bare"]:
            black = black_collar(data, factor, g.res * factor, own)
            if black is not None:
                collar[name] = black
                valid &= ~black
    if pair.scale_before != 1.0:
        before *= pair.scale_before
    if pair.scale_after != 1.0:
        after *= pair.scale_after
    tf = rasterio.windows.transform(window, g.transform) @ rasterio.Affine.scale(factor)
    out = WindowData(before, after, valid, tf)
    if collar:
        out.extra["collar"] = collar
    for name in ("dsm_before", "dsm_after"):
        path = getattr(pair, name)
        if path:
            # the before DSM comes from the before flight: it moves with its image
            with decoding(path, window, g.transform, g.crs):
                z, m = _read(path, g, window, (1,), Resampling.bilinear, factor,
                             pair.before_warp if name == "dsm_before" else None)
            z = z[0]
            z[~m] = np.nan
            setattr(out, name, z)
    return out
