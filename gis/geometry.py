"""Small vectorised geometry helpers shared by the stages."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import shapely

#: shapely type ids of Polygon and MultiPolygon.
POLYGONAL = (3, 6)


def is_valid_threaded(geoms: np.ndarray) -> np.ndarray:
    """``shapely.is_valid`` on all cores (shapely releases the GIL)."""
    n = min(os.cpu_count() or 1, 8)
    if n == 1 or len(geoms) < 50_000:
        return shapely.is_valid(geoms)
    with ThreadPoolExecutor(n) as pool:
        return np.concatenate(list(pool.map(shapely.is_valid, np.array_split(geoms, n))))


def polygonal(geoms: np.ndarray) -> np.ndarray:
    """Keep only the polygonal part of each geometry (empty polygon if none).

    ``make_valid`` and ``intersection`` can return a GeometryCollection that
    holds the polygon and a stray line or point (a bow-tie's knot, an edge
    shared with the red line); those have no area but would make a layer
    mixed-type. Only the odd ones are touched, which are few.
    """
    geoms = np.asarray(geoms, dtype=object)
    odd = ~np.isin(shapely.get_type_id(geoms), POLYGONAL) & ~shapely.is_missing(geoms)
    if not odd.any():
        return geoms
    out = geoms.copy()
    fixed = []
    for g in geoms[odd]:
        parts = shapely.get_parts(g)
        polys = parts[np.isin(shapely.get_type_id(parts), POLYGONAL)]
        fixed.append(shapely.union_all(polys) if len(polys) else shapely.Polygon())
    out[odd] = fixed
    return out
