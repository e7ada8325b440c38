"""``gis store``: create, check, back up, restore and move the alert store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gis.cli.options import workspace_option
from gis.workspace import load_workspace


def _store(workspace: Path):
    return load_workspace(workspace).open_store()


@click.group("store")
def store():
    """The alert store (store.gpkg, or PostGIS): init, check, backup, restore, copy."""


@store.command("init")
@workspace_option
def init(workspace):
    """Create an empty store for the workspace (a GeoPackage, or the schema in an empty
    PostGIS database when gis.toml's `store` or GIS_STORE is a postgresql:// URL).

    \b
    Example:
      GIS_STORE=postgresql://gis@db.example/gis gis store init --workspace layers/demo
    """
    s = _store(workspace)
    made = s.init()
    click.echo(f"{'created an empty' if made else 'there already is an'} alert store at {s.path}")


@store.command("check")
@workspace_option
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
def check(workspace, as_json):
    """Verify the whole store: schema version, integrity, every photo's hash, the audit
    log against the alerts. Exit 2 when anything is wrong."""
    rep = _store(workspace).verify()
    if as_json:
        click.echo(json.dumps(rep, ensure_ascii=False, indent=2))
    else:
        click.echo(f"{rep['store']} ({rep['backend']}, schema {rep['schema_version']}): "
                   f"{rep.get('alerts', 0)} alerts, {rep.get('events', 0)} events, "
                   f"{rep.get('runs', 0)} runs, {rep.get('photos', 0)} photos")
        for p in rep["problems"]:
            click.echo(f"  problem: {p}")
        click.echo("sound" if rep["ok"] else f"{len(rep['problems'])} problems")
    if not rep["ok"]:
        sys.exit(2)


@store.command("restore")
@click.argument("backup", required=False)
@workspace_option
@click.option("--list", "as_list", is_flag=True, help="List the backups, oldest first, and restore nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --list: a JSON array.")
def restore(backup, workspace, as_list, as_json):
    """Put BACKUP (default: the newest) in place of a GeoPackage store.

    Backups are kept in backups/ beside the store after every weekly run and
    daily otherwise (the last `store_backups` of them, gis.toml). The store
    being replaced is kept as a backup too, so a restore can be undone.

    \b
    Examples:
      gis store restore --workspace layers/demo --list
      gis store restore --workspace layers/demo
      gis store restore --workspace layers/demo store-20260415T081500123456Z.gpkg
    """
    from gis.alerts.safety import describe_backup

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
    """A consistent copy of the store in OUT while others keep writing (a GeoPackage,
    or a pg_dump custom-format file for a PostGIS store)."""
    click.echo(f"wrote {_store(workspace).copy_to(out)}")


@store.command("copy")
@click.argument("url")
@workspace_option
def copy(url, workspace):
    """Move the workspace's store to URL (an empty PostGIS database, or a new .gpkg path):
    alerts, audit log, runs and photos, compared after copying; gis.toml then names URL.

    \b
    Example:
      gis store copy postgresql://gis@db.example/gis --workspace layers/demo
    """
    from gis.alerts.migrate import move_store

    res = move_store(load_workspace(workspace), url)
    click.echo(f"copied {res.alerts} alerts, {res.events} events, {res.runs} runs and {res.photos} photos "
               f"to {res.target}; gis.toml now names it (the old store is left as it was)")


@store.command("unlock")
@workspace_option
def unlock(workspace):
    """Clear a weekly run's lock left by a run that died on another machine."""
    held = _store(workspace).unlock()
    click.echo(f"cleared the lock of pid {held['pid']} on {held['host']} (started {held['started']})"
               if held else "no run lock was held")


@store.command("new")
@workspace_option
def new(workspace):
    """Start an empty store on purpose (where a deleted one would be an error).

    Refuses when a store exists; the old store's backups stay in backups/.
    """
    s = _store(workspace)
    s.create_empty()
    click.echo(f"created an empty alert store at {s.path}")
