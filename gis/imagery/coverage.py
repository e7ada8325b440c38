"""How much of the red lines an orthophoto really shows.

Change detection reports nothing where an image has no data, and an
orthophoto that is all nodata (a failed mosaic, a wrong nodata value) or that
covers a corner of the county would read as a quiet week. The weekly run
measures, before any work, the share of the red lines' area where each image
has data (:func:`valid_share`) and refuses an epoch below a minimum
(``thresholds.min_coverage`` in gis.toml).

Cheap by construction: the red lines are sampled by a lattice of points, and
only the tiles holding a sample are decoded, at most :data:`MAX_TILES` of them
per image, spread evenly. (A decimated read of the mask would decode every
tile of a file without overviews, which most deliveries are.) A point has data
where the file's mask (nodata, alpha band, internal mask) says so; in a file
that declares none, where it is not pure black (0 in every band), as the
black-collar rule of :mod:`gis.imagery.reading` reads it.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import rasterio
import shapely
from pyproj import CRS, Transformer
from rasterio.enums import MaskFlags
from rasterio.features import rasterize
from rasterio.transform import from_origin
from rasterio.windows import Window

from gis.imagery.reading import decoding

log = logging.getLogger(__name__)

__all__ = ["valid_share", "MAX_TILES"]

#: samples of the red lines (lattice points) per image
SAMPLES = 2048
#: tiles decoded at most per image (a 512 px deflate tile: a few ms)
MAX_TILES = 64
#: cells of the lattice the red lines are rasterized on, at most (bytes of memory)
MAX_CELLS = 20_000_000


def valid_share(path: str | os.PathLike, geoms, crs) -> float:
    """Share (0-1) of the area of ``geoms`` (in ``crs``) where the raster at ``path``
    has image data; 1.0 when the geometries have no area."""
    xy, weight = _lattice(geoms)
    if not len(xy):
        return 1.0
    with rasterio.open(path) as src:
        xs, ys = xy[:, 0], xy[:, 1]
        if crs is not None and src.crs is not None and CRS.from_user_input(crs) != CRS.from_user_input(src.crs):
            xs, ys = Transformer.from_crs(crs, src.crs, always_xy=True).transform(xs, ys)
        with np.errstate(invalid="ignore"):  # points the transformation cannot place: outside
            cols, rows = ~src.transform @ (np.asarray(xs, float), np.asarray(ys, float))
        cols, rows = (np.floor(np.clip(np.nan_to_num(v, nan=-1.0), -1, 2**31)).astype(np.int64)
                      for v in (cols, rows))
        inside = (cols >= 0) & (rows >= 0) & (cols < src.width) & (rows < src.height)
        share_inside = weight[inside].sum() / weight.sum()
        if not inside.any():
            return 0.0
        valid = _valid_at(src, path, rows[inside], cols[inside], weight[inside])
    return float(share_inside * valid)


def _lattice(geoms, n: int = SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """Points spread over ``geoms`` (about ``n`` of them: the centres of a lattice's
    cells inside them, found by rasterizing) and the area each stands for. A part too
    small or thin for the lattice gets one point (its representative point) weighted by
    its own area, so no red line goes unsampled."""
    parts = shapely.get_parts(np.asarray(geoms, dtype=object))
    parts = parts[~shapely.is_empty(parts) & (shapely.area(parts) > 0)]
    if not len(parts):
        return np.empty((0, 2)), np.empty(0)
    x0, y0, x1, y1 = shapely.total_bounds(parts)
    # red lines scattered over a county: a coarser lattice rather than a huge one
    step = max(float(np.sqrt(shapely.area(shapely.union_all(parts)) / n)),
               float(np.sqrt((x1 - x0) * (y1 - y0) / MAX_CELLS)))
    shape = (max(1, int(np.ceil((y1 - y0) / step))), max(1, int(np.ceil((x1 - x0) / step))))
    inside = rasterize(parts, out_shape=shape, transform=from_origin(x0, y1, step, step), dtype="uint8")
    rows, cols = np.nonzero(inside)
    xy = np.column_stack([x0 + (cols + 0.5) * step, y1 - (rows + 0.5) * step])
    weight = np.full(len(xy), step * step)
    # parts no lattice point fell in: one point each, standing for the part's area
    hit = shapely.STRtree(parts).query(shapely.points(xy), predicate="intersects")[1] if len(xy) else []
    missed = np.setdiff1d(np.arange(len(parts)), hit)
    if len(missed):
        reps = shapely.get_coordinates(shapely.point_on_surface(parts[missed]))
        xy = np.vstack([xy, reps])
        weight = np.concatenate([weight, shapely.area(parts[missed])])
    return xy, weight


def _valid_at(src, path, rows: np.ndarray, cols: np.ndarray, weight: np.ndarray) -> float:
    """Weighted share of the pixels (rows, cols) that hold data, decoding at most
    :data:`MAX_TILES` tiles (evenly chosen among those the pixels fall in)."""
    masked = not all(MaskFlags.all_valid in f for f in src.mask_flag_enums)
    bh, bw = src.block_shapes[0]
    tile = (rows // bh) * (-(-src.width // bw)) + cols // bw
    tiles = np.unique(tile)
    if len(tiles) > MAX_TILES:
        tiles = tiles[np.unique(np.linspace(0, len(tiles) - 1, MAX_TILES).round().astype(int))]
    order = np.argsort(tile, kind="stable")
    starts = np.searchsorted(tile[order], tiles)
    ends = np.searchsorted(tile[order], tiles, side="right")
    good = total = 0.0
    for a, b in zip(starts.tolist(), ends.tolist()):
        sel = order[a:b]
        r, c = rows[sel], cols[sel]
        window = Window(int(c.min()), int(r.min()), int(c.max() - c.min()) + 1, int(r.max() - r.min()) + 1)
        with decoding(path, window, src.transform, src.crs):
            if masked:
                ok = src.dataset_mask(window=window)[r - window.row_off, c - window.col_off] > 0
            else:  # no mask declared: pure black is a collar, not ground
                data = src.read(window=window)
                ok = data[:, r - window.row_off, c - window.col_off].any(axis=0)
        good += float(weight[sel][ok].sum())
        total += float(weight[sel].sum())
    return good / total if total else 1.0
