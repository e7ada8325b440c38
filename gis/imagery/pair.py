"""Open, validate and align the imagery of two survey dates.

Everything is put on one grid, the later ("after") image's: the earlier image
and both DSMs are read through a :class:`rasterio.vrt.WarpedVRT` onto it (see
:mod:`gis.imagery.reading`), so a different CRS, resolution or extent costs
nothing up front and only the windows that are read get warped.

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
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.enums import ColorInterp
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
from gis.imagery.reading import decoding

log = logging.getLogger(__name__)

__all__ = ["Grid", "ImagePair", "open_pair", "raster_date", "raster_source", "check_raster", "common_extent"]

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



def raster_source(path) -> str:
    """What a task reads: a local path made absolute (a worker process, or a machine
    of a Dask cluster on a shared folder, need not share this one's working folder),
    or a GDAL virtual path or URL (/vsis3/..., /vsicurl/https://..., s3://...) as given."""
    text = str(path)
    if text.startswith("/vsi") or "://" in text:
        return text
    return str(Path(text).absolute())


def check_raster(path) -> None:
    """Open ``path`` and decode its last block, so truncated files fail here, named."""
    source = raster_source(path)
    path = Path(path)
    if source == str(path.absolute()) and not path.exists():
        raise CorruptRasterError("raster file does not exist", path=path,
                                 hint="check the path")
    try:
        with rasterio.open(source) as src:
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


def _check_dsm(image: str, dsm: str) -> None:
    di, dd = raster_date(image), raster_date(dsm)
    if di is not None and dd is not None and di != dd:
        raise DSMDateError(
            f"DSM is dated {dd.isoformat()} but its orthophoto {Path(image).name} is dated {di.isoformat()}",
            path=dsm, hint="give the DSM surveyed together with that orthophoto")


def _check_order(before: str, after: str) -> None:
    """Warn when the before image is the later survey: swapped, every new house would be
    a demolition and every demolished one a new house. A warning, not an error: a
    TIFF's datetime can be the day it was exported rather than flown."""
    db, da = raster_date(before), raster_date(after)
    if db is not None and da is not None and db > da:
        log.warning("the before image %s is dated %s, after the after image %s (%s; dates from their tags or "
                    "file names): if they are swapped, new structures show as demolitions and the reverse. "
                    "Give the earlier survey as --before", Path(before).name, db.isoformat(), Path(after).name,
                    da.isoformat())


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
    # imported here: gis.crs brings pyproj (~75 ms), and worker processes import this
    # module (to unpickle an ImagePair) but never open a pair
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
    paths = [Path(p) for p in (before, after)]  # for messages
    sources = [raster_source(p) for p in (before, after)]
    for p in paths:
        check_raster(p)
    with rasterio.open(sources[0]) as b, rasterio.open(sources[1]) as a:
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
    _check_order(*sources)
    dsms = []
    for img, dsm in ((sources[0], dsm_before), (sources[1], dsm_after)):
        if dsm is None:
            dsms.append(None)
            continue
        check_raster(dsm)
        _check_dsm(img, raster_source(dsm))
        dsms.append(raster_source(dsm))
    return ImagePair(sources[0], sources[1], grid, bands_b, bands_a, len(bands_a) == 4,
                     dsms[0], dsms[1], sb, sa, extent)



def common_extent(pair: ImagePair):
    """The ground both images cover (their extents, in the grid's CRS), a shapely
    polygon: red lines outside it cannot be examined."""
    return shapely.box(*(pair.extent or pair.grid.bounds))

