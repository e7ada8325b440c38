"""Vegetation gain: new crops, orchards, nursery stock (抢种).

NDVI where the images carry a NIR band, else ExG on RGB. A pixel counts when
the index rose by more than the scene-wide threshold and the after image is
clearly vegetated. New greenhouses (bright, unvegetated plastic) are found by
the spectral detector and re-labelled as crops by their look and size (see
:mod:`gis.detect.objects`).
"""

from __future__ import annotations

import numpy as np

from gis.detect.features import SceneStats
from gis.detect.spectral import kernel_px, clean

__all__ = ["vegetation_mask"]


def vegetation_mask(f: dict, stats: SceneStats, res: float, nir: bool) -> tuple[np.ndarray, np.ndarray]:
    """(mask, confidence-like score in [0, 1]) of new vegetation."""
    gain = f["veg_gain"]
    vegetated = f["veg_b"] > (0.35 if nir else 0.06)
    m = clean((gain > stats.veg_threshold) & vegetated, kernel_px(3.0, res), kernel_px(3.0, res))
    score = np.clip(gain / (2 * stats.veg_threshold), 0, 1)
    return m, score
