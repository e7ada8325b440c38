"""Aerial imagery: a validated pair of survey dates, read window by window.

- :mod:`~gis.imagery.pair`: validating two orthophotos (and DSMs) and putting
  them on one grid, the after image's (:func:`open_pair`, :class:`Grid`,
  :class:`ImagePair`, survey dates).
- :mod:`~gis.imagery.reading`: reading a window of the pair, shrunk to the work
  resolution, with its validity mask and black collar (:func:`read_window`);
  decoding errors named by file and place (:func:`decoding`).
- :mod:`~gis.imagery.windows`: which windows of the grid to read, and the zone
  inside each (:func:`windows_within`, :func:`zone_windows`).
- :mod:`~gis.imagery.coverage`: how much of the red lines an image really shows.

The names below are loaded on first use: detection's worker processes import
:mod:`gis.imagery.reading` alone, and the coverage check would add pyproj
(~75 ms) to every worker's start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # noqa: F401 - the names loaded on first use, for type checkers
    from gis.imagery.coverage import valid_share
    from gis.imagery.pair import Grid, ImagePair, check_raster, common_extent, open_pair, raster_date
    from gis.imagery.reading import (
        COLLAR_FRINGE_PX,
        WindowData,
        black_collar,
        close_datasets,
        decoding,
        gdal_env,
        read_window,
    )
    from gis.imagery.windows import area_mask, windows_within, zone_windows

#: public name -> the module of this package that defines it
_EXPORTS = {
    **dict.fromkeys(["Grid", "ImagePair", "open_pair", "check_raster", "raster_date", "common_extent"], "pair"),
    **dict.fromkeys(["WindowData", "read_window", "close_datasets", "decoding", "black_collar", "gdal_env",
                     "COLLAR_FRINGE_PX"], "reading"),
    **dict.fromkeys(["windows_within", "zone_windows", "area_mask"], "windows"),
    "valid_share": "coverage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
