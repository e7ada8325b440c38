"""The fast paths of detection give the same results as the plain ones they replaced:
features (cv2.merge / contiguous Lab planes / in-place float32 vs numpy transposes),
labelling (Grana's algorithm vs OpenCV's default), polygonising (the labels'
bounding box vs the whole window; OpenCV-traced outlines vs GDAL's polygoniser),
the scene sample's feature maps reused by their windows."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import shapely
from rasterio.features import shapes
from rasterio.transform import from_origin
from shapely.geometry import shape

from gis.detect.features import SceneStats, compute_features
from gis.detect.objects import MIN_AREA, components, polygonise


def _scene(seed: int, h: int = 96, w: int = 128, bands: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, bands)).astype(np.float32), (0, 0), 3)
    img = np.clip(base * 2 - 128 + rng.normal(0, 8, base.shape), 0, 255).astype(np.float32)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def _plain(before, after, stats, nir, res):
    """The unsupervised feature maps written the plain numpy way (the earlier code)."""
    s05, s15 = max(0.5 / res, 0.5), max(1.5 / res, 0.7)
    nb = before.shape[0]
    blur = lambda x, s: cv2.GaussianBlur(x, (0, 0), s)  # noqa: E731
    before = before * stats.gain[:nb, None, None] + stats.offset[:nb, None, None]
    a8 = np.ascontiguousarray(np.clip(before[:3], 0, 255).transpose(1, 2, 0)).astype(np.uint8)
    b8 = np.ascontiguousarray(np.clip(after[:3], 0, 255).transpose(1, 2, 0)).astype(np.uint8)
    lab_a = blur(cv2.cvtColor(a8, cv2.COLOR_RGB2Lab).astype(np.float32), s05)
    lab_b = blur(cv2.cvtColor(b8, cv2.COLOR_RGB2Lab).astype(np.float32), s05)
    for lab in (lab_a, lab_b):
        lab[..., 0] *= 100 / 255
        lab[..., 1:] -= 128
    d = lab_b - lab_a
    dmag = blur(cv2.magnitude(cv2.magnitude(d[..., 0], d[..., 1]), d[..., 2]), s15)
    sat = lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32) * (1 / 255)  # noqa: E731

    def veg(img):
        r, g, b = img[0], img[1], img[2]
        return (img[3] - r) / (img[3] + r + 1e-3) if nir else (2 * g - r - b) / (r + g + b + 1e-3)

    def roof(s, v, la, lb):
        grey = np.clip(1 - s / 0.35, 0, 1) * np.clip(1 - v / (0.25 if nir else 0.08), 0, 1)
        return np.minimum(grey + np.clip(-lb / 20, 0, 1) + np.clip((la - 22) / 12, 0, 1), 1)

    sat_a, sat_b = blur(sat(a8), s15), blur(sat(b8), s15)
    veg_a, veg_b = blur(veg(before), s15), blur(veg(after), s15)
    roof_a = roof(sat_a, veg_a, lab_a[..., 1], lab_a[..., 2])
    roof_b = roof(sat_b, veg_b, lab_b[..., 1], lab_b[..., 2])
    change = np.tanh(dmag / 15.0)
    return {"dmag": dmag, "roof_a": roof_a, "roof_b": roof_b, "veg_a": veg_a, "veg_b": veg_b,
            "building": roof_b * np.clip(1 - 0.7 * roof_a, 0, 1) * change,
            "demolition": roof_a * np.clip(1 - 0.7 * roof_b, 0, 1) * change,
            "veg_gain": veg_b - veg_a, "L_a": lab_a[..., 0], "B_b": lab_b[..., 2], "dL": d[..., 0],
            "sat_b": sat_b}


@pytest.mark.parametrize("nir,res", [(False, 0.5), (False, 1.0), (True, 0.5)])
def test_features_match_plain_formulas(nir, res):
    bands = 4 if nir else 3
    before, after = _scene(1, bands=bands), _scene(2, bands=bands)
    stats = SceneStats(gain=np.array([1.05, 0.95, 1.1, 0.9], np.float32),
                       offset=np.array([-4, 3, 1, 2], np.float32))
    ref = _plain(before, after, stats, nir, res)
    fast = compute_features(before, after, stats, nir=nir, full=True, res=res)
    for k, v in ref.items():
        assert fast[k].dtype == np.float32 and fast[k].shape == v.shape
        np.testing.assert_allclose(fast[k], v, rtol=0, atol=1e-5 * max(1.0, float(np.abs(v).max())), err_msg=k)


def _blobs(seed: int, shape=(120, 150)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.uniform(0, 1, shape).astype(np.float32), (0, 0), 2) > 0.53


@pytest.mark.parametrize("seed", range(5))
def test_grana_labelling_equals_default(seed):
    m = _blobs(seed).view(np.uint8)
    default = cv2.connectedComponentsWithStats(m, connectivity=8, ltype=cv2.CV_32S)
    grana = cv2.connectedComponentsWithStatsWithAlgorithm(m, 8, cv2.CV_32S, cv2.CCL_GRANA)
    assert default[0] == grana[0] > 3
    for a, b in zip(default[1:], grana[1:]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", range(3))
def test_components_and_polygons_equal_whole_window_versions(seed):
    rng = np.random.default_rng(seed)
    shape_ = (120, 150)
    masks = {"new_structure": (_blobs(seed, shape_), rng.uniform(0, 1, shape_).astype(np.float32)),
             "new_crops": (_blobs(seed + 10, shape_), rng.uniform(0, 1, shape_).astype(np.float32))}
    bright = rng.uniform(100, 255, shape_).astype(np.float32)
    labels, records = components(masks, res=1.0, core=(0, 0) + shape_, min_area=MIN_AREA, brightness=bright)
    # confidence and brightness as functions of the object pixels: the same records
    lazy = {k: (m, lambda fg, c=c: c.ravel()[fg]) for k, (m, c) in masks.items()}
    labels2, records2 = components(lazy, res=1.0, core=(0, 0) + shape_, min_area=MIN_AREA,
                                   brightness=lambda fg: bright.ravel()[fg])
    assert records2 == records and np.array_equal(labels2, labels)
    assert len(records) > 3
    # the whole-window reference: label every kind, sum confidences over all pixels
    taken = np.zeros(shape_, bool)
    checked = set()
    for kind, (mask, conf) in masks.items():
        n, lab, st, _ = cv2.connectedComponentsWithStats((mask & ~taken).astype(np.uint8), connectivity=8)
        sums = np.bincount(lab.ravel(), weights=conf.ravel(), minlength=n) / np.maximum(st[:, 4], 1)
        for r in records:
            ids = np.unique(lab[labels == r["id"]])
            if r["id"] not in checked and len(ids) == 1 and ids[0] > 0 and st[ids[0], 4] == r["pixels"]:
                assert r["confidence"] == float(np.clip(sums[ids[0]], 0, 1))
                checked.add(r["id"])
        taken = np.isin(labels, list(checked))  # the objects of the kinds before
    assert checked == {r["id"] for r in records}
    # every pixel of the labels is one of the masks', each object is one component
    assert set(np.unique(labels)) == {0} | {r["id"] for r in records}
    tf = from_origin(500000.0, 3400000.0, 1.0, 1.0)
    fast = polygonise(labels, tf, 1.0)
    # the records' boxes are the labels' bounding boxes: the same polygons from them
    boxed = polygonise(labels, tf, 1.0, {r["id"]: r["box"] for r in records})
    assert {k: shapely.to_wkb(g) for k, g in boxed.items()} == {k: shapely.to_wkb(g) for k, g in fast.items()}
    plain = {}
    for g, v in shapes(labels, mask=labels > 0, transform=tf, connectivity=8):
        plain.setdefault(int(v), []).append(shape(g))
    assert set(fast) == set(plain)
    for k, parts in plain.items():
        ref = shapely.simplify(shapely.union_all(parts), 0.5, preserve_topology=True)
        assert shapely.equals_exact(shapely.normalize(fast[k]), shapely.normalize(ref), 1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_area_mask_is_rasterize_up_to_the_outline(seed):
    """The red-line zone mask (OpenCV fillPoly) equals rasterio's rasterize except
    within a pixel of the outline; holes and multi-part zones are kept."""
    from rasterio.features import rasterize

    from gis.imagery.windows import area_mask as _area_mask

    rng = np.random.default_rng(seed)
    tf = from_origin(1000.0, 2000.0, 1.0, 1.0)
    for _ in range(20):
        cx, cy = 1000 + rng.uniform(0, 200), 2000 - rng.uniform(0, 200)
        zone = shapely.buffer(shapely.Point(cx, cy), rng.uniform(20, 90), quad_segs=int(rng.integers(2, 8)))
        zone = shapely.difference(zone, shapely.buffer(shapely.Point(cx + 4, cy - 3), 12))  # a hole
        zone = shapely.union(zone, shapely.box(1005, 1800, 1030, 1830))  # often a second part
        zone = shapely.intersection(zone, shapely.box(1000, 2000 - 200, 1200, 2000))
        want = rasterize([zone], out_shape=(200, 200), transform=tf, fill=0, dtype="uint8").astype(bool)
        got = _area_mask(zone, (200, 200), tf)
        r, c = np.nonzero(got != want)  # only pixels the outline passes within a pixel of
        centres = shapely.points(1000 + c + 0.5, 2000 - r - 0.5)
        assert (shapely.distance(shapely.boundary(zone), centres) <= np.sqrt(2)).all()
        assert (got & ~want).sum() < 0.2 * want.sum()


def _gdal_polygons(labels, tf, res):
    """The GDAL polygoniser's objects (the earlier polygonise): shapes over the labels'
    bounding box, parts of one id joined, simplified by half a pixel."""
    from affine import Affine

    rows, cols = np.flatnonzero(labels.any(1)), np.flatnonzero(labels.any(0))
    box = labels[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    t = tf @ Affine.translation(int(cols[0]), int(rows[0]))
    parts = {}
    for g, v in shapes(box, mask=box > 0, transform=t, connectivity=8):
        parts.setdefault(int(v), []).append(shape(g))
    return {k: shapely.simplify(p[0] if len(p) == 1 else shapely.union_all(p), res * 0.5, preserve_topology=True)
            for k, p in parts.items()}


@pytest.mark.parametrize("seed", range(4))
def test_traced_polygons_are_gdals_vertex_for_vertex(seed):
    """OpenCV-traced outlines give the very polygons GDAL's polygoniser gives (same
    vertices, order and start, so the same simplification): blobs with holes,
    neighbouring labels of two kinds, labels touching themselves diagonally (left to
    GDAL) and objects on the window's edge, on grids of three pixel sizes."""
    rng = np.random.default_rng(seed)
    traced = pinched = holes = 0
    for k in range(40):
        shape_ = (int(rng.integers(20, 90)), int(rng.integers(20, 90)))
        m = cv2.GaussianBlur(rng.uniform(0, 1, shape_).astype(np.float32), (0, 0), rng.uniform(0.7, 3)) > \
            rng.uniform(0.45, 0.6)
        n, labels = cv2.connectedComponents(m.view(np.uint8), connectivity=8)
        if k % 2:  # a second kind next to the first: labels that share edges
            m2 = (_blobs(seed * 100 + k, shape_) & (labels == 0))
            _, lab2 = cv2.connectedComponents(m2.view(np.uint8), connectivity=8)
            labels = np.where(lab2 > 0, lab2 + n, labels).astype(np.int32)
        if not labels.any():
            continue
        res = (0.5, 1.0, 2.0)[k % 3]
        tf = from_origin(500000.0 + rng.uniform(0, 1e4), 3400000.0 + rng.uniform(0, 1e4), res, res)
        got, want = polygonise(labels, tf, res), _gdal_polygons(labels, tf, res)
        assert set(got) == set(want)
        for i, g in want.items():
            assert shapely.to_wkb(got[i]) == shapely.to_wkb(g), (seed, k, i)
        from gis.detect.objects import _boxes, _trace

        rings, rest = _trace(labels, _boxes(labels))
        traced += len(rings)
        pinched += len(rest)
        holes += sum(len(v) > 1 for v in rings.values())
    assert traced > 100 and pinched > 5 and holes > 3  # both paths were taken, holes too


def test_scene_moments_equal_the_gathered_pixels():
    """Colour matching's means and covariances from band-contiguous sub-grid copies
    equal those of the gathered valid pixels (the earlier code) to float64 rounding."""
    from gis.detect.scene import _moments

    rng = np.random.default_rng(3)
    imgs = [np.round(rng.uniform(0, 255, (3, 64, 80))).astype(np.float32) for _ in range(4)]
    imgs[1] *= np.float32(1.37)  # not whole numbers (scaled uint16 imagery)
    valid = [np.ones((64, 80), bool), rng.uniform(0, 1, (64, 80)) > 0.3, np.ones((64, 80), bool),
             np.zeros((64, 80), bool)]
    for k in (1, 2, 3):
        plain = np.concatenate([im[:, ::k, ::k][:, v[::k, ::k]] for im, v in zip(imgs, valid)], 1).astype(np.float64)
        mean, cov = _moments(imgs, valid, k)
        np.testing.assert_allclose(mean, plain.mean(1), rtol=1e-12)
        np.testing.assert_allclose(cov, np.cov(plain, bias=True), rtol=1e-10)


def test_colour_transfer_gives_the_after_covariance():
    """The colour matrix maps the before colours' covariance onto the after colours'
    (any saturation, white balance or mixing of the bands), and clips gains far from 1."""
    from gis.detect.scene import colour_transfer

    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (3, 5000)) * np.array([[30], [25], [20]])
    mix = np.array([[1.3, -0.2, -0.1], [-0.15, 1.25, -0.1], [-0.1, -0.2, 1.3]])  # more saturated
    y = mix @ x
    cb, ca = np.cov(x, bias=True), np.cov(y, bias=True)
    m = colour_transfer(cb, ca)
    np.testing.assert_allclose(m, m.T, atol=1e-9)
    np.testing.assert_allclose(m @ cb @ m, ca, rtol=1e-3, atol=1e-2)
    # what looks like a tripled contrast is different content, not light
    assert np.linalg.eigvalsh(colour_transfer(cb, cb * 9)).max() == pytest.approx(1.6)


def test_refined_outline_follows_the_score_between_work_pixels():
    """A roof whose edges fall mid-way through 1 m work pixels, on 0.5 m imagery: redrawn
    from the interpolated score on the fine grid (objects.refine), its outline and area
    are those of the roof, where the work pixels' staircase was off by half a pixel all
    round. Objects of other kinds are repeated pixel for pixel."""
    from gis.detect.objects import refine

    fac = 2
    roof = np.zeros((64, 64), np.float32)
    roof[9:40, 13:50] = 1  # fine pixels: odd edges cut work pixels in half
    p = roof.reshape(32, 2, 32, 2).mean((1, 3))  # the work pixels' share of roof
    labels = np.zeros((32, 32), np.int32)
    labels[p >= 0.5] = 1
    labels[25:30, 2:8] = 2  # a crop field: left as it is
    records = [{"id": 1, "kind": "new_structure", "pixels": int((labels == 1).sum()), "edge": False},
               {"id": 2, "kind": "new_crops", "pixels": 30, "edge": False}]
    blocky = np.repeat(np.repeat(labels == 1, fac, 0), fac, 1)
    fine = refine(labels, records, {"new_structure": (p, 0.5)}, np.ones((32, 32), bool), fac)
    truth = roof > 0

    def iou(m):
        return (m & truth).sum() / (m | truth).sum()

    assert iou(fine == 1) > 0.98 > iou(blocky) + 0.03
    assert records[0]["pixels"] == int((fine == 1).sum())
    assert abs(records[0]["pixels"] - truth.sum()) < 0.02 * truth.sum()
    assert np.array_equal(fine == 2, np.repeat(np.repeat(labels == 2, fac, 0), fac, 1))
    assert records[1]["pixels"] == 120
    # nothing is drawn where the images have no data
    valid = np.ones((32, 32), bool)
    valid[:, 24:] = False
    assert not (refine(labels, [dict(r) for r in records], {"new_structure": (p, 0.5)}, valid, fac)[:, 48:] == 1).any()
    # a redrawn object now under the minimum area is dropped, labels and record; one cut
    # by the window's edge is kept (its pieces are joined and measured later)
    small = {"new_structure": truth.sum() + 10, "new_crops": 1000}
    for edge, kept in ((False, [2]), (True, [1, 2])):
        rec = [dict(r, edge=edge if r["id"] == 1 else False) for r in records]
        out = refine(labels, rec, {"new_structure": (p, 0.5)}, np.ones((32, 32), bool), fac, small)
        assert [r["id"] for r in rec] == kept and set(np.unique(out)) == {0, *kept}


def test_relative_colours_are_measured_from_the_scenes_mean():
    """The trained classifier's *_rel features: Lab relative to the after image's mean
    colour over the scene sample (lab_of uses _lab's convention, so a window of the
    scene's mean colour reads 0), and so the same under another flight's exposure."""
    from gis.detect.scene import estimate_stats

    rng = np.random.default_rng(5)
    before = rng.uniform(60, 180, (3, 64, 64)).astype(np.float32)
    after = before.copy()
    after[:, 20:40, 20:40] = np.array([150, 150, 165], np.float32)[:, None, None]  # a grey roof
    valid = np.ones((64, 64), bool)
    stats = estimate_stats([(before, after, valid)], res=1.0)
    mean = after.reshape(3, -1).mean(1)
    assert np.allclose(stats.lab_ref, lab_of_direct(mean), atol=0.5)
    flat = np.broadcast_to(np.round(mean)[:, None, None], (3, 16, 16)).astype(np.float32).copy()
    f = compute_features(flat, flat, stats, full=True, res=1.0)
    for k in ("L_b_rel", "A_b_rel", "B_b_rel"):
        assert np.abs(f[k]).max() < 1.0, k
    assert np.abs(f["L_a_rel"]).max() < 3.0  # the before image is colour-matched first
    # 20 % darker (both dates): absolute lightness falls by ~8 units, relative by ~2
    dark = estimate_stats([(before * 0.8, after * 0.8, valid)], res=1.0)
    f0 = compute_features(before, after, stats, full=True, res=1.0)
    f1 = compute_features(before * 0.8, after * 0.8, dark, full=True, res=1.0)
    roof = (slice(24, 36), slice(24, 36))
    assert abs(f1["L_b"][roof].mean() - f0["L_b"][roof].mean()) > 5
    assert abs(f1["L_b_rel"][roof].mean() - f0["L_b_rel"][roof].mean()) < 3


def lab_of_direct(rgb):
    px = np.clip(np.round(rgb), 0, 255).astype(np.uint8).reshape(1, 1, 3)
    L, a, b = cv2.cvtColor(px, cv2.COLOR_RGB2Lab).astype(np.float32).ravel()
    return np.array([L * 100 / 255, a - 128, b - 128])
