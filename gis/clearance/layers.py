"""Reading and validating the vector layers: red lines, parcels, structures.

Validation happens here, at the edge, and nowhere else: headers are mapped
from their Chinese aliases, statuses from their Chinese names, geometry is
repaired with ``make_valid`` (and each repair reported), and everything that
cannot be repaired — missing CRS, empty or non-polygon geometry, duplicate
ids, unknown statuses, unparseable dates or counts — is collected into one
report that lists *every* offending id. Downstream stages trust the data.

:func:`inspect_layer` returns the frame and its :class:`LayerReport` without
raising for data problems; :func:`check_layers` does so for several files
at once (``gis check`` prints them all); :func:`read_layer` raises the first
problem's error, which lists them all.

The work is shared with three modules: :mod:`gis.clearance.reading` (files
as they are: formats, CRS, Shapefile encodings), :mod:`gis.clearance.columns`
(headers, ids, values, statuses) and :mod:`gis.clearance.validation` (the
report, geometry checks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from pyproj import CRS

from gis import errors
from gis.clearance.columns import (clean_text, normalise_attributes, normalise_ids, normalise_status,
                                   rename_columns)
from gis.clearance.reading import VECTOR_SUFFIXES, crs_probe, read_attributes, read_raw
from gis.clearance.validation import (LayerReport, Problem, check_geometry, check_min_area, note_distortion,
                                      warn_about)
from gis.crs import choose_working_crs, parse_crs
from gis.schema import SCHEMAS

__all__ = ["MIN_REDLINE_M2", "VECTOR_SUFFIXES", "Source", "LayerReport", "Problem", "LayerCheck",
           "read_raw", "inspect_layer", "read_layer", "read_redlines", "read_parcels", "read_inventory",
           "read_statuses", "guess_kind", "common_working_crs", "check_layers"]

Source = str | os.PathLike | gpd.GeoDataFrame

#: Red lines smaller than this (m2, in the working CRS) are an error: slivers,
#: or a drawing in the wrong units. ``min_redline_m2`` changes it.
MIN_REDLINE_M2 = 1.0


def inspect_layer(
    source: Source,
    kind: str,
    *,
    layer: str | None = None,
    source_crs: Any = None,
    working_crs: Any = None,
    path: str | os.PathLike | None = None,
    min_redline_m2: float = MIN_REDLINE_M2,
    id_from_layer: bool = False,
) -> tuple[gpd.GeoDataFrame, LayerReport]:
    """Read, normalise and validate one layer; collect problems, do not raise for them.

    Raises only when the layer cannot be read at all (missing file,
    unreadable, no CRS). The returned frame has canonical columns and is in
    the working CRS (``working_crs``, or its own CRS if projected and true
    to areas, or the Gauss-Kruger zone of its centre). An empty layer, two
    columns for one field, and red lines under ``min_redline_m2`` are
    problems; ``id_from_layer`` is for DXF (see :func:`gis.clearance.dxf.read_dxf`).
    """
    schema = SCHEMAS[kind]
    if isinstance(source, gpd.GeoDataFrame):
        path, raw = str(path or "<GeoDataFrame>"), source
        if raw.crs is None:
            if source_crs is None:
                raise errors.MissingCRSError(f"the {kind} frame has no CRS", layer=layer or kind,
                                             hint="set one with .set_crs() or pass source_crs")
            raw = raw.set_crs(parse_crs(source_crs))
    else:
        path, raw = str(source), read_raw(source, layer=layer, source_crs=source_crs,
                                          id_from_layer=id_from_layer)
    report = LayerReport(path=path, layer=layer or kind, kind=kind, source_crs=raw.crs.to_string(),
                         warnings=list(raw.attrs.get("warnings", [])))
    if not len(raw):
        report.problems.append(Problem(
            "empty_layer", f"the {kind} layer ({schema.label_zh}) has no features",
            hint="check that this is the right file (and --layer); an empty layer would give figures "
                 "for land that is not there", error=errors.EmptyLayerError))
        return raw, report

    gdf = rename_columns(raw, schema, report)
    if report.problems:  # two columns for one field: nothing below can tell which to use
        return gdf, report
    missing = [c for c in schema.required if c not in gdf.columns]
    if missing:
        aliases = ", ".join(f"{c.name} ({c.zh})" for c in schema.columns if c.name in missing)
        report.problems.append(Problem(
            "missing_column", f"required column(s) missing: {aliases}",
            hint=f"add the column(s); accepted headers are the English names or their Chinese aliases; "
                 f"found {list(raw.columns.drop(raw.geometry.name, errors='ignore'))}",
            error=errors.MissingColumnError,
        ))
        return gdf, report

    gdf = normalise_ids(gdf, schema, report)
    gdf = normalise_attributes(gdf, schema, report)
    gdf = check_geometry(gdf, schema, report)

    crs = choose_working_crs([gdf], working_crs)
    if not gdf.crs.equals(crs):
        note_distortion(gdf, crs, report)
        gdf = gdf.to_crs(crs)
        report.reprojected = True
    if kind == "redlines":
        check_min_area(gdf, min_redline_m2, report)
    report.crs = crs.to_string()
    report.count = len(gdf)
    if len(gdf):
        report.bounds = tuple(float(v) for v in gdf.total_bounds)
    return gdf, report


def read_layer(source: Source, kind: str, **kw: Any) -> gpd.GeoDataFrame:
    """Read and validate a layer; raise the first problem (which lists every id).

    Repairs and warnings are issued through :mod:`warnings`
    (:class:`gis.errors.GeometryRepairWarning` and the other
    :class:`gis.errors.GisWarning` classes), and the report is kept in
    ``attrs["report"]``.
    """
    gdf, report = inspect_layer(source, kind, **kw)
    report.raise_for_problems()
    warn_about(report)
    gdf.attrs["report"] = report
    return gdf


def read_statuses(source: Source, *, layer: str | None = None) -> pd.DataFrame:
    """parcel_id and status of a parcel snapshot, without geometry.

    Enough to tell which parcels changed status (the progress ratio), at a
    fraction of the memory of a full read.
    """
    if isinstance(source, gpd.GeoDataFrame):
        raw, path = pd.DataFrame(source.drop(columns=source.geometry.name)), "<GeoDataFrame>"
    else:
        raw, path = read_attributes(source, layer=layer), Path(source)
    schema = SCHEMAS["parcels"]
    aliases = schema.aliases()
    mapping = {}
    for col in raw.columns:
        target = aliases.get(str(col).strip().lower())
        if target in ("parcel_id", "status") and target not in mapping.values():
            mapping[col] = target
    df = raw.rename(columns=mapping)
    report = LayerReport(path=str(path), layer=layer or "parcels", kind="parcels")
    missing = [c for c in ("parcel_id", "status") if c not in df.columns]
    if missing:
        raise errors.MissingColumnError(f"required column(s) missing: {', '.join(missing)}", path=path,
                                        layer=layer, hint="the snapshot needs 宗地编号 and 状态")
    if not len(df):
        raise errors.EmptyLayerError("the previous parcel snapshot has no features", path=path, layer=layer,
                                     hint="give the snapshot of the parcel layer from the previous period")
    df = pd.DataFrame({"parcel_id": clean_text(df["parcel_id"]), "status": df["status"]})
    df = normalise_status(df, schema, report)
    report.raise_for_problems()
    return df


def guess_kind(raw: gpd.GeoDataFrame) -> str | None:
    """Which layer a frame is, from its headers (English or Chinese)."""
    headers = {str(c).strip().lower() for c in raw.columns}
    for kind in ("inventory", "parcels", "redlines"):  # structures carry parcel ids too
        schema = SCHEMAS[kind]
        names = {a for a, col in schema.aliases().items() if col == schema.id_column}
        if headers & names:
            return kind
    return None


def read_redlines(source: Source, **kw: Any) -> gpd.GeoDataFrame:
    return read_layer(source, "redlines", **kw)


def read_parcels(source: Source, **kw: Any) -> gpd.GeoDataFrame:
    return read_layer(source, "parcels", **kw)


def read_inventory(source: Source, **kw: Any) -> gpd.GeoDataFrame:
    return read_layer(source, "inventory", **kw)


def common_working_crs(sources: list, *, source_crs: Any = None, working_crs: Any = None) -> CRS:
    """The working CRS for several layers read together (red lines first).

    An explicit ``working_crs`` is checked against the layers' extent too:
    one that distorts areas there is an error.
    """
    frames, names = [], []
    for s in sources:
        if s is None:
            continue
        if isinstance(s, gpd.GeoDataFrame):
            frames.append(s if s.crs is not None or source_crs is None else s.set_crs(parse_crs(source_crs)))
            if "path" in s.attrs:
                names.append(s.attrs["path"])
        else:
            # Only the CRS and extent are needed here; pyogrio reads them cheaply.
            frames.append(crs_probe(s, source_crs))
            names.append(str(s))
    if working_crs is None and frames and not any(len(f) for f in frames):
        raise errors.EmptyLayerError("no features in any of the layers: nothing to measure",
                                     path=", ".join(names) or None,
                                     hint="check that these are the right files (and --layer)")
    return choose_working_crs(frames, working_crs)


@dataclass
class LayerCheck:
    """What ``gis check`` reports: the working CRS of the layers and each layer's report."""

    working_crs: CRS
    reports: list[LayerReport]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reports)

    def to_dict(self) -> dict:
        return {"working_crs": self.working_crs.to_string(), "layers": [r.to_dict() for r in self.reports]}


def check_layers(paths: list[str | os.PathLike], *, kind: str | None = None, layer: str | None = None,
                 source_crs: Any = None, working_crs: Any = None, id_from_layer: bool = False,
                 min_redline_m2: float = MIN_REDLINE_M2) -> LayerCheck:
    """Read and validate several layer files together; collect their problems, do not raise for them.

    ``kind`` (redlines, parcels or inventory) is guessed from each file's
    headers when not given (a DXF is red lines). Raises only when a file
    cannot be read at all or its kind cannot be told.
    """
    raws = []
    for p in map(Path, paths):
        raw = read_raw(p, layer=layer, source_crs=source_crs, id_from_layer=id_from_layer)
        k = kind or ("redlines" if p.suffix.lower() == ".dxf" else guess_kind(raw))
        if k is None:
            raise errors.InputError(
                "cannot tell whether this is a red-line, parcel or structure layer from its headers "
                f"{list(raw.columns)}", path=p, layer=layer,
                hint="pass --kind redlines|parcels|inventory, or add the id column "
                     "(项目编号 / 宗地编号 / 房屋编号)")
        raws.append((p, k, raw))
    crs = common_working_crs([r for _, _, r in raws], working_crs=working_crs)
    reports = [inspect_layer(raw, k, layer=layer, working_crs=crs, path=p, min_redline_m2=min_redline_m2)[1]
               for p, k, raw in raws]
    return LayerCheck(crs, reports)
