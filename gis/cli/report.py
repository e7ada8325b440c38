"""``gis report``: the weekly bulletin (周通报) of a workspace, HTML and Excel."""

from __future__ import annotations

from pathlib import Path

import click

from gis.cli.map import load_for_maps
from gis.cli.options import force_option, lang_option


@click.command("report")
@click.option("--workspace", required=True, type=click.Path(exists=True, path_type=Path),
              help="Workspace folder (with gis.toml).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Bulletin HTML to write.")
@click.option("--xlsx", type=click.Path(path_type=Path), default=None,
              help="Also the same tables as an Excel workbook with Chinese headers.")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day of the bulletin's week (default: the latest imagery date).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First day of the period (default: six days before --as-of).")
@lang_option
@force_option
def report(workspace, out, xlsx, as_of, since, lang, force):
    """Weekly bulletin: figures, rankings, red/black lists, alerts to act on.

    \b
    Example:
      gis report --workspace work --out maps/bulletin.html --xlsx maps/bulletin.xlsx
    """
    from gis.outputs import check_distinct, check_output, workspace_files
    from gis.products.bulletin import write_bulletin
    from gis.workspace import load_workspace

    ws = load_workspace(workspace)
    check_distinct(out=out, xlsx=xlsx)
    check_output(out, "html", protected=workspace_files(ws), force=force)
    if xlsx is not None:
        check_output(xlsx, "xlsx", protected=workspace_files(ws), force=force)
    ws, c, alerts, _, day = load_for_maps(ws, as_of.date() if as_of else None)
    lang = lang or ws.lang or "zh"
    write_bulletin(c, out, alerts=alerts, store_dir=ws.store_dir, xlsx=xlsx, as_of=day, lang=lang,
                   period_start=since.date() if since else None)
    click.echo(f"wrote {out}" + (f" and {xlsx}" if xlsx else ""))
