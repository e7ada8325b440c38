"""Boosted trees scored by onnxruntime give scikit-learn's probabilities."""

import pickle

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from gis.detect.classifier import MeanClassifier
from gis.detect.trees import TreeScorer


def _members(X, y, k=3):
    return [HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15, early_stopping=True,
                                           validation_fraction=0.2, random_state=s).fit(X, y) for s in range(k)]


def _adjacent_float32_data(seed=0, n=6000):
    """Features that take float32 values one unit in the last place apart: the
    trees' float64 thresholds then fall halfway between two float32 values,
    where rounding them to the nearest float32 would send rows at the upper
    value down the wrong branch. One feature is missing (NaN) in places."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(0, 40, size=(n, 4))
    base = np.float32([1.0, 3.5, 1000.0, 0.01])
    # consecutive positive float32 values are consecutive integers in their bits
    ladders = (base.view(np.int32)[None, :] + np.arange(40, dtype=np.int32)[:, None]).view(np.float32)
    X = np.take_along_axis(ladders, steps, axis=0)
    y = ((steps[:, 0] >= 17) ^ (steps[:, 1] >= 23) ^ (rng.random(n) < 0.1)).astype(np.uint8)
    X[rng.random(n) < 0.05, 2] = np.nan
    return X, y


def test_onnx_trees_match_scikit_learn_at_the_thresholds():
    X, y = _adjacent_float32_data()
    members = _members(X, y)
    ref = np.mean([m.predict_proba(X)[:, 1] for m in members], axis=0)
    p = TreeScorer(members).probability(X)
    # same branch for every row: only float32 summation of the leaves differs
    assert np.abs(p - ref).max() < 1e-5
    assert ((p >= 0.5) == (ref >= 0.5)).all()
    assert ((p >= 0.5) == y).mean() > 0.8  # the model learnt something, so the check is not vacuous


def test_mean_classifier_scores_with_onnx_and_survives_pickling():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 5)).astype(np.float32)
    y = (X[:, 0] - X[:, 3] + 0.3 * rng.normal(size=3000) > 0).astype(np.uint8)
    clf = MeanClassifier(_members(X, y, k=2))
    p = clf.predict_proba(X)
    assert p.shape == (3000, 2) and np.allclose(p.sum(axis=1), 1)
    ref = np.mean([m.predict_proba(X) for m in clf.members], axis=0)
    assert np.abs(p - ref).max() < 1e-5
    again = pickle.loads(pickle.dumps(clf))  # the onnxruntime session is rebuilt, not pickled
    assert again._scorer is None and np.array_equal(again.predict_proba(X), p)
    assert clf.predict_proba(X[:0]).shape == (0, 2)
