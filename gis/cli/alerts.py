"""``gis alerts``: list, show and set alerts; exchange them with patrol teams."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click
import pandas as pd
from rich.console import Console
from rich.table import Table

from gis.cli.options import force_option, workspace_option
from gis.errors import InputError
from gis.alerts.exchange import export_district, import_field
from gis.alerts.lifecycle import set_alert
from gis.outputs import check_output, workspace_files
from gis.schema import ALERT_STATUSES
from gis.workspace import load_workspace

LIST_COLUMNS = ["alert_id", "kind", "status", "area_mu", "project_id", "parcel_id", "district",
                "first_seen", "last_seen", "seen_count", "growing", "post_freeze"]


def _store(workspace: Path):
    ws = load_workspace(workspace)
    return ws.open_store()


def _records(df: pd.DataFrame) -> list[dict]:
    """Rows as JSON-able dicts (NaN -> null, numpy scalars -> Python)."""
    return json.loads(df.to_json(orient="records", force_ascii=False))


@click.group("alerts")
def alerts():
    """Alerts (预警图斑): list, show, record verdicts, field exchange."""


@alerts.command("list")
@workspace_option
@click.option("--district", default=None, help="Only this district / town office.")
@click.option("--project", default=None, help="Only this project id.")
@click.option("--status", type=click.Choice(ALERT_STATUSES), multiple=True, help="Only these statuses.")
@click.option("--since", default=None, metavar="DATE", help="Only alerts first seen on or after DATE.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of objects, each with alert_id.")
def list_alerts(workspace, district, project, status, since, as_json):
    """List alerts as a table (or JSON).

    \b
    Example:
      gis alerts list --workspace layers/demo --district 高新区 --status new
      gis alerts list --workspace layers/demo --since 2026-04-01 --json
    """
    a = _store(workspace).alerts()
    if district:
        a = a[a["district"] == district]
    if project:
        a = a[a["project_id"] == project]
    if status:
        a = a[a["status"].isin(status)]
    if since:
        try:
            day = dt.date.fromisoformat(since).isoformat()
        except ValueError:
            raise InputError(f"--since {since!r} is not a date", hint="write YYYY-MM-DD") from None
        a = a[a["first_seen"] >= day]
    if as_json:
        click.echo(json.dumps(_records(a.drop(columns="geometry")), ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(a)} alerts", show_lines=False)
    for col in LIST_COLUMNS:
        table.add_column(col, justify="right" if col in ("area_mu", "seen_count") else "left",
                         no_wrap=col == "alert_id")
    for r in a[LIST_COLUMNS].itertuples(index=False):
        table.add_row(*[f"{v:.2f}" if isinstance(v, float) else ("yes" if v is True else "" if v is False else str(v))
                        for v in r])
    # piped output (files, tests) keeps full rows instead of wrapping to 80 columns
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@alerts.command("show")
@click.argument("alert_id")
@workspace_option
@click.option("--json", "as_json", is_flag=True, help="The alert and its history as JSON.")
def show(alert_id, workspace, as_json):
    """Show one alert with its history (audit log) and chip paths."""
    store = _store(workspace)
    a = store.alert(alert_id)
    ev = store.events()
    ev = ev[ev["alert_id"] == alert_id]
    data = {k: (v.item() if hasattr(v, "item") else v) for k, v in a.drop(labels="geometry").items()}
    data = {k: (None if isinstance(v, float) and v != v else v) for k, v in data.items()}
    data["geometry_wkt"] = a.geometry.wkt
    data["store_dir"] = str(store.store_dir)
    if as_json:
        data["events"] = _records(ev)
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        return
    for k, v in data.items():
        if k != "geometry_wkt":
            click.echo(f"{k:>16}: {v}")
    click.echo("history:")
    for e in ev.itertuples():
        click.echo(f"  {e.at}  {e.by:<10} {e.action:<10} {e.field}: {e.old} -> {e.new}")


@alerts.command("set")
@click.argument("alert_id")
@workspace_option
@click.option("--status", required=True, type=click.Choice(ALERT_STATUSES), help="New status.")
@click.option("--by", "by", required=True, help="Who records it (name of the patrol member).")
@click.option("--note", default=None, help="Note to record.")
@click.option("--photo", "photos", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Field photo; repeat for several. Copied into the store under its content hash.")
def set_command(alert_id, workspace, status, by, note, photos):
    """Record a status / verdict, a note and photos for an alert.

    \b
    Example:
      gis alerts set A20260415-0003 --workspace layers/demo --status illegal \\
          --by 张三 --note "新建砖房" --photo IMG_0012.jpg
    """
    a = set_alert(_store(workspace), alert_id, status=status, by=by, note=note, photos=list(photos))
    click.echo(f"{alert_id}: {a['status']} (by {a['updated_by']}, revision {a['rev']})")


@alerts.command("export")
@workspace_option
@click.option("--district", required=True, help="District / town office whose alerts go to the field.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="GeoPackage to write (opens in QGIS and QField).")
@click.option("--by", "by", default="export", show_default=True, help="Who dispatches.")
@click.option("--no-dispatch", is_flag=True, help="Do not mark new alerts as dispatched.")
@force_option
def export(workspace, district, out, by, no_dispatch, force):
    """Export a district's alerts needing field work for patrol teams."""
    ws = load_workspace(workspace)
    check_output(out, "gpkg", protected=workspace_files(ws), force=force)
    res = export_district(ws.open_store(), district, out, by=by,
                          dispatch=not no_dispatch)
    click.echo(f"wrote {len(res.alert_ids)} alerts to {res.path} ({len(res.dispatched)} newly dispatched)")


@alerts.command("import")
@click.argument("patrol", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@workspace_option
@click.option("--by", "by", default=None, help="Who recorded it, when the file does not say.")
@click.option("--prefer", type=click.Choice(["field", "store"]), default=None,
              help="Which side wins for alerts changed in both since export (default: refuse).")
def import_command(patrol, workspace, by, prefer):
    """Import verdicts, notes and photos recorded in the field."""
    res = import_field(_store(workspace), patrol, by=by, prefer=prefer)
    click.echo(f"applied {len(res.applied)} alerts ({res.photos} photos), {len(res.unchanged)} unchanged"
               + (f", kept the store's version of {', '.join(res.kept_store)}" if res.kept_store else ""))


@alerts.command("evidence")
@click.argument("alert_id", required=False)
@workspace_option
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="The PDF to write; without ALERT_ID, the folder for one PDF per alert (<alert id>.pdf).")
@click.option("--district", default=None, help="Without ALERT_ID: only this district / town office.")
@click.option("--status", type=click.Choice(ALERT_STATUSES), multiple=True,
              help="Without ALERT_ID: only these statuses (default: illegal); repeat for several.")
@force_option
def evidence(alert_id, workspace, out, district, status, force):
    """Evidence packs (违法建设证据材料): an A4 PDF per alert, in Chinese.

    Case number, location map, CGCS2000 coordinates, area, project, parcel,
    freeze date, before/after chips, field photos and the verdict history.

    \b
    Example:
      gis alerts evidence A20260415-0003 --workspace layers/demo --out A20260415-0003.pdf
      gis alerts evidence --workspace layers/demo --district 东城区 --status illegal --out evidence/
    """
    # fpdf2 and matplotlib take ~0.9 s to import: only this command pays for them
    from gis.products.evidence import write_evidence, write_evidence_batch

    if alert_id:
        if district or status:
            raise InputError("--district and --status choose the alerts of a batch, not one ALERT_ID",
                             hint="drop them, or drop ALERT_ID to write one PDF per alert")
        click.echo(f"wrote the evidence pack of {alert_id} to {write_evidence(workspace, alert_id, out, force=force)}")
        return
    paths = write_evidence_batch(workspace, out, district=district, statuses=status or ("illegal",), force=force)
    click.echo(f"wrote {len(paths)} evidence packs to {out}" + ("" if paths else " (no alert matches)"))
