"""The ``gis`` command line: one short module per command.

Each command parses its options, calls the library and turns errors into
messages. Errors derived from :class:`gis.errors.GisError` become one line on
stderr and the error's exit code (2 for bad input); so do usage errors (exit
2, with the ``--help`` hint on the same line) and a full disk (exit 1).
Nothing else is caught, so a real bug still shows its traceback. Warnings of
the :class:`gis.errors.GisWarning` classes become log lines named by their
class (``-q`` hides them).
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import sqlite3
import warnings
from collections.abc import Iterator

import click

from gis import __version__
from gis.errors import DiskFullError, GisError, GisWarning


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
    "serve": "gis.cli.serve:serve",
    "store": "gis.cli.store:store",
    "users": "gis.cli.users:users",
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

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _one_line(exc) from None
        except GisError as exc:
            _fail(ctx, exc)
        except Exception as exc:
            full = _disk_full(exc)
            if full is None:
                raise
            _fail(ctx, full)


class OneLineUsageError(click.UsageError):
    """A usage error shown as one line on stderr: the message and where help is."""

    def show(self, file=None) -> None:
        where = self.ctx.command_path if self.ctx is not None else "gis"
        message = " ".join(self.format_message().split()).rstrip(".")
        click.echo(f"error: {message} (see '{where} --help')", file=file, err=True)


def _one_line(exc: click.UsageError) -> click.UsageError:
    """The same usage error, shown in one line (help asked by calling with no args stays help)."""
    if isinstance(exc, (OneLineUsageError, click.exceptions.NoArgsIsHelpError)):
        return exc
    return OneLineUsageError(exc.format_message(), ctx=exc.ctx)


def _fail(ctx: click.Context, exc: GisError) -> None:
    """One line on stderr (a library's multi-line text folded in) and the error's exit code."""
    click.echo("error: " + " ".join(str(exc).splitlines()), err=True)
    ctx.exit(exc.exit_code)


#: errno values of a full disk or an exhausted quota.
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _disk_full(exc: BaseException) -> DiskFullError | None:
    """A :class:`DiskFullError` when ``exc`` (or what caused it) is a full disk, else None.

    Python and SQLite say so by code; GDAL (pyogrio, rasterio) passes on the
    C library's text for ENOSPC, so that text is the one sign it gives.
    """
    for e in _chain(exc):
        full = (isinstance(e, OSError) and e.errno in _FULL) \
            or getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL \
            or os.strerror(errno.ENOSPC) in str(e)
        if full:
            name = getattr(e, "filename", None) or getattr(exc, "filename", None)
            return DiskFullError("disk full while writing" + ("" if name else " the output"),
                                 path=name, hint="free space and run again")
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or during, once each."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


@click.group(cls=GisGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gis")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
def main(verbose: int, quiet: bool) -> None:
    """Land clearance and illegal-construction monitoring (征地拆迁与两违监测)."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(warnings.showwarning, "gis", False):
        warnings.showwarning = _warning_as_log(warnings.showwarning)


def _warning_as_log(show):
    """A ``warnings.showwarning`` that logs gis's warnings as ``WARNING <Class>: message`` and
    passes every other warning to ``show``."""

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, GisWarning):
            logging.getLogger(category.__name__).warning("%s", message)
        else:
            show(message, category, filename, lineno, file, line)

    showwarning.gis = True
    return showwarning
