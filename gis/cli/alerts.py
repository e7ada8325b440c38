"""``gis alerts``: list, show and set alerts; exchange them with patrol teams."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys
from pathlib import Path

import click
import pandas as pd
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from gis.cli.options import force_option, lang_option, workspace_option
from gis.errors import InputError
from gis.alerts.exchange import export_district, import_field
from gis.alerts.lifecycle import set_alert
from gis.alerts.tables import ALERT_COLUMNS
from gis.labels import label, yes_no
from gis.outputs import check_output, workspace_files
from gis.schema import ALERT_STATUSES
from gis.workspace import load_workspace

#: ``gis alerts list``: the columns that fit a 100-column terminal; ``--wide`` shows every column.
LIST_COLUMNS = ["alert_id", "kind", "status", "area_mu", "project_id", "district", "first_seen",
                "post_freeze", "growing"]
#: Columns whose values never wrap (their headers do, when a language's words are long).
NO_WRAP = ("alert_id", "kind", "status", "first_seen")
#: Where each column's header is in gis.labels (table, key); a column not here is headed by its name.
HEADER_LABELS = {"alert_id": ("text", "alert_id"), "kind": ("office", "kind"), "status": ("office", "status"),
                 "verdict": ("text", "verdict"), "area_m2": ("text", "m2"), "area_mu": ("office", "area_mu"),
                 "confidence": ("text", "confidence"), "project_id": ("office", "project"),
                 "parcel_id": ("text", "parcel_id"), "district": ("office", "district"),
                 "first_seen": ("office", "first_seen"), "last_seen": ("text", "last_seen"),
                 "growing": ("office", "growing"), "post_freeze": ("office", "post_freeze"),
                 "freeze_date": ("text", "freeze_date"), "note": ("office", "note"), "photos": ("office", "photos"),
                 "chip_before": ("text", "before"), "chip_after": ("text", "after")}


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
@click.option("--wide", is_flag=True, help="Every column of the store, not only those that fit 100 columns.")
@lang_option
@click.option("--json", "as_json", is_flag=True, help="A JSON array of objects, each with alert_id.")
def list_alerts(workspace, district, project, status, since, wide, lang, as_json):
    """List alerts as a table (or JSON).

    The table fits a 100-column terminal: id, kind, status, area in mu,
    project, district, first seen, after the freeze date, growing. --wide
    adds every other column (verdict, parcel, last seen, notes, ...).

    \b
    Example:
      gis alerts list --workspace layers/demo --district 高新区 --status new
      gis alerts list --workspace layers/demo --since 2026-04-01 --json
    """
    ws = load_workspace(workspace)
    a = ws.open_store().alerts()
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
    lang = lang or ws.lang
    cols = [c for c in ALERT_COLUMNS if c in a] if wide else LIST_COLUMNS
    table = Table(title=f"{len(a)} alerts", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  collapse_padding=True)
    for col in cols:
        where = HEADER_LABELS.get(col)
        head = label(where[0], where[1], lang) if where else col
        if col == "area_m2":  # 面积(m²), as 面积(亩) is written
            head = f"{label('text', 'area', lang)}({head})"
        table.add_column(head, no_wrap=wide or col in NO_WRAP, min_width=max(map(cell_len, head.split())),
                         justify="right" if ALERT_COLUMNS.get(col) in ("float", "int") else "left")
    for r in a[cols].itertuples(index=False):
        table.add_row(*[_cell(col, v, lang) for col, v in zip(cols, r)])
    # the short table: a terminal's own width (or $COLUMNS), 100 when piped; --wide: whole rows always
    width = 1000 if wide else None if sys.stdout.isatty() or "COLUMNS" in os.environ else 100
    Console(width=width).print(table)


def _cell(col: str, value, lang: str) -> str:
    """How the list shows one value: labels for kind and status, 是 for true, blank for false or missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if col in ("kind", "status", "verdict"):
        return label("alert_status" if col != "kind" else "kind", value, lang)
    if isinstance(value, (bool,)) or ALERT_COLUMNS.get(col) == "bool":
        return yes_no(True, lang) if bool(value) else ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


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


@alerts.command("add")
@workspace_option
@click.option("--kind", default="new_structure", show_default=True,
              type=click.Choice(["new_structure", "new_crops", "demolished", "other"]), help="What was found.")
@click.option("--wkt", default=None, metavar="POLYGON", help="Its outline, in the working CRS (or --crs).")
@click.option("--crs", default=None, metavar="EPSG:N", help="CRS of --wkt (default: the workspace's working CRS).")
@click.option("--lon", type=float, default=None, help="Its place (WGS 84 longitude), with --lat.")
@click.option("--lat", type=float, default=None, help="Its place (WGS 84 latitude), with --lon.")
@click.option("--radius-m", type=click.FloatRange(min=1), default=8.0, show_default=True,
              help="With --lon/--lat: a circle of this radius (m) stands for the outline.")
@click.option("--verdict", default="illegal", show_default=True, type=click.Choice(["illegal", "legal"]),
              help="The verdict recorded with it.")
@click.option("--by", "by", required=True, help="Who found it (name of the patrol member).")
@click.option("--note", default="", help="Note to record.")
@click.option("--date", "day", default=None, metavar="DATE",
              help="When it was found (default: today); it belongs to the latest epoch on or before.")
def add(workspace, kind, wkt, crs, lon, lat, radius_m, verdict, by, note, day):
    """Record a change patrols found that no alert flagged (巡查发现): a new alert of
    source "patrol" with its verdict; verdict models learn from it as a missed change.

    \b
    Examples:
      gis alerts add --workspace layers/demo --lon 114.32 --lat 30.61 --by 张三 --note "院内新建砖房"
      gis alerts add --workspace layers/demo --kind new_structure --verdict illegal --by 张三 \\
          --wkt "POLYGON((512100 3391000, 512112 3391000, 512112 3391010, 512100 3391010, 512100 3391000))"
    """
    import shapely
    from pyproj import Transformer

    from gis.detect.verdicts import add_missed

    if (wkt is None) == (lon is None or lat is None):
        raise click.UsageError("give either --wkt or both --lon and --lat")
    try:
        when = dt.date.fromisoformat(day) if day else None
    except ValueError:
        raise InputError(f"--date {day!r} is not a date", hint="write YYYY-MM-DD") from None
    ws = load_workspace(workspace)
    if wkt is not None:
        try:
            geom = shapely.from_wkt(wkt)
        except shapely.errors.GEOSException as exc:
            raise InputError(f"--wkt is not understood ({exc})", hint="write POLYGON((x y, x y, ...))") from None
    else:
        x, y = Transformer.from_crs("EPSG:4326", ws.working_crs, always_xy=True).transform(lon, lat)
        geom, crs = shapely.Point(x, y).buffer(radius_m), None
    a = add_missed(ws, geom, kind=kind, verdict=verdict, by=by, note=note, day=when, crs=crs)
    click.echo(f"{a['alert_id']}: {a['kind']} {a['status']}, {a['area_m2']:.0f} m2 in "
               f"{a['project_id'] or 'no project'} ({a['district'] or '-'}), reported by {by}")


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
              help="Which side wins for alerts changed in both since export (default: refuse). "
                   "With it, the valid rows are applied and the others listed (exit code 2).")
def import_command(patrol, workspace, by, prefer):
    """Import verdicts, notes and photos recorded in the field."""
    res = import_field(_store(workspace), patrol, by=by, prefer=prefer)
    click.echo(f"applied {len(res.applied)} alerts ({res.photos} photos), {len(res.unchanged)} unchanged"
               + (f", kept the store's version of {', '.join(res.kept_store)}" if res.kept_store else ""))
    if res.skipped:
        for aid, why in res.skipped.items():
            click.echo(f"skipped {aid}: {why}", err=True)
        click.echo(f"error: {len(res.skipped)} alerts of {patrol} were not imported; correct their rows "
                   "in QGIS/QField and import again", err=True)
        sys.exit(InputError.exit_code)


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
