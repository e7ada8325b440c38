"""Reading vector files as they are: formats, CRS on the way in, Shapefile encodings.

:func:`read_raw` reads any layer file (GeoPackage, Shapefile, GeoJSON,
FlatGeobuf, GeoParquet, DXF) into a GeoDataFrame with a CRS, or names what is
wrong with the file. Shapefile text is decoded in the encoding it really has
(UTF-8, the .cpg's, or GBK), a header cut mid-character by the 10-byte limit
included. :func:`crs_probe` reads only a file's CRS and extent, to choose the
working CRS before any layer is read in full. Validation is
:mod:`gis.clearance.layers`' job.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import shapely

from gis import errors
from gis.clearance.dxf import read_dxf, require_labels
from gis.clearance.validation import Notice
from gis.crs import parse_crs

#: File suffixes read through GDAL (pyogrio); DXF and GeoParquet are special.
VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".parquet", ".geoparquet", ".dxf", ".zip")


def read_raw(path: str | os.PathLike, *, layer: str | None = None,
             source_crs: Any = None, id_from_layer: bool = False) -> gpd.GeoDataFrame:
    """Read a vector file as it is, with a CRS (or ``MissingCRSError``).

    Shapefile text is decoded in the encoding it really has (see
    :func:`read_shapefile`); ``id_from_layer`` lets DXF outlines without a
    label take ids from their CAD layer and handle.
    """
    path = Path(path)
    if not path.exists():
        raise errors.LayerNotFoundError(
            "file does not exist", path=path, layer=layer,
            hint="check the path (and the working folder you run from)",
        )
    suffix = path.suffix.lower()
    refuse_folder(path, layer)
    try:
        if suffix == ".dxf":
            gdf = read_dxf(path, layer=layer)
        elif suffix in (".parquet", ".geoparquet"):
            gdf = gpd.read_parquet(path)
        elif is_shapefile(path):
            gdf = read_shapefile(path, layer=layer)
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
        require_labels(gdf, path)
    gdf.attrs["path"] = str(path)
    return gdf


def refuse_folder(path: Path, layer: str | None) -> None:
    """A folder is not a layer: GDAL would read its first Shapefile with only a warning.

    A File Geodatabase (``.gdb``) is a folder by design and stays readable.
    """
    if path.is_dir() and path.suffix.lower() != ".gdb":
        found = sorted(p.name for p in path.iterdir() if p.suffix.lower() in VECTOR_SUFFIXES)
        raise errors.UnreadableLayerError(
            "this is a folder, not a layer file", path=path, layer=layer,
            hint="give one of the layer files in it" + (f": {', '.join(found[:10])}" if found else ""))


def is_shapefile(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".shp", ".dbf"):
        return True
    if suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as z:
                return any(n.lower().endswith(".dbf") for n in z.namelist())
        except (zipfile.BadZipFile, OSError):
            return False  # GDAL names the problem
    return False


def _declared_encoding(path: Path) -> str | None:
    """The codec named by the .cpg beside a Shapefile (``GBK``, ``UTF-8``, ``936``...), if any."""
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


def read_shapefile(path: Path, *, layer: str | None = None) -> gpd.GeoDataFrame:
    """A Shapefile with its text decoded in the encoding it really has.

    GDAL trusts the .cpg (or assumes Latin-1 without one), so a GBK file
    without .cpg reads as mojibake and a UTF-8 header cut mid-character by
    the 10-byte limit cannot be read at all. The text is read as raw bytes
    instead and decoded as UTF-8 if it is valid UTF-8, else in the .cpg's
    encoding, else as GBK (GB18030); a guess is kept in ``attrs["warnings"]``
    (a :class:`gis.errors.TextEncodingWarning` notice). Text that none of them
    decodes is an error saying which .cpg to add.
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
            gdf.attrs["warnings"] = [Notice(note, errors.TextEncodingWarning)]
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


def crs_probe(path: str | os.PathLike, source_crs: Any) -> gpd.GeoDataFrame:
    """The layer's CRS and extent as a frame of one box, read from the file's metadata when it has them."""
    path = Path(path)
    refuse_folder(path, None)
    if path.suffix.lower() in (".parquet", ".geoparquet") and path.exists():
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


def read_attributes(path: str | os.PathLike, *, layer: str | None = None) -> pd.DataFrame:
    """A layer's attribute table without geometry (Shapefile text decoded as :func:`read_raw` does)."""
    path = Path(path)
    if not path.exists():
        raise errors.LayerNotFoundError("file does not exist", path=path, layer=layer,
                                        hint="check the path (and the working folder you run from)")
    refuse_folder(path, layer)
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            return pd.read_parquet(path)
        if is_shapefile(path):  # decoded in the encoding it really has
            raw = read_shapefile(path, layer=layer)
            return pd.DataFrame(raw.drop(columns=raw.geometry.name))
        return pyogrio.read_dataframe(path, layer=layer, read_geometry=False)
    except errors.GisError:
        raise
    except Exception as exc:
        raise errors.UnreadableLayerError(f"cannot read the file ({type(exc).__name__}: {exc})",
                                          path=path, layer=layer,
                                          hint="give the layer as a vector file") from None
