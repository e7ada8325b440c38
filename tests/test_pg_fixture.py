"""The throwaway PostgreSQL + PostGIS server of tests/pg.py and its fixtures.

The store's PostGIS tests stand on it: it must start as root (as the postgres
user) and as anyone else, answer on a short Unix socket only, have a working
PostGIS with the projections we use, give each test its own database, leave no
server process behind, and skip only on a developer machine without PostgreSQL.
"""

from __future__ import annotations

import os
import pwd

import psutil
import pytest
import sqlalchemy as sa

from pg import (SUPERUSER, TempPostgres, ci_requires_postgres, running_as_root,
                start_for_tests, unavailable_reason)

SQUARE = "POLYGON((500000 3400000, 500100 3400000, 500100 3400100, 500000 3400100, 500000 3400000))"


def query(url, text, **params):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(text), params).all()
    finally:
        engine.dispose()


def server_processes(folder):
    """Live processes whose command line names the server's temp folder."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(str(folder) in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_server_runs_on_a_short_unix_socket(pg_server):
    assert pg_server.running
    assert pg_server.socket.exists()
    assert len(str(pg_server.socket).encode()) < 107
    assert str(pg_server.dir).startswith("/tmp/gispg")
    owner = psutil.Process(pg_server.pid).username()
    assert owner == ("postgres" if running_as_root() else pwd.getpwuid(os.geteuid()).pw_name)
    if running_as_root():
        assert os.stat(pg_server.dir).st_uid == pwd.getpwnam("postgres").pw_uid
    [(listen,)] = query(pg_server.url(), "SHOW listen_addresses")
    assert listen == ""  # no TCP port: never clashes with another server


def test_pg_url_has_postgis_with_cgcs2000(pg_url):
    assert pg_url.startswith(f"postgresql+psycopg://{SUPERUSER}@/gis_test_")
    [(version,)] = query(pg_url, "SELECT postgis_version()")
    assert version.startswith("3")
    [(area, srid)] = query(pg_url, "SELECT ST_Area(g), ST_SRID(g) FROM "
                                   "(SELECT ST_GeomFromText(:wkt, 4547) AS g) AS t", wkt=SQUARE)
    assert area == pytest.approx(10_000.0)
    assert srid == 4547
    # PROJ data is there: the square's corner lies on the zone's central meridian, 114 E
    [(lon, lat)] = query(pg_url, "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform("
                                 "ST_SetSRID(ST_MakePoint(500000, 3400000), 4547), 4326) AS p) AS t")
    assert lon == pytest.approx(114.0, abs=1e-6)
    assert 30.0 < lat < 31.0


SEEN = []  # (database name, engine left open) from the test before


def test_pg_url_is_a_fresh_empty_database(pg_url):
    tables = query(pg_url, "SELECT table_name FROM information_schema.tables "
                           "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' "
                           "AND table_name <> 'spatial_ref_sys'")
    assert tables == []
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE leftover (id int)"))
    # the engine's pool still holds a connection: the fixture's drop must end it
    SEEN.append((sa.make_url(pg_url).database, engine))


def test_pg_url_drops_the_previous_database(pg_url, pg_server):
    name = sa.make_url(pg_url).database
    assert query(pg_url, "SELECT to_regclass('public.leftover')") == [(None,)]
    names = {n for (n,) in query(pg_server.url(), "SELECT datname FROM pg_database")}
    assert name in names
    if not SEEN:
        pytest.skip("checks the database of test_pg_url_is_a_fresh_empty_database, run alone")
    previous, engine = SEEN[-1]
    engine.dispose()
    assert previous != name and previous not in names


def test_two_databases_are_isolated(pg_server):
    a, b = pg_server.new_database("iso"), pg_server.new_database("iso")
    assert a != b
    url_a, url_b = pg_server.url(a), pg_server.url(b)
    engine = sa.create_engine(url_a)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alerts (alert_id text, geom geometry(Polygon, 4547))"))
        conn.execute(sa.text("INSERT INTO alerts VALUES ('A1', ST_GeomFromText(:wkt, 4547))"),
                     {"wkt": SQUARE})
    assert query(url_a, "SELECT alert_id FROM alerts") == [("A1",)]
    assert query(url_b, "SELECT to_regclass('public.alerts')") == [(None,)]
    pg_server.drop_database(a)  # while the engine's pool still holds a connection to it
    pg_server.drop_database(b)
    engine.dispose()
    names = {n for (n,) in query(pg_server.url(), "SELECT datname FROM pg_database")}
    assert a not in names and b not in names


def test_create_database_refuses_names_that_need_quoting(pg_server):
    with pytest.raises(ValueError, match="database name .*lower-case letters"):
        pg_server.create_database("Robert'); DROP TABLE students;--")


def test_stop_leaves_no_server_process_and_no_folder():
    with TempPostgres() as pg:
        folder, pid = pg.dir, pg.pid
        assert psutil.pid_exists(pid)
        assert server_processes(folder), "the postmaster should name its data folder"
        [(one,)] = query(pg.url(pg.new_database()), "SELECT 1")
        assert one == 1
    assert pg.dir is None and not pg.running
    assert not folder.exists()
    assert server_processes(folder) == []
    if psutil.pid_exists(pid):  # a zombie only, if nothing reaps the orphaned postmaster
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    pg.stop()  # idempotent


def test_skips_without_postgres_on_a_developer_machine(tmp_path):
    assert "make system" in unavailable_reason(tmp_path)
    assert "make system" in unavailable_reason(None)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL is not installed"):
        start_for_tests(bindir=tmp_path, env={})


def test_fails_without_postgres_under_ci(tmp_path):
    assert ci_requires_postgres({"CI": "true"})
    assert not ci_requires_postgres({"CI": ""}) and not ci_requires_postgres({})
    with pytest.raises(pytest.fail.Exception, match="CI must run the PostgreSQL tests"):
        start_for_tests(bindir=tmp_path, env={"CI": "true"})


def test_postgis_missing_is_reported(tmp_path):
    # a bin folder with initdb and pg_ctl but whose share folder has no PostGIS
    for tool in ("initdb", "pg_ctl"):
        (tmp_path / tool).write_text("#!/bin/sh\n")
    reason = unavailable_reason(tmp_path)
    assert reason is not None and "PostGIS is not installed" in reason
