"""Change detection between two survey dates of aerial imagery.

:mod:`~gis.detect.run` is the orchestration (:func:`detect_changes`). The jobs it
hands out, one module each:

- :mod:`~gis.detect.sampling`: the work resolution, the scene sample, the
  co-registration (also used by training);
- :mod:`~gis.detect.window`: one window's detection, a picklable task;
- :mod:`~gis.detect.detectors`: one interface over the unsupervised detector,
  the trained classifiers and a user's ONNX model;
- :mod:`~gis.detect.pool`: where the window tasks run (this process or worker
  processes);
- :mod:`~gis.detect.output`: the table of change polygons and the change mask.

Below them, one module per cue, each a pure function of feature maps:
:mod:`~gis.detect.features`, :mod:`~gis.detect.scene` (scene thresholds),
:mod:`~gis.detect.spectral` (new roof-like surfaces), :mod:`~gis.detect.vegetation`
(new crops), :mod:`~gis.detect.dsm` (height gain / loss),
:mod:`~gis.detect.register`, :mod:`~gis.detect.objects` (masks to polygons),
:mod:`~gis.detect.classifier` and :mod:`~gis.detect.training` (the trainable
classifier), :mod:`~gis.detect.onnx`.

Public entry point: :func:`detect_changes`. The names below are loaded on first
use: worker processes import :mod:`gis.detect.window` alone, and the
orchestration would add geopandas and pandas (~0.3 s) to each one's start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # noqa: F401 - the names loaded on first use, for type checkers
    from gis.detect.detectors import Detector, load_detector
    from gis.detect.output import COLUMNS
    from gis.detect.run import Progress, detect_changes

#: public name -> the module of this package that defines it
_EXPORTS = {"detect_changes": "run", "Progress": "run", "COLUMNS": "output", "Detector": "detectors",
            "load_detector": "detectors"}

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
