"""Work detection does once and shares: the scene sample's windows (decoded and
their feature maps computed for the statistics) are not decoded or computed again,
and reusing them changes nothing."""

from __future__ import annotations

import numpy as np
import shapely
from detect_fixtures import scene  # noqa: F401

from gis.detect import detect_changes, sampling, window
from gis.detect.features import compute_features
from gis.detect.scene import estimate_stats
from gis.imagery import close_datasets, gdal_env, open_pair, windows_within


def test_sample_features_are_the_windows_features(scene):
    pair = open_pair(scene["before"], scene["after"])
    windows = [(w, w) for w, _ in windows_within(pair.grid, block=256)]
    kept, order, feats = {}, [], []
    with gdal_env():
        stats = estimate_stats(sampling.sample_windows(pair, windows, 6, 2, kept, order), res=1.0, features=feats)
    close_datasets()
    assert len(order) == len(feats) == 6 and set(kept) == set(order)
    for i, f in zip(order, feats):
        # computed again with the final statistics (thresholds set): the same maps, to
        # the last bit but for cv2.magnitude, whose SIMD and scalar paths (chosen by
        # the arrays' memory alignment) may round the colour change 1 ulp apart
        again = compute_features(kept[i].before, kept[i].after, stats, res=1.0)
        assert set(f) == set(again)
        for k in f:
            np.testing.assert_allclose(f[k], again[k], rtol=1e-6, atol=1e-6, err_msg=k)
        np.testing.assert_array_equal(f["roof_b"], again["roof_b"])


def test_reusing_the_sample_changes_no_object(scene, monkeypatch):
    fast = detect_changes(scene["before"], scene["after"], block=256)
    # the same run with every window computed from scratch
    plain_run = window._run_window
    monkeypatch.setattr(window, "_run_window", lambda task, data, features=None: plain_run(task, None, None))
    plain = detect_changes(scene["before"], scene["after"], block=256)
    assert len(fast) >= 5 and len(fast) == len(plain)
    assert (fast.kind == plain.kind).all()
    # equal but for a pixel that 1 ulp of colour change could tip (see above)
    np.testing.assert_allclose(fast.area_m2, plain.area_m2, rtol=0.02)
    iou = shapely.area(shapely.intersection(fast.geometry.values, plain.geometry.values)) / \
        shapely.area(shapely.union(fast.geometry.values, plain.geometry.values))
    assert (iou > 0.95).all()
