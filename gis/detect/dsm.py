"""DSM height change: structures that rose (>= 2.5 m by default) or fell.

The scene-wide median height difference is removed first (two surveys rarely
share a vertical datum to the decimetre). Vegetation in the after image is
excluded from gains: a tree that grew is not a house.
"""

from __future__ import annotations

import numpy as np

from gis.detect.features import SceneStats
from gis.detect.spectral import kernel_px, clean

__all__ = ["height_masks", "MIN_HEIGHT_GAIN"]

MIN_HEIGHT_GAIN = 2.5


def height_masks(dsm_before: np.ndarray, dsm_after: np.ndarray, f: dict, stats: SceneStats,
                 res: float, nir: bool, min_gain: float = MIN_HEIGHT_GAIN):
    """(gain mask, loss mask, score in [0, 1]) from two DSMs on one grid."""
    dz = dsm_after - dsm_before - stats.dsm_offset
    dz = np.where(np.isfinite(dz), dz, 0).astype(np.float32)
    vegetated = f["veg_b"] > (0.35 if nir else 0.06)
    k = kernel_px(1.5, res)
    gain = clean((dz >= min_gain) & ~vegetated, k, k)
    loss = clean((dz <= -min_gain) & ~(f["veg_a"] > (0.35 if nir else 0.06)), k, k)
    score = np.clip(np.abs(dz) / (2 * min_gain), 0, 1)
    return gain, loss, score
