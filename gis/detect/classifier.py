"""Trainable object classifier: learns, from local examples, which changes are real.

Objects, not pixels: a window is cut into superpixels (a marker-grid
watershed over the before/after luminance and the colour change, so segment
borders follow edges of either date), each segment is described by the mean
and spread of the change features over its pixels (plus the means over the
segments it touches, for context), and a gradient-boosted
classifier (scikit-learn ``HistGradientBoostingClassifier``) scores it. This
is ~100x cheaper than classifying every pixel.

Two kinds of model, saved with joblib as a dict:

- ``mode="segments"``, trained on labelled pairs (folders ``A/``, ``B/``,
  ``label/``, as LEVIR-CD): at detection time every segment is scored and the
  ones with probability >= 0.5 form the structure mask (replacing the
  unsupervised building score).
- ``mode="objects"``, trained on alerts with patrol verdicts (illegal, legal,
  demolished = real change; false_alarm = not): at detection time the
  unsupervised objects are scored and those below 0.5 are dropped.

Learning must be local: a model trained on one region transfers badly to
another (docs/detection.md, "Trained models"), so train on the county's own verdicts.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import cv2
import numpy as np

from gis.atomic import atomic_path
from gis.detect.features import FEATURE_NAMES, SceneStats, compute_features, feature_stack
from gis.errors import ModelError, ModelLookWarning

log = logging.getLogger(__name__)

__all__ = ["superpixels", "region_features", "segment_features", "fit", "save_model", "load_model",
           "segment_probability", "object_probability", "check_nir", "check_look", "pair_samples",
           "MeanClassifier", "MODEL_VERSION", "LOOK_DELTA_E"]

#: 4: a segments model holds an ensemble (:class:`MeanClassifier`); detection averages 4 grids.
#: 5: features see the before image colour-matched by a 3 x 3 matrix, not band by band
#: 6: features include Lab colours relative to the scene's mean colour (``*_rel``)
MODEL_VERSION = 6
#: segment spacing on the ground (m): still under half a 6-10 m village house; 3 m
#: segments were too small to carry texture statistics (LOO pixel F1 0.760 vs 0.773 at 4 m, 0.75 at 5-6 m)
SEGMENT_SPACING_M = 4.0
#: marker grids the segments are grown from, as (down, right) shifts of the grid (share
#: of the spacing): a grid half a spacing off puts segment borders elsewhere, and
#: averaging the segmentations' probabilities softens the superpixel staircase.
#: Detection averages all four half-spacing grids (every border position the
#: half-spacing lattice allows, so no direction is favoured); training uses the two
#: diagonal ones (training on all four too gave 0.789 vs 0.794 in the replica loop of
#: the LEVIR leave-one-out evaluation: no gain, twice the training cost)
GRID_SHIFTS = ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5))
TRAIN_SHIFTS = ((0.0, 0.0), (0.5, 0.5))
#: boosted-tree models averaged in a segments model. With more than 10,000 segments
#: scikit-learn stops each model early on a random tenth of them (here after 90-210
#: trees), so the model depends on that draw; in the replica loop single tiles' held-out
#: F1 moved by up to 0.07 under changes that left the overall figure within 0.005.
#: Averaging five draws is plain variance reduction (bagging over the validation
#: split), at five times the training and scoring cost. Replica loop, pixel F1:
#: 0.794 (1 model, 2 grids) -> 0.798 (5 models) -> 0.801 (5 models, 4 grids)
ENSEMBLE = 5
#: rows above which the boosted trees stop early on a random tenth (scikit-learn's "auto")
EARLY_STOP_ROWS = 10_000
#: CIE Lab distance (ΔE76) between the mean colour of the imagery a model learnt from and
#: the scene it scores above which :func:`check_look` warns: gross differences (another
#: county, supplier, season). On the LEVIR samples single tiles lie 2-15 units from their
#: mean and re-rendered looks that cost a trained model F1 move a tile's mean by 6-11,
#: so a lower level would fire within one region (docs/detection.md)
LOOK_DELTA_E = 12.0


class MeanClassifier:
    """Mean of the ``predict_proba`` of several fitted boosted-tree classifiers
    (picklable). Scored by onnxruntime (:class:`~gis.detect.trees.TreeScorer`,
    built on first use in each process): the same trees, ~3x faster than
    scikit-learn's own walk."""

    def __init__(self, members: list):
        self.members = list(members)
        self._scorer = None

    def __getstate__(self):
        return {"members": self.members}

    def __setstate__(self, state):
        self.members = state["members"]
        self._scorer = None

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self._scorer is None:
            from gis.detect.trees import TreeScorer

            self._scorer = TreeScorer(self.members)
        p = self._scorer.probability(X)
        return np.column_stack([1.0 - p, p])


def superpixels(f: dict, res: float, shift: float | tuple[float, float] = 0.0) -> tuple[np.ndarray, int]:
    """Marker-grid watershed superpixels; returns (labels 0..n-1 int32, n).
    ``shift``: the marker grid moves this share of the spacing down and right
    (one number for both, or a (down, right) pair)."""
    L_a, L_b = f["L_a"], f["L_b"]
    h, w = L_a.shape
    img = np.dstack([np.clip(L_a * 2.55, 0, 255), np.clip(L_b * 2.55, 0, 255),
                     np.clip(f["dmag"] * 4, 0, 255)]).astype(np.uint8)
    step = max(3, int(round(SEGMENT_SPACING_M / res)))
    dy, dx = (shift, shift) if np.isscalar(shift) else shift
    fy, fx = ((step // 2 + int(round(d * step))) % step for d in (dy, dx))
    markers = np.zeros((h, w), np.int32)
    ys, xs = np.meshgrid(np.arange(fy, h, step), np.arange(fx, w, step), indexing="ij")
    markers[ys, xs] = np.arange(1, ys.size + 1).reshape(ys.shape)
    cv2.watershed(img, markers)
    # watershed lines (-1) join the neighbouring segment
    lines = markers < 0
    if lines.any():
        grown = cv2.dilate(np.where(lines, 0, markers).astype(np.float32), np.ones((3, 3), np.uint8))
        markers[lines] = grown[lines].astype(np.int32)
    markers = np.maximum(markers - 1, 0)
    return markers, int(ys.size)


def region_features(stack: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Per region: mean and standard deviation of every feature, plus log pixel count."""
    flat = labels.ravel()
    count = np.bincount(flat, minlength=n).astype(np.float64)
    c = np.maximum(count, 1)
    cols = []
    for k in range(stack.shape[0]):
        v = stack[k].ravel().astype(np.float64)
        m = np.bincount(flat, weights=v, minlength=n) / c
        s = np.sqrt(np.maximum(np.bincount(flat, weights=v * v, minlength=n) / c - m * m, 0))
        cols += [m, s]
    cols.append(np.log1p(count))
    return np.column_stack(cols).astype(np.float32)


def _neighbour_mean(X: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Per region, the mean row of the regions it touches (4-connected)."""
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    cut = a != b
    # unique undirected pairs through one int64 key, then both directions
    key = np.unique(np.minimum(a[cut], b[cut]).astype(np.int64) * n + np.maximum(a[cut], b[cut]))
    i, j = key // n, key % n
    src, dst = np.concatenate([i, j]), np.concatenate([j, i])
    cnt = np.maximum(np.bincount(src, minlength=n), 1).astype(np.float64)
    out = np.empty_like(X)
    for k in range(X.shape[1]):
        out[:, k] = np.bincount(src, weights=X[dst, k].astype(np.float64), minlength=n) / cnt
    return out


def segment_features(stack: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Superpixel rows: :func:`region_features` plus the mean of each feature over the
    touching superpixels. Context matters: a roof segment is told from bright
    bare soil by what lies around it (shadow, road, other roof segments)."""
    X = region_features(stack, labels, n)
    return np.hstack([X, _neighbour_mean(X[:, 0:-1:2], labels, n)])


def fit(X: np.ndarray, y: np.ndarray, *, mode: str, nir: bool, seed: int = 0,
        sample_weight: np.ndarray | None = None) -> dict:
    """Fit the gradient-boosted classifier; returns the model dict. ``sample_weight``:
    how much each row counts (on top of the balancing of the two classes)."""
    from threadpoolctl import threadpool_limits  # with scikit-learn (see _members)

    if len(np.unique(y)) < 2:
        raise ModelError("training data holds only one class",
                         hint="give examples of both real changes and non-changes (false alarms)")
    # few verdicts (a new county) must still be able to split: scale the leaf size.
    # Early stopping as scikit-learn's "auto" (over 10,000 rows); without it every
    # seed grows the same trees, so only then is an ensemble worth its cost
    early = len(y) > EARLY_STOP_ROWS
    # a few hundred rows (verdicts): one thread. OpenMP's threads cost more than they
    # win on so little, and far more on a busy machine (40 rows, 300 trees: 0.3 s on
    # one thread, 4-12 s on two shared cores)
    with threadpool_limits(None if early else 1):
        members = _members(X, y, mode, seed, early, sample_weight)
    clf = MeanClassifier(members)
    return {"version": MODEL_VERSION, "mode": mode, "nir": bool(nir), "features": list(FEATURE_NAMES),
            "classifier": clf, "n_samples": int(len(y)), "n_positive": int(y.sum())}


def _members(X, y, mode, seed, early, sample_weight) -> list:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return [HistGradientBoostingClassifier(max_iter=300, learning_rate=0.08, max_leaf_nodes=31,
                                           min_samples_leaf=int(min(20, max(2, len(y) // 8))),
                                           l2_regularization=1.0, class_weight="balanced",
                                           early_stopping=early, random_state=seed + k)
            .fit(X, y, sample_weight=sample_weight)
            for k in range(ENSEMBLE if mode == "segments" and early else 1)]


def save_model(model: dict, path) -> Path:
    # joblib is imported where a model file is written or read: every detection and
    # every worker process imports this module (~60 ms for joblib), most with no model
    import joblib

    with atomic_path(path) as tmp:
        joblib.dump(model, tmp)
    return Path(path)


def load_model(path) -> dict:
    """Load and check a model saved by :func:`save_model`; raises ModelError."""
    path = Path(path)
    if not path.exists():
        raise ModelError("model file does not exist", path=path, hint="train one with `gis model train`")
    import joblib  # see save_model

    try:
        model = joblib.load(path)
    except Exception as exc:  # joblib raises many kinds (pickle, EOF, ...): all mean unusable
        raise ModelError(f"cannot load model ({type(exc).__name__}: {exc})", path=path,
                         hint="train it again with `gis model train`") from exc
    if not isinstance(model, dict) or model.get("version") != MODEL_VERSION or \
            model.get("features") != list(FEATURE_NAMES):
        raise ModelError("model was made by another version of gis", path=path,
                         hint="train it again with `gis model train`")
    return model


def check_nir(model: dict, nir: bool) -> None:
    """Refuse a model trained on other bands than the imagery's (``nir``: it has a NIR band)."""
    if model["nir"] != nir:
        raise ModelError(f"model was trained on {'RGB+NIR' if model['nir'] else 'RGB'} imagery but "
                         f"these images are {'RGB+NIR' if nir else 'RGB'}",
                         hint="train a model on imagery with the same bands")


def check_look(model: dict, lab_ref, where: str = "") -> float | None:
    """Warn (:class:`~gis.errors.ModelLookWarning`) when the scene's mean colour ``lab_ref``
    (CIE Lab, :attr:`SceneStats.lab_ref`) lies more than :data:`LOOK_DELTA_E` from the
    colour of the imagery the model learnt from; return that distance (None: unknown,
    a model trained before it was recorded)."""
    ref = model.get("lab_ref")
    if ref is None or lab_ref is None:
        return None
    d = float(np.linalg.norm(np.asarray(ref, np.float64) - np.asarray(lab_ref, np.float64)))
    if d > LOOK_DELTA_E:
        warnings.warn(f"{where + ': ' if where else ''}the model learnt from imagery whose mean colour is "
                      f"{d:.0f} Lab units from this scene's (more than {LOOK_DELTA_E:.0f}): imagery of "
                      "another county, supplier or season; expect it to drop real changes. Train it again "
                      "on this imagery (`gis model train --workspace`)", ModelLookWarning, stacklevel=2)
    return d


def segment_probability(model: dict, f: dict, res: float, nir: bool) -> np.ndarray:
    """Change probability per pixel: the mean over the :data:`GRID_SHIFTS` segmentations
    of each segment's probability."""
    check_nir(model, nir)
    stack = feature_stack(f)
    out = None
    for shift in GRID_SHIFTS:
        labels, n = superpixels(f, res, shift)
        p = model["classifier"].predict_proba(segment_features(stack, labels, n))[:, 1].astype(np.float32)[labels]
        out = p if out is None else out + p
    return out / np.float32(len(GRID_SHIFTS))


def object_probability(model: dict, f: dict, labels: np.ndarray, n: int, nir: bool) -> np.ndarray:
    """Probability that each labelled object (1..n-1) is a real change."""
    check_nir(model, nir)
    X = region_features(feature_stack(f), labels, n)
    return model["classifier"].predict_proba(X)[:, 1]


def pair_samples(before: np.ndarray, after: np.ndarray, label: np.ndarray, res: float,
                 stats: SceneStats, nir: bool) -> tuple[np.ndarray, np.ndarray]:
    """Training rows from one labelled pair: segment features, segment is change
    when more than half its pixels are labelled change."""
    f = compute_features(before, after, stats, nir=nir, full=True, res=res)
    stack = feature_stack(f)
    Xs, ys = [], []
    for shift in TRAIN_SHIFTS:
        labels, n = superpixels(f, res, shift)
        X = segment_features(stack, labels, n)
        count = np.bincount(labels.ravel(), minlength=n)
        frac = np.bincount(labels.ravel(), weights=label.ravel().astype(np.float64), minlength=n) / \
            np.maximum(count, 1)
        keep = count > 0
        Xs.append(X[keep])
        ys.append((frac[keep] > 0.5).astype(np.uint8))
    return np.concatenate(Xs), np.concatenate(ys)
