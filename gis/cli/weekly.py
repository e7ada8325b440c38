"""``gis weekly``: one weekly cycle on the workspace's newest (or a given) epoch;
several workspaces (a city's counties) in one run, each committed on its own."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from gis.cli.options import scheduler_option
from gis.weekly import STEPS, format_summary, run_weekly, run_weekly_many


@click.command("weekly")
@click.option("--workspace", "workspaces", multiple=True, default=["."], show_default=True, envvar="GIS_WORKSPACE",
              type=click.Path(file_okay=False, path_type=Path),
              help="Workspace folder (with gis.toml); or set GIS_WORKSPACE. Repeat it to run several "
                   "(each committed on its own; one that fails does not stop the others).")
@click.option("--epoch", default=None, metavar="DATE", help="Survey date to process (default: the newest).")
@click.option("--no-maps", is_flag=True, help="Skip the map and the bulletin.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Parallel worker processes for detection.")
@scheduler_option
def weekly(workspaces, epoch, no_maps, as_json, workers, scheduler):
    """Detect changes on the new epoch, update alerts, figures, map and bulletin.

    Running it twice on the same inputs changes nothing but the run log. With
    several --workspace, a summary line per workspace ends the output and the
    exit code is 2 if any failed.

    \b
    Example:
      gis weekly --workspace layers/demo
      gis weekly --workspace layers/demo --epoch 2026-04-15 --json
      gis weekly --workspace county_a --workspace county_b --scheduler tcp://10.0.0.5:8786
    """
    if scheduler and workers > 1:
        raise click.UsageError("give --workers or --scheduler, not both")
    if scheduler:
        from gis.detect.pool import parse_address

        parse_address(scheduler)  # a wrong address is bad input, before any work
    console = Console(stderr=True)
    # off a terminal, rich ends even a transient bar with a blank line: no bar there
    with Progress(TextColumn("{task.description:<14}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=as_json or not console.is_terminal) as bar:
        task = bar.add_task("weekly", total=len(STEPS))

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done - 1, total=total, description=STEPS[done - 1])

        def windows(done: int, total: int) -> None:
            bar.update(task, description=f"detect {done}/{total}")

        kw = dict(progress=progress, detect_progress=windows, maps=not no_maps, workers=workers, scheduler=scheduler)
        if len(workspaces) == 1:
            summary = run_weekly(workspaces[0], epoch, **kw)
        else:
            runs = run_weekly_many(list(workspaces), epoch, **kw)
        bar.update(task, completed=len(STEPS))
    if len(workspaces) == 1:
        click.echo(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2, default=str) if as_json
                   else format_summary(summary))
        return
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in runs], ensure_ascii=False, indent=2, default=str))
    else:
        for r in runs:
            if r.ok:
                click.echo(f"== {r.workspace}\n{format_summary(r.summary)}\n")
        click.echo("\n".join(r.line() for r in runs))
    failed = [r for r in runs if not r.ok]
    if failed:
        click.echo(f"error: {len(failed)} of {len(runs)} workspaces failed: "
                   f"{', '.join(str(r.workspace) for r in failed)}", err=True)
        click.get_current_context().exit(2)
