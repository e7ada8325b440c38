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


# Commands register here, one module each (`gis --help` lists them alphabetically).
from gis.cli import alerts, check, demo, detect, init, model, overlay, report, weekly  # noqa: E402
from gis.cli import map as map_  # noqa: E402  (``map`` would shadow the builtin)

for command in (check.check, overlay.overlay, detect.detect, model.model, init.init, weekly.weekly,
                alerts.alerts, map_.map_command, report.report, demo.demo):
    main.add_command(command)
