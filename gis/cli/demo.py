"""``gis demo``: build the demo county and run the whole system on it."""

from __future__ import annotations

from pathlib import Path

import click

from gis.demo import DEMO_SEED, make_demo_county
from gis.pipeline import clearance, write_clearance


@click.command()
@click.option("--out", default="layers/demo", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the demo layers and workspace.")
@click.option("--maps", "maps_dir", default="maps", show_default=True, type=click.Path(path_type=Path),
              help="Folder for maps, figures and the bulletin.")
@click.option("--seed", default=DEMO_SEED, show_default=True, help="Seed of the synthetic county.")
def demo(out, maps_dir, seed):
    """Generate the demo county (6 districts, 8 projects, ~4,800 parcels) and run it."""
    county = make_demo_county(out, seed=seed)
    click.echo(f"demo county -> {county.folder}")
    c = clearance(county.redlines, county.parcels, previous=county.previous_parcels,
                  inventory=county.inventory, as_of=county.as_of)
    figures = write_clearance(c, maps_dir / "figures.gpkg", xlsx=maps_dir / "figures.xlsx")
    click.echo(f"clearance figures -> {figures} and {maps_dir / 'figures.xlsx'}")
