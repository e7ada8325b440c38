"""Where a command may write: never over the store, a workspace file or its own inputs.

Every command that writes a file a person named (``--out``, ``--xlsx``,
``--png``, ``--mask-out``...) passes it through :func:`check_output` before any
work starts. The check refuses, with a named error (exit 2):

* a path that is the same file as a protected one (the alert store, a layer,
  an orthophoto or the gis.toml of a workspace, or one of the command's own
  inputs), compared as files on disk, so a symlink, a hard link or another
  spelling of the same path is caught too;
* a path inside a workspace folder that is one of that workspace's files,
  even when the command was not given the workspace;
* an existing file whose content is of another kind than the output (an
  ``.html`` path that holds a GeoPackage, a ``.gpkg`` that is not one, an
  ``.xlsx`` that is not a workbook) or an existing GeoPackage that holds an
  alert store, unless ``force`` is given.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gis.errors import GisError, OutputKindError, OutputPathError, ProtectedOutputError

#: Leading bytes of the file kinds an output may meet, longest match first.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"SQLite format 3\x00", "sqlite"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"PK\x03\x04", "zip"),
    (b"II*\x00", "tif"), (b"MM\x00*", "tif"), (b"II+\x00", "tif"), (b"MM\x00+", "tif"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"%PDF-", "pdf"),
)
#: SQLite application_id (header offset 68) of GeoPackage 1.2+ and of 1.0/1.1.
_GPKG_IDS = (b"GPKG", b"GP10", b"GP11")
#: What an existing file must be for each output kind to be written over.
_ACCEPTS: dict[str, frozenset[str]] = {
    "gpkg": frozenset({"gpkg"}),
    "xlsx": frozenset({"xlsx"}),
    "png": frozenset({"png"}),
    "tif": frozenset({"tif"}),
    "html": frozenset({"text"}),
    "json": frozenset({"text"}),
    "joblib": frozenset({"binary", "zip"}),
    "pdf": frozenset({"pdf"}),
}
#: How a file kind reads in a message.
_NAMES = {"gpkg": "a GeoPackage", "sqlite": "a SQLite database (not a GeoPackage)",
          "xlsx": "an Excel workbook", "zip": "a zip archive", "png": "a PNG image",
          "tif": "a TIFF / GeoTIFF", "jpeg": "a JPEG image", "pdf": "a PDF",
          "text": "a text file", "binary": "a binary file", "html": "an HTML page",
          "json": "a JSON file", "joblib": "a model file"}
#: Files that travel with a Shapefile: writing over any of them breaks it.
_SHP_SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx")


def check_output(
    path: str | os.PathLike,
    kind: str,
    *,
    protected: Mapping[Any, str] | None = None,
    force: bool = False,
) -> Path:
    """Refuse an output path that would overwrite what it must not; return it as a Path.

    ``kind`` is what will be written (``"gpkg"``, ``"html"``, ``"xlsx"``,
    ``"png"``, ``"tif"``, ``"json"``, ``"joblib"``, ``"pdf"``). ``protected`` maps paths
    (``None`` entries are skipped) to what they are, as a message says it:
    ``{parcels: "the --parcels input"}``. ``force`` allows writing over an
    existing file of another kind, never over a protected one.
    """
    if kind not in _ACCEPTS:
        raise ValueError(f"unknown output kind {kind!r}")
    out = Path(path)
    guarded = {**_nearby_workspace_files(out), **_expand(protected or {})}
    for other, what in guarded.items():
        if _same_file(out, other):
            raise ProtectedOutputError(
                f"the output is {what}; writing there would destroy it", path=out,
                hint="give the output another path")
    if out.is_dir():
        raise OutputPathError("the output path is a folder", path=out,
                              hint="give a file path inside it")
    if out.exists() and not force:
        _check_kind(out, kind)
    return out


def check_distinct(**outputs: Any) -> None:
    """Refuse two outputs of one command that name the same file (``out=..., xlsx=...``)."""
    given = [(name, Path(p)) for name, p in outputs.items() if p is not None]
    for i, (name, p) in enumerate(given):
        for other_name, q in given[i + 1:]:
            if _same_file(p, q):
                raise ProtectedOutputError(
                    f"--{other_name.replace('_', '-')} and --{name.replace('_', '-')} name the same "
                    "file; the second would overwrite the first", path=p, hint="give each output its own path")


def workspace_files(ws: Any) -> dict[Path, str]:
    """The files of a loaded :class:`gis.workspace.Workspace`, each with what it is."""
    files: dict[Path, str] = {
        ws.store: "the workspace's alert store",
        ws.toml: "the workspace's gis.toml",
        ws.state_path: "the workspace's record of its store",
        ws.redlines: "the workspace's red-line layer",
        ws.parcels: "the workspace's parcel layer",
    }
    if ws.previous_parcels:
        files[ws.previous_parcels] = "the workspace's previous parcel layer"
    if ws.inventory:
        files[ws.inventory] = "the workspace's structure inventory"
    for e in ws.epochs:
        files[e.ortho] = f"the workspace's orthophoto of {e.date.isoformat()}"
        if e.dsm:
            files[e.dsm] = f"the workspace's DSM of {e.date.isoformat()}"
    for backup in sorted((Path(ws.store).parent / "backups").glob("*.gpkg")):
        files[backup] = "a backup of the workspace's alert store"
    return files


def inputs(**named: Any) -> dict[Any, str]:
    """``inputs(parcels=p, before=b)`` -> ``{p: "the --parcels input", ...}`` (None skipped)."""
    return {p: f"the --{name.replace('_', '-')} input" for name, p in named.items() if p is not None}


def _expand(protected: Mapping[Any, str]) -> dict[Path, str]:
    """Protected paths (None skipped), each Shapefile with its sidecar files."""
    out: dict[Path, str] = {}
    for p, what in protected.items():
        if p is None:
            continue
        p = Path(p)
        out[p] = what
        if p.suffix.lower() == ".shp":
            out.update({p.with_suffix(s): what for s in _SHP_SIDECARS})
    return out


def _nearby_workspace_files(out: Path) -> dict[Path, str]:
    """The files of the workspace whose folder holds ``out`` (nearest gis.toml above it)."""
    from gis.workspace import TOML_NAME, load_workspace

    for folder in Path(os.path.realpath(out)).parents:
        if (folder / TOML_NAME).is_file():
            try:
                return _expand(workspace_files(load_workspace(folder)))
            except GisError:  # a broken workspace is its own commands' problem
                return {}
    return {}


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: same inode when both exist, else same real path."""
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _check_kind(out: Path, kind: str) -> None:
    """Refuse an existing file of another kind than ``kind``, or an alert store."""
    if out.stat().st_size == 0:
        return
    found = identify(out)
    if found not in _ACCEPTS[kind]:
        raise OutputKindError(
            f"the output exists and is {_NAMES.get(found, found)}, not {_NAMES[kind]}", path=out,
            hint="check the path; pass --force to write over it anyway")
    if kind == "gpkg" and _holds_alert_store(out):
        raise OutputKindError(
            "the output exists and holds an alert store (table alert_events)", path=out,
            hint="give another path; pass --force only if that store is no longer needed")


def identify(path: str | os.PathLike) -> str:
    """What a file holds, from its first bytes: gpkg, sqlite, xlsx, zip, png, tif, jpeg, pdf, text or binary."""
    with open(path, "rb") as f:
        head = f.read(8192)
    for magic, found in _SIGNATURES:
        if head.startswith(magic):
            if found == "sqlite":
                return "gpkg" if head[68:72] in _GPKG_IDS else "sqlite"
            if found == "zip":
                return "xlsx" if _is_workbook(path) else "zip"
            return found
    return "binary" if b"\x00" in head else "text"


def _is_workbook(path: str | os.PathLike) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return "xl/workbook.xml" in z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _holds_alert_store(path: Path) -> bool:
    """Whether a GeoPackage has the alert store's audit-log table (read without any lock or write)."""
    uri = Path(os.path.abspath(path)).as_uri() + "?immutable=1"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as con:
            return con.execute("SELECT 1 FROM sqlite_master WHERE name = 'alert_events'").fetchone() is not None
    except sqlite3.Error:
        return False
