"""Co-registration: how far the before image's content sits from the after image's.

Two flights are each georeferenced on their own; without RTK or ground control
their orthophotos disagree by a metre or more. Every edge then moves between the
dates: on the unchanged synthetic scene false alarms start at 1.5 m of offset,
and 2.2 m gave six (1,600 m²) along field and house edges. The offset is measured
once per run, by phase correlation (OpenCV) of the two dates' edges (gradient
magnitude) on the blocks the scene statistics sample anyway, and the before image
is then read shifted onto the after image's content.

Usually the whole flight is shifted. When the blocks disagree, the offset may grow
across the scene (the two orthophotos differ slightly in scale or rotation: 0.4 %
is 4 m over a kilometre, and left uncorrected gave 78 false alarms on an unchanged
1 km² synthetic pair): an affine field is then fitted to the blocks' offsets and
each window is read at the offset of its own centre.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

log = logging.getLogger(__name__)

__all__ = ["estimate_offset", "estimate_shift", "MIN_SHIFT_PX", "MAX_SHIFT_PX"]

#: offsets below this (work pixels, ~1 m) are left alone: the synthetic scene gave no
#: false alarm up to 1.35 m, and this is within the estimate's own error
MIN_SHIFT_PX = 0.5
#: larger apparent offsets (m at ~1 m work pixels) are not a georeferencing error
#: (a few metres without ground control) but another place or a failed match
MAX_SHIFT_PX = 12.0
#: a block whose correlation peak is weaker than this did not match (changed, or no
#: texture): unrelated 128 px LEVIR blocks peak at up to 0.2 (99th percentile 0.18 over
#: 330 pairs), the same ground years apart at 0.3-0.6, the same flight at ~1
MIN_RESPONSE = 0.3
#: blocks must agree on the offset within this (work pixels), else it varies over the
#: scene (a warped orthophoto) and one shift would be wrong somewhere
MAX_SPREAD_PX = 1.0
#: the blocks that must match for a shift to be believed
MIN_BLOCKS = 3
#: blocks correlated at most (spread over the sample): a median of a dozen is steady,
#: and each costs ~2 ms. When they disagree, every sampled block is measured
MAX_BLOCKS = 12
#: one shift for the whole scene when it explains nine sampled blocks in ten to this
#: (work pixels); else an offset field is tried
ONE_SHIFT_PX = 0.75
#: blocks an offset field must explain (a plane through fewer is fitted to their noise)
MIN_FIELD_BLOCKS = 6
#: a field varies only along directions the blocks spread over by at least this
#: (standard deviation of their centres, work pixels, ~200 m)
MIN_FIELD_SPREAD_PX = 200.0


def _edges(lum: np.ndarray) -> np.ndarray:
    """Gradient magnitude: edges are where the two dates agree (their colours and
    light differ), and they keep phase correlation's peak sharp on smooth ground,
    where on raw luminance OpenCV's sub-pixel estimate fell short by up to 60 %."""
    return cv2.magnitude(cv2.Sobel(lum, cv2.CV_32F, 1, 0), cv2.Sobel(lum, cv2.CV_32F, 0, 1))


def block_shift(before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> tuple[float, float, float] | None:
    """(dx, dy, response): ``after[r, c]`` shows what ``before[r - dy, c - dx]`` does,
    in pixels, for two (bands, h, w) arrays of one block. None for a block too small
    or too incomplete to say."""
    h, w = valid.shape
    if min(h, w) < 64 or valid.mean() < 0.95:
        return None
    lb, la = before[:3].mean(axis=0, dtype=np.float32), after[:3].mean(axis=0, dtype=np.float32)
    # missing pixels take the block's mean, so they add few edges of their own
    if not valid.all():
        lb[~valid] = lb[valid].mean()
        la[~valid] = la[valid].mean()
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(_edges(lb), _edges(la), window)
    return float(dx), float(dy), float(response)


def _measure(samples, pick, seen: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """Offsets (n, 2) of the blocks ``pick`` of ``samples`` that matched, their
    indices, and how many could be measured at all. ``seen``: block index -> its
    :func:`block_shift`, filled as blocks are measured (none is measured twice)."""
    for i in pick:
        if i not in seen:
            seen[i] = block_shift(*samples[i][:3])
    found = [(i, seen[i]) for i in pick if seen[i] is not None]
    ok = [(i, (dx, dy)) for i, (dx, dy, r) in found if r >= MIN_RESPONSE and max(abs(dx), abs(dy)) <= MAX_SHIFT_PX]
    return (np.array([o for _, o in ok], float).reshape(-1, 2), np.array([i for i, _ in ok], int),
            len(found))


def _spread(good: np.ndarray) -> tuple[np.ndarray, float]:
    shift = np.median(good, axis=0)
    return shift, float(np.median(np.abs(good - shift), axis=0).max())


def _spaced(n: int, k: int) -> list[int]:
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(int)).tolist()


def estimate_offset(samples, centres=None, name="the before image") -> np.ndarray | None:
    """How the after image's content sits off the before image's, from sample blocks
    (before, after, valid, ...) in work pixels: a 2 x 3 array ``G``, the offset
    (dx, dy) at work-pixel position (col, row) being ``G @ (col, row, 1)``
    (``after[r, c]`` shows ``before[r - dy, c - dx]``). None when the images are
    registered (< :data:`MIN_SHIFT_PX`) or the blocks cannot tell.

    One shift of the whole flight is the usual case (``G``'s first two columns are
    zero). When the blocks disagree and ``centres`` (each block's (col, row)) are
    given, all blocks are measured and an affine field is fitted: two orthophotos of
    slightly different scale or rotation (another flight height, lens calibration or
    datum) drift apart across the scene, by metres over a kilometre. The field is
    used only if it explains the blocks to :data:`MAX_SPREAD_PX`; an offset varying
    any other way (orthophotos rectified over different terrain models) is warned
    about and left alone."""
    samples = list(samples)
    seen: dict = {}
    good, at, measured = _measure(samples, _spaced(len(samples), MAX_BLOCKS), seen)
    if len(good) == 0 or len(good) < min(MIN_BLOCKS, measured):
        log.info("co-registration: %d of %d sampled blocks matched; no shift applied", len(good), measured)
        return None
    shift, spread = _spread(good)
    field = None
    if centres is not None and np.quantile(np.abs(good - shift).max(axis=1), 0.9) > ONE_SHIFT_PX:
        # one shift leaves some blocks off: measure them all, and try a field
        if len(samples) > len(seen):
            good, at, measured = _measure(samples, list(range(len(samples))), seen)
            shift, spread = _spread(good)
        field = _affine_field(good, np.asarray(centres, float)[at])
    if field is not None:
        return field
    if spread > MAX_SPREAD_PX:
        log.warning("%s is offset from the after image by about (%.1f, %.1f) px, but the offset varies over "
                    "the scene (spread %.1f px) in no way one shift, scale or rotation explains: not corrected; "
                    "expect false alarms along edges. Check the two flights' georeferencing",
                    name, shift[0], shift[1], spread)
        return None
    if np.hypot(*shift) < MIN_SHIFT_PX:
        log.info("co-registration: images agree to %.2f px", float(np.hypot(*shift)))
        return None
    return np.array([[0.0, 0.0, shift[0]], [0.0, 0.0, shift[1]]])


def _affine_field(good: np.ndarray, xy: np.ndarray) -> np.ndarray | None:
    """Least-squares affine offset field through the blocks' offsets, dropping the
    worst-fitting block while any misses by more than :data:`MAX_SPREAD_PX` (a block
    of real change can match somewhere else); None unless it then explains at least
    :data:`MIN_FIELD_BLOCKS` blocks and three in four of those that matched. Along a
    direction the blocks barely spread in (a road's red line), the field is held
    constant rather than extrapolated from noise."""
    keep = np.ones(len(good), bool)
    while keep.sum() >= MIN_FIELD_BLOCKS:
        p0 = xy[keep].mean(axis=0)
        _, sv, vt = np.linalg.svd(xy[keep] - p0, full_matrices=False)
        axes = vt[sv / np.sqrt(keep.sum()) >= MIN_FIELD_SPREAD_PX]  # directions the blocks span
        design = np.column_stack([(xy - p0) @ axes.T, np.ones(len(xy))])
        coef, *_ = np.linalg.lstsq(design[keep], good[keep], rcond=None)
        miss = np.hypot(*(design @ coef - good).T)
        worst = int(np.argmax(np.where(keep, miss, -1)))
        if miss[worst] <= MAX_SPREAD_PX:
            if keep.sum() < 0.75 * len(good):
                return None
            lin = axes.T @ coef[:-1]  # (2, 2): d(offset)/d(col, row), transposed
            const = coef[-1] - p0 @ lin
            return np.column_stack([lin.T, const])
        keep[worst] = False
    return None


def estimate_shift(samples, name="the before image") -> tuple[float, float] | None:
    """One offset (dx, dy) in work pixels for all ``samples`` (see
    :func:`estimate_offset`): None when registered, unknown or varying."""
    g = estimate_offset(samples, None, name)
    return None if g is None else (float(g[0, 2]), float(g[1, 2]))
