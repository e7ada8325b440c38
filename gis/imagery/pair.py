"""Open, validate and align the imagery of two survey dates.

Everything is put on one grid, the later ("after") image's: the earlier image
and both DSMs are read through a :class:`rasterio.vrt.WarpedVRT` onto it, so a
different CRS, resolution or extent costs nothing up front and only the
windows that are read get warped.

Validation happens here, before any work, and raises named errors (exit code
2 in the CLI): :class:`~gis.errors.CorruptRasterError` (not a raster,
truncated), :class:`~gis.errors.MissingCRSError`,
:class:`~gis.errors.RasterAlignmentError` (no overlap),
:class:`~gis.errors.BandMismatchError` (band counts differ and no band map),
:class:`~gis.errors.DSMDateError` (a DSM of another date than its image).

Survey dates: a raster's date is its ``ACQUISITION_DATE`` tag, else its TIFF
``TIFFTAG_DATETIME``, else the first date in its file name (``2026-11-21``,
``2026_11_21`` or ``20261121``). A DSM whose date and its image's date are both
known and differ is refused; an unknown date is accepted.

Windows: only blocks of the after grid that intersect the red lines plus a
buffer are processed (:func:`windows_within`), so cost grows with project
area, not with image size.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import rasterio
import shapely
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform, transform_bounds
from rasterio.windows import Window

from gis.errors import (
    BandIndexError,
    BandMismatchError,
    CorruptRasterError,
    DSMDateError,
    MissingCRSError,
    RasterAlignmentError,
)

log = logging.getLogger(__name__)

__all__ = [
    "Grid", "ImagePair", "WindowData", "open_pair", "read_window", "windows_within",
    "raster_date", "check_raster", "close_datasets", "common_extent", "decoding",
]

_DATE_RE = re.compile(r"(?<!\d)(19|20)(\d{2})[-_]?(0[1-9]|1[0-2])[-_]?(0[1-9]|[12]\d|3[01])(?!\d)")


@dataclass(frozen=True)
class Grid:
    """The processing grid: the after image's CRS, transform and size."""

    crs: rasterio.crs.CRS
    transform: rasterio.Affine
    width: int
    height: int

    @property
    def res(self) -> float:
        return abs(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return rasterio.transform.array_bounds(self.height, self.width, self.transform)


@dataclass(frozen=True)
class ImagePair:
    """Validated paths plus the grid and band mapping. Plain data: picklable, so
    each window can run as an independent task in another process (or on Dask)."""

    before: str
    after: str
    grid: Grid
    bands_before: tuple[int, ...]
    bands_after: tuple[int, ...]
    has_nir: bool
    dsm_before: str | None = None
    dsm_after: str | None = None
    scale_before: float = 1.0  # to 0-255 (uint16 imagery is scaled down)
    scale_after: float = 1.0
    #: the ground both images cover (xmin, ymin, xmax, ymax), in the grid's CRS
    extent: tuple[float, float, float, float] | None = None
    #: co-registration: the grid pixel (col, row) -> where the ground the after image
    #: shows there sits in the before image read on the grid. The before image (and
    #: its DSM) is read through it; None: where its georeference puts it
    before_warp: rasterio.Affine | None = None


@dataclass
class WindowData:
    before: np.ndarray  # float32 (bands, h, w), 0-255 scale, RGB[N]
    after: np.ndarray
    valid: np.ndarray  # bool (h, w): data in both images
    transform: rasterio.Affine
    dsm_before: np.ndarray | None = None  # float32 (h, w), NaN where missing
    dsm_after: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def check_raster(path) -> None:
    """Open ``path`` and decode its last block, so truncated files fail here, named."""
    path = Path(path)
    if not path.exists():
        raise CorruptRasterError("raster file does not exist", path=path,
                                 hint="check the path")
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise MissingCRSError(
                    "raster has no CRS", path=path,
                    hint="assign one, e.g. `gdal_edit.py -a_srs EPSG:4547 FILE`, then run again")
            # the last block is what a truncated download loses first
            h, w = src.block_shapes[0]
            c0, r0 = (src.width - 1) // w * w, (src.height - 1) // h * h
            win = Window(c0, r0, src.width - c0, src.height - r0)
            with decoding(path, win, src.transform, src.crs):
                src.read(1, window=win)
    except (MissingCRSError, CorruptRasterError):
        raise
    except (rasterio.errors.RasterioIOError, rasterio.errors.RasterioError) as exc:
        raise CorruptRasterError(
            f"cannot read raster ({exc})", path=path,
            hint="the file is damaged or not a GeoTIFF; copy or export it again") from exc


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
        raise CorruptRasterError(
            f"cannot decode the image data{_where(window, transform, crs)} ({cause or exc})", path=path,
            hint="the file is damaged there; copy or export it again (check it with "
                 "`gdalinfo -checksum FILE`)") from exc


def raster_date(path) -> dt.date | None:
    """Survey date of a raster (tag, TIFF datetime, or file name); None if unknown."""
    with rasterio.open(path) as src:
        tags = src.tags()
    for key in ("ACQUISITION_DATE", "TIFFTAG_DATETIME", "DATE"):
        if key in tags:
            m = _DATE_RE.search(tags[key].replace(":", "-"))
            if m:
                return dt.date(int(m[1] + m[2]), int(m[3]), int(m[4]))
    m = _DATE_RE.search(Path(path).name)
    if m:
        return dt.date(int(m[1] + m[2]), int(m[3]), int(m[4]))
    return None


def _check_dsm(image: Path, dsm: Path) -> None:
    di, dd = raster_date(image), raster_date(dsm)
    if di is not None and dd is not None and di != dd:
        raise DSMDateError(
            f"DSM is dated {dd.isoformat()} but its orthophoto {image.name} is dated {di.isoformat()}",
            path=dsm, hint="give the DSM surveyed together with that orthophoto")


def _check_order(before: Path, after: Path) -> None:
    """Warn when the before image is the later survey: swapped, every new house would be
    a demolition and every demolished one a new house. A warning, not an error: a
    TIFF's datetime can be the day it was exported rather than flown."""
    db, da = raster_date(before), raster_date(after)
    if db is not None and da is not None and db > da:
        log.warning("the before image %s is dated %s, after the after image %s (%s; dates from their tags or "
                    "file names): if they are swapped, new structures show as demolitions and the reverse. "
                    "Give the earlier survey as --before", before.name, db.isoformat(), after.name, da.isoformat())


def _scale(src) -> float:
    """Factor that brings the image to a 0-255 scale (uint16: from its data range)."""
    if src.dtypes[0] == "uint8":
        return 1.0
    ov = _sample(src, 1)
    hi = float(np.percentile(ov.compressed(), 99.5)) if ov.count() else 255.0
    return 255.0 / hi * 0.9 if hi > 0 else 1.0


def _check_bands(src, path: Path, bands: tuple[int, ...], which: str) -> None:
    """Every band of a band map must exist in its image (1-based); ``which``: before|after."""
    bad = [i for i in bands if not 1 <= int(i) <= src.count]
    if bad:
        n = src.count
        raise BandIndexError(
            f"the {which} image's band map (--bands-{which}) names band {', '.join(map(str, bad))}, "
            f"but {path.name} has {n} band{'s' * (n != 1)} (1-{n})", path=path,
            hint=f"give band numbers from 1 to {n}, e.g. --bands-{which} {','.join(map(str, range(1, min(n, 3) + 1)))}")


def _describe(src, bands: tuple[int, ...]) -> str:
    alpha = sum(c == ColorInterp.alpha and i not in bands for i, c in enumerate(src.colorinterp, 1))
    return f"{len(bands)} band{'s' * (len(bands) != 1)}" + (" and an alpha mask" if alpha else "")


def _alpha_is_mask(src, band: int) -> bool:
    """Does a band labelled alpha hold a mask (only 0 and full opacity)? GDAL labels
    the fourth band of any 4-band byte GeoTIFF written with default options alpha,
    so an RGB+NIR image often carries a NIR band labelled alpha: its values are
    continuous. Decided on a sample of the band (:func:`_sample`)."""
    dtype = np.dtype(src.dtypes[band - 1])
    full = np.iinfo(dtype).max if dtype.kind in "ui" else 1.0
    return bool(np.isin(_sample(src, band).data, (0, full)).all())


def _sample(src, band: int, size: int = 256) -> np.ma.MaskedArray:
    """Pixels of ``band`` for a statistic: the smallest overview of about ``size`` px,
    else 3 x 3 windows of ``size`` px spread over the image (a decimated read of a file
    without overviews would decode every tile of it: ~20 s for 40,000² px)."""
    if src.overviews(band) or max(src.width, src.height) <= 3 * size:
        return src.read(band, out_shape=(min(size, src.height), min(size, src.width)), masked=True)
    parts = []
    for fy in (0.2, 0.5, 0.8):
        for fx in (0.2, 0.5, 0.8):
            w = Window(int(fx * src.width) - size // 2, int(fy * src.height) - size // 2, size, size)
            parts.append(src.read(band, window=w.intersection(Window(0, 0, src.width, src.height)),
                                  masked=True).ravel())
    return np.ma.concatenate(parts)


def _colour_bands(src, path: Path) -> tuple[int, ...]:
    """1-based indexes of red, green, blue (and NIR when the image has a fourth data
    band). An alpha band, as drone mapping software writes into RGBA orthophotos, is
    the image's validity mask (GDAL reads it as the dataset mask), never NIR. Bands
    labelled red/green/blue are taken where they sit, else bands 1-3 are R, G, B."""
    ci = list(src.colorinterp)
    alpha = {i + 1 for i, c in enumerate(ci) if c == ColorInterp.alpha and _alpha_is_mask(src, i + 1)}
    data = [i for i in range(1, src.count + 1) if i not in alpha]
    named = [ci.index(c) + 1 for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue) if c in ci]
    rgb = named if len(named) == 3 and not alpha & set(named) else data[:3]
    rest = [i for i in data if i not in rgb]
    if alpha:
        log.info("%s: band %s is an alpha mask, read as the image's valid area", path,
                 ", ".join(map(str, sorted(alpha))))
    return tuple(rgb) + tuple(rest[:1]) if len(rgb) == 3 else tuple(rgb)  # too few: the caller says so


def _projected_grid(src) -> Grid:
    """The grid for an image in degrees (CGCS2000 or WGS 84 geographic deliveries are
    common): the CGCS2000 3-degree Gauss-Kruger zone of its centre (UTM outside
    China), at about the same ground resolution. Areas in m², kernels and windows in
    metres all need a projected grid; on degrees every object would be sub-pixel."""
    from gis.crs import centre_lonlat, gk3_zone_crs
    from gis.errors import CRSError

    lon, lat = centre_lonlat(tuple(src.bounds), src.crs)
    try:
        epsg = gk3_zone_crs(lon).to_epsg()
    except CRSError:
        epsg = (32600 if lat >= 0 else 32700) + min(60, int((lon + 180) // 6) + 1)
    crs = rasterio.crs.CRS.from_epsg(epsg)
    transform, width, height = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds)
    log.warning("%s is in degrees (%s): processing it on EPSG:%d at %.2f m pixels; the output is in "
                "EPSG:%d", src.name, src.crs.to_string(), epsg, abs(transform.a), epsg)
    return Grid(crs, transform, width, height)


def open_pair(before, after, dsm_before=None, dsm_after=None, band_map=None) -> ImagePair:
    """Validate two orthophotos (and DSMs) and return the pair on the after grid.

    ``band_map``: optional dict ``{"before": (r, g, b[, nir]), "after": (...)}`` of
    1-based band indexes, needed when the images have different band counts.
    """
    paths = [Path(p) for p in (before, after)]
    for p in paths:
        check_raster(p)
    with rasterio.open(paths[0]) as b, rasterio.open(paths[1]) as a:
        grid = Grid(a.crs, a.transform, a.width, a.height) if not a.crs.is_geographic else _projected_grid(a)
        bb = transform_bounds(b.crs, grid.crs, *b.bounds, densify_pts=21)
        ab = grid.bounds
        if bb[0] >= ab[2] or bb[2] <= ab[0] or bb[1] >= ab[3] or bb[3] <= ab[1]:
            raise RasterAlignmentError(
                f"the images do not overlap: {paths[0].name} covers {tuple(round(v) for v in bb)}, "
                f"{paths[1].name} covers {tuple(round(v) for v in ab)} (in {grid.crs})",
                path=paths[0], hint="give two images of the same area")
        extent = (max(bb[0], ab[0]), max(bb[1], ab[1]), min(bb[2], ab[2]), min(bb[3], ab[3]))
        if band_map:
            bands_b, bands_a = tuple(band_map["before"]), tuple(band_map["after"])
            if len(bands_b) != len(bands_a) or len(bands_a) < 3:
                raise BandMismatchError("band map must name the same 3 or 4 bands in both images",
                                        path=paths[0], hint="e.g. before=1,2,3 after=1,2,3")
            _check_bands(b, paths[0], bands_b, "before")
            _check_bands(a, paths[1], bands_a, "after")
        else:
            bands_b, bands_a = _colour_bands(b, paths[0]), _colour_bands(a, paths[1])
            if len(bands_b) != len(bands_a):
                raise BandMismatchError(
                    f"{paths[0].name} has {_describe(b, bands_b)} and {paths[1].name} has {_describe(a, bands_a)}",
                    path=paths[0], hint="give a band map (--bands-before 1,2,3 --bands-after 1,2,3)")
            if len(bands_a) < 3:
                raise BandMismatchError(f"need RGB imagery, {paths[1].name} has {_describe(a, bands_a)}",
                                        path=paths[1], hint="give a 3-band (RGB) or 4-band (RGB+NIR) orthophoto")
        with decoding(paths[0]):
            sb = _scale(b)
        with decoding(paths[1]):
            sa = _scale(a)
    _check_order(*paths)
    dsms = []
    for img, dsm in ((paths[0], dsm_before), (paths[1], dsm_after)):
        if dsm is None:
            dsms.append(None)
            continue
        check_raster(dsm)
        _check_dsm(img, Path(dsm))
        dsms.append(str(dsm))
    return ImagePair(str(paths[0]), str(paths[1]), grid, bands_b, bands_a, len(bands_a) == 4,
                     dsms[0], dsms[1], sb, sa, extent)


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


def common_extent(pair: ImagePair):
    """The ground both images cover (their extents, in the grid's CRS), a shapely
    polygon: red lines outside it cannot be examined."""
    return shapely.box(*(pair.extent or pair.grid.bounds))


def windows_within(grid: Grid, geoms=None, *, buffer: float = 20.0, block: int = 1024,
                   overlap: int = 0) -> list[tuple[Window, Window]]:
    """(read window, core window) pairs of blocks that intersect ``geoms`` + ``buffer``.

    Blocks are aligned on the grid (``block`` a multiple of the files' 512 px tiles),
    so each tile is decoded once. With ``overlap`` > 0 the read window extends past
    the core; by default it does not and objects cut by block edges are merged
    afterwards (see gis.detect.run). With ``geoms`` None, every block of the grid.
    """
    cols = np.arange(0, grid.width, block)
    rows = np.arange(0, grid.height, block)
    cc, rr = np.meshgrid(cols, rows)
    cc, rr = cc.ravel(), rr.ravel()
    if geoms is not None:
        t = grid.transform
        x0, y0 = t.c + cc * t.a, t.f + rr * t.e
        x1, y1 = x0 + block * t.a, y0 + block * t.e
        boxes = shapely.box(np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1))
        area = shapely.buffer(shapely.union_all(np.asarray(geoms)), buffer)
        shapely.prepare(area)
        keep = shapely.intersects(area, boxes)
        cc, rr = cc[keep], rr[keep]
    out = []
    for c, r in zip(cc.tolist(), rr.tolist()):
        core = Window(c, r, min(block, grid.width - c), min(block, grid.height - r))
        c0, r0 = max(0, c - overlap), max(0, r - overlap)
        c1, r1 = min(grid.width, c + block + overlap), min(grid.height, r + block + overlap)
        out.append((Window(c0, r0, c1 - c0, r1 - r0), core))
    return out
