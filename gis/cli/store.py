"""``gis store``: backups of the alert store; restore one, copy the store, start anew."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gis.cli.weekly import workspace_option
from gis.workspace import load_workspace


def _store(workspace: Path):
    return load_workspace(workspace).open_store()


@click.group("store")
def store():
    """The alert store (store.gpkg): backups, restore."""


@store.command("restore")
@click.argument("backup", required=False)
@workspace_option
@click.option("--list", "as_list", is_flag=True, help="List the backups, oldest first, and restore nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --list: a JSON array.")
def restore(backup, workspace, as_list, as_json):
    """Put BACKUP (default: the newest) in place of the store.

    Every commit keeps a copy of the store in backups/ beside it (the last
    `store_backups` of them, gis.toml). The store being replaced is kept as a
    backup too, so a restore can be undone.

    \b
    Examples:
      gis store restore --workspace layers/demo --list
      gis store restore --workspace layers/demo
      gis store restore --workspace layers/demo store-20260415T081500123456Z.gpkg
    """
    from gis.alerts.store import describe_backup

    s = _store(workspace)
    if as_list:
        rows = [describe_backup(p) for p in s.backups()]
        if as_json:
            click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
            return
        if not rows:
            click.echo(f"no backups in {s.backup_dir}")
        for r in rows:
            state = (f"{r['alerts']} alerts, last run {r['last_run'] or 'none'}" if r["sound"]
                     else f"CORRUPT ({r['problem']})")
            click.echo(f"{r['name']}  {r['bytes'] / 1e6:8.2f} MB  {state}")
        return
    used = s.restore(backup)
    click.echo(f"restored {s.path} from {used}")


@store.command("backup")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@workspace_option
def backup(out, workspace):
    """Copy the store (checked sound, under the lock) to OUT."""
    click.echo(f"wrote {_store(workspace).copy_to(out)}")


@store.command("new")
@workspace_option
def new(workspace):
    """Start an empty store on purpose (where a deleted one would be an error).

    Refuses when a store file exists; the old store's backups stay in backups/.
    """
    s = _store(workspace)
    s.create_empty()
    click.echo(f"created an empty alert store at {s.path}")
