"""Co-registration: how far the before image's content sits from the after image's.

Two flights are each georeferenced on their own; without RTK or ground control
their orthophotos disagree by a metre or more. Every edge then moves between the
dates: on the unchanged synthetic scene false alarms start at 1.5 m of offset,
and 2.2 m gave six (1,600 m²) along field and house edges. The offset of a survey is a shift of the whole
flight, so it is measured once per run, by phase correlation (OpenCV) of the
two dates' edges (gradient magnitude) on the blocks the scene statistics sample
anyway, and the before image is then read shifted onto the after image's content.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

log = logging.getLogger(__name__)

__all__ = ["estimate_shift", "MIN_SHIFT_PX", "MAX_SHIFT_PX"]

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
#: and each costs ~2 ms
MAX_BLOCKS = 12


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


def estimate_shift(samples, name="the before image") -> tuple[float, float] | None:
    """The offset (dx, dy) in work pixels of the after image's content from the
    before image's, from (before, after, valid, ...) sample blocks: None when the
    images are registered (< :data:`MIN_SHIFT_PX`) or the blocks cannot tell.
    ``name``: the before image, for the messages."""
    samples = list(samples)
    pick = np.unique(np.linspace(0, len(samples) - 1, min(MAX_BLOCKS, len(samples))).round().astype(int))
    found = [s for s in (block_shift(*samples[i][:3]) for i in pick.tolist()) if s is not None]
    good = np.array([(dx, dy) for dx, dy, r in found if r >= MIN_RESPONSE and max(abs(dx), abs(dy)) <= MAX_SHIFT_PX])
    if len(good) < min(MIN_BLOCKS, len(found)) or len(good) == 0:
        log.info("co-registration: %d of %d sampled blocks matched; no shift applied", len(good), len(found))
        return None
    shift = np.median(good, axis=0)
    spread = np.median(np.abs(good - shift), axis=0).max()
    if np.hypot(*shift) < MIN_SHIFT_PX:
        log.info("co-registration: images agree to %.2f px", float(np.hypot(*shift)))
        return None
    if spread > MAX_SPREAD_PX:
        log.warning("%s is offset from the after image by about (%.1f, %.1f) px, but the offset varies over "
                    "the scene (spread %.1f px): not corrected; expect false alarms along edges. Check the two "
                    "flights' georeferencing", name, shift[0], shift[1], spread)
        return None
    return float(shift[0]), float(shift[1])
