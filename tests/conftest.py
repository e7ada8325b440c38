"""Shared fixtures: small layers written as real files, and the demo county.

Builders return exactly the data each test states; the demo county is the
seeded synthetic county of :mod:`gis.synthetic.county`, built once per test session.
PostgreSQL: ``pg_server`` is a throwaway PostGIS server started by the tests
(see ``tests/pg.py``), ``pg_url`` a fresh PostGIS database on it per test.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from pg import start_for_tests

GK = "EPSG:4547"  # CGCS2000 / 3-degree Gauss-Kruger CM 114E
X0, Y0 = 500_000.0, 3_400_000.0


def square(x, y, size):
    return shapely.box(X0 + x, Y0 + y, X0 + x + size, Y0 + y + size)


def make_parcels(rows, crs=GK) -> gpd.GeoDataFrame:
    """rows: (parcel_id, district, status, geometry, {counts})."""
    recs = []
    for pid, district, status, geom, *extra in rows:
        rec = {"parcel_id": pid, "district": district, "status": status,
               "houses": 0, "households": 0, "graves": 0, "special_crops": 0, "attachments": 0}
        if extra:
            rec.update(extra[0])
        rec["geometry"] = geom
        recs.append(rec)
    return gpd.GeoDataFrame(recs, geometry="geometry", crs=crs)


def make_redlines(rows, crs=GK) -> gpd.GeoDataFrame:
    """rows: (project_id, district, geometry, {attrs})."""
    recs = []
    for pid, district, geom, *extra in rows:
        rec = {"project_id": pid, "name": f"项目{pid}", "district": district}
        if extra:
            rec.update(extra[0])
        rec["geometry"] = geom
        recs.append(rec)
    return gpd.GeoDataFrame(recs, geometry="geometry", crs=crs)


@pytest.fixture
def small_layers(tmp_path):
    """Two projects, four parcels of 100 x 100 m, one straddling a red line.

    Red line A covers x 0..200, y 0..100; red line B covers x 150..300 (so A
    and B overlap on x 150..200). Parcels: p1 (0..100) in A; p2 (100..200) in
    A, half of it also in B; p3 (200..300) in B; p4 far away, in nothing.
    """
    parcels = make_parcels([
        ("p1", "东区", "compensated", square(0, 0, 100), {"houses": 2, "graves": 1}),
        ("p2", "东区", "delivered", square(100, 0, 100), {"houses": 1}),
        ("p3", "西区", "surveyed", square(200, 0, 100), {"houses": 4, "households": 5}),
        ("p4", "西区", "not_started", square(1000, 1000, 100), {"houses": 9}),
    ])
    redlines = make_redlines([
        ("A", "东区", shapely.box(X0, Y0, X0 + 200, Y0 + 100),
         {"deadline": pd.Timestamp("2026-01-31"), "freeze_date": pd.Timestamp("2025-06-01")}),
        ("B", "西区", shapely.box(X0 + 150, Y0, X0 + 300, Y0 + 100),
         {"deadline": pd.Timestamp("2027-01-31"), "freeze_date": pd.Timestamp("2025-06-01")}),
    ])
    p_path, r_path = tmp_path / "parcels.gpkg", tmp_path / "redlines.gpkg"
    parcels.to_file(p_path)
    redlines.to_file(r_path)
    return {"parcels": parcels, "redlines": redlines, "parcels_path": p_path,
            "redlines_path": r_path, "as_of": dt.date(2026, 11, 21)}


@pytest.fixture(scope="session")
def demo_county(tmp_path_factory):
    from gis.synthetic.county import make_demo_county

    return make_demo_county(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def demo_clearance(demo_county):
    from gis.clearance.pipeline import clearance

    c = demo_county
    return clearance(c.redlines, c.parcels, previous=c.previous_parcels, inventory=c.inventory,
                     as_of=c.as_of)


def write(gdf: gpd.GeoDataFrame, path: Path, **kw) -> Path:
    gdf.to_file(path, **kw)
    return path


@pytest.fixture(scope="session")
def pg_server():
    """A private PostgreSQL + PostGIS server for the session, stopped at its end.

    Skips when PostgreSQL/PostGIS is not installed, except under CI=true,
    where it fails (see tests/pg.py).
    """
    server = start_for_tests()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server):
    """SQLAlchemy URL of a fresh, empty database with PostGIS, dropped after the test."""
    name = pg_server.new_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)


@pytest.fixture(params=["gpkg", "postgis"])
def store_url(request):
    """Where a test's alert store lives, once per backend: ``store.gpkg`` (a GeoPackage in
    the workspace) or the URL of a fresh PostGIS database (see ``pg_url``). Tests write it
    as ``store`` in gis.toml (tests/storedata.py: ``use_store``), so the store's test suite
    runs unchanged against both backends."""
    if request.param == "gpkg":
        return "store.gpkg"
    return request.getfixturevalue("pg_url")
