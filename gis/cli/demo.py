"""``gis demo``: build the demo county and run the whole system on it (:mod:`gis.demo`)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from gis.synthetic.county import DEMO_SEED


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

    Run again with the same OUT, the demo starts afresh: the earlier demo's
    alert store (alerts, verdicts, chips, backups) is removed first, and the
    output says so. A folder holding another workspace is refused (--force
    replaces its layers, imagery and gis.toml, and never removes its store).
    """
    # measured: the scenario pulls in detection, the store and the products (~1.5 s); --help needs none
    from gis.demo import STEPS, run_demo
    from gis.serve.accounts import create_demo_users, demo_logins_text
    from gis.weekly import STEPS as WEEKLY_STEPS
    from gis.weekly import format_summary

    console = Console(stderr=True)
    with Progress(TextColumn("{task.description:<36}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(STEPS[0], total=len(STEPS))
        step = [STEPS[0]]

        def progress(done: int, total: int) -> None:
            step[0] = STEPS[done - 1]
            bar.update(task, description=step[0], completed=done - 1, total=total)

        def weekly_progress(done: int, total: int) -> None:
            bar.update(task, description=f"{step[0]}: {WEEKLY_STEPS[done - 1]}")

        result = run_demo(out, maps_dir, seed=seed, workers=workers, force=force, progress=progress,
                          weekly_progress=weekly_progress)

    if result.notice:
        click.echo(result.notice + "\n")
    click.echo(format_summary(result.summary))
    click.echo(f"\ndemo workspace: {out} (gis.toml; try `gis alerts list --workspace {out}`)")
    for path in result.outputs:
        click.echo(f"  {path}")
    click.echo(demo_logins_text(create_demo_users(out), out))
