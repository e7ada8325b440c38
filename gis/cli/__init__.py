"""The ``gis`` command line: one short module per command.

Each command parses its options, calls the library and turns errors into
messages. Errors derived from :class:`gis.errors.GisError` become one line on
stderr and the error's exit code (2 for bad input); nothing else is caught,
so a real bug still shows its traceback.
"""

from __future__ import annotations

import logging

import click

from gis import __version__
from gis.errors import GisError


class GisGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GisError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=GisGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gis")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
def main(verbose: int, quiet: bool) -> None:
    """Land clearance and illegal-construction monitoring (征地拆迁与两违监测)."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


# Commands register here, one module each.
from gis.cli import check, overlay, demo  # noqa: E402

main.add_command(check.check)
main.add_command(overlay.overlay)
main.add_command(demo.demo)
from gis.cli import map as map_cli, report as report_cli  # noqa: E402
main.add_command(map_cli.map_command)
main.add_command(report_cli.report)
from gis.cli import alerts as alerts_cli, init as init_cli, weekly as weekly_cli  # noqa: E402
main.add_command(init_cli.init)
main.add_command(alerts_cli.alerts)
main.add_command(weekly_cli.weekly)
from gis.cli import detect as detect_cli, model as model_cli  # noqa: E402
main.add_command(detect_cli.detect)
main.add_command(model_cli.model)
