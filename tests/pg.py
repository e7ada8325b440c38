"""A throwaway PostgreSQL + PostGIS server, started and stopped by the tests.

The store tests run against a real PostgreSQL, never one installed or started
by hand: ``make system`` installs the Debian packages (``postgresql``,
``postgresql-15-postgis-3``) and this module starts a private server for the
test session. The Debian package's own cluster (``15/main``, port 5432) is
never used: whether it runs or not does not matter.

How the server is made (about 1 s in all):

1. a short temp folder ``/tmp/gispgXXXXXXXX`` (a Unix socket path must stay
   under 107 bytes), holding ``data/`` (the cluster), ``log`` and the socket;
2. ``initdb -U postgres --auth=trust -E UTF8 --locale=C --no-sync``;
3. ``pg_ctl start`` with ``-k <folder> -c listen_addresses=''`` (no TCP port at
   all, so it never clashes with another server), ``fsync=off`` and
   ``max_connections=200`` (the concurrency tests open many connections);
4. at the end ``pg_ctl stop -m immediate`` and the folder is removed (also at
   interpreter exit if a caller forgot).

PostgreSQL refuses to run as root: as root the folder is ``chown``-ed to the
``postgres`` user (created by the Debian package) and every server command
runs as that user through ``runuser -u postgres --``. As any other user the
commands run as that user directly.

Databases: ``create_database(name)`` makes one with PostGIS in it (cloned from
a template database in which ``CREATE EXTENSION postgis`` ran once, about
0.1 s instead of 0.4 s each) and ``url(name)`` gives the SQLAlchemy URL
``postgresql+psycopg://postgres@/<name>?host=<socket folder>``.

The pytest fixtures ``pg_server`` (one per session) and ``pg_url`` (a fresh
database per test) in ``tests/conftest.py`` use :func:`start_for_tests`, which
skips when PostgreSQL or PostGIS is not installed on a developer's machine but
fails loudly under ``CI=true``: CI must test the PostGIS store, never skip it.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

SUPERUSER = "postgres"  # database superuser made by initdb (any OS user)
OS_USER = "postgres"  # OS user the server runs as when the tests run as root
TEMPLATE = "gis_template"  # database with PostGIS that new databases clone
DEBIAN_ROOT = Path("/usr/lib/postgresql")
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
INSTALL_HINT = "install it with `make system` (Debian: postgresql postgresql-15-postgis-3)"


class PostgresError(RuntimeError):
    """A server command failed; the message has its output and the log's end."""


def find_bindir() -> Path | None:
    """The bin folder of the newest installed PostgreSQL, or None.

    Debian keeps each major version in /usr/lib/postgresql/<N>/bin (initdb
    and pg_ctl are not on PATH there); elsewhere initdb on PATH is used.
    """
    found = [p.parent for p in DEBIAN_ROOT.glob("*/bin/initdb")]
    if found:
        return max(found, key=lambda b: _version_key(b.parent.name))
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _version_key(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in name.split("."))


def postgis_control(bindir: Path) -> Path:
    """Where this PostgreSQL looks for PostGIS's extension control file."""
    try:
        out = subprocess.run([str(bindir / "pg_config"), "--sharedir"], capture_output=True,
                             text=True, check=False).stdout.strip()
    except OSError:  # no pg_config: guess Debian's layout
        out = ""
    share = Path(out) if out else Path("/usr/share/postgresql") / bindir.parent.name
    return share / "extension" / "postgis.control"


def unavailable_reason(bindir: Path | None) -> str | None:
    """Why no PostGIS server can be started with ``bindir``, or None if one can."""
    if bindir is None or not (bindir / "initdb").exists() or not (bindir / "pg_ctl").exists():
        where = bindir or f"{DEBIAN_ROOT}/*/bin or PATH"
        return f"PostgreSQL is not installed (no initdb/pg_ctl in {where}): {INSTALL_HINT}"
    control = postgis_control(bindir)
    if not control.exists():
        return f"PostGIS is not installed for {bindir} ({control} is missing): {INSTALL_HINT}"
    return None


def running_as_root() -> bool:
    return os.geteuid() == 0


class TempPostgres:
    """A private PostgreSQL server in a temp folder, reachable only by Unix socket.

    Use as ``with TempPostgres() as pg: engine = create_engine(pg.url(pg.new_database()))``
    or call :meth:`start` and :meth:`stop`. ``stop`` is idempotent and also
    runs at interpreter exit.
    """

    def __init__(self, bindir: Path | str | None = None):
        found = Path(bindir) if bindir else find_bindir()
        reason = unavailable_reason(found)
        if reason:
            raise PostgresError(reason)
        self.bindir: Path = found
        self.dir: Path | None = None  # temp folder: socket, log and data/
        self._names = itertools.count(1)
        self._template_ready = False

    # -- paths ----------------------------------------------------------
    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def log(self) -> Path:
        return self.dir / "log"

    @property
    def socket(self) -> Path:
        """The server's Unix socket file (port 5432 in the temp folder)."""
        return self.dir / ".s.PGSQL.5432"

    @property
    def running(self) -> bool:
        return self.dir is not None and (self.data / "postmaster.pid").exists()

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, TypeError, IndexError, ValueError):
            return None

    # -- life cycle ---------------------------------------------------------
    def start(self) -> "TempPostgres":
        """initdb into a new temp folder and start the server (waits until it accepts)."""
        if self.dir is not None:
            raise PostgresError(f"server in {self.dir} already started")
        self.dir = Path(tempfile.mkdtemp(prefix="gispg", dir="/tmp"))
        atexit.register(self.stop)
        try:
            if running_as_root():
                try:
                    user = pwd.getpwnam(OS_USER)
                except KeyError:
                    raise PostgresError(
                        f"PostgreSQL refuses to run as root and there is no {OS_USER!r} user to "
                        f"run it as: {INSTALL_HINT} (the Debian package creates the user)") from None
                os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                      "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
            options = f"-k {self.dir} -c listen_addresses='' -c fsync=off -c max_connections=200"
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                      "-w", "-t", "60", "start")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``) and remove its folder."""
        if self.dir is None:
            return
        try:
            if self.running:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            self._template_ready = False

    def __enter__(self) -> "TempPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if running_as_root():
            cmd = ["runuser", "-u", OS_USER, "--", *cmd]
        done = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            log = ""
            if self.dir is not None and self.log.exists():
                log = "\nserver log (end):\n" + self.log.read_text(errors="replace")[-2000:]
            raise PostgresError(f"{' '.join(cmd)} failed with exit code {done.returncode}:\n"
                                f"{done.stdout}{done.stderr}{log}")

    # -- databases ------------------------------------------------------------
    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of database ``dbname`` on this server (psycopg 3 driver)."""
        self._check_running()
        return f"postgresql+psycopg://{SUPERUSER}@/{dbname}?host={self.dir}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        """A plain psycopg connection in autocommit mode (close it when done)."""
        self._check_running()
        return psycopg.connect(host=str(self.dir), user=SUPERUSER, dbname=dbname,
                               autocommit=True)

    def create_database(self, name: str) -> str:
        """Create database ``name`` with the PostGIS extension in it; return its URL."""
        if not NAME_RE.match(name):
            raise ValueError(f"database name {name!r}: use lower-case letters, digits and _")
        if not self._template_ready:
            self._make_template()
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)))
        return self.url(name)

    def new_database(self, prefix: str = "gis_test") -> str:
        """Create a database with a fresh name ``<prefix>_<N>`` and return the name."""
        name = f"{prefix}_{next(self._names)}"
        self.create_database(name)
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending any connection still open to it."""
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))

    def _make_template(self) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
        with self.connect(TEMPLATE) as conn:
            conn.execute("CREATE EXTENSION postgis")
        self._template_ready = True

    def _check_running(self) -> None:
        if not self.running:
            raise PostgresError("the temporary PostgreSQL server is not running: call start()")


def ci_requires_postgres(env=None) -> bool:
    """True under CI (``CI=true``): a missing PostgreSQL is then an error, never a skip."""
    value = (os.environ if env is None else env).get("CI", "")
    return value.strip().lower() not in ("", "0", "false", "no")


def start_for_tests(bindir: Path | str | None = None, env=None) -> TempPostgres:
    """Start a server for a test session, or skip (developer machine) / fail (CI).

    Skipping happens only when the PostgreSQL or PostGIS binaries are absent
    and ``CI`` is not set; any other failure (initdb, start) always raises.
    """
    found = Path(bindir) if bindir else find_bindir()
    reason = unavailable_reason(found)
    if reason:
        if ci_requires_postgres(env):
            pytest.fail(f"{reason}. CI must run the PostgreSQL tests, not skip them.",
                        pytrace=False)
        pytest.skip(reason)
    return TempPostgres(found).start()
