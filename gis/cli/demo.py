"""``gis demo``: build the demo county and run the whole system on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from gis.synthetic.county import DEMO_SEED, make_demo_county
from gis.errors import ProtectedOutputError

#: The project whose battle map (作战图) the demo draws: the industrial park.
BATTLE_MAP_PROJECT = "P03"


@click.command()
@click.option("--out", default="layers/demo", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the demo layers, imagery and workspace.")
@click.option("--maps", "maps_dir", default="maps", show_default=True, type=click.Path(path_type=Path),
              help="Folder for maps, figures and the bulletin.")
@click.option("--seed", default=DEMO_SEED, show_default=True, help="Seed of the synthetic county.")
@click.option("--workers", default=2, show_default=True, help="Processes for change detection.")
@click.option("--force", is_flag=True, help="Build the demo even in a folder holding another workspace "
              "(its layers, imagery and gis.toml are replaced).")
def demo(out, maps_dir, seed, workers, force):
    """Build the demo county and run the weekly cycle on it, end to end.

    \b
    1. layers: 6 districts, 8 projects, ~4,800 parcels, last week's snapshot, structures;
    2. imagery: three survey dates with planted new houses and crops (inside and
       outside red lines, before and after freeze dates) and a demolition;
    3. one weekly run per survey date: detection, alerts (with patrol verdicts
       recorded after the second run), figures;
    4. outputs in MAPS: clearance.html, battle map, clearance.png, bulletin.html/.xlsx,
       figures.gpkg/.xlsx.
    """
    from gis.synthetic.epochs import run_demo_cycle, write_demo_epochs
    from gis.products.webmap import write_clearance_map, write_static_map
    from gis.clearance.pipeline import clearance, write_clearance
    from gis.weekly import format_summary
    from gis.workspace import load_workspace

    if not force:
        _refuse_other_workspace(out)
    console = Console(stderr=True)
    maps_dir.mkdir(parents=True, exist_ok=True)
    with Progress(TextColumn("{task.description:<28}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("demo county layers", total=None)
        county = make_demo_county(out, seed=seed)
        bar.update(task, description="rendering survey imagery")
        write_demo_epochs(county, out)

        def progress(step: str, done: int, total: int) -> None:
            bar.update(task, description=f"weekly run: {step}", completed=done - 1, total=total)

        summary = run_demo_cycle(out, maps_dir, progress=progress, workers=workers)

        bar.update(task, description="figures, battle map, PNG", total=None)
        ws = load_workspace(out)
        store = ws.open_store()
        alerts = store.alerts()
        c = clearance(ws.redlines, ws.parcels, previous=ws.previous_parcels, inventory=ws.inventory,
                      as_of=county.as_of, working_crs=ws.working_crs)
        write_clearance(c, maps_dir / "figures.gpkg", xlsx=maps_dir / "figures.xlsx")
        latest = ws.epochs[-1]
        write_clearance_map(c, maps_dir / f"battle_{BATTLE_MAP_PROJECT}.html", alerts=alerts,
                            store_dir=store.store_dir, orthophoto=latest.ortho, project=BATTLE_MAP_PROJECT,
                            as_of=county.as_of)
        write_static_map(c, maps_dir / "clearance.png", alerts=alerts)

    # stable names for the latest week, beside the dated ones the weekly run wrote
    for key, name in (("map", "clearance.html"), ("bulletin", "bulletin.html")):
        if key in summary.outputs:
            shutil.copyfile(summary.outputs[key], maps_dir / name)
    dated_xlsx = maps_dir / f"figures_{summary.epoch}.xlsx"
    if dated_xlsx.exists():
        shutil.copyfile(dated_xlsx, maps_dir / "bulletin.xlsx")

    click.echo(format_summary(summary))
    click.echo(f"\ndemo workspace: {out} (gis.toml; try `gis alerts list --workspace {out}`)")
    for name in ("clearance.html", f"battle_{BATTLE_MAP_PROJECT}.html", "clearance.png", "bulletin.html",
                 "bulletin.xlsx", "figures.gpkg", "figures.xlsx"):
        if (maps_dir / name).exists():
            click.echo(f"  {maps_dir / name}")


def _refuse_other_workspace(out: Path) -> None:
    """The demo writes its layers, imagery and gis.toml into OUT: never over another workspace's."""
    from gis.workspace import TOML_NAME, tomllib  # tomli on Python 3.10

    toml = out / TOML_NAME
    if not toml.is_file():
        return
    try:
        red = tomllib.loads(toml.read_text(encoding="utf-8")).get("layers", {}).get("redlines")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, AttributeError):
        red = None
    if red != "redlines.gpkg":  # what the demo writes
        raise ProtectedOutputError(
            "the folder holds a workspace that is not the demo's; the demo would replace its layers, "
            "imagery and gis.toml", path=out,
            hint="give the demo another --out folder, or pass --force to replace that workspace")
