"""The ``gis`` group: every command loads lazily and answers --help."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gis.cli import COMMANDS, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_loads_and_has_help(name):
    res = CliRunner().invoke(main, [name, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage: main " + name in res.output or f"Usage: gis {name}" in res.output


def test_group_help_lists_every_command():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0
    listed = [line.split()[0] for line in res.output.split("Commands:")[1].strip().splitlines()]
    assert listed == sorted(COMMANDS)


def test_unknown_command_is_a_usage_error():
    res = CliRunner().invoke(main, ["overlays"])
    assert res.exit_code == 2 and "No such command" in res.output
