"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click

crs_option = click.option(
    "--crs",
    "source_crs",
    default=None,
    metavar="EPSG:N",
    help="CRS of input layers that carry none (DXF, bare Shapefiles).",
)
working_crs_option = click.option(
    "--working-crs",
    default=None,
    metavar="EPSG:N",
    help="Projected CRS for all geometry work (default: the layers' own projected "
    "CRS, else the CGCS2000 3-degree Gauss-Kruger zone of the data's centre).",
)
lang_option = click.option(
    "--lang",
    type=click.Choice(["zh", "en"]),
    default=None,
    help="Language of labels people read (default: the workspace's `lang`, else zh).",
)
force_option = click.option(
    "--force",
    is_flag=True,
    help="Write over an existing output file of another kind (never over an input, "
    "a workspace file or the alert store).",
)
id_from_layer_option = click.option(
    "--id-from-layer",
    is_flag=True,
    help="DXF red lines: give outlines without a text label inside an id made from their "
    "CAD layer and handle (e.g. 东区-2F) instead of refusing them.",
)
min_redline_option = click.option(
    "--min-redline-m2",
    type=click.FloatRange(min=0),
    default=None,
    metavar="M2",
    help="Red lines smaller than this many square metres are an error (default: 1).",
)
workspace_option = click.option(
    "--workspace",
    "workspace",
    default=".",
    show_default=True,
    envvar="GIS_WORKSPACE",
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace folder (with gis.toml); or set GIS_WORKSPACE.",
)
scheduler_option = click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Run the image windows on a Dask cluster: its scheduler's address (tcp://host:8786), "
    "or local:N for N worker processes started on this machine. Every worker must reach the "
    "imagery at the same path or URL (docs/scale.md).",
)
