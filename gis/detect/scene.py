"""Scene-wide statistics from a sample of windows.

Thresholds are set once for the whole scene, never per window: a window with
no change must stay quiet, and per-window Otsu would always split it in two.
The sample is a spread of windows over the area of interest; the figures are:

- radiometric matching: per-band gain and offset that bring the before image's
  mean and spread onto the after image's (a sunnier survey day is not a change);
- building threshold: Otsu over the sampled building scores, but never below a
  floor, so a scene with little change does not lower the bar into the noise;
- vegetation-gain threshold: likewise, over the sampled index gains;
- DSM offset: the median height difference (survey datum drift) removed before
  height change is measured.
"""

from __future__ import annotations

import logging

import numpy as np

from gis.detect.features import SceneStats, compute_features

log = logging.getLogger(__name__)

__all__ = ["estimate_stats", "BUILDING_FLOOR", "VEG_FLOOR_EXG", "VEG_FLOOR_NDVI"]

#: Lowest building score that may count as change: roof-like, not roof-like
#: before, with a Lab colour change of ~5+ units.
BUILDING_FLOOR = 0.25
#: Lowest vegetation gain that may count as new crops (ExG / NDVI units).
VEG_FLOOR_EXG = 0.10
VEG_FLOOR_NDVI = 0.25
#: Otsu may raise the building threshold up to here (a very busy scene).
BUILDING_CEIL = 0.5
#: pixels sampled for the radiometric matching
MATCH_PIXELS = 250_000


def threshold_otsu(x: np.ndarray, nbins: int = 256) -> float:
    """Otsu's threshold over a 256-bin histogram, as ``skimage.filters.threshold_otsu``
    computes it for float data (importing scikit-image costs every worker ~0.3 s)."""
    counts, edges = np.histogram(x.ravel(), bins=nbins)
    centers = (edges[:-1] + edges[1:]) / 2
    w1 = np.cumsum(counts)
    w2 = np.cumsum(counts[::-1])[::-1]
    m1 = np.cumsum(counts * centers) / w1
    m2 = (np.cumsum((counts * centers)[::-1]) / w2[::-1])[::-1]
    return float(centers[np.argmax(w1[:-1] * w2[1:] * (m1[:-1] - m2[1:]) ** 2)])


def _otsu(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    if x.size < 100 or np.ptp(x) < 1e-6:
        return None
    return threshold_otsu(x)


def _moments(images: list, valid: list, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation of the valid pixels on every ``k``-th row
    and column of ``images`` ((bands, h, w) arrays), in float64. The pixels are laid
    out band by band (contiguous rows: numpy sums them pairwise, and a copy of a
    sub-grid is cheap where a boolean gather of a strided view is not)."""
    parts = []
    for img, v in zip(images, valid):
        x, v = img[:, ::k, ::k], v[::k, ::k]
        parts.append(x.reshape(len(x), -1) if v.all() else x[:, v])
    p = np.concatenate(parts, 1, dtype=np.float64)
    mean = p.mean(1)
    p -= mean[:, None]
    np.square(p, out=p)
    return mean, np.sqrt(p.mean(1))


def estimate_stats(samples, *, nir: bool = False, res: float = 0.5, features: list | None = None) -> SceneStats:
    """``samples``: iterable of (before, after, valid[, dsm_before, dsm_after]) arrays.

    ``features``: a list that receives each sample's feature maps (None for a sample
    without valid pixels). They depend only on the radiometric matching, which is
    final before they are computed, so a caller may reuse them for its window
    instead of computing them again (the thresholds set afterwards do not enter them).
    """
    samples = list(samples)
    stats = SceneStats()
    nb = samples[0][0].shape[0] if samples else 3
    used = [s for s in samples if s[2].any()]
    if not used:
        return stats
    # about MATCH_PIXELS valid pixels on a regular sub-grid of each window are plenty
    # for means and spreads (and much cheaper than gathering every valid pixel)
    n_pix = sum(s[2].size for s in used)
    k = max(1, int(np.sqrt(n_pix / MATCH_PIXELS)))
    (mb, sb), (ma, sa) = (_moments([s[j] for s in used], [s[2] for s in used], k) for j in (0, 1))
    sb += 1e-3
    gain = np.ones(4, np.float32)
    offset = np.zeros(4, np.float32)
    # a gain far from 1 means different content, not light: clip it
    gain[:nb] = np.clip(sa / sb, 0.6, 1.6)
    offset[:nb] = ma - gain[:nb] * mb
    stats.gain, stats.offset = gain, offset

    scores, gains, dz = [], [], []
    for s in samples:
        before, after, valid = s[0], s[1], s[2]
        if not valid.any():
            if features is not None:
                features.append(None)
            continue
        f = compute_features(before, after, stats, nir=nir, res=res, valid=valid)
        if features is not None:
            features.append(f)
        scores.append(f["building"][valid][::7])
        gains.append(f["veg_gain"][valid][::7])
        if len(s) > 4 and s[3] is not None and s[4] is not None:
            d = (s[4] - s[3])[valid]
            dz.append(d[np.isfinite(d)][::7])
    t = _otsu(np.concatenate(scores))
    stats.building_threshold = float(np.clip(t if t is not None else BUILDING_FLOOR, BUILDING_FLOOR, BUILDING_CEIL))
    g = np.concatenate(gains)
    floor = VEG_FLOOR_NDVI if nir else VEG_FLOOR_EXG
    # noise level of the index difference: median + 6 robust sigmas
    noise = float(np.median(g) + 6 * 1.4826 * np.median(np.abs(g - np.median(g))))
    stats.veg_threshold = max(floor, noise)
    if dz:
        d = np.concatenate(dz)
        stats.dsm_offset = float(np.median(d)) if d.size else 0.0
    log.info("scene thresholds: building %.3f, vegetation gain %.3f, DSM offset %.2f m",
             stats.building_threshold, stats.veg_threshold, stats.dsm_offset)
    return stats
