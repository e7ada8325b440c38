"""``gis weekly``: one weekly cycle on the workspace's newest (or a given) epoch."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from gis.cli.options import workspace_option
from gis.weekly import STEPS, format_summary, run_weekly


@click.command("weekly")
@workspace_option
@click.option("--epoch", default=None, metavar="DATE", help="Survey date to process (default: the newest).")
@click.option("--no-maps", is_flag=True, help="Skip the map and the bulletin.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def weekly(workspace, epoch, no_maps, as_json):
    """Detect changes on the new epoch, update alerts, figures, map and bulletin.

    Running it twice on the same inputs changes nothing but the run log.

    \b
    Example:
      gis weekly --workspace layers/demo
      gis weekly --workspace layers/demo --epoch 2026-04-15 --json
    """
    console = Console(stderr=True)
    # off a terminal, rich ends even a transient bar with a blank line: no bar there
    with Progress(TextColumn("{task.description:<14}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=as_json or not console.is_terminal) as bar:
        task = bar.add_task("weekly", total=len(STEPS))

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done - 1, total=total, description=STEPS[done - 1])

        def windows(done: int, total: int) -> None:
            bar.update(task, description=f"detect {done}/{total}")

        summary = run_weekly(workspace, epoch, progress=progress, detect_progress=windows, maps=not no_maps)
        bar.update(task, completed=len(STEPS))
    if as_json:
        click.echo(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2, default=str))
    else:
        click.echo(format_summary(summary))
