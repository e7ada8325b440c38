"""Atomic file writes: an interrupted run leaves the previous good file.

Write to a temporary file in the target's own folder (same filesystem, so
the final ``os.replace`` is atomic), then rename over the target. On any
error the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it into place on success.

    The temporary file does not exist when yielded (some writers, such as
    GDAL's GeoPackage driver, refuse to write into an existing empty file),
    but keeps the target's suffix so drivers are chosen by extension.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.unlink()
    try:
        yield tmp_path
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
