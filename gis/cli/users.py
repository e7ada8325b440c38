"""``gis users``: the accounts of ``gis serve`` (kept in the workspace's store)."""

from __future__ import annotations

import json
import sys

import click

from gis.cli.options import workspace_option
from gis.errors import AccountError
from gis.serve import accounts
from gis.serve.permissions import ROLES
from gis.serve.storage import open_engine
from gis.workspace import load_workspace


def _engine(workspace):
    return open_engine(load_workspace(workspace))


def _password(from_stdin: bool) -> str:
    if from_stdin:
        text = sys.stdin.readline().rstrip("\r\n")
        if not text:
            raise AccountError("no password on standard input", hint="pipe the password, e.g. printf '%s' PASS |")
        return text
    return click.prompt("password", hide_input=True, confirmation_prompt=True)


@click.group("users")
def users():
    """Users of `gis serve`: admin, office, patrol (per district), leader."""


@users.command("add")
@click.argument("name")
@workspace_option
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the user may do.")
@click.option("--district", "districts", multiple=True, help="A district / town office of a patrol team (repeatable).")
@click.option("--lang", type=click.Choice(accounts.LANGS), default="zh", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (else prompt).")
def add(name, workspace, role, districts, lang, password_stdin):
    """Add a user.

    \b
    Example:
      printf '%s' 'a long password' | gis users add zhang --workspace layers/demo \\
          --role patrol --district 高新区 --password-stdin
    """
    engine = _engine(workspace)
    user = accounts.add_user(engine, name, _password(password_stdin), role=role, districts=districts,
                             lang=lang, by="gis users add")
    click.echo(f"added {user.username} ({user.role}{': ' + ', '.join(user.districts) if user.districts else ''})")


@users.command("list")
@workspace_option
@click.option("--tokens", is_flag=True, help="Also list each user's device tokens.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array.")
def list_(workspace, tokens, as_json):
    """List users (and their devices)."""
    engine = _engine(workspace)
    rows = [{**u.public(), "active": u.active} for u in accounts.list_users(engine)]
    if tokens:
        for r in rows:
            r["tokens"] = accounts.list_tokens(engine, r["username"])
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        state = "" if r["active"] else "  (disabled)"
        click.echo(f"{r['username']}\t{r['role']}\t{','.join(r['districts'])}{state}")
        for t in r.get("tokens", []):
            click.echo(f"    device {t['device'] or '-'}\t{t['created_at']}\t"
                       f"{'revoked ' + t['revoked_at'] if t['revoked_at'] else 'live'}")


@users.command("disable")
@click.argument("name")
@workspace_option
def disable(name, workspace):
    """Disable a user; its tokens stop working at once."""
    n = accounts.set_active(_engine(workspace), name, False)
    click.echo(f"disabled {name} ({n} tokens revoked)")


@users.command("enable")
@click.argument("name")
@workspace_option
def enable(name, workspace):
    """Enable a disabled user again (it logs in anew)."""
    accounts.set_active(_engine(workspace), name, True)
    click.echo(f"enabled {name}")


@users.command("reset-password")
@click.argument("name")
@workspace_option
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input (else prompt).")
def reset_password(name, workspace, password_stdin):
    """Set a new password; the user's devices log in again."""
    n = accounts.reset_password(_engine(workspace), name, _password(password_stdin))
    click.echo(f"new password for {name} ({n} tokens revoked)")


@users.command("revoke-token")
@click.argument("name")
@workspace_option
@click.option("--device", default=None, help="Only this device's token (a lost phone); else all of them.")
def revoke_token(name, workspace, device):
    """Revoke a user's device token(s) without disabling the user."""
    n = accounts.revoke_tokens(_engine(workspace), name, device)
    click.echo(f"revoked {n} token(s) of {name}")
