"""The served app's tables, in the alert store's own database (GeoPackage or PostGIS).

SQLAlchemy Core definitions, created when missing by :func:`ensure_tables`:

* ``users``: name, Argon2 hash, role, language, active flag;
* ``user_districts``: the districts / town offices (a patrol team's area)
  of each user; a patrol sees only the alerts of these;
* ``api_tokens``: one row per device login, the SHA-256 of the token only,
  revoked rows kept (who, which device, when);
* ``field_receipts``: what the server answered to each verdict or photo sent
  from a phone, keyed by the id the phone made (``client_id``), so a re-send
  is a no-op that gets the same answer;
* ``field_photos``: one row per photo and alert: its SHA-256 (the photo itself
  is stored content-addressed by the store layer), who sent it, when and
  where it was taken, and whether that is on site.

The names do not clash with the store's own tables (``alerts``,
``alert_events``, ``runs``, ``photos``).
"""

from __future__ import annotations

from sqlalchemy import (Boolean, Column, Float, Integer, MetaData, String, Table, Text,
                        UniqueConstraint)
from sqlalchemy.engine import Engine

metadata = MetaData()

users = Table(
    "users", metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("lang", String(8), nullable=False, default="zh"),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", String(32), nullable=False),
    Column("created_by", String(64), nullable=False, default=""),
)

user_districts = Table(
    "user_districts", metadata,
    Column("username", String(64), primary_key=True),
    Column("district", String(128), primary_key=True),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("token_id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, index=True),
    Column("device", String(128), nullable=False, default=""),
    Column("digest", String(64), nullable=False, unique=True),
    Column("created_at", String(32), nullable=False),
    Column("revoked_at", String(32), nullable=True),
)

field_receipts = Table(
    "field_receipts", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # verdict | photo
    Column("username", String(64), nullable=False),
    Column("alert_id", String(64), nullable=False),
    Column("at", String(32), nullable=False),
    Column("answer", Text, nullable=False),  # the JSON answered the first time
)

field_photos = Table(
    "field_photos", metadata,
    Column("photo_id", Integer, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False, index=True),
    Column("alert_id", String(64), nullable=False, index=True),
    Column("key", Text, nullable=False),  # where the store keeps it (photos/<sha256>.<ext>)
    Column("name", Text, nullable=False, default=""),  # the file name the phone gave (display only)
    Column("size", Integer, nullable=False),
    Column("uploaded_by", String(64), nullable=False),
    Column("uploaded_at", String(32), nullable=False),
    Column("taken_at", String(32), nullable=True),
    Column("lat", Float, nullable=True),
    Column("lon", Float, nullable=True),
    Column("position_from", String(8), nullable=False, default=""),  # exif | phone | ''
    Column("distance_m", Float, nullable=True),
    Column("on_site", Boolean, nullable=True),  # None: no position known
    Column("photo_client_id", String(64), nullable=True),
    UniqueConstraint("sha256", "alert_id", name="uq_field_photo"),
)


def ensure_tables(engine: Engine) -> None:
    """Create the served app's tables that are missing (never changes existing ones)."""
    metadata.create_all(engine, checkfirst=True)
