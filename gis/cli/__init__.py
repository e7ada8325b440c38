"""The ``gis`` command line: one short module per command.

Each command parses its options, calls the library and turns errors into
messages. Errors derived from :class:`gis.errors.GisError` become one line on
stderr and the error's exit code (2 for bad input); nothing else is caught,
so a real bug still shows its traceback.
"""

from __future__ import annotations

import importlib
import logging

import click

from gis import __version__
from gis.errors import GisError


#: command name -> "module:function". Modules load only when their command
#: runs (click's lazy-group pattern): `gis detect` does not import the alert
#: store, the maps or pandas-heavy reporting, which saves ~0.5 s per call.
COMMANDS = {
    "alerts": "gis.cli.alerts:alerts",
    "check": "gis.cli.check:check",
    "demo": "gis.cli.demo:demo",
    "detect": "gis.cli.detect:detect",
    "init": "gis.cli.init:init",
    "map": "gis.cli.map:map_command",
    "model": "gis.cli.model:model",
    "overlay": "gis.cli.overlay:overlay",
    "report": "gis.cli.report:report",
    "weekly": "gis.cli.weekly:weekly",
}


class GisGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

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
