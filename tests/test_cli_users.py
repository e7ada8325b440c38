"""`gis users`: add, list, disable, reset a password, revoke a device token (exit codes and output)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from alertsdata import make_workspace
from gis.cli import main
from gis.serve import accounts
from gis.serve.storage import open_engine
from gis.workspace import load_workspace


@pytest.fixture
def ws(tmp_path):
    return make_workspace(tmp_path / "ws")


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def test_add_list_disable_and_reset(ws):
    r = run("users", "add", "zhang", "--workspace", ws, "--role", "patrol", "--district", "东城区",
            "--district", "临港区", "--password-stdin", input="a long password\n")
    assert r.exit_code == 0, r.output
    assert "zhang (patrol: 东城区, 临港区)" in r.output
    listed = json.loads(run("users", "list", "--workspace", ws, "--json").output)
    assert listed == [{"username": "zhang", "role": "patrol", "districts": ["东城区", "临港区"], "lang": "zh",
                       "active": True}]
    engine = open_engine(load_workspace(ws))
    accounts.issue_token(engine, "zhang", "phone")
    r = run("users", "disable", "zhang", "--workspace", ws)
    assert r.exit_code == 0 and "1 tokens revoked" in r.output
    assert "(disabled)" in run("users", "list", "--workspace", ws).output
    r = run("users", "reset-password", "zhang", "--workspace", ws, "--password-stdin", input="another password\n")
    assert r.exit_code == 0
    run("users", "enable", "zhang", "--workspace", ws)
    assert accounts.authenticate(engine, "zhang", "another password") is not None


def test_bad_input_exits_2_with_one_line(ws):
    for args, words in ((("add", "li", "--role", "patrol"), "no district"),
                        (("add", "li", "--role", "office"), "shorter than"),
                        (("disable", "nobody"), "no user 'nobody'"),
                        (("revoke-token", "nobody", "--device", "x"), "no user")):
        r = run("users", *args, "--workspace", ws, "--password-stdin", input="short\n") \
            if args[0] == "add" else run("users", *args, "--workspace", ws)
        assert r.exit_code == 2, (args, r.output)
        assert words in r.output and len(r.output.strip().splitlines()) == 1
    r = run("users", "add", "li", "--workspace", ws, "--role", "root", "--password-stdin", input="x" * 10)
    assert r.exit_code == 2 and "root" in r.output
