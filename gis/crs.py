"""Coordinate reference systems: choosing the projected working CRS.

Areas are computed in a projected CRS, never in degrees. Chinese data comes
in CGCS2000 (EPSG:4490) or one of its Gauss-Kruger projections; when layers
arrive geographic, the default working CRS is the CGCS2000 3-degree
Gauss-Kruger zone (central meridian form, EPSG:4534-4554) of the data's centre.

A projected CRS that distorts areas over the data's extent (Web Mercator,
EPSG:3857, reads a district at 30N 1.33x too large) is never used for
areas: the data goes to its Gauss-Kruger zone instead, with a warning, and
an explicit working CRS of that kind is an error.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pyproj import CRS, Proj, Transformer
from pyproj.exceptions import CRSError as PyprojCRSError

from gis.errors import AreaDistortionWarning, CRSError

#: CGCS2000 / 3-degree Gauss-Kruger CM 75E .. CM 135E.
_GK3_CM_FIRST_EPSG = 4534
_GK3_CM_FIRST_MERIDIAN = 75
_GK3_CM_LAST_MERIDIAN = 135

#: A working CRS may scale areas by at most this much (1 %) anywhere over the
#: data's extent. Gauss-Kruger 3-degree zones stay under 0.1 % inside their
#: zone (0.8 % two zones out); Web Mercator is 33 % off at 30N.
MAX_AREA_DISTORTION = 0.01


def parse_crs(value: Any, *, what: str = "CRS") -> CRS:
    """A pyproj CRS from 'EPSG:4547', 4547, WKT, or a CRS; CRSError if unknown."""
    if isinstance(value, CRS):
        return value
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        value = f"EPSG:{value}"
    try:
        return CRS.from_user_input(value)
    except PyprojCRSError as exc:
        raise CRSError(
            f"unknown {what} {value!r} ({exc})",
            hint="give an EPSG code such as EPSG:4547 (CGCS2000 / 3-degree GK CM 114E)",
        ) from None


def gk3_zone_crs(lon: float) -> CRS:
    """CGCS2000 3-degree Gauss-Kruger CRS (CM form) whose zone holds ``lon``."""
    cm = int(round(lon / 3.0)) * 3
    if not _GK3_CM_FIRST_MERIDIAN <= cm <= _GK3_CM_LAST_MERIDIAN:
        raise CRSError(
            f"longitude {lon:.3f} is outside China's CGCS2000 Gauss-Kruger zones "
            f"(central meridians {_GK3_CM_FIRST_MERIDIAN}E-{_GK3_CM_LAST_MERIDIAN}E)",
            hint="check the layer's CRS, or pass --working-crs explicitly",
        )
    return CRS.from_epsg(_GK3_CM_FIRST_EPSG + (cm - _GK3_CM_FIRST_MERIDIAN) // 3)


def centre_lonlat(bounds: tuple[float, float, float, float], crs: CRS) -> tuple[float, float]:
    """Longitude / latitude of the centre of ``bounds`` given in ``crs``."""
    x = (bounds[0] + bounds[2]) / 2.0
    y = (bounds[1] + bounds[3]) / 2.0
    if crs.is_geographic:
        return float(x), float(y)
    lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(x, y)
    return float(lon), float(lat)


def extent_lonlat(frames: list) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes and latitudes of the centre and corners of each frame's extent."""
    lons, lats = [], []
    for gdf in frames:
        if gdf is None or gdf.crs is None or not len(gdf):
            continue
        xmin, ymin, xmax, ymax = gdf.total_bounds
        if not np.all(np.isfinite([xmin, ymin, xmax, ymax])):
            continue
        xs = np.array([xmin, xmax, xmin, xmax, (xmin + xmax) / 2])
        ys = np.array([ymin, ymin, ymax, ymax, (ymin + ymax) / 2])
        if not gdf.crs.is_geographic:
            xs, ys = Transformer.from_crs(gdf.crs, 4326, always_xy=True).transform(xs, ys)
        lons.append(xs)
        lats.append(ys)
    if not lons:
        return np.empty(0), np.empty(0)
    return np.concatenate(lons), np.concatenate(lats)


def area_distortion(crs: CRS, lons: np.ndarray, lats: np.ndarray) -> float:
    """Largest relative error of areas in ``crs`` at the given points (0.33 = 33 % too large).

    Measured with PROJ's areal scale factor. Web Mercator is reported as
    distorting even without points: it is never right for areas outside the
    equator.
    """
    if not crs.is_projected:
        return 0.0
    if not len(lons):
        method = crs.coordinate_operation.method_name if crs.coordinate_operation else ""
        return 1.0 if "pseudo mercator" in method.lower() else 0.0
    with np.errstate(all="ignore"):
        scale = np.asarray(Proj(crs).get_factors(lons, lats, errcheck=False).areal_scale, dtype=float)
    scale = scale[np.isfinite(scale)]
    return float(np.max(np.abs(scale - 1.0))) if len(scale) else 0.0


def choose_working_crs(
    frames: list, explicit: Any = None
) -> CRS:
    """The projected CRS to do all geometry work in.

    ``explicit`` wins (and must be projected and keep areas true over the
    frames' extent). Otherwise the first projected CRS among the layers (red
    lines first, by the caller's order) that keeps areas true within
    :data:`MAX_AREA_DISTORTION`, so data already in a Gauss-Kruger zone
    stays there. Else the GK zone of the centre of the first layer; when a
    projected layer was passed over for distorting areas, a warning says so.
    """
    lons, lats = extent_lonlat(frames)
    if explicit is not None:
        crs = parse_crs(explicit, what="working CRS")
        if not crs.is_projected:
            raise CRSError(
                f"working CRS {crs.to_string()} is not projected: areas cannot be "
                "computed in degrees",
                hint="use a projected CRS such as EPSG:4547",
            )
        off = area_distortion(crs, lons, lats)
        if off > MAX_AREA_DISTORTION:
            raise CRSError(
                f"working CRS {crs.to_string()} ({crs.name}) distorts areas by up to {off:.0%} "
                "over the data: every mu would be wrong",
                hint="use the CGCS2000 Gauss-Kruger zone of the data (EPSG:4534-4554, e.g. EPSG:4547 "
                     "for 112.5E-115.5E), or leave --working-crs out to have it chosen",
            )
        return crs
    passed_over = []
    for gdf in frames:
        if gdf is not None and gdf.crs is not None and gdf.crs.is_projected:
            off = area_distortion(gdf.crs, lons, lats)
            if off <= MAX_AREA_DISTORTION:
                return gdf.crs
            passed_over.append((gdf.crs, off))
    zone = _centre_zone(frames)
    for crs, off in passed_over:
        warnings.warn(f"{crs.to_string()} ({crs.name}) distorts areas by up to {off:.0%} over the data: "
                      f"working in {zone.to_string()} instead", AreaDistortionWarning, stacklevel=2)
    return zone


def _centre_zone(frames: list) -> CRS:
    """The Gauss-Kruger zone of the centre of the first layer with features."""
    for gdf in frames:
        if gdf is not None and gdf.crs is not None and len(gdf):
            lon, _ = centre_lonlat(tuple(gdf.total_bounds), gdf.crs)
            return gk3_zone_crs(lon)
    raise CRSError("no layer with a CRS to choose a working CRS from",
                   hint="pass --working-crs EPSG:N")
