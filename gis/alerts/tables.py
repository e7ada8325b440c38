"""The alert store's tables, its schema version and the steps between versions.

One schema for both backends (SQLAlchemy Core; see :mod:`gis.alerts.backends`):

* ``alerts``: one row per alert (the contract columns of :data:`ALERT_COLUMNS`,
  an integer ``fid`` and the geometry ``geom``). In a GeoPackage it is the
  feature layer QGIS and QField open (created once by GDAL, with its R-tree);
  in PostGIS a table with a ``geometry`` column and a GiST index.
* ``alert_events``: the audit log (when, who, which run, what changed, old -> new).
* ``runs``: the run log (inputs' hashes, parameters, counts, times).
* ``photos``: field photos by content (SHA-256), never deleted (:mod:`gis.alerts.photos`).
* ``gis_store``: key/value facts about the store, ``schema_version`` first.
* ``run_lock``: who runs the weekly cycle now (pid, host, start); one row per lock name.

Schema versions: 1 is the whole-file GeoPackage of gis 0.1.0 (no ``gis_store``
table); 2 adds ``photos``, ``gis_store``, ``run_lock`` and a unique index on
``alerts.alert_id``. :func:`upgrade_schema` brings an older store up in one
transaction. The web server's ``users`` and ``tokens`` tables belong here too:
add them to :func:`build_metadata` and a step to :data:`UPGRADES` (version 3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

#: The schema this code writes. 1: gis 0.1.0 (whole-file GeoPackage, no gis_store table).
SCHEMA_VERSION = 2

#: Columns of the alerts layer and their kinds. The first block is the
#: contract with maps and the bulletin; the rest is bookkeeping.
ALERT_COLUMNS: dict[str, str] = {
    "alert_id": "str", "kind": "str", "status": "str", "verdict": "str",
    "area_m2": "float", "area_mu": "float", "confidence": "float",
    "project_id": "str", "parcel_id": "str", "district": "str",
    "first_seen": "str", "last_seen": "str", "seen_count": "int",
    "growing": "bool", "post_freeze": "bool", "freeze_date": "str",
    "note": "str", "updated_by": "str", "updated_at": "str",
    "chip_before": "str", "chip_after": "str", "ref_alert_id": "str",
    "status_since": "str",
    # bookkeeping: area at first sighting / at verdict (growth reference),
    # field photos (';'-separated keys ``photos/<sha256>.<ext>``), whether the
    # footprint is in the structure inventory, and a revision number bumped
    # by every human edit (optimistic concurrency and field exchange use it).
    "first_area_m2": "float", "verdict_area_m2": "float", "photos": "str",
    "in_inventory": "bool", "rev": "int",
}
#: What a weekly run owns on an existing alert: its commit writes only these
#: columns (and the geometry), so a verdict, note or photo recorded meanwhile stays.
RUN_OWNED = ("area_m2", "area_mu", "confidence", "last_seen", "seen_count", "growing",
             "post_freeze", "freeze_date", "ref_alert_id", "project_id", "parcel_id", "district",
             "chip_before", "chip_after")
EVENT_COLUMNS = ["event_id", "at", "by", "run_id", "alert_id", "action", "field", "old", "new"]
RUN_COLUMNS = ["run_id", "command", "epoch", "previous_epoch", "started", "finished",
               "inputs", "parameters", "counts", "host", "pid"]
PHOTO_COLUMNS = ["sha256", "ext", "name", "size", "uploaded_at", "uploaded_by", "taken_at",
                 "lat", "lon"]
#: Tables registered in a GeoPackage's gpkg_contents (QGIS lists them).
GPKG_ATTRIBUTE_TABLES = ("alert_events", "runs")

_KIND_TYPES = {"str": sa.Text, "float": sa.Float, "int": sa.Integer,
               "bool": lambda: sa.Boolean(create_constraint=False)}


def build_metadata(geometry: sa.types.TypeEngine) -> sa.MetaData:
    """The store's tables; ``geometry`` is the type of ``alerts.geom`` for the backend."""
    md = sa.MetaData()
    sa.Table("alerts", md,
             sa.Column("fid", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("geom", geometry),
             *[sa.Column(c, _KIND_TYPES[k]()) for c, k in ALERT_COLUMNS.items()],
             sqlite_autoincrement=True)
    sa.Index("alerts_alert_id", md.tables["alerts"].c.alert_id, unique=True)
    sa.Table("alert_events", md,
             sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("at", sa.Text, nullable=False), sa.Column("by", sa.Text),
             sa.Column("run_id", sa.Text), sa.Column("alert_id", sa.Text),
             sa.Column("action", sa.Text, nullable=False), sa.Column("field", sa.Text),
             sa.Column("old", sa.Text), sa.Column("new", sa.Text),
             sqlite_autoincrement=True)
    sa.Index("alert_events_alert_id", md.tables["alert_events"].c.alert_id)
    sa.Table("runs", md,
             sa.Column("run_id", sa.Text, primary_key=True),
             *[sa.Column(c, sa.Integer if c == "pid" else sa.Text) for c in RUN_COLUMNS[1:]])
    sa.Table("photos", md,
             sa.Column("sha256", sa.Text, primary_key=True), sa.Column("ext", sa.Text, nullable=False),
             sa.Column("name", sa.Text), sa.Column("size", sa.Integer, nullable=False),
             sa.Column("uploaded_at", sa.Text), sa.Column("uploaded_by", sa.Text),
             sa.Column("taken_at", sa.Text), sa.Column("lat", sa.Float), sa.Column("lon", sa.Float),
             sa.Column("data", sa.LargeBinary, nullable=False))
    sa.Table("gis_store", md, sa.Column("key", sa.Text, primary_key=True), sa.Column("value", sa.Text))
    sa.Table("run_lock", md,
             sa.Column("name", sa.Text, primary_key=True), sa.Column("pid", sa.Integer),
             sa.Column("host", sa.Text), sa.Column("started", sa.Text), sa.Column("command", sa.Text))
    return md


def schema_version(conn: sa.Connection) -> int:
    """The schema version recorded in the store (1 for a gis 0.1.0 store, 0 for no store)."""
    names = set(sa.inspect(conn).get_table_names())
    if "gis_store" in names:
        v = conn.execute(sa.text("SELECT value FROM gis_store WHERE key = 'schema_version'")).scalar()
        return int(v or 0)
    return 1 if "alerts" in names else 0


def set_meta(conn: sa.Connection, md: sa.MetaData, **values: Any) -> None:
    t = md.tables["gis_store"]
    for k, v in values.items():
        if conn.execute(sa.select(t.c.key).where(t.c.key == k)).first():
            conn.execute(t.update().where(t.c.key == k).values(value=str(v)))
        else:
            conn.execute(t.insert().values(key=k, value=str(v)))


def meta(conn: sa.Connection, md: sa.MetaData) -> dict[str, str]:
    t = md.tables["gis_store"]
    return {k: v for k, v in conn.execute(sa.select(t.c.key, t.c.value))}


def _upgrade_1_to_2(conn: sa.Connection, md: sa.MetaData) -> None:
    """gis 0.1.0 -> 2: the new tables and the unique alert id (photo files are read in by the store)."""
    for name in ("photos", "gis_store", "run_lock"):
        md.tables[name].create(conn, checkfirst=True)
    for index in (*md.tables["alerts"].indexes, *md.tables["alert_events"].indexes):
        index.create(conn, checkfirst=True)


#: version -> the step that brings a store of that version to the next one.
UPGRADES: dict[int, Callable[[sa.Connection, sa.MetaData], None]] = {1: _upgrade_1_to_2}


def upgrade_schema(conn: sa.Connection, md: sa.MetaData, found: int) -> None:
    """Run every step from ``found`` up to :data:`SCHEMA_VERSION` (in the caller's transaction)."""
    for v in range(found, SCHEMA_VERSION):
        UPGRADES[v](conn, md)
    set_meta(conn, md, schema_version=SCHEMA_VERSION)
