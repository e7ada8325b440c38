"""``gis report``: the weekly bulletin (周通报) of a workspace, HTML and Excel."""

from __future__ import annotations

from pathlib import Path

import click

from gis.cli.options import force_option, lang_option, workspace_option
from gis.outputs import check_distinct, check_output, workspace_files
from gis.workspace import load_workspace


@click.command("report")
@workspace_option
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Bulletin HTML to write.")
@click.option("--xlsx", type=click.Path(path_type=Path), default=None,
              help="Also the same tables as an Excel workbook with Chinese headers.")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Survey date the bulletin's week ends on (default: the latest imagery date).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First day of the period (default: six days before --as-of: a week is 7 days).")
@lang_option
@force_option
def report(workspace, out, xlsx, as_of, since, lang, force):
    """Weekly bulletin: figures, rankings, red/black lists, alerts to act on.

    \b
    Example:
      gis report --workspace work --out maps/bulletin.html --xlsx maps/bulletin.xlsx
    """
    # measured: the bulletin writer (pandas, matplotlib) takes ~1 s to import; --help and usage errors need none
    from gis.products.bulletin import write_workspace_bulletin

    ws = load_workspace(workspace)
    check_distinct(out=out, xlsx=xlsx)
    check_output(out, "html", protected=workspace_files(ws), force=force)
    if xlsx is not None:
        check_output(xlsx, "xlsx", protected=workspace_files(ws), force=force)
    snap = ws.snapshot(as_of.date() if as_of else None)
    write_workspace_bulletin(ws, snap.clearance, snap.alerts, out, as_of=snap.as_of, xlsx=xlsx, lang=lang,
                             period_start=since.date() if since else None, runs=snap.runs)
    click.echo(f"wrote {out}" + (f" and {xlsx}" if xlsx else ""))
