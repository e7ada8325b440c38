"""gis: land-acquisition clearance and illegal-construction monitoring.

Stages are plain functions over GeoDataFrames and rasters:
read and validate layers (:mod:`gis.clearance.layers`) -> overlay parcels with red lines
(:mod:`gis.clearance.overlay`) -> clearance figures and rankings (:mod:`gis.clearance.figures`) ->
change detection -> alerts -> maps and the weekly bulletin. The CLI
(:mod:`gis.cli`) is a thin shell over them.

The library never prints; it logs through ``logging.getLogger(__name__)``.
"""

import logging

from gis.errors import GisError

__version__ = "0.2.0"
__all__ = ["GisError", "__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
