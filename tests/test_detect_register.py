"""Co-registration: a before image whose content sits off the after image's."""

import dataclasses
import logging

import numpy as np
import rasterio
import shapely
from click.testing import CliRunner
from detect_fixtures import BOUNDS, CRS, X0, Y0, crops, ortho, scene, structures  # noqa: F401
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.warp import reproject
from rasterio.windows import Window

from gis.cli import main
from gis.detect import detect_changes
from gis.detect.register import estimate_offset, estimate_shift
from gis.imagery.pair import open_pair
from gis.imagery.reading import _dataset, _window_shift, read_window


def _offset(src_path, out, dx, dy):
    """A copy of ``src_path`` georeferenced (dx, dy) m off: the ground it shows sits
    that far east and north of where the other date puts it."""
    with rasterio.open(src_path) as src:
        prof, data = src.profile, src.read()
    t = prof["transform"]
    prof["transform"] = Affine(t.a, t.b, t.c + dx, t.d, t.e, t.f + dy)
    with rasterio.open(out, "w", **prof) as dst:
        dst.write(data)
    return out


def _pair_on_one_grid(d, *, cols, rows):
    """before.tif and after.tif on the fixtures' grid, the after image's content
    ``cols`` pixels west and ``rows`` pixels south of the before image's: both cut
    from one larger rendering (the synthetic scene's trees and villages depend on
    the extent rendered). One grid, so the before image is read by whole pixels."""
    x0, y0, x1, y1 = BOUNDS
    pad = 10  # px
    big = {}
    for name, epoch, planted in (("before", 1, False), ("after", 2, True)):
        path = ortho(d / f"{name}.big.tif", epoch=epoch, planted=planted,
                     bounds=(x0 - pad * 0.5, y0 - pad * 0.5, x1 + pad * 0.5, y1 + pad * 0.5))
        with rasterio.open(path) as src:
            big[name], prof = src.read(), src.profile
    prof["transform"] = rasterio.transform.from_origin(x0, y1, 0.5, 0.5)
    prof["width"], prof["height"] = 800, 600
    out = {}
    for name, r, c in (("before", pad, pad), ("after", pad - rows, pad + cols)):
        out[name] = d / f"{name}.tif"
        with rasterio.open(out[name], "w", **prof) as dst:
            dst.write(big[name][:, r:r + 600, c:c + 800])
    return out["before"], out["after"]


def _texture(seed, shape=(400, 400)):
    import cv2

    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 2) * 255


def test_estimate_shift_recovers_an_offset_and_refuses_a_varying_one(caplog):
    blocks, still, warped = [], [], []
    for seed in range(5):
        t = _texture(seed)
        before = np.repeat(t[None, 20:276, 20:276], 3, 0)
        after = np.repeat(t[None, 23:279, 18:274], 3, 0)  # after[r, c] = before[r + 3, c - 2]
        valid = np.ones((256, 256), bool)
        blocks.append((before, after, valid))
        still.append((before, before.copy(), valid))
        # every block off by another amount: the orthophoto is warped, not shifted
        warped.append((before, np.repeat(t[None, 20 + 3 * seed:276 + 3 * seed, 20:276], 3, 0), valid))
    dx, dy = estimate_shift(blocks)
    assert abs(dx - 2) < 0.2 and abs(dy + 3) < 0.2
    assert estimate_shift(still) is None
    with caplog.at_level(logging.WARNING, logger="gis.detect"):
        assert estimate_shift(warped) is None
    assert "varies over the scene" in caplog.text
    # nothing to match: a featureless block, or too little of it valid
    flat = np.full((3, 256, 256), 80, np.float32)
    assert estimate_shift([(flat, flat, np.ones((256, 256), bool))]) is None
    assert estimate_shift([(blocks[0][0], blocks[0][1], np.zeros((256, 256), bool))]) is None


def test_offset_flights_give_no_false_alarms(scene, tmp_path, caplog):
    # two flights georeferenced 2 m apart: without co-registration every edge moved
    same = _offset(scene["same"], tmp_path / "same_off.tif", 2.0, 1.0)
    assert len(detect_changes(scene["before"], same, register=False)) > 0
    with caplog.at_level(logging.WARNING, logger="gis.detect"):
        assert len(detect_changes(scene["before"], same)) == 0
    assert "2.0 m east and 1.0 m north" in caplog.text and str(scene["before"]) in caplog.text
    # the planted objects are still all found, and nothing else
    after = _offset(scene["after"], tmp_path / "after_off.tif", 3.0, -2.0)
    ch = detect_changes(scene["before"], after)
    planted = [g for g in np.concatenate([structures().geometry.values, crops().geometry.values])]
    hit = [ch.geometry.intersection(shapely.affinity.translate(g, 3.0, -2.0)).area.sum() / g.area >= 0.3
           for g in planted]
    assert all(hit)
    moved = shapely.affinity.translate(shapely.union_all(planted), 3.0, -2.0)
    assert ch.geometry.intersects(moved).all(), ch
    # the same run without co-registration: more objects, the edges of what moved
    assert len(detect_changes(scene["before"], after, register=False)) > len(ch)


def test_offset_on_the_same_grid_is_read_by_whole_pixels(tmp_path, caplog):
    # the usual case: both flights delivered on one grid, the content 2.5 m west and
    # 1.5 m south in the after image; the before image is read 5 and 3 pixels on
    before, after = _pair_on_one_grid(tmp_path, cols=5, rows=3)
    with caplog.at_level(logging.WARNING, logger="gis.detect"):
        ch = detect_changes(before, after)
    assert "2.5 m west and 1.5 m south" in caplog.text
    planted = [shapely.affinity.translate(g, -2.5, -1.5)
               for g in np.concatenate([structures().geometry.values, crops().geometry.values])]
    assert all(ch.geometry.intersection(g).area.sum() / g.area >= 0.3 for g in planted)
    assert ch.geometry.intersects(shapely.union_all(planted)).all(), ch
    assert len(detect_changes(before, after, register=False)) > len(ch)
    # a roof built across the after image's northern edge: the before image, read 3 rows
    # on, has no data for the first 3 rows, so the roof is reported up to them only (up
    # to the first whole 1 m work pixel past them)
    with rasterio.open(after) as src:
        prof, data = src.profile, src.read()
    data[:, :30, 300:340] = np.array([168, 72, 58], np.uint8)[:, None, None]
    edge = tmp_path / "edge_after.tif"
    with rasterio.open(edge, "w", **prof) as dst:
        dst.write(data)
    detect_changes(before, edge, mask_out=tmp_path / "edge.tif")
    with rasterio.open(tmp_path / "edge.tif") as src:
        m = src.read(1)
    assert not m[:4].any() and m[4:28, 302:338].all()
    # worker processes read it shifted too (the offset travels with the pair)
    par = detect_changes(before, after, workers=2, block=256)
    assert par.geometry.to_wkb().tolist() == detect_changes(before, after, block=256).geometry.to_wkb().tolist()
    # the before image is read 5 columns and 3 rows on, without resampling; the strip
    # it does not reach is invalid
    pair = dataclasses.replace(open_pair(before, after), before_warp=Affine.translation(-5, -3))
    wd = read_window(pair, Window(0, 0, 800, 600), 1)
    entry = _dataset(pair.before, pair.grid, Resampling.bilinear, pair.before_warp)
    assert entry["ds"] is entry["src"] and _window_shift(entry, Window(0, 0, 800, 600), 1) == (-5, -3)
    assert not wd.valid[:3].any() and not wd.valid[:, :5].any() and wd.valid[3:, 5:].all()
    with rasterio.open(before) as src:
        assert np.array_equal(wd.before[:, 3:, 5:], src.read()[:, :-3, :-5].astype(np.float32))


def test_offset_keeps_the_before_image_on_its_overview(tmp_path, caplog):
    # COG orthophotos carry 2x average overviews, which detection (1 m work pixels) reads
    # instead of decoding full resolution: the shift is then a whole number of work
    # pixels, so the before image's windows stay on the overview's lattice
    before, after = _pair_on_one_grid(tmp_path, cols=5, rows=3)
    plain = detect_changes(before, after)
    for path in (before, after):
        with rasterio.open(path, "r+") as dst:
            dst.build_overviews([2], Resampling.average)
    with caplog.at_level(logging.INFO, logger="gis"):
        ch = detect_changes(before, after)
    # read from the overview twice: as first sampled, and again once shifted
    assert caplog.text.count(f"{before}: reading its 2x overview") == 2
    # 2.5 m west and 1.5 m south, applied as 2 or 3 m and 2 or 1 m: the rest, under half
    # a work pixel, does no harm
    planted = [shapely.affinity.translate(g, -2.5, -1.5)
               for g in np.concatenate([structures().geometry.values, crops().geometry.values])]
    assert all(ch.geometry.intersection(g).area.sum() / g.area >= 0.3 for g in planted)
    assert ch.geometry.intersects(shapely.union_all(planted)).all(), ch
    assert len(ch) == len(plain)


def test_cli_no_register(scene, tmp_path):
    same = _offset(scene["same"], tmp_path / "same_off.tif", 2.0, 1.0)
    for flag, quiet in (([], True), (["--no-register"], False)):
        out = tmp_path / f"c{len(flag)}.gpkg"
        r = CliRunner().invoke(main, ["detect", "--before", str(scene["before"]), "--after", str(same),
                                      "--out", str(out), "--no-progress", *flag])
        assert r.exit_code == 0, r.output
        assert ("no changes" in r.output) == quiet, r.output


def test_training_tiles_are_registered_by_whole_pixels():
    from gis.detect.training import _registered, _shrink

    t = _texture(3, (320, 320))
    before = np.repeat(t[None, 10:266, 20:276], 3, 0)
    after = np.repeat(t[None, 14:270, 26:282], 3, 0)  # after[r, c] = before[r + 4, c + 6]
    moved = _registered(before, _shrink(before, 2), _shrink(after, 2), 2)
    assert np.array_equal(moved[:, :-4, :-6], after[:, :-4, :-6])  # no resampling: exact
    assert _registered(before, _shrink(before, 2), _shrink(before, 2), 2) is None  # aligned: left alone


def _field_blocks(offset_at, seed=9, at=None):
    """Blocks of 256 px of one texture, by default 4 x 4 of them 256 px apart (else
    centred on ``at``): the after block at work pixel centre (c, r) shows the before
    block's content moved by ``offset_at(c, r)`` (rounded to whole pixels); with each
    block's centre."""
    t = _texture(seed, (1200, 1200))
    blocks, centres = [], []
    grid = [(c, r) for r in range(128, 1024, 256) for c in range(128, 1024, 256)]
    for c, r in (grid if at is None else at):
        dx, dy = (round(v) for v in offset_at(c, r))
        after = t[r - 128 + 50:r + 128 + 50, c - 128 + 50:c + 128 + 50]
        # after[y, x] = before[y - dy, x - dx]
        before = t[r - 128 + 50 + dy:r + 128 + 50 + dy, c - 128 + 50 + dx:c + 128 + 50 + dx]
        blocks.append((np.repeat(before[None], 3, 0), np.repeat(after[None], 3, 0), np.ones((256, 256), bool)))
        centres.append((c, r))
    return blocks, centres


def test_estimate_offset_fits_a_scale_and_rotation(caplog):
    # a before orthophoto 0.4 % larger and turned 0.1 degree: the offset grows across
    # the scene, and one shift would leave metres somewhere
    g = np.array([[0.004, -0.002, -1.0], [0.002, 0.004, 2.0]])
    blocks, centres = _field_blocks(lambda c, r: g @ (c, r, 1))
    fit = estimate_offset(blocks, centres)
    xy1 = np.column_stack([np.array(centres), np.ones(len(centres))])
    assert np.abs(xy1 @ fit.T - xy1 @ g.T).max() < 0.6
    with caplog.at_level(logging.WARNING, logger="gis.detect"):
        assert estimate_shift(blocks) is None  # no positions: one shift or nothing
    assert "varies over the scene" in caplog.text
    # one shift for the whole scene is still one shift (no gradient fitted to noise)
    fit = estimate_offset(*_field_blocks(lambda c, r: (3.0, -2.0)))
    assert np.array_equal(fit[:, :2], np.zeros((2, 2))) and np.allclose(fit[:, 2], (3, -2), atol=0.2)
    # blocks along a road's red line (a row of blocks, 8 px either side of it): the field
    # follows the line and is held constant across it, not extrapolated from 16 px
    road = [(c, 384 + 8 * (-1) ** i) for i, c in enumerate(range(128, 1000, 110))]
    fit = estimate_offset(*_field_blocks(lambda c, r: g @ (c, r, 1), at=road))
    assert fit is not None and np.allclose(fit[:, 1], 0, atol=1e-4)
    along = np.array([[c, 384, 1] for c in range(128, 1024, 256)], float)
    assert np.abs(along @ fit.T - along @ g.T).max() < 0.6
    # offsets no plane explains (orthophotos rectified over different terrain): refused
    rng = np.random.default_rng(1)
    jumps = rng.integers(-4, 5, (16, 2))
    order = iter(range(16))
    blocks, centres = _field_blocks(lambda c, r: jumps[next(order)])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gis.detect"):
        assert estimate_offset(blocks, centres) is None
    assert "in no way one shift, scale or rotation explains" in caplog.text


def test_before_image_of_another_scale_is_registered_window_by_window(tmp_path, caplog):
    # a before orthophoto 0.4 % larger than the after one (another flight height or lens
    # calibration), delivered on the after image's grid: the same ground lies 0 m apart at
    # the north-west corner and 3 m east and south at the south-east. No one shift fits
    side = 768.0
    bounds = (X0, Y0, X0 + side, Y0 + side)
    raw = ortho(tmp_path / "raw.tif", epoch=1, planted=False, bounds=bounds)
    same = ortho(tmp_path / "same.tif", epoch=2, planted=False, bounds=bounds)
    after = ortho(tmp_path / "after.tif", epoch=3, planted=True, bounds=bounds)
    before = tmp_path / "before.tif"
    with rasterio.open(raw) as src:
        prof, data = src.profile, src.read()
    out = np.zeros_like(data)
    reproject(data, out, src_transform=rasterio.transform.from_origin(X0, Y0 + side, 0.5 * 1.004, 0.5 * 1.004),
              src_crs=CRS, dst_transform=prof["transform"], dst_crs=CRS, resampling=Resampling.cubic)
    with rasterio.open(before, "w", **prof) as dst:
        dst.write(out)
    assert len(detect_changes(before, same, register=False)) > 10
    with caplog.at_level(logging.WARNING, logger="gis.detect"):
        assert len(detect_changes(before, same)) == 0
    assert "varying across the scene" in caplog.text and "window by window" in caplog.text
    # the planted objects are all found where the after image shows them, and nothing else
    ch = detect_changes(before, after)
    planted = np.concatenate([structures().geometry.values, crops().geometry.values])
    assert all(ch.geometry.intersection(g).area.sum() / g.area >= 0.3 for g in planted)
    assert ch.geometry.intersects(shapely.union_all(planted)).all(), ch
