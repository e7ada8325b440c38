"""``gis overlay``: parcels x red lines, clearance figures, rankings."""

from __future__ import annotations

from pathlib import Path

import click

from gis.cli.options import (crs_option, force_option, id_from_layer_option, min_redline_option,
                             working_crs_option)
from gis.clearance.layers import MIN_REDLINE_M2
from gis.clearance.pipeline import DEFAULT_BATCH, STREAM_ABOVE, clearance
from gis.outputs import check_distinct, check_output, inputs


@click.command()
@click.option("--redlines", required=True, type=click.Path(path_type=Path), help="Red-line layer (项目红线).")
@click.option("--parcels", required=True, type=click.Path(path_type=Path), help="Parcel layer (宗地).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output GeoPackage.")
@click.option("--xlsx", type=click.Path(path_type=Path), default=None,
              help="Also write the figure tables as an Excel workbook with Chinese headers.")
@click.option("--previous", type=click.Path(path_type=Path), default=None,
              help="Previous snapshot of the parcel layer, for the progress ratio (进度占比率).")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Date the figures are counted at, for overdue projects (default: today).")
@click.option("--batch-size", type=click.IntRange(min=1000), default=None,
              help="Read parcels in batches of this many (flat memory for city-wide cadastres). "
                   f"Default: batches of {DEFAULT_BATCH:,} when the file has over {STREAM_ABOVE:,} parcels.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Overlay the parcels on a Dask cluster, in spatial partitions: its scheduler's address "
                   "(tcp://host:8786), or local:N for N worker processes started on this machine. "
                   "Every worker must reach the parcel file at the same path or URL (docs/scale.md).")
@crs_option
@working_crs_option
@id_from_layer_option
@min_redline_option
@force_option
def overlay(redlines, parcels, out, xlsx, previous, as_of, batch_size, scheduler, source_crs, working_crs,
            id_from_layer, min_redline_m2, force):
    """Split parcels by red lines and count clearance progress.

    Writes layer parcel_pieces and tables project_figures and
    district_figures (ranked, with red and black lists) to OUT. Large
    parcel files are read in batches, so memory stays flat.

    \b
    Example:
      gis overlay --redlines layers/demo/redlines.gpkg --parcels layers/demo/parcels.gpkg \\
          --previous layers/demo/parcels_previous.gpkg --out maps/figures.gpkg --xlsx maps/figures.xlsx
    """
    if scheduler and batch_size:
        raise click.UsageError("give --batch-size or --scheduler, not both")
    if scheduler:
        from gis.detect.pool import parse_address  # OpenCV's import time, only for --scheduler

        parse_address(scheduler)  # a wrong address is bad input, before any work
    own = inputs(redlines=redlines, parcels=parcels, previous=previous)
    check_distinct(out=out, xlsx=xlsx)
    check_output(out, "gpkg", protected=own, force=force)
    if xlsx is not None:
        check_output(xlsx, "xlsx", protected=own, force=force)
    c = clearance(redlines, parcels, previous=previous, as_of=as_of.date() if as_of else None,
                  source_crs=source_crs, working_crs=working_crs, id_from_layer=id_from_layer,
                  min_redline_m2=MIN_REDLINE_M2 if min_redline_m2 is None else min_redline_m2,
                  batch_size=batch_size, out=out, xlsx=xlsx, scheduler=scheduler)
    click.echo(f"{len(c.pieces)} parcel pieces in {len(c.projects)} projects, "
               f"{len(c.districts)} districts (CRS {c.crs.to_string()}) -> {out}")
    click.echo(_summary(c))
    if xlsx:
        click.echo(f"Excel workbook -> {xlsx}")


def _summary(c) -> str:
    lines = ["district      rank  completion  clean land  total mu  list"]
    for _, d in c.districts.iterrows():
        rate = "-" if d["completion_rate"] != d["completion_rate"] else f"{d['completion_rate']:.1%}"
        clean = "-" if d["clean_land_rate"] != d["clean_land_rate"] else f"{d['clean_land_rate']:.1%}"
        lines.append(f"{d['district']:<10}  {d['rank']:>4}  {rate:>10}  {clean:>10}  {d['total_mu']:>8.2f}  {d['list']}")
    return "\n".join(lines)
