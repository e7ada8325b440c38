"""Users, their districts (patrol teams) and API tokens: plain functions over the store's engine.

The CLI (``gis users``), the demo and the tests call these without HTTP; the
web app calls the same ones. A :class:`User` is an immutable snapshot the
permission functions read. Logging in answers the same for an unknown user,
a wrong password and a disabled user (None), and costs the same time.
Disabling a user revokes every token of it in the same transaction, so its
phone stops working at the next request.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gis.errors import AccountError
from gis.serve.permissions import ROLES
from gis.serve.storage import open_engine, workspace_districts
from gis.workspace import load_workspace
from gis.serve.security import MIN_PASSWORD, hash_password, new_token, token_digest, verify_password
from gis.serve.tables import api_tokens, user_districts, users

log = logging.getLogger(__name__)

LANGS = ("zh", "en")
#: Fixed passwords of the demo users (``make demo``): documented, for a test machine only.
DEMO_PASSWORDS = {"admin": "demo-admin-pass", "office": "demo-office-pass",
                  "leader": "demo-leader-pass", "patrol": "demo-patrol-pass"}


@dataclass(frozen=True)
class User:
    username: str
    role: str
    districts: tuple[str, ...] = ()
    lang: str = "zh"
    active: bool = True
    extra: dict = field(default_factory=dict, compare=False)

    def public(self) -> dict:
        """What ``GET /api/me`` answers."""
        return {"username": self.username, "role": self.role, "districts": list(self.districts),
                "lang": self.lang}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def _check_name(name: str, what: str = "user name") -> str:
    name = (name or "").strip()
    if not name or len(name) > 64 or any(c in name for c in "/\\\x00") or not name.isprintable():
        raise AccountError(f"{what} {name!r} cannot be used",
                           hint="use 1 to 64 printable characters without slashes")
    return name


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise AccountError(f"the password is shorter than {MIN_PASSWORD} characters",
                           hint=f"choose a password of at least {MIN_PASSWORD} characters")


def _user_from(conn: sa.Connection, row) -> User:
    districts = conn.execute(sa.select(user_districts.c.district)
                             .where(user_districts.c.username == row.username)
                             .order_by(user_districts.c.district)).scalars().all()
    return User(row.username, row.role, tuple(districts), row.lang, bool(row.active))


def add_user(engine: Engine, username: str, password: str, *, role: str,
             districts: Iterable[str] = (), lang: str = "zh", by: str = "") -> User:
    """A new active user; a patrol needs at least one district (its team's area)."""
    username = _check_name(username)
    districts = sorted({_check_name(d, "district") for d in districts})
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}", hint="use one of " + ", ".join(ROLES))
    if role == "patrol" and not districts:
        raise AccountError(f"patrol user {username!r} has no district",
                           hint="give the team's area with --district (repeatable)")
    if lang not in LANGS:
        raise AccountError(f"unknown language {lang!r}", hint="use zh or en")
    _check_password(password)
    hashed = hash_password(password)
    with engine.begin() as conn:
        if conn.execute(sa.select(users.c.username).where(users.c.username == username)).first():
            raise AccountError(f"user {username!r} exists already",
                               hint="choose another name, or `gis users reset-password`")
        conn.execute(users.insert().values(username=username, password_hash=hashed, role=role,
                                           lang=lang, active=True, created_at=_now(), created_by=by))
        if districts:
            conn.execute(user_districts.insert(), [{"username": username, "district": d} for d in districts])
    log.info("user %s (%s) added by %s", username, role, by or "?")
    return User(username, role, tuple(districts), lang, True)


def get_user(engine: Engine, username: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.username == username)).first()
        return None if row is None else _user_from(conn, row)


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(users).order_by(users.c.username)).all()
        return [_user_from(conn, r) for r in rows]


def _require(conn: sa.Connection, username: str):
    row = conn.execute(sa.select(users).where(users.c.username == username)).first()
    if row is None:
        raise AccountError(f"no user {username!r}", hint="list users with `gis users list`")
    return row


def set_active(engine: Engine, username: str, active: bool) -> int:
    """Enable or disable a user; disabling revokes all its tokens at once. Returns tokens revoked."""
    with engine.begin() as conn:
        _require(conn, username)
        conn.execute(users.update().where(users.c.username == username).values(active=active))
        if active:
            return 0
        return conn.execute(api_tokens.update()
                            .where(api_tokens.c.username == username, api_tokens.c.revoked_at.is_(None))
                            .values(revoked_at=_now())).rowcount


def reset_password(engine: Engine, username: str, password: str) -> int:
    """A new password; every token of the user is revoked (phones log in again). Returns tokens revoked."""
    _check_password(password)
    hashed = hash_password(password)
    with engine.begin() as conn:
        _require(conn, username)
        conn.execute(users.update().where(users.c.username == username).values(password_hash=hashed))
        return conn.execute(api_tokens.update()
                            .where(api_tokens.c.username == username, api_tokens.c.revoked_at.is_(None))
                            .values(revoked_at=_now())).rowcount


def set_districts(engine: Engine, username: str, districts: Iterable[str]) -> None:
    """Replace a user's districts (its team's area)."""
    districts = sorted({_check_name(d, "district") for d in districts})
    with engine.begin() as conn:
        _require(conn, username)
        conn.execute(user_districts.delete().where(user_districts.c.username == username))
        if districts:
            conn.execute(user_districts.insert(), [{"username": username, "district": d} for d in districts])


def password_stamp(engine: Engine, username: str) -> str:
    """A short fingerprint of the user's password hash: a browser session remembers it and
    ends when the password is reset."""
    with engine.connect() as conn:
        hashed = conn.execute(sa.select(users.c.password_hash).where(users.c.username == username)).scalar()
    return token_digest(hashed)[:16] if hashed else ""


def authenticate(engine: Engine, username: str, password: str) -> User | None:
    """The user when the password is right and the user active; else None (same time either way)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.username == str(username))).first()
    ok, new_hash = verify_password(str(password), None if row is None else row.password_hash)
    if not ok or not row.active:
        return None
    with engine.begin() as conn:
        if new_hash:  # parameters changed since it was hashed: store the stronger hash
            conn.execute(users.update().where(users.c.username == row.username)
                         .values(password_hash=new_hash))
        return _user_from(conn, row)


def issue_token(engine: Engine, username: str, device: str = "") -> str:
    """A new API token for one device of an active user (the plain token: shown once)."""
    token = new_token()
    with engine.begin() as conn:
        if not _require(conn, username).active:
            raise AccountError(f"user {username!r} is disabled", hint="enable the user first")
        conn.execute(api_tokens.insert().values(username=username, device=(device or "")[:128],
                                                digest=token_digest(token), created_at=_now()))
    return token


def user_for_token(engine: Engine, token: str) -> User | None:
    """The active user a token belongs to, or None (revoked, unknown, disabled user: all None)."""
    if not token:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(users).join(api_tokens, api_tokens.c.username == users.c.username)
            .where(api_tokens.c.digest == token_digest(token), api_tokens.c.revoked_at.is_(None),
                   users.c.active.is_(True))).first()
        return None if row is None else _user_from(conn, row)


def list_tokens(engine: Engine, username: str | None = None) -> list[dict]:
    q = sa.select(api_tokens.c.token_id, api_tokens.c.username, api_tokens.c.device,
                  api_tokens.c.created_at, api_tokens.c.revoked_at).order_by(api_tokens.c.token_id)
    if username:
        q = q.where(api_tokens.c.username == username)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def revoke_tokens(engine: Engine, username: str, device: str | None = None) -> int:
    """Revoke the user's live tokens (only those of ``device`` when given); returns how many."""
    with engine.begin() as conn:
        _require(conn, username)
        q = api_tokens.update().where(api_tokens.c.username == username, api_tokens.c.revoked_at.is_(None))
        if device is not None:
            q = q.where(api_tokens.c.device == device)
        n = conn.execute(q.values(revoked_at=_now())).rowcount
    if device is not None and n == 0:
        raise AccountError(f"user {username!r} has no live token for device {device!r}",
                           hint="see the devices with `gis users list --tokens`")
    return n


def revoke_token(engine: Engine, token: str) -> bool:
    """Revoke one token (a logout); True when it was live."""
    with engine.begin() as conn:
        return bool(conn.execute(api_tokens.update().where(api_tokens.c.digest == token_digest(token),
                                                           api_tokens.c.revoked_at.is_(None))
                                 .values(revoked_at=_now())).rowcount)


def demo_users(districts: Iterable[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, role, districts) of the demo: one user per role and one patrol per district."""
    out = [("admin", "admin", ()), ("office", "office", ()), ("leader", "leader", ())]
    for k, d in enumerate(sorted(set(districts)), start=1):
        out.append((f"patrol{k}", "patrol", (d,)))
    return out


def create_demo_users(ws, engine: Engine | None = None) -> list[dict]:
    """The demo users of workspace ``ws`` (a Workspace or its folder; existing users kept).

    One per role and one patrol per district; returns how each logs in.
    """
    if not hasattr(ws, "open_store"):
        ws = load_workspace(ws)
    engine = engine or open_engine(ws)
    made = []
    for name, role, districts in demo_users(workspace_districts(ws)):
        if get_user(engine, name) is None:
            add_user(engine, name, DEMO_PASSWORDS[role], role=role, districts=districts, by="gis demo")
        made.append({"username": name, "role": role, "districts": list(districts),
                     "password": DEMO_PASSWORDS[role]})
    return made


def demo_logins_text(made: list[dict], workspace) -> str:
    """How to serve the demo and log in, for the end of ``gis demo``."""
    lines = [f"\nserve it: gis serve --workspace {workspace}  (then open http://127.0.0.1:8000/)",
             "demo logins (a test machine only; change them with `gis users reset-password`):"]
    for m in made:
        where = f"  {', '.join(m['districts'])}" if m["districts"] else ""
        lines.append(f"  {m['username']:<9} {m['password']:<18} {m['role']}{where}")
    return "\n".join(lines)
