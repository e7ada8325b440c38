"""Change detection between two survey dates of aerial imagery.

One module per detector, each a pure function of feature maps:
:mod:`~gis.detect.spectral` (new roof-like surfaces), :mod:`~gis.detect.vegetation`
(new crops), :mod:`~gis.detect.dsm` (height gain / loss), :mod:`~gis.detect.onnx`
(a user's own ONNX change model), :mod:`~gis.detect.classifier` (a gradient-boosted
object classifier trained on local examples or patrol verdicts).
:mod:`~gis.detect.run` tiles the scene into independent window tasks and turns
masks into polygons (:mod:`~gis.detect.objects`).

Public entry point: :func:`detect_changes`.
"""

from gis.detect.run import COLUMNS, detect_changes

__all__ = ["detect_changes", "COLUMNS"]
