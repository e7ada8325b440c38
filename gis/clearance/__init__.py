"""Clearance progress: layers in, overlay, figures out.

One entry point, :func:`gis.clearance.pipeline.clearance`, reads the layers
(:mod:`~gis.clearance.layers`, with :mod:`~gis.clearance.reading`,
:mod:`~gis.clearance.columns` and :mod:`~gis.clearance.validation`; DXF red
lines through :mod:`~gis.clearance.dxf`), splits the parcels by the red lines
(:mod:`~gis.clearance.overlay`) and counts (:mod:`~gis.clearance.figures`),
in memory or, for large cadastres, in batches.
"""
