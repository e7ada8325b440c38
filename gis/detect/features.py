"""Per-pixel change features of one window, shared by every detector.

All images arrive on a 0-255 scale (see :mod:`gis.imagery.pair`). The before image's
colours are first mapped onto the after image's (a 3 x 3 colour matrix and offset
from scene-wide statistics, :class:`SceneStats`), so a brighter survey day, or
another camera's colour rendering, is not a change. Everything here is OpenCV on
float32 arrays: a window of a megapixel costs a few tens of milliseconds.

Cues (all in [0, 1] or small signed ranges, independent of the scene):
- ``dmag``: colour change in CIE Lab (Euclidean, smoothed), in Lab units.
- ``roof_b`` / ``roof_a``: how roof-like a pixel looks: low saturation and no
  vegetation (grey concrete, tiles, asphalt shingles), or blue steel sheet,
  which is common on Chinese village workshops.
- ``veg_b`` / ``veg_a``: NDVI when there is a NIR band, else ExG (2g - r - b on
  chromaticity).
- ``edge_b`` / ``edge_a``: local gradient energy (new buildings bring edges);
  ``grad_change``: how much the gradient vector changed (new walls and shadow lines).
- ``*_ctx``: the change, roof and building cues over ~12 m around (the classifier's context).
- ``*_rel``: Lab colours relative to the after image's mean colour over the scene
  (the classifier's; :attr:`SceneStats.lab_ref`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = ["SceneStats", "compute_features", "FEATURE_NAMES", "feature_stack", "lab_of"]

#: Lab colour change (units) at which the change cue reaches tanh(1) = 0.76
CHANGE_SCALE = 15.0
#: Gaussian sigma (m) of the neighbourhood maps the trained classifier sees
CONTEXT_M = 12.0
#: how much a roof-like before image lowers the building score (grey soil looks
#: roof-like too, so not all the way)
ROOF_BEFORE_WEIGHT = 0.7


@dataclass
class SceneStats:
    """Scene-wide figures from a sample of windows: radiometric matching of the
    before image to the after image, and the detection thresholds."""

    gain: np.ndarray = field(default_factory=lambda: np.ones(4, np.float32))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    #: (3, 3): the before image's red, green, blue are mapped by it (then ``offset``
    #: added) instead of by ``gain``, which then serves the NIR band only
    colour: np.ndarray | None = None
    #: CIE Lab (L, a, b) of the after image's mean colour over the scene sample: the
    #: trained classifier also sees colours relative to it
    lab_ref: np.ndarray | None = None
    building_threshold: float = 0.3
    veg_threshold: float = 0.12
    dsm_offset: float = 0.0


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(x, (0, 0), sigma)


def _rgb8(img: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 RGB of a float (bands, h, w) image: clipped, truncated, and
    interleaved by cv2.merge (a numpy transpose copy costs ~8x more)."""
    return cv2.merge(list(np.clip(img[:3], 0, 255).astype(np.uint8)))


def _lab(rgb8: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smoothed CIE Lab planes L, a, b (float32, contiguous) of an RGB image."""
    L, a, b = cv2.split(_blur(cv2.cvtColor(rgb8, cv2.COLOR_RGB2Lab).astype(np.float32), sigma))
    # OpenCV's 8-bit Lab: L in 0-255 (x 255/100), a and b offset by 128 (in place on
    # the planes: numpy is slow on a trailing axis of 3)
    L *= np.float32(100 / 255)
    a -= np.float32(128)
    b -= np.float32(128)
    return L, a, b


def lab_of(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab (L, a, b), float32, of one RGB colour (0-255), as :func:`_lab` gives it."""
    px = np.clip(np.round(np.asarray(rgb, np.float64)[:3]), 0, 255).astype(np.uint8).reshape(1, 1, 3)
    L, a, b = cv2.cvtColor(px, cv2.COLOR_RGB2Lab).astype(np.float32).ravel()
    return np.array([L * 100 / 255, a - 128, b - 128], np.float32)


def _hsv_sat(rgb8: np.ndarray) -> np.ndarray:
    sat = cv2.extractChannel(cv2.cvtColor(rgb8, cv2.COLOR_RGB2HSV), 1).astype(np.float32)
    sat *= np.float32(1 / 255)
    return sat


def _veg(img: np.ndarray, nir: bool) -> np.ndarray:
    # in place on fresh arrays: the same float32 operations as the plain formulas
    r, g, b = img[0], img[1], img[2]
    if nir:
        n = img[3]
        num, den = n - r, n + r
    else:
        num = 2 * g
        num -= r
        num -= b
        den = r + g
        den += b
    den += np.float32(1e-3)
    num /= den
    return num


def _unit(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] in place."""
    return np.clip(x, 0, 1, out=x)


def _roof(sat: np.ndarray, veg: np.ndarray, lab_a: np.ndarray, lab_b: np.ndarray, nir: bool) -> np.ndarray:
    # NDVI of roofs is ~0-0.15, ExG of roofs ~0: the veg cut-off differs by index
    veg_cut = 0.25 if nir else 0.08
    grey = _unit(1 - sat / np.float32(0.35))
    grey *= _unit(1 - veg / np.float32(veg_cut))
    blue = _unit(-lab_b / np.float32(20))  # Lab b* < 0: blue steel roofs
    red = _unit((lab_a - np.float32(22)) / np.float32(12))  # Lab a* >> soil's ~5-15: red tiles
    grey += blue
    grey += red
    return np.minimum(grey, 1, out=grey)


def _sobel(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return cv2.Sobel(L, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(L, cv2.CV_32F, 0, 1, ksize=3)


def _edges(L_a: np.ndarray, L_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradient energy of each date, and of the change of the gradient vector: a new
    roof edge or shadow line changes the direction of the gradient even where its
    strength stays (a field's furrows replaced by a house's walls)."""
    gxa, gya = _sobel(L_a)
    gxb, gyb = _sobel(L_b)
    edge_a = cv2.blur(cv2.magnitude(gxa, gya), (7, 7))
    edge_b = cv2.blur(cv2.magnitude(gxb, gyb), (7, 7))
    return edge_a, edge_b, cv2.blur(cv2.magnitude(gxb - gxa, gyb - gya), (5, 5))


def compute_features(before: np.ndarray, after: np.ndarray, stats: SceneStats, *,
                     nir: bool = False, full: bool = False, res: float = 0.5,
                     valid: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Feature maps of a window. ``before``/``after``: float32 (bands, h, w), 0-255;
    ``res``: pixel size in metres (smoothing is set in metres on the ground).

    ``full`` adds the multi-scale maps the trained classifier uses. ``valid``: where
    both images have data; elsewhere the before image is taken to show what the after
    image does, so ground one flight did not cover (nodata, beyond its edge) shows no
    change that blurring could carry onto the valid pixels next to it.
    """
    s05, s15 = max(0.5 / res, 0.5), max(1.5 / res, 0.7)
    nb = before.shape[0]
    if stats.colour is None:
        before = before * stats.gain[:nb, None, None]
    else:
        rgb = before[:3]
        mapped = (stats.colour @ rgb.reshape(3, -1)).reshape(rgb.shape)
        before = mapped if nb == 3 else np.concatenate([mapped, before[3:] * stats.gain[3:nb, None, None]])
    before += stats.offset[:nb, None, None]
    if valid is not None and not valid.all():
        # (one flight ending where the other goes on gave false alarms along its edge)
        missing = ~valid
        before[:, missing] = after[:, missing]
    a8, b8 = _rgb8(before), _rgb8(after)
    L_a, A_a, B_a = _lab(a8, s05)
    L_b, A_b, B_b = _lab(b8, s05)
    dL, da, db = L_b - L_a, A_b - A_a, B_b - B_a
    dmag = _blur(cv2.magnitude(cv2.magnitude(dL, da), db), s15)
    sat_a, sat_b = _blur(_hsv_sat(a8), s15), _blur(_hsv_sat(b8), s15)
    veg_a, veg_b = _blur(_veg(before, nir), s15), _blur(_veg(after, nir), s15)
    roof_a = _roof(sat_a, veg_a, A_a, B_a, nir)
    roof_b = _roof(sat_b, veg_b, A_b, B_b, nir)
    change = np.tanh(dmag / np.float32(CHANGE_SCALE))
    w = np.float32(ROOF_BEFORE_WEIGHT)
    # building appeared: roof-like now, not before, and the colour changed
    building = _unit(1 - w * roof_a)
    building *= roof_b
    building *= change
    # building gone: the mirror image
    demolition = _unit(1 - w * roof_b)
    demolition *= roof_a
    demolition *= change
    f = {
        "dmag": dmag,
        "roof_a": roof_a,
        "roof_b": roof_b,
        "veg_a": veg_a,
        "veg_b": veg_b,
        "building": building,
        "demolition": demolition,
        "veg_gain": veg_b - veg_a,
    }
    if full:
        f.update({
            "dL": dL, "da": da, "db": db,
            "L_a": L_a, "L_b": L_b,
            "A_a": A_a, "A_b": A_b,
            "B_a": B_a, "B_b": B_b,
            "sat_a": sat_a, "sat_b": sat_b,
        })
        f["edge_a"], f["edge_b"], f["grad_change"] = _edges(L_a, L_b)
        # colours relative to the scene's: one flight's exposure and colour balance
        # shift every absolute colour, not how a roof stands out from its scene
        ref = stats.lab_ref if stats.lab_ref is not None else np.zeros(3, np.float32)
        f["L_b_rel"], f["A_b_rel"], f["B_b_rel"] = L_b - ref[0], A_b - ref[1], B_b - ref[2]
        f["L_a_rel"] = L_a - ref[0]
        for s in (2.0, 6.0):
            for k in ("dmag", "roof_b", "roof_a", "veg_b", "L_b", "building"):
                f[f"{k}_s{int(s)}"] = _blur(f[k], s)
        # the neighbourhood (a house among houses, a roof-like patch in a bare field)
        for k in ("dmag", "roof_b", "building"):
            f[f"{k}_ctx"] = _blur(f[k], CONTEXT_M / res)
        for k, L in (("tex_a", L_a), ("tex_b", L_b)):
            m = cv2.blur(L, (9, 9))
            f[k] = np.sqrt(np.maximum(cv2.blur(L * L, (9, 9)) - m * m, 0))
    return f


#: Features the trained classifier sees, in order.
FEATURE_NAMES: tuple[str, ...] = (
    "dmag", "roof_a", "roof_b", "veg_a", "veg_b", "building", "demolition", "veg_gain",
    "dL", "da", "db", "L_a", "L_b", "A_a", "A_b", "B_a", "B_b", "sat_a", "sat_b",
    "edge_a", "edge_b", "tex_a", "tex_b",
    "dmag_s2", "roof_b_s2", "roof_a_s2", "veg_b_s2", "L_b_s2", "building_s2",
    "dmag_s6", "roof_b_s6", "roof_a_s6", "veg_b_s6", "L_b_s6", "building_s6",
    "grad_change", "dmag_ctx", "roof_b_ctx", "building_ctx",
    "L_b_rel", "A_b_rel", "B_b_rel", "L_a_rel",
)


def feature_stack(f: dict[str, np.ndarray]) -> np.ndarray:
    """(n_features, h, w) float32 stack in :data:`FEATURE_NAMES` order."""
    return np.stack([f[k] for k in FEATURE_NAMES]).astype(np.float32, copy=False)
