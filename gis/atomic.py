"""Atomic file writes: an interrupted run leaves the previous good file.

Write to a temporary file in the target's own folder (same filesystem, so
the final ``os.replace`` is atomic), then rename over the target. On any
error the temporary file is removed and the target is untouched.

The temporary file is hidden and named for its target and its writer's pid
(``.figures.4242.k3j9x.part.gpkg``). A run killed with ``kill -9`` cannot
remove its own; the next write of the same target removes those whose
writer is no longer alive. A replaced file keeps its mode and group (a
store shared by a group stays ``664``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

#: GDAL and SQLite write these beside a GeoPackage while it is open.
_SIDECARS = r"(-journal|-wal|-shm)?"


def temp_prefix(target: Path) -> str:
    """Prefix of this process's temporary files for ``target``."""
    return f".{target.stem}.{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def remove_leftovers(target: str | os.PathLike, suffix: str | None = None) -> list[Path]:
    """Remove temporary files of ``target`` left by writers that are no longer alive.

    Only names this module makes for exactly this target are considered
    (``.<stem>.<pid>.<random>.part<suffix>`` and their SQLite sidecars), so
    other targets in the folder and live concurrent writers are never touched.
    Returns the files removed.
    """
    target = Path(target)
    suffix = target.suffix if suffix is None else suffix
    pattern = re.compile(
        rf"^\.{re.escape(target.stem)}\.(\d+)\.[A-Za-z0-9_]+\.part{re.escape(suffix)}{_SIDECARS}$")
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(target.parent):
            m = pattern.match(entry.name)
            if m is None or int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1))):
                continue
            log.warning("removing %s left by an interrupted run", entry.name)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def keep_owner(original: str | os.PathLike, replacement: str | os.PathLike) -> None:
    """Give ``replacement`` the mode and group (and owner, when allowed) of ``original``.

    Without an ``original`` the replacement gets the mode a new file would
    get under the current umask (``mkstemp`` makes its files ``600``).
    """
    try:
        st = os.stat(original)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(replacement, 0o666 & ~umask)
        return
    os.chmod(replacement, stat.S_IMODE(st.st_mode))
    for uid in (st.st_uid, -1):  # the owner only root may change; the group any member may
        try:
            os.chown(replacement, uid, st.st_gid)
            return
        except PermissionError:
            continue


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it into place on success.

    The temporary file does not exist when yielded (some writers, such as
    GDAL's GeoPackage driver, refuse to write into an existing empty file),
    but keeps the target's suffix so drivers are chosen by extension.
    Leftovers of killed earlier writes of ``target`` are removed first.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=f".part{target.suffix}",
                               dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.unlink()
    try:
        yield tmp_path
        if target.exists():
            keep_owner(target, tmp_path)
        os.replace(tmp_path, target)
    except BaseException:
        for leftover in (tmp_path, *tmp_path.parent.glob(tmp_path.name + "-*")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        raise


def write_text_atomic(target: str | os.PathLike, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)
