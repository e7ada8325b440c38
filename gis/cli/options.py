"""Options shared by several commands."""

from __future__ import annotations

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
