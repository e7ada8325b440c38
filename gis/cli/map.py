"""``gis map``: the offline clearance map (HTML) or a printable PNG of a workspace."""

from __future__ import annotations

from pathlib import Path

import click

from gis.cli.options import force_option, lang_option, workspace_option
from gis.outputs import check_distinct, check_output, workspace_files
from gis.workspace import load_workspace


@click.command("map")
@workspace_option
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
    # measured: the map writers (geopandas, matplotlib) take ~0.6 s to import; --help and usage errors need none
    from gis.products.staticmap import write_static_map
    from gis.products.webmap import write_clearance_map

    if out is None and png is None:
        raise click.UsageError("give --out (HTML) and/or --png")
    ws = load_workspace(workspace)
    check_distinct(out=out, png=png)
    for path, kind in ((out, "html"), (png, "png")):
        if path is not None:
            check_output(path, kind, protected=workspace_files(ws), force=force)
    snap = ws.snapshot(as_of.date() if as_of else None)
    lang = lang or snap.lang
    if out is not None:
        ortho = None if no_ortho or snap.epoch is None else snap.epoch.ortho
        write_clearance_map(snap.clearance, out, alerts=snap.alerts, store_dir=snap.store_dir, orthophoto=ortho,
                            orthophoto_label=snap.epoch.date.isoformat() if snap.epoch else None,
                            project=project, lang=lang, as_of=snap.as_of)
        click.echo(f"wrote {out}")
    if png is not None:
        write_static_map(snap.clearance, png, alerts=snap.alerts, project=project, lang=lang, as_of=snap.as_of)
        click.echo(f"wrote {png}")
