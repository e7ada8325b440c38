"""Reading and validating the vector layers: red lines, parcels, structures.

Validation happens here, at the edge, and nowhere else: headers are mapped
from their Chinese aliases, statuses from their Chinese names, geometry is
repaired with ``make_valid`` (and each repair reported), and everything that
cannot be repaired — missing CRS, empty or non-polygon geometry, duplicate
ids, unknown statuses, unparseable dates or counts — is collected into one
report that lists *every* offending id. Downstream stages trust the data.

:func:`inspect_layer` returns the frame and its :class:`LayerReport` without
raising for data problems (``gis check`` prints them all);
:func:`read_layer` raises the first problem's error, which lists them all.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from gis import errors
from gis.crs import MAX_AREA_DISTORTION, area_distortion, choose_working_crs, extent_lonlat, parse_crs
from gis.geometry import POLYGONAL, is_valid_threaded, polygonal
from gis.schema import SCHEMAS, STATUS_ALIASES, STATUSES, LayerSchema

log = logging.getLogger(__name__)

#: File suffixes read through GDAL (pyogrio); DXF and GeoParquet are special.
VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".parquet", ".geoparquet", ".dxf", ".zip")

Source = str | os.PathLike | gpd.GeoDataFrame

#: Red lines smaller than this (m2, in the working CRS) are an error: slivers,
#: or a drawing in the wrong units. ``min_redline_m2`` changes it.
MIN_REDLINE_M2 = 1.0


@dataclass
class Problem:
    """One kind of unusable input in a layer, with every offending id."""

    code: str
    message: str
    ids: list = field(default_factory=list)
    hint: str = ""
    error: type = errors.InputError

    def to_dict(self) -> dict:
        d = asdict(self)
        d["error"] = self.error.__name__
        d["ids"] = [errors._plain(i) for i in self.ids]
        return d


@dataclass
class LayerReport:
    """What ``gis check`` tells about one layer."""

    path: str
    layer: str | None
    kind: str
    count: int = 0
    source_crs: str | None = None
    crs: str | None = None
    reprojected: bool = False
    bounds: tuple[float, float, float, float] | None = None
    renamed: dict[str, str] = field(default_factory=dict)
    repairs: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: Things done or noticed that do not stop the work (a CRS passed over,
    #: a header that looks like a known one but is not used, an encoding guessed).
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if not self.problems:
            return
        first = self.problems[0]
        others = "; ".join(p.message for p in self.problems[1:])
        message = first.message + (f" (also: {others})" if others else "")
        exc = first.error(message, path=self.path, layer=self.layer, ids=first.ids, hint=first.hint)
        exc.problems = self.problems  # every problem, for callers that want them all
        raise exc

    def to_dict(self) -> dict:
        d = asdict(self)
        d["problems"] = [p.to_dict() for p in self.problems]
        d["ok"] = self.ok
        return d


# --- reading ----------------------------------------------------------------


def read_raw(path: str | os.PathLike, *, layer: str | None = None,
             source_crs: Any = None, id_from_layer: bool = False) -> gpd.GeoDataFrame:
    """Read a vector file as it is, with a CRS (or ``MissingCRSError``).

    Shapefile text is decoded in the encoding it really has (see
    :func:`_read_shapefile`); ``id_from_layer`` lets DXF outlines without a
    label take ids from their CAD layer and handle.
    """
    path = Path(path)
    if not path.exists():
        raise errors.LayerNotFoundError(
            "file does not exist", path=path, layer=layer,
            hint="check the path (and the working folder you run from)",
        )
    suffix = path.suffix.lower()
    _refuse_folder(path, layer)
    try:
        if suffix == ".dxf":
            from gis.clearance.dxf import read_dxf  # ezdxf only when a DXF comes in

            gdf = read_dxf(path, layer=layer)
        elif suffix in (".parquet", ".geoparquet"):
            gdf = gpd.read_parquet(path)
        elif _is_shapefile(path):
            gdf = _read_shapefile(path, layer=layer)
        else:
            gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    except errors.GisError:
        raise
    except Exception as exc:  # GDAL / Arrow / ezdxf say it in many ways
        if layer is not None and "layer" in str(exc).lower():
            raise errors.LayerNotFoundError(
                f"no layer {layer!r} in the file ({exc})", path=path, layer=layer,
                hint="list the file's layers with `ogrinfo` or QGIS and pass the right --layer",
            ) from None
        raise errors.UnreadableLayerError(
            f"cannot read the file as a vector layer ({type(exc).__name__}: {exc})",
            path=path, layer=layer,
            hint=f"give a GeoPackage, Shapefile, GeoJSON, FlatGeobuf, GeoParquet or DXF ({', '.join(VECTOR_SUFFIXES)})",
        ) from None
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry is None:
        raise errors.UnreadableLayerError("the file has no geometry column", path=path, layer=layer,
                                          hint="export the layer with its geometry")
    if gdf.crs is not None and gdf.crs.is_geographic and len(gdf) and _not_degrees(gdf):
        # GeoJSON readers assume WGS 84 when a file says nothing; metres read as degrees
        if source_crs is None:
            b = gdf.total_bounds
            raise errors.MissingCRSError(
                f"the layer claims {gdf.crs.to_string()} (degrees) but its coordinates reach "
                f"{b[2]:.0f}, {b[3]:.0f}: they are projected metres and the real CRS is missing",
                path=path, layer=layer,
                hint="pass --crs EPSG:N with the CRS the coordinates are in (e.g. EPSG:4547)",
            )
        gdf = gdf.set_crs(parse_crs(source_crs, what="--crs"), allow_override=True)
    if gdf.crs is None:
        if source_crs is None:
            raise errors.MissingCRSError(
                "the layer has no coordinate reference system", path=path, layer=layer,
                hint="pass --crs EPSG:N with the CRS it was drawn in (e.g. --crs EPSG:4547 for "
                "CGCS2000 3-degree Gauss-Kruger CM 114E); DXF files never carry one",
            )
        gdf = gdf.set_crs(parse_crs(source_crs, what="--crs"))
    if suffix == ".dxf" and not id_from_layer:
        from gis.clearance.dxf import require_labels

        require_labels(gdf, path)
    gdf.attrs["path"] = str(path)
    return gdf


def _refuse_folder(path: Path, layer: str | None) -> None:
    """A folder is not a layer: GDAL would read its first Shapefile with only a warning.

    A File Geodatabase (``.gdb``) is a folder by design and stays readable.
    """
    if path.is_dir() and path.suffix.lower() != ".gdb":
        found = sorted(p.name for p in path.iterdir() if p.suffix.lower() in VECTOR_SUFFIXES)
        raise errors.UnreadableLayerError(
            "this is a folder, not a layer file", path=path, layer=layer,
            hint="give one of the layer files in it" + (f": {', '.join(found[:10])}" if found else ""))


def _is_shapefile(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".shp", ".dbf"):
        return True
    if suffix == ".zip":
        import zipfile

        try:
            with zipfile.ZipFile(path) as z:
                return any(n.lower().endswith(".dbf") for n in z.namelist())
        except (zipfile.BadZipFile, OSError):
            return False  # GDAL names the problem
    return False


def _declared_encoding(path: Path) -> str | None:
    """The codec named by the .cpg beside a Shapefile (``GBK``, ``UTF-8``, ``936``...), if any."""
    import codecs

    for cpg in (path.with_suffix(".cpg"), path.with_suffix(".CPG")):
        if cpg.is_file():
            name = cpg.read_text(encoding="ascii", errors="ignore").strip()
            name = re.sub(r"^(?:ansi|cp|windows-?)\s*(?=\d+$)", "", name, flags=re.I)
            name = f"cp{name}" if name.isdigit() else name
            try:
                return codecs.lookup(name).name
            except LookupError:
                return None
    return None


#: Encodings a Shapefile's text is tried in after UTF-8 and its .cpg.
_FALLBACK_ENCODINGS = ("gb18030",)  # a superset of GBK and GB2312


def _decode_header(raw: bytes, encoding: str) -> str:
    """A DBF field name; a last character cut in half by the 10-byte limit is dropped."""
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.end < len(raw):
            raise
        return raw[:exc.start].decode(encoding)


def _read_shapefile(path: Path, *, layer: str | None = None) -> gpd.GeoDataFrame:
    """A Shapefile with its text decoded in the encoding it really has.

    GDAL trusts the .cpg (or assumes Latin-1 without one), so a GBK file
    without .cpg reads as mojibake and a UTF-8 header cut mid-character by
    the 10-byte limit cannot be read at all. The text is read as raw bytes
    instead and decoded as UTF-8 if it is valid UTF-8, else in the .cpg's
    encoding, else as GBK (GB18030); a guess is logged and kept in
    ``attrs["warnings"]``. Text that none of them decodes is an error saying
    which .cpg to add.
    """
    gdf = gpd.read_file(path, layer=layer, engine="pyogrio", ENCODING="ISO-8859-1")  # bytes as they are
    headers = {c: str(c).encode("latin-1") for c in gdf.columns if c != gdf.geometry.name}
    texts = {c: gdf[c] for c in headers if gdf[c].dtype == object}
    uniques = {c: pd.unique(v.dropna()) for c, v in texts.items()}
    if all(h.isascii() for h in headers.values()) and all(
            isinstance(u, str) and u.isascii() for us in uniques.values() for u in us):
        return gdf
    declared = _declared_encoding(path)
    for encoding in dict.fromkeys(("utf-8", declared, *_FALLBACK_ENCODINGS)):
        if encoding is None:
            continue
        try:
            names = {c: _decode_header(h, encoding) for c, h in headers.items()}
            decoded = {c: {u: u.encode("latin-1").decode(encoding) for u in us if isinstance(u, str)}
                       for c, us in uniques.items()}
        except UnicodeDecodeError:
            continue
        for c, table in decoded.items():
            gdf[c] = texts[c].map(lambda v, t=table: t.get(v, v))
        gdf = gdf.rename(columns=names)
        if encoding != declared:
            cpg = path.with_suffix(".cpg").name if path.suffix.lower() != ".zip" else "a .cpg"
            said = f"its .cpg says {declared}" if declared else "it has no .cpg"
            note = (f"text read as {_ENCODING_NAMES.get(encoding, encoding)} ({said}); "
                    f"put {_ENCODING_NAMES.get(encoding, encoding)} in {cpg} to say so")
            log.warning("%s: %s", path, note)
            gdf.attrs["warnings"] = [note]
        return gdf
    raise errors.TextEncodingError(
        f"the text in the file is neither UTF-8 nor GBK{f' nor {declared} (its .cpg)' if declared else ''}",
        path=path, layer=layer,
        hint=f"add a .cpg file beside {path.with_suffix('.shp').name} containing the encoding the "
             "attributes were saved in (GBK for most Chinese GIS software), then run again",
    )


_ENCODING_NAMES = {"utf-8": "UTF-8", "gb18030": "GBK"}


def _not_degrees(gdf: gpd.GeoDataFrame) -> bool:
    xmin, ymin, xmax, ymax = gdf.total_bounds
    return bool(max(abs(xmin), abs(xmax)) > 180 or max(abs(ymin), abs(ymax)) > 90)


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

    gdf = _rename_columns(raw, schema, report)
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

    gdf = _normalise_ids(gdf, schema, report)
    gdf = _normalise_attributes(gdf, schema, report)
    gdf = _check_geometry(gdf, schema, report)

    crs = choose_working_crs([gdf], working_crs)
    if not gdf.crs.equals(crs):
        _note_distortion(gdf, crs, report)
        gdf = gdf.to_crs(crs)
        report.reprojected = True
    if kind == "redlines":
        _check_min_area(gdf, min_redline_m2, report)
    report.crs = crs.to_string()
    report.count = len(gdf)
    if len(gdf):
        report.bounds = tuple(float(v) for v in gdf.total_bounds)
    return gdf, report


def _note_distortion(gdf: gpd.GeoDataFrame, working: CRS, report: LayerReport) -> None:
    """Say so when the layer's own projected CRS was passed over because it distorts areas."""
    if not gdf.crs.is_projected:
        return
    off = area_distortion(gdf.crs, *extent_lonlat([gdf]))
    if off > MAX_AREA_DISTORTION:
        report.warnings.append(
            f"{gdf.crs.to_string()} ({gdf.crs.name}) makes areas up to {off:.0%} too large here: "
            f"reprojected to {working.to_string()} ({working.name}) for every area")


def _check_min_area(gdf: gpd.GeoDataFrame, min_m2: float, report: LayerReport) -> None:
    """Red lines with (almost) no area: a sliver would read 100 % done on 0.00 mu."""
    geoms = gdf.geometry.to_numpy()
    area = shapely.area(geoms)
    tiny = (area < min_m2) & ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if tiny.any():
        report.problems.append(Problem(
            "tiny_redline", f"{int(tiny.sum())} red line(s) smaller than {min_m2:g} m2",
            ids=gdf.loc[tiny, "project_id"].tolist(),
            hint="redraw them (or check the drawing's units and --crs); lower the limit with "
                 "--min-redline-m2 (min_redline_m2 in gis.toml) only for red lines that are truly that small",
            error=errors.AreaTooSmallError))


def read_layer(source: Source, kind: str, **kw: Any) -> gpd.GeoDataFrame:
    """Read and validate a layer; raise the first problem (which lists every id)."""
    gdf, report = inspect_layer(source, kind, **kw)
    report.raise_for_problems()
    for r in report.repairs:
        log.warning("%s: repaired %s %s: %s", report.path, kind, r["id"], r["reason"])
    for w in report.warnings:
        log.warning("%s: %s", report.path, w)
    gdf.attrs["report"] = report
    return gdf


def read_statuses(source: Source, *, layer: str | None = None) -> pd.DataFrame:
    """parcel_id and status of a parcel snapshot, without geometry.

    Enough to tell which parcels changed status (the progress ratio), at a
    fraction of the memory of a full read.
    """
    if isinstance(source, gpd.GeoDataFrame):
        raw = pd.DataFrame(source.drop(columns=source.geometry.name))
        path = "<GeoDataFrame>"
    else:
        path = Path(source)
        if not path.exists():
            raise errors.LayerNotFoundError("file does not exist", path=path, layer=layer,
                                            hint="check the path of the previous snapshot")
        _refuse_folder(path, layer)
        try:
            if path.suffix.lower() in (".parquet", ".geoparquet"):
                raw = pd.read_parquet(path)
            elif _is_shapefile(path):  # decoded in the encoding it really has
                raw = _read_shapefile(path, layer=layer)
                raw = pd.DataFrame(raw.drop(columns=raw.geometry.name))
            else:
                import pyogrio

                raw = pyogrio.read_dataframe(path, layer=layer, read_geometry=False)
        except errors.GisError:
            raise
        except Exception as exc:
            raise errors.UnreadableLayerError(f"cannot read the file ({type(exc).__name__}: {exc})",
                                              path=path, layer=layer,
                                              hint="give the previous parcel snapshot as a vector file") from None
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
    df = pd.DataFrame({"parcel_id": _clean_text(df["parcel_id"]), "status": df["status"]})
    df = _normalise_status(df, schema, report)
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
            frames.append(_crs_probe(s, source_crs))
            names.append(str(s))
    if working_crs is None and frames and not any(len(f) for f in frames):
        raise errors.EmptyLayerError("no features in any of the layers: nothing to measure",
                                     path=", ".join(names) or None,
                                     hint="check that these are the right files (and --layer)")
    return choose_working_crs(frames, working_crs)


def _crs_probe(path: str | os.PathLike, source_crs: Any) -> gpd.GeoDataFrame:
    path = Path(path)
    _refuse_folder(path, None)
    if path.suffix.lower() in (".parquet", ".geoparquet") and path.exists():
        import json

        import pyarrow.parquet as pq

        try:  # the CRS and bbox are in the file's "geo" metadata: no need to read the rows
            geo = json.loads(pq.read_schema(path).metadata[b"geo"])
            col = geo["columns"][geo["primary_column"]]
            crs = col.get("crs", "OGC:CRS84") or source_crs
            b = col.get("bbox")
            if crs is not None:
                return gpd.GeoDataFrame(geometry=[shapely.box(*b[:4])] if b else [], crs=crs)
        except Exception:  # fall back to a full read, which names the problem
            pass
    elif path.suffix.lower() != ".dxf" and path.exists():
        import pyogrio

        try:
            info = pyogrio.read_info(path)
            crs = info.get("crs") or source_crs
            if crs is not None:
                b = info.get("total_bounds")
                known = b is not None and np.all(np.isfinite(b)) and info.get("features") != 0
                geom = [shapely.box(*b)] if known else []  # an empty layer has no extent
                return gpd.GeoDataFrame(geometry=geom, crs=parse_crs(crs))
        except Exception:  # fall back to a full read, which names the problem
            pass
    return read_raw(path, source_crs=source_crs, id_from_layer=True)  # only the extent is needed


# --- normalising --------------------------------------------------------------


def _rename_columns(raw: gpd.GeoDataFrame, schema: LayerSchema, report: LayerReport) -> gpd.GeoDataFrame:
    """Headers to canonical names; two headers for one field are a problem, look-alikes a warning."""
    aliases = schema.aliases()
    sources: dict[str, list] = {}
    for col in raw.columns:
        if col == raw.geometry.name:
            continue
        target = aliases.get(str(col).strip().lower())
        if target:
            sources.setdefault(target, []).append(col)
    clashes = {t: cols for t, cols in sources.items() if len(cols) > 1}
    if clashes:
        zh = {c.name: c.zh for c in schema.columns}
        what = "; ".join(f"{', '.join(map(repr, cols))} are all {t} ({zh[t]})" for t, cols in clashes.items())
        report.problems.append(Problem(
            "column_clash", f"two columns for one field: {what}",
            hint="keep one column of each field (delete or rename the other, e.g. the one added in QGIS)",
            error=errors.ColumnClashError))
    mapping = {cols[0]: t for t, cols in sources.items() if len(cols) == 1}
    report.renamed = {str(k): v for k, v in mapping.items() if k != v}
    report.warnings += _lookalike_headers(raw, schema, set(sources))
    gdf = raw.rename(columns=mapping)
    if gdf.geometry.name != "geometry":
        gdf = gdf.rename_geometry("geometry")
    return gdf


def _lookalike_headers(raw: gpd.GeoDataFrame, schema: LayerSchema, used: set[str]) -> list[str]:
    """Unused columns that look like the header of a field the layer lacks.

    ``特殊 青苗户数``, ``特殊青苗户数2`` or a header cut shorter than a
    Shapefile cuts it: their values would otherwise be dropped silently
    (and count as 0).
    """
    known = schema.aliases()
    aliases = {re.sub(r"\s+", "", a): t for a, t in known.items() if t not in used}
    zh = {c.name: c.zh for c in schema.columns}
    out = []
    for col in raw.columns:
        key = re.sub(r"\s+", "", str(col)).lower()
        if col == raw.geometry.name or str(col).strip().lower() in known:
            continue
        for alias, target in aliases.items():
            short = min(key, alias, key=len)
            if key == alias or (len(short) >= (4 if short.isascii() else 2)
                                and (key.startswith(alias) or alias.startswith(key))):
                out.append(f"column {col!r} looks like {target} ({zh[target]}) but is not used: "
                           f"rename it to {zh[target]} or {target} if it holds that field")
                break
    return out


def _clean_text(values: pd.Series) -> np.ndarray:
    """Strings stripped of surrounding blanks, None where missing (object array).

    Uses Arrow's string kernels: a million ids take ~0.1 s instead of ~1 s
    through Python-level ``str.strip``.
    """
    if values.dtype == object:
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            arrow = pa.array(values, type=pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed numbers and text: go the slow way
            arrow = None
        if arrow is not None:
            stripped = pc.utf8_trim_whitespace(arrow)
            if arrow.null_count == 0 and pc.all(pc.equal(stripped, arrow)).as_py():
                return values.to_numpy()  # already clean: keep the strings we have (no copies)
            return stripped.to_pandas().to_numpy(dtype=object)
    if pd.api.types.is_float_dtype(values) and np.all(np.mod(values.dropna(), 1) == 0):
        values = values.astype("Int64")  # 101.0 read from a Shapefile is parcel 101
    text = values.astype("string[pyarrow]").str.strip()
    return text.to_numpy(dtype=object, na_value=None)


def _normalise_ids(gdf: gpd.GeoDataFrame, schema: LayerSchema, report: LayerReport) -> gpd.GeoDataFrame:
    idc = schema.id_column
    text = pd.Series(_clean_text(gdf[idc]), index=gdf.index)
    blank = text.isna() | (text == "")
    if blank.any():
        rows = [f"row {i + 1}" for i in np.flatnonzero(blank.to_numpy())]
        report.problems.append(Problem(
            "missing_id", f"{int(blank.sum())} feature(s) without {idc}", ids=rows,
            hint=f"give every feature a {idc}", error=errors.InvalidValueError))
    dup = text[text.duplicated(keep=False) & ~blank]
    if len(dup):
        report.problems.append(Problem(
            "duplicate_id", f"{dup.nunique()} duplicate {idc} value(s)",
            ids=sorted(dup.unique().tolist()),
            hint=f"make every {idc} unique (merge or renumber the duplicates), then run again",
            error=errors.DuplicateIdError))
    gdf[idc] = text.to_numpy()
    for ref in ("district", "parcel_id", "project_id"):
        if ref != idc and ref in gdf.columns:
            gdf[ref] = _clean_text(gdf[ref])
    if "district" in schema.required:
        nodist = gdf["district"].isna() | (gdf["district"] == "")
        if nodist.any():
            report.problems.append(Problem(
                "missing_district", f"{int(nodist.sum())} feature(s) without a district (所属区县)",
                ids=gdf.loc[nodist, idc].tolist(), hint="fill in the district of every feature",
                error=errors.InvalidValueError))
    return gdf


_CN_DATE = re.compile(r"(\d{4})\s*[年./-]\s*(\d{1,2})\s*[月./-]\s*(\d{1,2})(?:\s*日)?")
#: A UTC offset after a time of day, as GDAL writes datetimes (``2026/03/01 00:00:00+08``).
_TZ_SUFFIX = re.compile(r"(\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$")


def _parse_dates(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Dates from ISO, 2026/3/1, 2026年3月1日 or GDAL datetimes; returns (dates, bad mask).

    A UTC offset is dropped and the time of day too: the wall-clock day is
    the date people meant.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        days = values.dt.tz_localize(None) if values.dt.tz is not None else values
        return days.dt.normalize(), pd.Series(False, index=values.index)
    text = values.astype("string").str.strip()
    text = text.str.replace(_CN_DATE, lambda m: f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}", regex=True)
    text = text.str.replace(_TZ_SUFFIX, r"\1", regex=True)
    parsed = pd.to_datetime(text, errors="coerce", format="mixed").dt.normalize()
    bad = parsed.isna() & text.notna() & (text != "")
    return parsed, bad


_TRUE = {"true", "1", "yes", "y", "是", "有", "已落实", "t"}
_FALSE = {"false", "0", "no", "n", "否", "无", "未落实", "f", ""}


def _normalise_attributes(gdf: gpd.GeoDataFrame, schema: LayerSchema, report: LayerReport) -> gpd.GeoDataFrame:
    idc = schema.id_column
    for col in schema.columns:
        if col.name not in gdf.columns:
            gdf[col.name] = 0 if col.kind == "int" else (False if col.kind == "bool" else (pd.NaT if col.kind == "date" else None))
            continue
        values = gdf[col.name]
        if col.kind == "int" and pd.api.types.is_integer_dtype(values):
            bad = values < 0
            _flag(report, bad, gdf[idc], col, "a whole number of 0 or more")
            gdf[col.name] = values.where(~bad, 0).astype("int64")
        elif col.kind == "int":
            num = pd.to_numeric(values, errors="coerce")
            bad = (num.isna() & values.notna() & (values.astype("string").str.strip() != "")) | (num < 0) | (np.mod(num.fillna(0), 1) != 0)
            _flag(report, bad, gdf[idc], col, "a whole number of 0 or more")
            gdf[col.name] = num.where(~bad, 0).fillna(0).astype("int64")
        elif col.kind == "date":
            parsed, bad = _parse_dates(values)
            _flag(report, bad, gdf[idc], col, "a date such as 2026-03-01 or 2026年3月1日")
            gdf[col.name] = parsed
        elif col.kind == "bool":
            if pd.api.types.is_bool_dtype(values):
                continue
            text = values.astype("string").str.strip().str.lower().fillna("")
            bad = ~text.isin(_TRUE | _FALSE)
            _flag(report, bad, gdf[idc], col, "yes/no (是/否, true/false, 1/0)")
            gdf[col.name] = text.isin(_TRUE).astype(bool)
        elif col.name != idc and col.name not in ("district", "parcel_id", "project_id"):
            gdf[col.name] = _clean_text(values)
    if schema.status_column:
        gdf = _normalise_status(gdf, schema, report)
    return gdf


def _flag(report: LayerReport, bad: pd.Series, ids: pd.Series, col, expected: str) -> None:
    if bad.any():
        report.problems.append(Problem(
            f"bad_{col.name}", f"{int(bad.sum())} value(s) of {col.name} ({col.zh}) are not {expected}",
            ids=ids[bad].tolist(), hint=f"correct {col.name} for these features",
            error=errors.InvalidValueError))


def _normalise_status(gdf: gpd.GeoDataFrame, schema: LayerSchema, report: LayerReport) -> gpd.GeoDataFrame:
    col = schema.status_column
    codes, uniques = pd.factorize(gdf[col])  # a handful of distinct values
    clean = [str(u).strip() for u in uniques]
    mapped = np.array([STATUS_ALIASES.get(u.lower(), STATUS_ALIASES.get(u)) for u in clean] + [None],
                      dtype=object)
    canonical = pd.Series(mapped[codes], index=gdf.index)  # code -1 (missing) -> None
    unknown = canonical.isna()
    if unknown.any():
        shown = np.array(clean + ["<empty>"], dtype=object)
        values = sorted(set(shown[codes[unknown.to_numpy()]].tolist()))
        allowed = ", ".join(f"{s} ({zh})" for s, zh in
                            zip(STATUSES, ("未启动", "已摸底", "已签约", "已补偿", "已拆除", "净地交付")))
        report.problems.append(Problem(
            "unknown_status",
            f"unknown status value(s) {values} in {int(unknown.sum())} feature(s)",
            ids=gdf.loc[unknown, schema.id_column].tolist(),
            hint=f"use one of: {allowed}", error=errors.UnknownStatusError))
    gdf[col] = canonical.to_numpy()
    return gdf


# --- geometry -----------------------------------------------------------------


def _check_geometry(gdf: gpd.GeoDataFrame, schema: LayerSchema, report: LayerReport) -> gpd.GeoDataFrame:
    idc = schema.id_column
    geoms = gdf.geometry.to_numpy().copy()
    if shapely.has_z(geoms).any():
        geoms = shapely.force_2d(geoms)
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if empty.any():
        report.problems.append(Problem(
            "empty_geometry", f"{int(empty.sum())} feature(s) with empty or no geometry",
            ids=gdf.loc[empty, idc].tolist(),
            hint="draw the missing shapes or delete these features", error=errors.EmptyGeometryError))
    types = shapely.get_type_id(geoms)
    is_poly = np.isin(types, POLYGONAL)
    wrong = ~is_poly & ~empty
    if wrong.any():
        names = sorted({shapely.geometry.base.GEOMETRY_TYPES[t] for t in types[wrong]})
        report.problems.append(Problem(
            "non_polygon", f"{int(wrong.sum())} non-polygon feature(s) ({', '.join(names)}) in a polygon layer",
            ids=gdf.loc[wrong, idc].tolist(),
            hint="close the outlines into polygons (in CAD: closed polylines) or remove these features",
            error=errors.GeometryTypeError))

    check = is_poly & ~empty
    invalid = np.zeros(len(geoms), dtype=bool)
    invalid[check] = ~is_valid_threaded(geoms[check])
    if invalid.any():
        reasons = shapely.is_valid_reason(geoms[invalid])
        fixed = shapely.make_valid(geoms[invalid])
        fixed = polygonal(fixed)
        lost = shapely.is_empty(fixed)
        for fid, reason, gone in zip(gdf.loc[invalid, idc], reasons, lost):
            report.repairs.append({
                "id": fid, "reason": reason,
                "action": "no area left after repair" if gone else "repaired with make_valid",
            })
        if lost.any():
            report.problems.append(Problem(
                "degenerate_geometry", f"{int(lost.sum())} feature(s) have no area once repaired",
                ids=gdf.loc[invalid, idc][lost].tolist(),
                hint="redraw these shapes", error=errors.EmptyGeometryError))
        geoms[invalid] = fixed
    gdf = gdf.set_geometry(gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs))
    return gdf
