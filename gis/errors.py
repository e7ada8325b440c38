"""Errors raised by gis.

One root, :class:`GisError`. Subclasses also inherit the builtin they
resemble (``ValueError``, ``FileNotFoundError``, ...) so callers can catch by
type and never by matching message text.

Every error that reaches a person says *where* (file, layer, feature ids) and
*what to do*. Build messages through the keyword arguments rather than by
formatting them in by hand, so that they all read the same way::

    raise DuplicateIdError(
        "duplicate parcel ids",
        path="parcels.gpkg", layer="parcels", ids=["P-1", "P-2"],
        hint="make every parcel_id unique, then run again",
    )

Every error class of the package lives here, so any module can raise or
catch any error without importing another stage. Warnings the caller may want
to filter are classes too (:class:`GisWarning` and below), issued through
:func:`warnings.warn` as rasterio issues ``NodataShadowWarning``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: At most this many offending ids are spelled out in a message; the full
#: list is always on the exception's ``ids`` attribute.
MAX_IDS_SHOWN = 50


class GisError(Exception):
    """Root of every error raised by gis.

    ``exit_code`` is what the CLI exits with: 2 for bad input, 1 otherwise.
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        path: Any = None,
        layer: str | None = None,
        ids: Iterable[Any] | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.layer = layer
        self.ids = [] if ids is None else [plain(i) for i in ids]
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.path:
            where.append(f"file {self.path}")
        if self.layer:
            where.append(f"layer {self.layer!r}")
        text = self.message
        if where:
            text = f"{', '.join(where)}: {text}"
        if self.ids:
            shown = ", ".join(str(i) for i in self.ids[:MAX_IDS_SHOWN])
            more = len(self.ids) - MAX_IDS_SHOWN
            if more > 0:
                shown += f", ... and {more} more"
            text += f" [{shown}]"
        if self.hint:
            text += f". {self.hint[0].upper()}{self.hint[1:]}"
            if not text.endswith("."):
                text += "."
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "path": self.path,
            "layer": self.layer,
            "ids": self.ids,
            "hint": self.hint,
        }


def plain(value: Any) -> Any:
    """numpy scalars to Python ones, so ids print and serialise cleanly."""
    return value.item() if hasattr(value, "item") else value


# --- bad input (exit code 2) -------------------------------------------------


class InputError(GisError, ValueError):
    """Input that cannot be used as given. The CLI exits with code 2."""

    exit_code = 2


class LayerNotFoundError(InputError, FileNotFoundError):
    """A layer file (or a layer inside it) does not exist."""


class UnreadableLayerError(InputError):
    """A file exists but cannot be read as a vector layer."""


class MissingCRSError(InputError):
    """A layer or raster carries no coordinate reference system."""


class CRSError(InputError):
    """A CRS is given but cannot be used (unknown code, not projected...)."""


class MissingColumnError(InputError, KeyError):
    """A required attribute column (or its Chinese alias) is absent."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class DuplicateIdError(InputError):
    """The same feature id appears more than once in a layer."""


class UnknownStatusError(InputError):
    """A clearance (or alert) status value that is not in the allowed list."""


class EmptyGeometryError(InputError):
    """Features with no geometry at all."""


class GeometryTypeError(InputError, TypeError):
    """Non-polygon geometry in a polygon layer."""


class InvalidValueError(InputError):
    """An attribute value of the wrong kind (a date that is not a date...)."""


class LayerValidationError(InputError):
    """Several kinds of problems in one layer; ``problems`` lists them all."""

    def __init__(self, message: str, *, problems: list | None = None, **kw: Any):
        self.problems = problems or []
        super().__init__(message, **kw)


class EmptyLayerError(InputError):
    """A layer with no features at all."""


class ColumnClashError(InputError):
    """Two columns of one layer that stand for the same field (``name`` and ``项目名称``)."""


class AreaTooSmallError(InputError):
    """Red lines smaller than the minimum area (slivers, drawings in the wrong units)."""


class MissingLabelError(InputError):
    """A DXF outline with no text label inside to give its project id."""


class TextEncodingError(UnreadableLayerError):
    """A Shapefile whose text is in none of the encodings tried (UTF-8, GBK, its .cpg)."""


class RasterError(InputError):
    """Root of problems with imagery and DSM rasters."""


class CorruptRasterError(RasterError):
    """A raster that cannot be opened or decoded (truncated, not a raster)."""


class RasterAlignmentError(RasterError):
    """Rasters that cannot be brought onto one grid (no overlap, ...)."""


class BandMismatchError(RasterError):
    """Images with different band counts and no band mapping."""


class DSMDateError(RasterError):
    """A DSM whose survey date differs from its orthophoto's."""


class BandIndexError(RasterError, IndexError):
    """A band number (``--bands-before 1,2,9``) the image does not have."""


class CoverageError(RasterError):
    """Imagery that shows too little of the red lines (nodata, a partial flight)."""


class UnknownProjectError(InputError, KeyError):
    """A project id (``--project``) that has no red line."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class OutputWriteError(GisError, OSError):
    """An output (chips, map, bulletin) that could not be written: a full disk,
    a folder that cannot be written to. An environment error: exit code 1."""


class WorkspaceError(InputError):
    """A workspace folder or its gis.toml that cannot be used."""


class OutputPathError(InputError):
    """An output path that cannot be written as given (a folder, a file of another kind)."""


class ProtectedOutputError(OutputPathError, FileExistsError):
    """An output path that is the store, a workspace file or one of the command's own inputs."""


class OutputKindError(OutputPathError, FileExistsError):
    """An existing output path holding another kind of file (an .html that is a GeoPackage...)."""


class MissingFontError(GisError, RuntimeError):
    """No installed font can draw Chinese characters (static maps). An environment error: exit 1."""


class DiskFullError(GisError, OSError):
    """The disk (or the user's quota) filled up while writing. An environment error: exit 1."""


class PhotoError(InputError):
    """A field photo that cannot be used: missing, empty, not an image, or
    (from a patrol file) named outside the patrol file's own folder."""


class NotExportedError(InputError):
    """A patrol file row for an alert that was not exported to that file."""


# --- state and lifecycle -------------------------------------------------------


class StoreError(GisError):
    """Root of problems with the alert store."""


class StoreLockedError(StoreError):
    """Another run holds the store's lock."""

    exit_code = 3


class StoreMissingError(StoreError, FileNotFoundError):
    """The store file is gone (deleted, or ``store`` mistyped in gis.toml) although
    the workspace has committed to it before."""

    exit_code = 2


class StoreCorruptError(StoreError):
    """The store file fails SQLite's integrity check or cannot be read at all."""

    exit_code = 2


class StoreWriteError(StoreError, OSError):
    """A commit that could not be written (a full disk, a read-only folder); the
    store is left as it was. An environment error: exit code 1."""


class AlertNotFoundError(StoreError, KeyError):
    """No alert with the given id."""

    exit_code = 2

    def __str__(self) -> str:
        return self.args[0]


class InvalidTransitionError(StoreError, ValueError):
    """An alert status change the lifecycle does not allow."""

    exit_code = 2


class ConflictError(StoreError):
    """An alert changed both in the store and in the field since export."""

    exit_code = 2


class ModelError(GisError):
    """A change model (ONNX or trained classifier) that cannot be used."""

    exit_code = 2


class SchedulerError(GisError, ConnectionError):
    """A Dask cluster (``--scheduler``) that cannot be reached, has no workers, or
    keeps losing the workers that run a task. The CLI exits with code 1."""


# --- warnings ------------------------------------------------------------------
#
# Things done or noticed that do not stop the work. They go through
# :func:`warnings.warn` with one of these classes, so a caller can filter or
# escalate them by type (``warnings.simplefilter("error", GeometryRepairWarning)``,
# ``python -W ignore::gis.errors.TextEncodingWarning``); the CLI shows them as
# log lines.


class GisWarning(UserWarning):
    """Root of every warning issued by gis."""


class GeometryRepairWarning(GisWarning):
    """A feature's invalid geometry was repaired with ``make_valid``."""


class TextEncodingWarning(GisWarning):
    """A Shapefile's text was read in an encoding its .cpg does not declare."""


class UnusedColumnWarning(GisWarning):
    """A column that looks like a known header (``特殊青苗 户数``) but is not used: its values count as 0."""


class AreaDistortionWarning(GisWarning):
    """A layer's own CRS distorts areas (Web Mercator...): another one is used for every area."""


class ModelLookWarning(GisWarning):
    """A trained model learnt from imagery whose colours are far from the scene it scores
    (another county, supplier or season): expect it to drop real changes; train it again."""


# --- the served app (gis serve) -------------------------------------------------


class ServeConfigError(InputError):
    """Settings ``gis serve`` refuses to start with (a default secret outside development...)."""


class AuthenticationError(GisError):
    """No valid login: a bad password, token, unknown or disabled user all read the same."""

    exit_code = 2


class PermissionDenied(GisError, PermissionError):
    """A user's role (or districts) does not allow the action; ``reason`` says why."""

    exit_code = 2

    def __init__(self, message: str, *, reason: str = "", **kw: Any) -> None:
        self.reason = reason or message
        super().__init__(message, **kw)


class UploadError(PhotoError):
    """An uploaded file refused before anything is stored (not an image, too large,
    a path in its name, a hash that does not match)."""


class AccountError(InputError):
    """A user account that cannot be made or changed as asked (unknown role, name taken...)."""
