"""Co-registration: a before image whose content sits off the after image's."""

import logging

import numpy as np
import rasterio
import shapely
from click.testing import CliRunner
from detect_fixtures import crops, scene, structures  # noqa: F401
from rasterio.transform import Affine

from gis.cli import main
from gis.detect import detect_changes
from gis.detect.register import estimate_shift


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


def test_cli_no_register(scene, tmp_path):
    same = _offset(scene["same"], tmp_path / "same_off.tif", 2.0, 1.0)
    for flag, quiet in (([], True), (["--no-register"], False)):
        out = tmp_path / f"c{len(flag)}.gpkg"
        r = CliRunner().invoke(main, ["detect", "--before", str(scene["before"]), "--after", str(same),
                                      "--out", str(out), "--no-progress", *flag])
        assert r.exit_code == 0, r.output
        assert ("no changes" in r.output) == quiet, r.output
