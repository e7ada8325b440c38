"""Coordinate reference systems: choosing the projected working CRS.

Areas are computed in a projected CRS, never in degrees. Chinese data comes
in CGCS2000 (EPSG:4490) or one of its Gauss-Kruger projections; when layers
arrive geographic, the default working CRS is the CGCS2000 3-degree
Gauss-Kruger zone (central meridian form, EPSG:4534-4554) of the data's centre.
"""

from __future__ import annotations

from typing import Any

from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as PyprojCRSError

from gis.errors import CRSError

#: CGCS2000 / 3-degree Gauss-Kruger CM 75E .. CM 135E.
_GK3_CM_FIRST_EPSG = 4534
_GK3_CM_FIRST_MERIDIAN = 75
_GK3_CM_LAST_MERIDIAN = 135


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


def choose_working_crs(
    frames: list, explicit: Any = None
) -> CRS:
    """The projected CRS to do all geometry work in.

    ``explicit`` wins (and must be projected). Otherwise the first projected
    CRS among the layers (red lines first, by the caller's order), so data
    already in a Gauss-Kruger zone stays there. If all layers are
    geographic, the GK zone of the centre of the first layer.
    """
    if explicit is not None:
        crs = parse_crs(explicit, what="working CRS")
        if not crs.is_projected:
            raise CRSError(
                f"working CRS {crs.to_string()} is not projected: areas cannot be "
                "computed in degrees",
                hint="use a projected CRS such as EPSG:4547",
            )
        return crs
    for gdf in frames:
        if gdf is not None and gdf.crs is not None and gdf.crs.is_projected:
            return gdf.crs
    for gdf in frames:
        if gdf is not None and gdf.crs is not None and len(gdf):
            lon, _ = centre_lonlat(tuple(gdf.total_bounds), gdf.crs)
            return gk3_zone_crs(lon)
    raise CRSError("no layer with a CRS to choose a working CRS from",
                   hint="pass --working-crs EPSG:N")
