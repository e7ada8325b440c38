"""``gis map``: the offline clearance map (HTML) or a printable PNG of a workspace."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from gis.cli.options import force_option, lang_option


def load_for_maps(ws, as_of: dt.date | None = None):
    """Clearance figures, alerts, store folder and latest epoch of a loaded workspace."""
    from gis.clearance.pipeline import clearance

    epoch = max(ws.epochs, key=lambda e: e.date) if ws.epochs else None
    day = as_of or (epoch.date if epoch else dt.date.today())
    c = clearance(ws.redlines, ws.parcels, previous=ws.previous_parcels, inventory=ws.inventory,
                  as_of=day, working_crs=ws.working_crs or None, min_redline_m2=ws.min_redline_m2,
                  id_from_layer=ws.id_from_layer)
    store = ws.open_store(crs=c.crs)
    alerts = store.alerts() if store.present() else None
    return ws, c, alerts, epoch, day


@click.command("map")
@click.option("--workspace", required=True, type=click.Path(exists=True, path_type=Path),
              help="Workspace folder (with gis.toml).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="HTML map to write (e.g. maps/clearance.html).")
@click.option("--png", type=click.Path(path_type=Path), default=None, help="Also (or only) a printable PNG.")
@click.option("--project", default=None, help="Battle map (作战图) of this project id.")
@click.option("--no-ortho", is_flag=True, help="Leave the latest orthophoto out of the HTML.")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Date of the figures (default: the latest imagery date).")
@lang_option
@force_option
def map_command(workspace, out, png, project, no_ortho, as_of, lang, force):
    """Clearance-status map: parcels by status, red lines, alerts, orthophoto.

    The HTML is self-contained and works offline (no CDN, no web fonts).

    \b
    Examples:
      gis map --workspace work --out maps/clearance.html
      gis map --workspace work --out maps/P03.html --project P03
      gis map --workspace work --png maps/clearance.png --lang en
    """
    from gis.products.webmap import write_clearance_map, write_static_map
    from gis.outputs import check_distinct, check_output, workspace_files
    from gis.workspace import load_workspace

    if out is None and png is None:
        raise click.UsageError("give --out (HTML) and/or --png")
    ws = load_workspace(workspace)
    check_distinct(out=out, png=png)
    for path, kind in ((out, "html"), (png, "png")):
        if path is not None:
            check_output(path, kind, protected=workspace_files(ws), force=force)
    ws, c, alerts, epoch, day = load_for_maps(ws, as_of.date() if as_of else None)
    lang = lang or ws.lang or "zh"
    if out is not None:
        ortho = None if no_ortho or epoch is None else epoch.ortho
        write_clearance_map(c, out, alerts=alerts, store_dir=ws.store_dir, orthophoto=ortho,
                            orthophoto_label=epoch.date.isoformat() if epoch else None,
                            project=project, lang=lang, as_of=day)
        click.echo(f"wrote {out}")
    if png is not None:
        write_static_map(c, png, alerts=alerts, project=project, lang=lang, as_of=day)
        click.echo(f"wrote {png}")
