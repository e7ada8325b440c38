"""``gis init``: write a commented gis.toml for a monitoring workspace."""

from __future__ import annotations

from pathlib import Path

import click

from gis.cli.options import lang_option
from gis.errors import InputError
from gis.workspace import init_workspace, tomllib


def _epoch(value: str) -> tuple:
    date, _, files = value.partition("=")
    parts = [p for p in files.split(",") if p]
    if not date or not parts or len(parts) > 2:
        raise InputError(f"--epoch {value!r}", hint="write --epoch DATE=ORTHO.tif[,DSM.tif]")
    return (date, *parts)


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--redlines", type=click.Path(path_type=Path), help="Red-line layer (项目红线).")
@click.option("--parcels", type=click.Path(path_type=Path), help="Parcel layer (宗地).")
@click.option("--previous-parcels", type=click.Path(path_type=Path),
              help="Parcels as of the previous bulletin (progress ratio).")
@click.option("--inventory", type=click.Path(path_type=Path), help="Structure inventory (房屋摸底).")
@click.option("--epoch", "epochs", multiple=True, metavar="DATE=ORTHO[,DSM]",
              help="An imagery epoch; repeat for each survey date.")
@click.option("--freeze", "freezes", multiple=True, metavar="PROJECT=DATE",
              help="Freeze date of a project, overriding the red-line layer; repeatable.")
@click.option("--working-crs", default=None,
              help="Projected working CRS (default: the layers' own projected CRS, else the CGCS2000 "
                   "Gauss-Kruger zone of their centre, as the clearance chooses; EPSG:4547 without layers).")
@lang_option
@click.option("--force", is_flag=True, help="Overwrite an existing gis.toml.")
def init(directory, redlines, parcels, previous_parcels, inventory, epochs, freezes, working_crs, lang, force):
    """Create a workspace folder with a commented gis.toml.

    Paths are written relative to DIRECTORY so the folder can be moved.

    \b
    Example:
      gis init ws --redlines ws/layers/redlines.gpkg --parcels ws/layers/parcels.gpkg \\
          --epoch 2026-03-15=ws/imagery/2026-03-15.tif \\
          --epoch 2026-04-15=ws/imagery/2026-04-15.tif,ws/imagery/2026-04-15_dsm.tif
    """
    freeze = {}
    for f in freezes:
        pid, _, date = f.partition("=")
        if not pid or not date:
            raise InputError(f"--freeze {f!r}", hint="write --freeze PROJECT=YYYY-MM-DD")
        freeze[pid] = date
    path = init_workspace(directory, redlines=redlines, parcels=parcels, previous_parcels=previous_parcels,
                          inventory=inventory, epochs=[_epoch(e) for e in epochs], freeze_dates=freeze,
                          working_crs=working_crs, lang=lang or "zh", overwrite=force)
    crs = tomllib.loads(path.read_text(encoding="utf-8"))["working_crs"]
    click.echo(f"wrote {path} (working CRS {crs}): edit it, then run `gis weekly --workspace {directory}`")
