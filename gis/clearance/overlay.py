"""Parcels x red lines: the pieces of each parcel inside each project.

A parcel straddling a red line is split and only the inside part counts. The
work is arranged so that the expensive part, GEOS intersection, runs only
where it changes the answer:

1. an STRtree over the parcels is queried with each red line (the red line
   is prepared once and tested against its candidate parcels in C);
2. parcels the red line *properly contains* are pieces as they are (in a
   real cadastre, most of them);
3. only the parcels crossing the boundary are intersected.

Red lines are split round-robin into one batch per thread; shapely releases
the GIL, so the batches run on all cores. Each thread gets its own copy of
the red-line geometries: GEOS prepared geometries must not be shared between
threads (sharing them crashed the process in the baseline measurements).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import shapely

from gis.geometry import polygonal
from gis.schema import m2_to_mu

#: Columns of the ``parcel_pieces`` layer, in order.
PIECE_COLUMNS = ["parcel_id", "project_id", "district", "status", "area_m2", "area_mu"]


def _pairs_for_redlines(
    tree: shapely.STRtree,
    parcels: np.ndarray,
    redlines_wkb: np.ndarray,
    redline_index: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(red line idx, parcel idx, piece geometry, wholly-inside flag) for one batch."""
    own = shapely.from_wkb(redlines_wkb)  # this thread's own GEOS objects
    shapely.prepare(own)
    r_local, p_idx = tree.query(own, predicate="intersects")
    inside = shapely.contains_properly(own[r_local], parcels[p_idx])
    pieces = parcels[p_idx].copy()
    cross = ~inside
    if cross.any():
        pieces[cross] = shapely.intersection(parcels[p_idx[cross]], own[r_local[cross]])
    return redline_index[r_local], p_idx, pieces, inside


def overlay_parcels(
    parcels: gpd.GeoDataFrame,
    redlines: gpd.GeoDataFrame,
    *,
    threads: int | None = None,
) -> gpd.GeoDataFrame:
    """Pieces of parcels inside red lines, one row per (parcel, project) pair.

    Both frames must be validated and in the same projected CRS (see
    :mod:`gis.clearance.layers`). Returns ``parcel_id, project_id, district, status,
    area_m2, area_mu, geometry`` plus ``share`` (the piece's fraction of its
    parcel) and ``inside`` (parcel wholly inside the red line), sorted by
    project then parcel so that output does not depend on input order.
    The parcels' own attributes follow the piece (``district`` is the
    parcel's district).
    """
    if parcels.crs is not None and redlines.crs is not None and not parcels.crs.equals(redlines.crs):
        raise ValueError(
            f"parcels ({parcels.crs.to_string()}) and red lines ({redlines.crs.to_string()}) "
            "are in different CRS; read them with gis.clearance.pipeline.clearance, which reprojects both"
        )
    pgeoms = parcels.geometry.to_numpy()
    rgeoms = redlines.geometry.to_numpy()
    threads = max(1, threads or min(os.cpu_count() or 1, 8))
    threads = min(threads, max(1, len(rgeoms)))

    tree = shapely.STRtree(pgeoms)
    rwkb = shapely.to_wkb(rgeoms)
    batches = [np.arange(k, len(rgeoms), threads) for k in range(threads)]
    if threads == 1:
        results = [_pairs_for_redlines(tree, pgeoms, rwkb[b], b) for b in batches]
    else:
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(lambda b: _pairs_for_redlines(tree, pgeoms, rwkb[b], b), batches))

    r_idx = np.concatenate([r[0] for r in results])
    p_idx = np.concatenate([r[1] for r in results])
    pieces = np.concatenate([r[2] for r in results])
    inside = np.concatenate([r[3] for r in results])

    parcel_area = shapely.area(pgeoms)
    area = parcel_area[p_idx].copy()
    cross = ~inside
    area[cross] = shapely.area(pieces[cross])
    keep = area > 0  # parcels that only touch a red line give no land
    r_idx, p_idx, pieces, inside, area = r_idx[keep], p_idx[keep], pieces[keep], inside[keep], area[keep]
    pieces[~inside] = polygonal(pieces[~inside])  # edge-sharing pieces can carry a stray line

    order = np.lexsort((p_idx, r_idx))
    r_idx, p_idx, pieces, inside, area = r_idx[order], p_idx[order], pieces[order], inside[order], area[order]

    out = gpd.GeoDataFrame(
        {
            "parcel_id": parcels["parcel_id"].to_numpy()[p_idx],
            "project_id": redlines["project_id"].to_numpy()[r_idx],
            "district": parcels["district"].to_numpy()[p_idx],
            "status": parcels["status"].to_numpy()[p_idx],
            "area_m2": area,
            "area_mu": m2_to_mu(area),
            "share": np.where(inside, 1.0, area / parcel_area[p_idx]),
            "inside": inside,
            "_parcel": p_idx,
        },
        geometry=pieces,
        crs=parcels.crs,
    )
    return out


def parcel_inside_area(pieces: gpd.GeoDataFrame, n_parcels: int) -> np.ndarray:
    """Area of each parcel inside *any* red line, counting overlaps once.

    Where red lines overlap, a parcel has several pieces that cover the same
    ground; the land is the union of its pieces. Most parcels have a single
    piece, or lie wholly inside a red line (then the land is the parcel), so
    the union is only built for the few with several partial pieces.
    """
    p = pieces["_parcel"].to_numpy()
    area = np.zeros(n_parcels)
    whole = np.zeros(n_parcels, dtype=bool)
    whole[p[pieces["inside"].to_numpy()]] = True
    counts = np.bincount(p, minlength=n_parcels)
    single = (counts == 1) & ~whole
    sel = single[p]
    area[p[sel]] = pieces["area_m2"].to_numpy()[sel]
    # wholly inside: the piece area equals the parcel area
    whole_rows = pieces["inside"].to_numpy()
    area[p[whole_rows]] = pieces["area_m2"].to_numpy()[whole_rows]
    multi = (counts > 1) & ~whole
    if multi.any():
        rows = multi[p]
        sub_p = p[rows]
        geoms = pieces.geometry.to_numpy()[rows]
        order = np.argsort(sub_p, kind="stable")
        sub_p, geoms = sub_p[order], geoms[order]
        starts = np.flatnonzero(np.r_[True, sub_p[1:] != sub_p[:-1]])
        ends = np.r_[starts[1:], len(sub_p)]
        # few parcels: those crossing the edges of two overlapping red lines
        area[sub_p[starts]] = [shapely.area(shapely.union_all(geoms[s:e])) for s, e in zip(starts, ends)]
    return area
