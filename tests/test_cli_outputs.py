"""Outputs never overwrite the store, a workspace file or a command's own inputs;
usage errors, a full disk and a folder given as a layer are one line on stderr."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

import gis.weekly as weekly_module
from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in, write_raster
from gis.cli import _disk_full, main
from gis.errors import DiskFullError, OutputKindError, ProtectedOutputError
from gis.outputs import check_output, identify

GIS = Path(sys.executable).with_name("gis")


def gis(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_line_error(res, *words) -> str:
    """The single stderr line of a refused command, checked for exit 2 and ``words``."""
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace with a store holding one weekly run's alerts."""
    root = make_workspace(tmp_path_factory.mktemp("outputs") / "ws")
    detect = FakeDetect({DATES[1].isoformat(): changes(("new_structure", spot_in(root, "P03", 20)))})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(weekly_module, "_default_detect", lambda: detect)
        res = gis("weekly", "--workspace", root, "--epoch", DATES[1].isoformat(), "--no-maps")
    assert res.exit_code == 0, res.output
    assert (root / "store.gpkg").exists()
    return root


def snapshot(*paths: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths}


# --- point 3: the store, the workspace's layers and a command's inputs are never outputs ---------


@pytest.mark.parametrize("args, what", [
    (("alerts", "export", "--district", "高新区", "--out", "{ws}/store.gpkg"), "alert store"),
    (("map", "--out", "{ws}/store.gpkg"), "alert store"),
    (("map", "--png", "{ws}/layers/parcels.gpkg"), "parcel layer"),
    (("report", "--out", "{ws}/layers/redlines.gpkg"), "red-line layer"),
    (("report", "--out", "{ws}/b.html", "--xlsx", "{ws}/imagery/2026-03-15.tif"), "orthophoto of 2026-03-15"),
    (("report", "--out", "{ws}/gis.toml"), "gis.toml"),
    # another spelling of the same path
    (("map", "--out", "{ws}/layers/../store.gpkg"), "alert store"),
    (("alerts", "export", "--district", "高新区", "--out", "{ws}/./layers/../store.gpkg", "--force"), "alert store"),
])
def test_workspace_commands_never_write_over_the_workspace(ws, args, what):
    guarded = snapshot(ws / "store.gpkg", ws / "gis.toml", *(ws / "layers").glob("*.gpkg"),
                       *(ws / "imagery").glob("*.tif"))
    res = gis(*[a.format(ws=ws) for a in args], "--workspace", ws)
    one_line_error(res, what, "another path")
    assert snapshot(*guarded) == guarded
    assert not list(ws.glob(".*.part*"))


def test_a_symlink_to_the_store_is_the_store(ws, tmp_path):
    store = ws / "store.gpkg"
    before = store.read_bytes()
    link = tmp_path / "patrol.gpkg"
    link.symlink_to(store)
    res = gis("alerts", "export", "--workspace", ws, "--district", "高新区", "--out", link, "--force")
    one_line_error(res, "alert store", str(link))
    hard = tmp_path / "hard.html"
    os.link(store, hard)
    one_line_error(gis("map", "--workspace", ws, "--out", hard, "--force"), "alert store")
    assert store.read_bytes() == before and link.is_symlink()


def test_an_output_inside_a_workspace_folder_is_guarded_without_the_workspace(ws, small_layers):
    s = small_layers
    parcels = ws / "layers" / "parcels.gpkg"
    before = parcels.read_bytes()
    res = gis("overlay", "--redlines", s["redlines_path"], "--parcels", s["parcels_path"], "--out", parcels)
    one_line_error(res, "the workspace's parcel layer")
    assert parcels.read_bytes() == before


def test_an_existing_alert_store_elsewhere_needs_force(ws, small_layers, tmp_path):
    copy = tmp_path / "old_store.gpkg"
    shutil.copyfile(ws / "store.gpkg", copy)
    before = copy.read_bytes()
    s = small_layers
    argv = ["overlay", "--redlines", s["redlines_path"], "--parcels", s["parcels_path"], "--out", copy]
    one_line_error(gis(*argv), "holds an alert store", "--force")
    assert copy.read_bytes() == before
    assert gis(*argv, "--force").exit_code == 0
    assert identify(copy) == "gpkg"


@pytest.mark.parametrize("option, target", [
    ("--out", "parcels"), ("--out", "redlines"), ("--out", "previous"), ("--xlsx", "parcels"),
])
def test_overlay_never_writes_over_its_inputs(small_layers, tmp_path, option, target):
    s = small_layers
    previous = tmp_path / "previous.gpkg"
    shutil.copyfile(s["parcels_path"], previous)
    paths = {"parcels": s["parcels_path"], "redlines": s["redlines_path"], "previous": previous}
    guarded = snapshot(*paths.values())
    out = {"--out": tmp_path / "fig.gpkg", "--xlsx": None}
    out[option] = paths[target]
    argv = ["overlay", "--redlines", paths["redlines"], "--parcels", paths["parcels"], "--previous", previous,
            "--out", out["--out"]]
    if out["--xlsx"]:
        argv += ["--xlsx", out["--xlsx"]]
    one_line_error(gis(*argv, "--force"), f"the --{target} input")
    assert snapshot(*guarded) == guarded


def test_overlay_output_via_a_symlinked_folder_is_its_input(small_layers, tmp_path):
    s = small_layers
    alias = tmp_path / "alias"
    alias.symlink_to(s["parcels_path"].parent)
    before = s["parcels_path"].read_bytes()
    res = gis("overlay", "--redlines", s["redlines_path"], "--parcels", s["parcels_path"],
              "--out", alias / s["parcels_path"].name)
    one_line_error(res, "the --parcels input")
    assert s["parcels_path"].read_bytes() == before


def test_overlay_out_and_xlsx_must_differ(small_layers, tmp_path):
    s = small_layers
    res = gis("overlay", "--redlines", s["redlines_path"], "--parcels", s["parcels_path"],
              "--out", tmp_path / "a.gpkg", "--xlsx", tmp_path / "a.gpkg")
    one_line_error(res, "same file")
    assert not (tmp_path / "a.gpkg").exists()


@pytest.mark.parametrize("option, target", [("--out", "before"), ("--out", "after"), ("--mask-out", "after"),
                                            ("--mask-out", "within")])
def test_detect_never_writes_over_its_inputs(small_layers, tmp_path, option, target):
    bounds = (500_000, 3_400_000, 500_400, 3_400_200)
    paths = {"before": write_raster(tmp_path / "b.tif", bounds), "after": write_raster(tmp_path / "a.tif", bounds,
                                                                                       seed=1),
             "within": small_layers["redlines_path"]}
    guarded = snapshot(*paths.values())
    outs = {"--out": tmp_path / "changes.gpkg", "--mask-out": tmp_path / "mask.tif"}
    outs[option] = paths[target]
    res = gis("detect", "--before", paths["before"], "--after", paths["after"], "--within", paths["within"],
              "--out", outs["--out"], "--mask-out", outs["--mask-out"], "--no-progress")
    one_line_error(res, f"the --{target} input")
    assert snapshot(*guarded) == guarded


# --- an existing output of another kind is refused unless --force ---------------------------------


def test_an_output_of_another_kind_is_refused_unless_forced(ws, small_layers, tmp_path):
    s = small_layers
    html_holding_gpkg = tmp_path / "map.html"
    shutil.copyfile(s["parcels_path"], html_holding_gpkg)
    before = html_holding_gpkg.read_bytes()
    one_line_error(gis("map", "--workspace", ws, "--out", html_holding_gpkg), "is a GeoPackage, not an HTML page",
                   "--force")
    one_line_error(gis("report", "--workspace", ws, "--out", html_holding_gpkg), "GeoPackage")
    assert html_holding_gpkg.read_bytes() == before

    text_gpkg, text_xlsx = tmp_path / "fig.gpkg", tmp_path / "fig.xlsx"
    text_gpkg.write_text("my notes", encoding="utf-8")
    text_xlsx.write_text("not a workbook", encoding="utf-8")
    argv = ["overlay", "--redlines", s["redlines_path"], "--parcels", s["parcels_path"], "--out", text_gpkg]
    one_line_error(gis(*argv), "is a text file, not a GeoPackage")
    one_line_error(gis(*argv[:-1], tmp_path / "ok.gpkg", "--xlsx", text_xlsx), "not an Excel workbook")
    assert text_gpkg.read_text(encoding="utf-8") == "my notes"
    assert text_xlsx.read_text(encoding="utf-8") == "not a workbook"
    assert not (tmp_path / "ok.gpkg").exists()

    forced = gis(*argv, "--xlsx", text_xlsx, "--force")
    assert forced.exit_code == 0, forced.output
    assert identify(text_gpkg) == "gpkg" and identify(text_xlsx) == "xlsx"
    # the same kind is written over without --force: a second run replaces the first
    assert gis(*argv, "--xlsx", text_xlsx).exit_code == 0


def test_check_output_kinds(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    with pytest.raises(Exception, match="folder"):
        check_output(folder, "gpkg")
    empty = tmp_path / "e.html"
    empty.touch()
    assert check_output(empty, "html") == empty
    sqlite = tmp_path / "plain.gpkg"
    with contextlib.closing(sqlite3.connect(sqlite)) as con:
        con.execute("CREATE TABLE t (x)")
    with pytest.raises(OutputKindError, match="SQLite database"):
        check_output(sqlite, "gpkg")
    with pytest.raises(ProtectedOutputError, match="the --x input"):
        check_output(tmp_path / "in.dbf", "json", protected={tmp_path / "in.shp": "the --x input"})


# --- point 17: usage errors, weekly errors, a folder as a layer -------------------------------------


@pytest.mark.parametrize("argv, words", [
    (["weekly", "--foo"], ["No such option '--foo'", "(see 'main weekly --help')"]),
    (["alerts", "set", "A-1", "--status", "nope", "--by", "x"], ["'nope' is not one of", "alerts set --help"]),
    (["alerts", "set", "A-1", "--by", "x"], ["Missing option '--status'"]),
    (["overlays"], ["No such command 'overlays'", "(see 'main --help')"]),
    (["--bogus"], ["No such option '--bogus'"]),
    (["map", "--workspace", "."], ["give --out (HTML) and/or --png", "map --help"]),
])
def test_usage_errors_are_one_line_with_the_help_hint(argv, words):
    res = CliRunner().invoke(main, argv)
    one_line_error(res, *words)
    assert "Usage:" not in res.output


def test_usage_error_of_the_installed_command(tmp_path):
    res = subprocess.run([str(GIS), "weekly", "--foo"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.splitlines() == ["error: No such option '--foo' (see 'gis weekly --help')"]


def test_no_arguments_still_shows_help():
    res = CliRunner().invoke(main, [])
    assert "Commands:" in res.output and "weekly" in res.output


def test_weekly_errors_start_with_the_error(ws):
    res = gis("weekly", "--workspace", ws, "--epoch", "1999-01-01")
    one_line_error(res, "no epoch dated 1999-01-01")


def test_a_folder_is_not_a_layer(tmp_path, small_layers):
    folder = tmp_path / "shapes"
    folder.mkdir()
    for name in ("a", "b"):
        small_layers["parcels"].to_file(folder / f"{name}.shp")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = gis("check", folder)
        over = gis("overlay", "--redlines", small_layers["redlines_path"], "--parcels", folder,
                   "--out", tmp_path / "o.gpkg")
    assert [str(w.message) for w in caught] == []
    one_line_error(res, "is a folder, not a layer file", "a.shp, b.shp")
    one_line_error(over, "is a folder")
    proc = subprocess.run([str(GIS), "check", str(folder)], capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr


# --- full disk: one line, exit 1 -----------------------------------------------------------------


def test_a_full_disk_is_one_line_exit_1(small_layers, tmp_path, monkeypatch):
    from gis import atomic

    def no_space(src, dst):  # the disk is the edge: os.replace is where the bytes land
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(atomic.os, "replace", no_space)
    report = tmp_path / "report.json"
    res = gis("check", small_layers["parcels_path"], "--json", report)
    assert res.exit_code == 1, res.output
    assert res.stderr.splitlines() == [f"error: file {report}: disk full while writing. Free space and run again."]
    assert not report.exists() and not list(tmp_path.glob(".report.*"))


def test_full_disk_signs_from_sqlite_and_gdal(tmp_path):
    db = tmp_path / "small.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute("PRAGMA max_page_count = 2")
        with pytest.raises(sqlite3.Error) as full:
            con.execute("CREATE TABLE t (x)")
            con.execute("CREATE TABLE u (x)")
            con.execute("INSERT INTO t VALUES (randomblob(100000))")
    assert isinstance(_disk_full(full.value), DiskFullError)
    wrapped = RuntimeError("Write failed: " + os.strerror(errno.ENOSPC))
    assert _disk_full(wrapped).exit_code == 1
    try:
        try:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), "/q/x.gpkg")
        except OSError as inner:
            raise ValueError("could not write") from inner
    except ValueError as outer:
        assert _disk_full(outer).path == "/q/x.gpkg"
    assert _disk_full(OSError(errno.EACCES, "Permission denied")) is None


def test_demo_never_builds_over_another_workspace(ws, tmp_path):
    guarded = snapshot(ws / "gis.toml", ws / "store.gpkg", *(ws / "layers").glob("*.gpkg"))
    res = gis("demo", "--out", ws, "--maps", tmp_path / "maps")
    one_line_error(res, "not the demo's", "--force")
    assert snapshot(*guarded) == guarded and not (tmp_path / "maps").exists()


def test_check_json_and_model_never_write_over_their_inputs(small_layers, tmp_path):
    parcels = small_layers["parcels_path"]
    before = parcels.read_bytes()
    one_line_error(gis("check", parcels, "--json", parcels), "one of the layers checked")
    bounds = (500_000, 3_400_000, 500_400, 3_400_200)
    b, a = write_raster(tmp_path / "b.tif", bounds), write_raster(tmp_path / "a.tif", bounds, seed=1)
    res = gis("model", "train", "--alerts", parcels, "--before", b, "--after", a, "--out", a)
    one_line_error(res, "the --after input")
    assert parcels.read_bytes() == before
