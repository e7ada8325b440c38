"""The settings of one served app, read once and passed into the app factory.

:class:`Settings` is built from a workspace (:meth:`Settings.from_workspace`)
or directly by a test. It refuses a default or empty session secret outside
development: ``gis serve`` generates one into the workspace on first start
(``.gis/secret``, mode 600) and reads it back afterwards, so every worker
process of one server signs sessions with the same key.

The ``[serve]`` table of ``gis.toml`` may set::

    [serve]
    photo_max_distance_m = 100     # a photo farther than this from its alert is "not on site"
    upload_limit_mb = 20           # larger uploads are refused with 400
    login_limit = "5/minute"       # failed logins per user name and address before 429
    environment = "production"     # "development" allows the built-in demo secret
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from gis.errors import ServeConfigError
from gis.workspace import TOML_NAME, Workspace, load_workspace

#: The secret a development set-up may use; refused anywhere else.
DEVELOPMENT_SECRET = "development-only-secret"
#: Where ``gis serve`` keeps the generated session secret, inside the workspace.
SECRET_NAME = ".gis/secret"
ENVIRONMENTS = ("development", "production")
DEFAULT_PHOTO_MAX_DISTANCE_M = 100.0
DEFAULT_UPLOAD_LIMIT_MB = 20.0
DEFAULT_LOGIN_LIMIT = "5/minute"


@dataclass(frozen=True)
class Settings:
    """Everything the app needs to know; nothing is read from globals later."""

    workspace: Workspace
    secret_key: str
    environment: str = "production"
    photo_max_distance_m: float = DEFAULT_PHOTO_MAX_DISTANCE_M
    upload_limit_bytes: int = int(DEFAULT_UPLOAD_LIMIT_MB * 1024 * 1024)
    login_limit: str = DEFAULT_LOGIN_LIMIT
    #: Cookies only over HTTPS (set when the county's reverse proxy terminates TLS).
    secure_cookies: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.environment not in ENVIRONMENTS:
            raise ServeConfigError(f"unknown environment {self.environment!r}", path=self.workspace.toml,
                                   hint="set [serve] environment to development or production")
        if self.environment != "development" and self.secret_key in ("", DEVELOPMENT_SECRET):
            raise ServeConfigError(
                "the session secret is the built-in development one (or empty)",
                path=self.workspace.root / SECRET_NAME,
                hint="delete the file and start `gis serve` again to generate a secret, "
                "or run with environment = \"development\" only on a test machine")
        if len(self.secret_key) < 32 and self.environment != "development":
            raise ServeConfigError("the session secret is shorter than 32 characters",
                                   path=self.workspace.root / SECRET_NAME,
                                   hint="delete the file and start `gis serve` again to generate one")
        if self.upload_limit_bytes <= 0 or self.photo_max_distance_m <= 0:
            raise ServeConfigError("upload_limit_mb and photo_max_distance_m must be positive",
                                   path=self.workspace.toml, hint="fix the [serve] table")

    @property
    def root(self) -> Path:
        return self.workspace.root

    @classmethod
    def from_workspace(cls, directory: str | os.PathLike, **overrides: Any) -> "Settings":
        """The settings of the workspace at ``directory``; the secret is made on first use."""
        ws = load_workspace(directory)
        table = serve_table(ws.toml)
        values: dict[str, Any] = {
            "environment": str(table.get("environment", "production")),
            "photo_max_distance_m": _number(table, "photo_max_distance_m", DEFAULT_PHOTO_MAX_DISTANCE_M, ws),
            "upload_limit_bytes": int(_number(table, "upload_limit_mb", DEFAULT_UPLOAD_LIMIT_MB, ws)
                                      * 1024 * 1024),
            "login_limit": str(table.get("login_limit", DEFAULT_LOGIN_LIMIT)),
            "secure_cookies": bool(table.get("secure_cookies", False)),
        }
        values.update(overrides)
        if "secret_key" not in values:
            values["secret_key"] = workspace_secret(ws.root)
        return cls(workspace=ws, **values)

    def with_(self, **changes: Any) -> "Settings":
        return replace(self, **changes)


def serve_table(toml: Path) -> dict[str, Any]:
    """The ``[serve]`` table of a workspace's gis.toml ({} when absent)."""
    try:
        with open(toml, "rb") as f:
            table = tomllib.load(f).get("serve", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ServeConfigError(f"{TOML_NAME} cannot be read ({exc})", path=toml,
                               hint="fix the file (see `gis init`)") from None
    if not isinstance(table, dict):
        raise ServeConfigError("[serve] must be a table", path=toml, hint="write it as [serve]")
    return table


def _number(table: dict[str, Any], key: str, default: float, ws: Workspace) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ServeConfigError(f"[serve] {key} = {value!r} is not a number", path=ws.toml,
                               hint=f"write a number, e.g. {key} = {default:g}")
    return float(value)


def workspace_secret(root: Path) -> str:
    """The workspace's session secret, generated (mode 600) when there is none yet."""
    path = Path(root) / SECRET_NAME
    try:
        text = path.read_text(encoding="ascii").strip()
        if text:
            return text
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ServeConfigError(f"the session secret cannot be read ({exc.strerror})", path=path,
                               hint="make the file readable by the user running `gis serve`") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # O_EXCL: two workers starting at once agree on the first one's secret
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secret + "\n")
    return secret
