"""The windows of a grid that are worth reading, and the zone inside each.

Only blocks of the after grid that intersect the red lines plus a buffer are
processed (:func:`windows_within`), so cost grows with project area, not with
image size. Each block is then cropped to the part the zone covers
(:func:`zone_windows`, :func:`crop`), and within a window only the pixels
inside the zone count (:func:`area_mask`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.windows import Window

if TYPE_CHECKING:  # annotations only: worker processes import this module, not the pair's
    from gis.imagery.pair import Grid

__all__ = ["windows_within", "zone_windows", "crop", "area_mask"]


def windows_within(grid: Grid, geoms=None, *, buffer: float = 20.0,
                   block: int = 1024) -> list[tuple[Window, Window]]:
    """(read window, core window) pairs of blocks that intersect ``geoms`` + ``buffer``.

    Blocks are aligned on the grid (``block`` a multiple of the files' 512 px tiles),
    so each tile is decoded once. The read window is the core itself: objects cut by
    block edges are merged afterwards (:func:`gis.detect.output.merge_edges`); a
    task keeps both, as its core decides which objects it reports. With ``geoms``
    None, every block of the grid.
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
        w = Window(c, r, min(block, grid.width - c), min(block, grid.height - r))
        out.append((w, w))
    return out


def zone_windows(grid: Grid, geoms=None, *, buffer: float = 20.0, block: int = 1024,
                 factor: int = 1) -> tuple[list[tuple[Window, Window]], list[bytes | None]]:
    """The blocks of :func:`windows_within`, each cropped to the part of the zone
    (``geoms`` + ``buffer``) it holds, and that part as WKB (None where the zone
    covers the whole cropped window: no mask to rasterize there). ``factor``: the
    windows will be read shrunk by it, so crops keep whole shrunk pixels."""
    windows = windows_within(grid, geoms, buffer=buffer, block=block)
    areas: list[bytes | None] = [None] * len(windows)
    if geoms is None:
        return windows, areas
    zone = shapely.buffer(shapely.union_all(geoms), buffer)
    shapely.prepare(zone)
    t = grid.transform
    cropped = []
    for i, (w, _) in enumerate(windows):
        part = shapely.intersection(zone, shapely.box(*rasterio.windows.bounds(w, t)))
        # only the part of the block the zone covers is processed (the block is
        # decoded whole anyway, but features and objects cost by the pixel)
        cw = crop(w, part, t, factor)
        cropped.append((cw, cw))
        # a zone covering the whole (shrunk) pixel grid of the window leaves every
        # pixel in: no need to rasterize it there
        full = Window(cw.col_off, cw.row_off, -(-cw.width // factor) * factor, -(-cw.height // factor) * factor)
        if not shapely.covers(part, shapely.box(*rasterio.windows.bounds(full, t))):
            areas[i] = shapely.to_wkb(part)
    return cropped, areas


def crop(w: Window, part, transform, factor: int) -> Window:
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


def area_mask(area, shape: tuple[int, int], transform) -> np.ndarray:
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
