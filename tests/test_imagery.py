"""gis.imagery: validation errors, dates, alignment onto the after grid, windows."""

import logging

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely

from detect_fixtures import BOUNDS, CRS, X0, Y0, ortho, scene  # noqa: F401 (fixture)
from gis.errors import BandMismatchError, CorruptRasterError, DSMDateError, MissingCRSError, RasterAlignmentError
from gis.imagery import close_datasets, open_pair, raster_date, read_window, windows_within
from gis.synthetic.render import render_dsm


def test_missing_crs(tmp_path, scene):
    p = tmp_path / "nocrs.tif"
    with rasterio.open(scene["before"]) as src:
        prof = src.profile
        prof.update(crs=None)
        with rasterio.open(p, "w", **prof) as dst:
            dst.write(src.read())
    with pytest.raises(MissingCRSError, match="no CRS"):
        open_pair(p, scene["after"])


def test_no_overlap(tmp_path, scene):
    far = ortho(tmp_path / "far.tif", epoch=1, planted=False, bounds=(X0 + 5000, Y0, X0 + 5100, Y0 + 100))
    with pytest.raises(RasterAlignmentError, match="do not overlap"):
        open_pair(far, scene["after"])


def test_band_mismatch_and_band_map(tmp_path, scene):
    nir = ortho(tmp_path / "nir.tif", epoch=1, planted=False, nir=True)
    with pytest.raises(BandMismatchError, match="band map"):
        open_pair(nir, scene["after"])
    pair = open_pair(nir, scene["after"], band_map={"before": (1, 2, 3), "after": (1, 2, 3)})
    assert pair.bands_before == (1, 2, 3) and not pair.has_nir
    # an RGBA image has 3 data bands: against RGB+NIR the message says where the 4th went
    with rasterio.open(scene["after"]) as src:
        prof, data = src.profile, src.read()
    prof.update(count=4, photometric="RGB", alpha="YES")
    rgba = tmp_path / "rgba.tif"
    with rasterio.open(rgba, "w", **prof) as dst:
        dst.write(np.concatenate([data, np.full_like(data[:1], 255)]))
    with pytest.raises(BandMismatchError, match="has 4 bands and rgba.tif has 3 bands and an alpha mask"):
        open_pair(nir, rgba)
    assert open_pair(scene["before"], rgba).bands_after == (1, 2, 3)


def test_truncated_file(tmp_path, scene):
    p = tmp_path / "cut.tif"
    data = scene["after"].read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptRasterError):
        open_pair(scene["before"], p)
    (tmp_path / "junk.tif").write_text("not a raster")
    with pytest.raises(CorruptRasterError, match="cannot read"):
        open_pair(scene["before"], tmp_path / "junk.tif")


def test_dsm_dates(tmp_path, scene):
    img = ortho(tmp_path / "ortho_2026-11-01.tif", epoch=1, planted=False)
    assert raster_date(img).isoformat() == "2026-11-01"
    bad = render_dsm(tmp_path / "dsm.tif", bounds=BOUNDS, resolution=0.5, crs=CRS, seed=5, date="2026-10-01")
    assert raster_date(bad).isoformat() == "2026-10-01"
    with pytest.raises(DSMDateError, match="2026-10-01"):
        open_pair(scene["before"], img, dsm_after=bad)
    named = render_dsm(tmp_path / "dsm_20261101.tif", bounds=BOUNDS, resolution=0.5, crs=CRS, seed=5)
    open_pair(scene["before"], img, dsm_after=named)  # same date: accepted


def test_swapped_survey_dates_are_warned_about(tmp_path, caplog):
    early = ortho(tmp_path / "ortho_2026-10-01.tif", epoch=1, planted=False)
    late = ortho(tmp_path / "ortho_20261101.tif", epoch=2, planted=False)
    with caplog.at_level(logging.WARNING, logger="gis.imagery.pair"):
        open_pair(early, late)
    assert "swapped" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="gis.imagery.pair"):
        open_pair(late, early)
    assert "ortho_20261101.tif is dated 2026-11-01, after the after image ortho_2026-10-01.tif" in caplog.text
    assert "swapped" in caplog.text


def test_other_crs_and_resolution_is_warped_onto_after_grid(tmp_path, scene):
    # before in UTM 49N at 0.6 m: read through a WarpedVRT on the after grid
    from rasterio.warp import transform_bounds
    b = transform_bounds(CRS, "EPSG:32649", *BOUNDS)
    other = ortho(tmp_path / "utm.tif", epoch=1, planted=False, crs="EPSG:32649", resolution=0.6,
                  bounds=(b[0] - 30, b[1] - 30, b[2] - 60, b[3] + 30))
    pair = open_pair(other, scene["after"])
    wd = read_window(pair, windows_within(pair.grid)[0][0])
    assert wd.before.shape == wd.after.shape
    # ground outside the before image is invalid, inside is valid
    assert 0.6 < wd.valid.mean() < 0.99
    assert wd.valid[:, 0].mean() > 0.9 and not wd.valid[:, -1].any()


def test_open_files_are_reused_and_a_rewritten_file_is_read_again(tmp_path, scene):
    import gis.imagery.reading as im
    p = tmp_path / "b.tif"
    with rasterio.open(scene["before"]) as src:
        prof, data = src.profile, src.read()
    with rasterio.open(p, "w", **prof) as dst:
        dst.write(data)
    close_datasets()  # files other tests read
    pair = open_pair(p, scene["after"])
    win = windows_within(pair.grid)[0][0]
    first = read_window(pair, win)
    read_window(pair, win)
    assert len(im._OPEN.cache) == 2  # before and after, opened once for both reads
    with rasterio.open(p, "w", **prof) as dst:
        dst.write(255 - data)
    again = read_window(pair, win)
    assert np.allclose(again.before, 255 - first.before)
    close_datasets()
    assert not im._OPEN.cache


def test_average_overviews_are_read_other_overviews_ignored(tmp_path, scene):
    # at 1 m work pixels a 0.5 m image's 2x overview holds the pixels detection needs,
    # if it was built by averaging; a nearest-neighbour one must not be used
    import shutil

    from rasterio.enums import Resampling

    import gis.imagery.reading as im
    from gis.detect import detect_changes
    close_datasets()
    plain = open_pair(scene["before"], scene["after"])
    win = windows_within(plain.grid)[0][0]
    ref = read_window(plain, win, 2)
    for rs, used in (("average", True), ("nearest", False)):
        paths = []
        for name in ("before", "after"):
            p = tmp_path / f"{name}_{rs}.tif"
            shutil.copy(scene[name], p)
            with rasterio.open(p, "r+") as dst:
                dst.build_overviews([2], Resampling[rs])
            paths.append(p)
        close_datasets()
        pair = open_pair(*paths)
        for _ in range(2):  # the first read checks the overview, the second uses it (or not)
            wd = read_window(pair, win, 2)
            np.testing.assert_array_equal(wd.before, ref.before)
            np.testing.assert_array_equal(wd.after, ref.after)
            assert wd.valid.all() and wd.transform == ref.transform
        assert [e["ovr"] for e in im._OPEN.cache.values() if e["src"].name in map(str, paths)] == [used] * 2
        if used:
            a = detect_changes(scene["before"], scene["after"])
            b = detect_changes(*paths)
            assert len(a) and a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    close_datasets()


def test_windows_only_where_red_lines_are():
    from gis.imagery.pair import Grid
    g = Grid(rasterio.crs.CRS.from_user_input(CRS), rasterio.transform.from_origin(X0, Y0 + 5120, 1, 1), 5120, 5120)
    geoms = [shapely.box(X0 + 100, Y0 + 100, X0 + 200, Y0 + 200)]
    wins = windows_within(g, geoms, buffer=20, block=1024)
    assert len(wins) == 1 and wins[0][0].row_off == 4096 and wins[0][0].col_off == 0
    assert len(windows_within(g, None, block=1024)) == 25
    edge = [shapely.box(X0 + 1030, Y0 + 100, X0 + 1040, Y0 + 200)]  # buffer reaches block 0
    assert len(windows_within(g, edge, buffer=20, block=1024)) == 2


from hypothesis import given, settings, strategies as hs  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(w=hs.integers(1, 3000), h=hs.integers(1, 3000), block=hs.sampled_from([256, 512, 1024]))
def test_windows_tile_the_grid_exactly(w, h, block):
    from gis.imagery.pair import Grid
    g = Grid(rasterio.crs.CRS.from_user_input(CRS), rasterio.transform.from_origin(X0, Y0, 0.5, 0.5), w, h)
    wins = windows_within(g, None, block=block)
    assert sum(c.width * c.height for _, c in wins) == w * h  # no gap, no overlap
    for read, core in wins:
        assert read == core and core.col_off % block == 0 and core.row_off % block == 0
        assert core.col_off + core.width <= w and core.row_off + core.height <= h
