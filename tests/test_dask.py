"""Detection and the weekly run on a Dask cluster (issue 20): a LocalCluster of two
worker processes, one thread each, shared by the tests of this file. Same results
as the single-process run; a worker killed mid-run changes nothing; several
workspaces in one weekly run, one of them broken."""

from __future__ import annotations

import os
import shutil
import signal
import time

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner
from detect_fixtures import CRS, X0, Y0, redlines, scene, structures  # noqa: F401 - scene is a fixture

from gis.cli import main
from gis.detect import detect_changes
from gis.detect.pool import connect, parse_address
from gis.detect.run import read_zone
from gis.errors import GeometryTypeError, InvalidValueError, SchedulerError

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes and a client of the test's own (to find and kill them)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as lc, distributed.Client(lc) as client:
        yield client


def same(one: gpd.GeoDataFrame, two: gpd.GeoDataFrame) -> None:
    """Same rows, same values, same polygons (to the last coordinate)."""
    assert len(one) > 0
    pd.testing.assert_frame_equal(one.drop(columns="geometry"), two.drop(columns="geometry"))
    assert shapely.equals_exact(one.geometry.values, two.geometry.values, tolerance=0).all()


def test_detection_on_the_cluster_is_the_single_process_run(scene, cluster):
    red = redlines()
    one = detect_changes(scene["before"], scene["after"], within=red, block=128)
    address = cluster.scheduler.address
    two = detect_changes(scene["before"], scene["after"], within=red, block=128, scheduler=address)
    same(one, two)
    # a started scheduler is the caller's: used by two runs, closed by the caller
    s = connect(address)
    try:
        for _ in range(2):
            same(one, detect_changes(scene["before"], scene["after"], within=red, block=128, scheduler=s))
    finally:
        s.close()


@pytest.mark.slow
def test_a_worker_killed_mid_run_changes_nothing(scene, cluster):
    # 64 px blocks: ~130 windows, batches of 8 on the two workers while this process
    # runs the scene sample's 24; the first window done here kills a busy worker
    one = detect_changes(scene["before"], scene["after"], block=64)
    killed = []

    def kill_one(done, total):
        if killed:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            busy = [w for w, keys in cluster.processing().items() if any("run_windows" in k for k in keys)]
            if busy:
                pid = cluster.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append((busy[0], pid, done))
                return
            time.sleep(0.005)

    s = connect(cluster.scheduler.address)
    try:
        two = detect_changes(scene["before"], scene["after"], block=64, scheduler=s, progress=kill_one)
    finally:
        s.close()
    assert killed and killed[0][2] == 1, "no worker was busy with a window task to kill"
    same(one, two)
    # the nanny started a new worker in its place
    cluster.wait_for_workers(2, timeout=30)
    assert killed[0][1] not in cluster.run(os.getpid).values()


def test_within_any_polygon_layer_reads_only_its_windows(scene, tmp_path):
    # a town office's area (no project ids): only the windows it meets are read
    town = gpd.GeoDataFrame({"乡镇": ["东镇"]}, geometry=[shapely.box(X0 + 180, Y0, X0 + 400, Y0 + 300)], crs=CRS)
    town.to_file(tmp_path / "towns.gpkg")
    zone = read_zone(tmp_path / "towns.gpkg")
    assert list(zone.columns) == ["乡镇", "geometry"]
    windows = []
    part = detect_changes(scene["before"], scene["after"], within=tmp_path / "towns.gpkg", block=64,
                          progress=lambda d, n: windows.append(n))
    whole = []
    full = detect_changes(scene["before"], scene["after"], block=64, progress=lambda d, n: whole.append(n))
    assert 0 < windows[-1] < 0.75 * whole[-1]  # 220 + 20 of 400 m wide: cost follows the area
    assert len(part) > 0 and (part["project_id"] == "").all()
    assert part.geometry.within(town.geometry.iloc[0].buffer(20.0)).all()
    # the structures planted in the town are found, as in the whole image's run
    east = structures()[structures().geometry.bounds.minx >= X0 + 180].geometry
    for found in (part, full):
        assert all(found.geometry.intersects(g).any() for g in east)
    # lines are no area to monitor
    gpd.GeoDataFrame({"n": [1]}, geometry=[shapely.LineString([(X0, Y0), (X0 + 5, Y0 + 5)])],
                     crs=CRS).to_file(tmp_path / "roads.gpkg")
    with pytest.raises(GeometryTypeError, match="holds no polygons"):
        read_zone(tmp_path / "roads.gpkg")
    # red lines stay red lines: validated, their ids joined
    red = redlines()
    red.to_file(tmp_path / "red.gpkg")
    assert set(read_zone(tmp_path / "red.gpkg")["project_id"]) == {"P1", "P2"}


def test_scheduler_addresses():
    assert parse_address("local:3") == ("local", 3)
    assert parse_address("10.0.0.5:8786") == ("tcp://10.0.0.5:8786", 0)
    assert parse_address("tls://host:8786") == ("tls://host:8786", 0)
    for bad in ("local:0", "local:x", "http://host:8786", "host"):
        with pytest.raises(InvalidValueError):
            parse_address(bad)


def test_an_unreachable_cluster_is_named(scene, monkeypatch):
    monkeypatch.setattr("gis.detect.pool.CONNECT_TIMEOUT", 0.5)
    with pytest.raises(SchedulerError, match="tcp://127.0.0.1:9"):
        detect_changes(scene["before"], scene["after"], block=256, scheduler="tcp://127.0.0.1:9")


def test_the_cli_runs_detect_on_the_cluster(scene, cluster, tmp_path):
    args = ["detect", "--before", str(scene["before"]), "--after", str(scene["after"]), "--no-progress"]
    r = CliRunner().invoke(main, args + ["--out", str(tmp_path / "one.gpkg")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, args + ["--out", str(tmp_path / "two.gpkg"), "--scheduler",
                                         cluster.scheduler.address])
    assert r.exit_code == 0, r.output
    same(gpd.read_file(tmp_path / "one.gpkg"), gpd.read_file(tmp_path / "two.gpkg"))
    r = CliRunner().invoke(main, args + ["--out", str(tmp_path / "x.gpkg"), "--scheduler", "local:none"])
    assert r.exit_code == 2 and "local:N needs a whole number" in r.output
    r = CliRunner().invoke(main, args + ["--out", str(tmp_path / "x.gpkg"), "--scheduler", "local:2",
                                         "--workers", "2"])
    assert r.exit_code == 2 and "not both" in r.output


@pytest.mark.slow
def test_many_workspaces_one_broken(cluster, tmp_path):
    from alertsdata import DATES, make_workspace

    from gis.workspace import load_workspace

    roots = []
    for name in ("county_a", "county_b", "county_c"):
        root = make_workspace(tmp_path / name)
        # the second epoch: the first one's imagery, so the run is quick and finds nothing
        shutil.copy(root / "imagery" / f"{DATES[0]}.tif", root / "imagery" / f"{DATES[1]}.tif")
        roots.append(root)
    # county_b's new flight is a truncated download
    (roots[1] / "imagery" / f"{DATES[1]}.tif").write_bytes(b"II*\x00 not a tiff")
    args = ["weekly", "--epoch", DATES[1].isoformat(), "--no-maps", "--scheduler", cluster.scheduler.address]
    for root in roots:
        args += ["--workspace", str(root)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert lines[-4].startswith(f"{roots[0]}: epoch {DATES[1]}, 0 changes") and "committed as run" in lines[-4]
    assert lines[-3].startswith(f"{roots[1]}: failed, CorruptRasterError: ") and f"{DATES[1]}.tif" in lines[-3]
    assert lines[-2].startswith(f"{roots[2]}: epoch {DATES[1]}, 0 changes")
    assert lines[-1] == f"error: 1 of 3 workspaces failed: {roots[1]}"
    # each store committed on its own: a run in a and c, none in b (its lock released)
    runs = [load_workspace(root).open_store().runs() for root in roots]
    assert [len(r) for r in runs] == [1, 0, 1]
