"""Hostile imagery and faults in the weekly run (issue 15, points 12 and 16):
an all-nodata or partial orthophoto, a corrupt tile, a band map naming a band
the file lacks, and outputs that cannot be written (chips before the commit,
the map after it). Each ends in a named error, with the store as it was when
the error came before the commit."""

from __future__ import annotations

import errno
import pickle
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from click.testing import CliRunner

from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in, spot_outside
from detect_fixtures import BOUNDS, CRS, redlines, scene  # noqa: F401
from gis.cli import main
from gis.imagery.coverage import valid_share
from gis.errors import (
    BandIndexError,
    CorruptRasterError,
    CoverageError,
    OutputWriteError,
    WorkspaceError,
)
from gis.alerts.store import open_store
from gis.weekly import run_weekly

TODAY = DATES[-1]


# --- builders -------------------------------------------------------------------


def blank_out(path: Path, keep=None, *, nodata: float | None = 0) -> Path:
    """Rewrite ``path`` with every pixel 0 except inside ``keep`` (a map-space box),
    declaring ``nodata`` (None: declare none, a black image)."""
    with rasterio.open(path) as src:
        prof, data = src.profile, src.read()
    out = np.zeros_like(data)
    if keep is not None:
        win = rasterio.windows.from_bounds(*keep, transform=prof["transform"]).round_offsets().round_lengths()
        rows, cols = win.toslices()
        out[:, rows, cols] = data[:, rows, cols]
    prof["nodata"] = nodata
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(out)
    return path


def corrupt_block(path: Path, x: float, y: float) -> tuple[int, int]:
    """Overwrite the compressed tile holding map point (x, y) with garbage, as a bad
    copy does (all but the 2-byte zlib header: its first DEFLATE block then has the
    reserved type 11, which no decoder accepts); return the tile's (column, row)
    offset in pixels."""
    with rasterio.open(path) as src:
        row, col = src.index(x, y)
        bh, bw = src.block_shapes[0]
        bx, by = col // bw, row // bh
        offset = int(src.get_tag_item(f"BLOCK_OFFSET_{bx}_{by}", "TIFF", bidx=1))
        size = int(src.get_tag_item(f"BLOCK_SIZE_{bx}_{by}", "TIFF", bidx=1))
    with open(path, "r+b") as f:
        f.seek(offset + 2)
        f.write(b"\xff" * (size - 2))
    return bx * bw, by * bh


def red_area(ws: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(ws / "layers" / "redlines.gpkg").to_crs(CRS)


def store_state(ws: Path) -> tuple[bytes, int]:
    """The store's bytes and its number of runs."""
    return (ws / "store.gpkg").read_bytes(), len(open_store(ws / "store.gpkg").runs())


@pytest.fixture
def ws(tmp_path):
    """A workspace whose first epoch has been run (the baseline is in the store)."""
    root = make_workspace(tmp_path / "ws")
    run_weekly(root, DATES[0], detect=FakeDetect(), maps=False, today=TODAY)
    return root


def ortho(ws: Path, k: int) -> Path:
    return ws / "imagery" / f"{DATES[k].isoformat()}.tif"


# --- point 12: imagery that does not show the red lines ---------------------------


@pytest.mark.parametrize("nodata", [0, None], ids=["nodata-declared", "black-no-nodata"])
def test_weekly_refuses_an_all_nodata_orthophoto_and_commits_nothing(ws, nodata):
    blank_out(ortho(ws, 1), nodata=nodata)
    before = store_state(ws)
    detect = FakeDetect()
    with pytest.raises(CoverageError) as e:
        run_weekly(ws, DATES[1], detect=detect, maps=False, today=TODAY)
    msg = str(e.value)
    assert ortho(ws, 1).name in msg and "0.0 %" in msg and "min_coverage" in msg
    assert e.value.exit_code == 2
    assert detect.calls == []  # refused before any detection
    assert store_state(ws) == before  # byte for byte, and no run committed


def test_weekly_refuses_a_partial_flight_below_min_coverage(ws):
    red = red_area(ws)
    x0, y0, x1, y1 = red.total_bounds
    keep = (x0 - 100, y0 - 100, x0 + 0.3 * (x1 - x0), y1 + 100)  # the western 30 % of the red lines' extent
    expected = red.geometry.intersection(shapely.box(*keep)).area.sum() / red.geometry.area.sum()
    assert 0.05 < expected < 0.45
    blank_out(ortho(ws, 1), keep)
    before = store_state(ws)
    with pytest.raises(CoverageError) as e:
        run_weekly(ws, DATES[1], detect=FakeDetect(), maps=False, today=TODAY)
    shown = float(str(e.value).split(" % of the red lines")[0].rsplit(" ", 1)[1])
    assert shown == pytest.approx(100 * expected, abs=4)
    assert store_state(ws) == before
    # the threshold is the workspace's: lowered under the flight's share, the run goes on
    toml = ws / "gis.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("min_coverage = 0.5",
                                                             f"min_coverage = {expected / 2:.3f}"),
                    encoding="utf-8")
    s = run_weekly(ws, DATES[1], detect=FakeDetect(), maps=False, today=TODAY)
    assert s.epoch == DATES[1].isoformat() and len(open_store(ws / "store.gpkg").runs()) == 2


def test_weekly_checks_the_previous_epoch_too(ws):
    blank_out(ortho(ws, 0))  # the baseline's imagery is gone since it was run
    with pytest.raises(CoverageError, match=ortho(ws, 0).name):
        run_weekly(ws, DATES[1], detect=FakeDetect(), maps=False, today=TODAY)


def test_min_coverage_above_one_is_a_workspace_error(ws):
    toml = ws / "gis.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("min_coverage = 0.5", "min_coverage = 50"),
                    encoding="utf-8")
    with pytest.raises(WorkspaceError, match="min_coverage"):
        run_weekly(ws, DATES[1], detect=FakeDetect(), maps=False, today=TODAY)


def test_cli_weekly_nodata_is_one_line_exit_2(ws):
    blank_out(ortho(ws, 1))
    r = CliRunner().invoke(main, ["weekly", "--workspace", str(ws), "--epoch", DATES[1].isoformat(), "--no-maps"])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.output and "0.0 %" in r.stderr


def test_valid_share_samples_every_red_line_and_reprojects(tmp_path, scene):  # noqa: F811
    img = tmp_path / "half.tif"
    shutil.copy(scene["after"], img)
    x0, y0, x1, y1 = BOUNDS
    blank_out(img, (x0, y0, (x0 + x1) / 2, y1))  # the western half has data
    red = redlines()  # P1 is the western half, P2 the eastern
    assert valid_share(img, red.geometry.values, CRS) == pytest.approx(0.5, abs=0.02)
    assert valid_share(img, red.geometry.values[:1], CRS) == pytest.approx(1.0)
    assert valid_share(img, red.geometry.values[1:], CRS) == 0.0
    # the same red lines in degrees are placed on the image's grid
    geo = red.to_crs("EPSG:4490")
    assert valid_share(img, geo.geometry.values, "EPSG:4490") == pytest.approx(0.5, abs=0.02)
    # a red line too small for the lattice is still sampled (a 1 m square in the blank half)
    tiny = shapely.box(x1 - 50, y0 + 50, x1 - 49, y0 + 51)
    assert valid_share(img, [red.geometry.values[0], tiny], CRS) < 1.0
    assert valid_share(img, [shapely.box(x0 - 500, y0, x0 - 400, y1)], CRS) == 0.0  # off the image


# --- point 16: a corrupt tile, a band the file lacks --------------------------------


def test_detect_names_the_corrupt_tile_file_and_place(tmp_path, scene):  # noqa: F811
    from gis.detect import detect_changes

    after = tmp_path / "after.tif"
    shutil.copy(scene["after"], after)
    x0, y0, x1, y1 = BOUNDS
    col, row = corrupt_block(after, x0 + 300, y0 + 150)  # inside P2
    with pytest.raises(CorruptRasterError) as e:
        detect_changes(scene["before"], after, within=redlines())
    msg = str(e.value)
    assert str(after) in msg and f"columns {col}-" in msg and f"rows {row}-" in msg
    assert "x " in msg and "EPSG:4547" in msg and "gdalinfo" in msg
    assert e.value.exit_code == 2
    # raised in a worker process, it crosses back whole
    assert str(pickle.loads(pickle.dumps(e.value))) == msg


def test_the_corrupt_tile_error_pickles_with_dask_s_exception_pickling(tmp_path, scene):  # noqa: F811
    """Dask installs tblib's exception pickling, which also pickles an error's chain:
    GDAL's own exception classes in that chain could not be unpickled (read-only args).
    Run in a fresh interpreter so the pickling hook does not leak into other tests."""
    import subprocess
    import sys
    import textwrap

    after = tmp_path / "after.tif"
    shutil.copy(scene["after"], after)
    x0, y0, _, _ = BOUNDS
    corrupt_block(after, x0 + 300, y0 + 150)
    zones = tmp_path / "zones.gpkg"
    redlines().to_file(zones)
    code = textwrap.dedent(f"""
        import pickle, rasterio, rasterio._err, tblib.pickling_support
        from gis.detect import detect_changes
        from gis.errors import CorruptRasterError
        tblib.pickling_support.install()
        try:
            detect_changes({str(scene["before"])!r}, {str(after)!r}, within={str(zones)!r})
        except CorruptRasterError as exc:
            print(str(pickle.loads(pickle.dumps(exc))) == str(exc))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "True", out.stderr[-2000:]


def test_cli_detect_corrupt_tile_is_one_line_exit_2(tmp_path, scene):  # noqa: F811
    after = tmp_path / "after.tif"
    shutil.copy(scene["after"], after)
    corrupt_block(after, BOUNDS[0] + 100, BOUNDS[1] + 150)
    red = tmp_path / "red.gpkg"
    redlines().to_file(red)
    out = tmp_path / "changes.gpkg"
    r = CliRunner().invoke(main, ["detect", "--before", str(scene["before"]), "--after", str(after),
                                  "--within", str(red), "--out", str(out), "--no-progress"])
    assert r.exit_code == 2 and "cannot decode the image data in the block at columns" in r.stderr
    assert r.stderr.count("\n") == 1 and not out.exists()


def test_weekly_with_a_corrupt_tile_commits_nothing(ws):
    p = spot_in(ws, "P01").centroid
    corrupt_block(ortho(ws, 1), p.x, p.y)
    before = store_state(ws)
    with pytest.raises(CorruptRasterError, match="cannot decode the image data in the block"):
        run_weekly(ws, DATES[1], maps=False, today=TODAY)  # the real detection
    assert store_state(ws) == before


@pytest.mark.parametrize("option", ["--bands-before", "--bands-after"])
def test_band_map_naming_a_missing_band(tmp_path, scene, option):  # noqa: F811
    out = tmp_path / "changes.gpkg"
    bands = {"--bands-before": "1,2,3", "--bands-after": "1,2,3", option: "1,2,9"}
    r = CliRunner().invoke(main, ["detect", "--before", str(scene["before"]), "--after", str(scene["after"]),
                                  "--out", str(out), "--no-progress", *sum(bands.items(), ())])
    assert r.exit_code == 2, r.output
    which = "before" if option == "--bands-before" else "after"
    assert f"{option}) names band 9" in r.stderr and "has 3 bands (1-3)" in r.stderr
    assert Path(scene[which]).name in r.stderr and r.stderr.count("\n") == 1


def test_band_zero_is_refused_in_the_library(scene):  # noqa: F811
    from gis.imagery.pair import open_pair

    with pytest.raises(BandIndexError, match="names band 0"):
        open_pair(scene["before"], scene["after"], band_map={"before": (0, 1, 2), "after": (1, 2, 3)})


# --- point 16: outputs that cannot be written --------------------------------------


def week2(ws: Path):
    return FakeDetect({DATES[1].isoformat(): changes(("new_structure", spot_in(ws, "P01")),
                                                     ("new_structure", spot_outside(ws)))})


def test_chips_that_cannot_be_written_commit_nothing(ws):
    shutil.rmtree(ws / "chips", ignore_errors=True)
    (ws / "chips").write_text("not a folder")  # every chip write fails, as on a full disk
    before = store_state(ws)
    with pytest.raises(OutputWriteError) as e:
        run_weekly(ws, DATES[1], detect=week2(ws), maps=False, today=TODAY)
    assert e.value.exit_code == 1 and isinstance(e.value, OSError)
    assert "chip" in str(e.value) and "the store is unchanged" in str(e.value)
    assert store_state(ws) == before
    r = CliRunner().invoke(main, ["weekly", "--workspace", str(ws), "--epoch", DATES[1].isoformat(), "--no-maps"])
    assert r.exit_code == 1 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1


def test_map_that_cannot_be_written_after_the_commit_says_so(ws, tmp_path):
    out = tmp_path / "out"
    out.write_text("a file where the output folder should be")
    with pytest.raises(OutputWriteError) as e:
        run_weekly(ws, DATES[1], detect=week2(ws), today=TODAY, out_dir=out)
    msg = str(e.value)
    assert "was committed to the store" in msg and "map and bulletin" in msg and e.value.exit_code == 1
    assert e.value.summary.new_alerts == 2  # what was committed
    assert len(open_store(ws / "store.gpkg").runs()) == 2


def test_full_disk_while_writing_the_map_after_the_commit(ws, monkeypatch):
    import gis.products.webmap

    def full(*a, **k):  # the disk is the external edge: fill it
        raise OSError(errno.ENOSPC, "No space left on device", str(a[0]))

    monkeypatch.setattr(gis.products.webmap, "write_text_atomic", full)
    r = CliRunner().invoke(main, ["weekly", "--workspace", str(ws), "--epoch", DATES[1].isoformat()])
    assert r.exit_code == 1, r.output
    assert "No space left on device" in r.stderr and "was committed to the store" in r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert len(open_store(ws / "store.gpkg").runs()) == 2
