"""The overlay on a Dask cluster (issue 20): a LocalCluster of two worker processes.

The parcels are cut into spatial partitions, each overlaid by a task; the
pieces and every figure are those of the single-process run, whatever the
source (file read by the workers or frame sent to them) and the number of
partitions; problems found in a partition are raised as the single-process
read raises them.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner

from gis import errors
from gis.cli import main
from gis.clearance import cluster
from gis.clearance.pipeline import clearance

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as lc, distributed.Client(lc) as c:
        yield c


@pytest.fixture(scope="module")
def sources(demo_county, tmp_path_factory):
    """The demo parcels as a GeoPackage and as GeoParquet (small row groups: several per partition)."""
    folder = tmp_path_factory.mktemp("dask_sources")
    parcels = gpd.read_file(demo_county.parcels)
    parcels.to_file(folder / "parcels.gpkg", driver="GPKG")
    parcels.to_parquet(folder / "parcels.parquet", row_group_size=700)
    return {"gpkg": folder / "parcels.gpkg", "parquet": folder / "parcels.parquet", "frame": parcels}


def same_clearance(one, two) -> None:
    pd.testing.assert_frame_equal(one.projects, two.projects, rtol=1e-9)
    pd.testing.assert_frame_equal(one.districts, two.districts, rtol=1e-9)
    cols = ["parcel_id", "project_id", "district", "status", "area_m2", "area_mu", "share", "inside"]
    pd.testing.assert_frame_equal(pd.DataFrame(one.pieces[cols]), pd.DataFrame(two.pieces[cols]), rtol=1e-12)


@pytest.mark.parametrize("kind", ["gpkg", "parquet", "frame"])
def test_cluster_figures_are_the_single_process_figures(demo_county, demo_clearance, sources, client, kind):
    c = demo_county
    d = clearance(c.redlines, sources[kind], previous=c.previous_parcels, inventory=c.inventory,
                  as_of=c.as_of, scheduler=client, partitions=5)
    assert d.partitions >= 4 and not d.has_geometry
    same_clearance(demo_clearance, d)
    assert d.reports[1].count == len(demo_clearance.parcels)


def test_cluster_output_file_has_the_same_pieces(demo_county, demo_clearance, sources, client, tmp_path):
    c = demo_county
    out = tmp_path / "f.gpkg"
    clearance(c.redlines, sources["gpkg"], as_of=c.as_of, scheduler=client, partitions=3, out=out)
    pieces = pyogrio.read_dataframe(out, layer="parcel_pieces")
    want = demo_clearance.pieces
    assert list(pieces["parcel_id"]) == list(want["parcel_id"])
    # the file holds MultiPolygons (one type per layer): same ground as the pieces in memory
    assert shapely.equals(pieces.geometry.to_numpy(), want.geometry.to_numpy()).all()
    np.testing.assert_allclose(shapely.area(pieces.geometry.to_numpy()), want["area_m2"], rtol=1e-12)


def test_partitions_cover_every_parcel_once(sources):
    for kind in ("gpkg", "parquet", "frame"):
        keys = cluster.plan(sources[kind], partitions=6)
        every = np.concatenate(keys)
        assert len(keys) >= 5 and len(every) == len(np.unique(every)) == len(sources["frame"])


def test_a_parcel_without_geometry_is_refused_on_the_cluster(sources, demo_county, client, tmp_path):
    broken = sources["frame"].copy()
    broken.loc[10, "geometry"] = None
    path = tmp_path / "broken.gpkg"
    broken.to_file(path, driver="GPKG")
    assert sum(len(k) for k in cluster.plan(path, partitions=4)) == len(broken)
    with pytest.raises(errors.EmptyGeometryError) as exc:
        clearance(demo_county.redlines, path, scheduler=client, partitions=4)
    assert exc.value.ids == [broken.loc[10, "宗地编号"]]


def test_duplicate_ids_in_two_partitions_are_refused(sources, demo_county, client):
    dup = sources["frame"].copy()
    dup.loc[len(dup) - 1, "宗地编号"] = dup.loc[0, "宗地编号"]  # far apart: two partitions
    with pytest.raises(errors.DuplicateIdError) as exc:
        clearance(demo_county.redlines, dup, scheduler=client, partitions=4)
    assert exc.value.ids == [dup.loc[0, "宗地编号"]]


@pytest.mark.slow  # starts a cluster of its own
def test_cli_overlay_scheduler(demo_county, sources, demo_clearance, tmp_path):
    out = tmp_path / "cli.gpkg"
    res = CliRunner().invoke(main, ["overlay", "--redlines", str(demo_county.redlines), "--parcels",
                                    str(sources["gpkg"]), "--out", str(out), "--scheduler", "local:2"])
    assert res.exit_code == 0, res.output
    dist = pyogrio.read_dataframe(out, layer="district_figures", read_geometry=False)
    np.testing.assert_allclose(dist.set_index("district")["total_mu"].sort_index(),
                               demo_clearance.districts.set_index("district")["total_mu"].sort_index(), rtol=1e-9)


def test_cli_overlay_bad_scheduler_is_bad_input(demo_county, sources, tmp_path):
    res = CliRunner().invoke(main, ["overlay", "--redlines", str(demo_county.redlines), "--parcels",
                                    str(sources["gpkg"]), "--out", str(tmp_path / "o.gpkg"),
                                    "--scheduler", "local:zero"])
    assert res.exit_code == 2 and "local:N" in res.output
