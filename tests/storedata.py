"""Helpers for the store tests that run against both backends (the ``store_url`` fixture)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from gis.alerts.migrate import point_workspace
from gis.workspace import load_workspace


def use_store(root: Path, store_url: str) -> Path:
    """Make the workspace at ``root`` keep its alerts in ``store_url`` (gis.toml's ``store``)."""
    point_workspace(root / "gis.toml", store_url)
    return root


def store_of(root: Path):
    return load_workspace(root).open_store()


def execute(store, sql: str, params: dict | None = None) -> None:
    """Run one SQL statement on the store's database behind its back (as a tool or a fault
    would), through the store's engine (a GeoPackage's R-tree triggers need its SQL functions)."""
    with store.engine.begin() as conn:
        conn.execute(sa.text(sql), params or {})


def state(store) -> tuple:
    """Everything a transaction could change, comparable across opens (not the file's bytes)."""
    a = store.alerts()
    return (a.drop(columns="geometry").to_json(), a.geometry.to_wkt().tolist(),
            store.events().to_json(), store.runs().to_json(), store.photos().to_json())
