"""Clearance of parcel layers too large to hold as geometries all at once.

A GEOS polygon of a parcel costs ~800 bytes in memory, so a city-wide
cadastre of a million parcels is ~0.85 GB before any work starts. This path
reads the parcel file in batches (Arrow streams through GDAL, or GeoParquet
row groups), validates each batch at the edge as usual, overlays it with the
red lines, writes its pieces out, and keeps only attributes and areas. The
figures are then computed from those with the same functions as the
in-memory path (:func:`gis.clearance.pipeline.clearance`), so both give the same
numbers. Memory stays roughly flat whatever the size of the cadastre.

Ids must be unique across the whole layer, so duplicates are checked once
every batch has been read; a bad layer therefore costs one pass but loses
nothing: the output is written to a temporary file and only renamed into
place when everything succeeded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from gis import errors

from gis.clearance import layers
from gis.atomic import atomic_path
from gis.clearance.figures import district_figures, project_figures
from gis.clearance.overlay import PIECE_COLUMNS, overlay_parcels, parcel_inside_area
from gis.clearance.pipeline import Clearance, write_figure_tables, write_figures_xlsx, write_pieces
from gis.schema import COUNT_COLUMNS

log = logging.getLogger(__name__)

#: Parcels per batch: ~85 MB of GEOS geometry at a time. Measured at 1M
#: parcels: 200k batches peak at 1.02 GB, 100k at 0.92 GB, 50k at 0.88 GB,
#: all in the same time.
DEFAULT_BATCH = 100_000
#: Parcel files with more features than this take the streamed path in the CLI.
STREAM_ABOVE = 300_000


def feature_count(path: str | os.PathLike, layer: str | None = None) -> int | None:
    """Number of features, read from the file's metadata (None if unknown)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if path.suffix.lower() == ".dxf":
            return None
        n = pyogrio.read_info(path, layer=layer).get("features")
        return None if n is None or n < 0 else int(n)
    except Exception:  # unreadable files are named properly by the full reader
        return None


def read_batches(path: str | os.PathLike, *, batch_size: int = DEFAULT_BATCH,
                 layer: str | None = None, source_crs: Any = None) -> Iterator[gpd.GeoDataFrame]:
    """The layer as GeoDataFrames of at most ``batch_size`` rows, with a CRS."""
    path = Path(path)
    if not path.exists():
        raise errors.LayerNotFoundError("file does not exist", path=path, layer=layer,
                                        hint="check the path (and the working folder you run from)")
    if path.suffix.lower() in (".parquet", ".geoparquet"):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        geo = json.loads(pf.schema_arrow.metadata[b"geo"])
        gcol = geo["primary_column"]
        crs = geo["columns"][gcol].get("crs", "OGC:CRS84")
        for batch in pf.iter_batches(batch_size=batch_size):
            df = batch.to_pandas()
            yield _with_crs(gpd.GeoDataFrame(df.drop(columns=gcol), geometry=shapely.from_wkb(df[gcol]),
                                             crs=crs), path, layer, source_crs)
        return
    try:
        with pyogrio.raw.open_arrow(path, layer=layer, batch_size=batch_size, use_pyarrow=True) as (meta, reader):
            gcol = meta["geometry_name"] or "wkb_geometry"
            for batch in reader:
                df = batch.to_pandas()
                yield _with_crs(gpd.GeoDataFrame(df.drop(columns=gcol), geometry=shapely.from_wkb(df[gcol]),
                                                 crs=meta["crs"]), path, layer, source_crs)
    except errors.GisError:
        raise
    except Exception as exc:
        raise errors.UnreadableLayerError(f"cannot read the file as a vector layer ({exc})", path=path,
                                          layer=layer, hint="give a GeoPackage, FlatGeobuf or GeoParquet") from None


def _with_crs(gdf: gpd.GeoDataFrame, path, layer, source_crs) -> gpd.GeoDataFrame:
    if gdf.crs is None:
        if source_crs is None:
            raise errors.MissingCRSError("the layer has no coordinate reference system", path=path, layer=layer,
                                         hint="pass --crs EPSG:N with the CRS it was drawn in")
        gdf = gdf.set_crs(source_crs)
    return gdf


def stream_clearance(
    redlines: layers.Source,
    parcels_path: str | os.PathLike,
    *,
    out_gpkg: str | os.PathLike | None = None,
    xlsx: str | os.PathLike | None = None,
    previous: layers.Source | None = None,
    as_of: dt.date | None = None,
    source_crs: Any = None,
    working_crs: Any = None,
    batch_size: int = DEFAULT_BATCH,
    layer: str | None = None,
    min_redline_m2: float = layers.MIN_REDLINE_M2,
    id_from_layer: bool = False,
) -> Clearance:
    """Overlay and figures batch by batch; optionally write them like ``gis overlay``.

    The returned :class:`Clearance` carries the figures; its ``parcels``
    and ``pieces`` are attribute tables without geometry (the pieces'
    geometry went to ``out_gpkg``).
    """
    as_of = as_of or dt.date.today()
    crs = layers.common_working_crs([redlines, parcels_path], source_crs=source_crs, working_crs=working_crs)
    red = layers.read_redlines(redlines, source_crs=source_crs, working_crs=crs,
                               min_redline_m2=min_redline_m2, id_from_layer=id_from_layer)

    attrs, piece_tables, inside, parcel_area, reports = [], [], [], [], []
    offset = 0
    out_ctx = atomic_path(out_gpkg) if out_gpkg is not None else contextlib.nullcontext()
    with out_ctx as tmp:
        for batch in read_batches(parcels_path, batch_size=batch_size, layer=layer, source_crs=source_crs):
            gdf, report = layers.inspect_layer(batch, "parcels", working_crs=crs, path=parcels_path, layer=layer)
            report.problems = [p for p in report.problems if p.code != "duplicate_id"]  # checked globally below
            report.raise_for_problems()
            reports.append(report)
            pieces = overlay_parcels(gdf, red)
            inside.append(parcel_inside_area(pieces, len(gdf)))
            parcel_area.append(shapely.area(gdf.geometry.to_numpy()))
            if tmp is not None and len(pieces):
                write_pieces(pieces, tmp, append=tmp.exists())
            pieces = pd.DataFrame(pieces.drop(columns="geometry"))
            pieces["_parcel"] += offset
            piece_tables.append(pieces)
            attrs.append(pd.DataFrame(gdf[["parcel_id", "district", "status", *COUNT_COLUMNS]]))
            offset += len(gdf)
            log.info("%s: %d parcels done", parcels_path, offset)

        if not attrs:
            raise errors.EmptyLayerError("the parcels layer (宗地) has no features", path=parcels_path, layer=layer,
                                         hint="check that this is the right file (and --layer)")
        parcels = pd.concat(attrs, ignore_index=True)
        dup = parcels["parcel_id"][parcels["parcel_id"].duplicated(keep=False)]
        if len(dup):
            raise errors.DuplicateIdError(f"{dup.nunique()} duplicate parcel_id value(s)", path=parcels_path,
                                          layer=layer, ids=sorted(dup.unique().tolist()),
                                          hint="make every parcel_id unique, then run again")
        pieces = pd.concat(piece_tables, ignore_index=True)
        prev = None if previous is None else layers.read_statuses(previous)
        projects = project_figures(pieces, parcels, red, previous=prev, as_of=as_of)
        districts = district_figures(pieces, parcels, red, projects, inside_area=np.concatenate(inside),
                                     parcel_area=np.concatenate(parcel_area))
        c = Clearance(redlines=red, parcels=parcels, pieces=pieces, projects=projects, districts=districts,
                      crs=red.crs, as_of=as_of, previous=prev, reports=reports)
        if tmp is not None:
            if not tmp.exists():  # no parcel inside any red line: still an (empty) pieces layer
                write_pieces(gpd.GeoDataFrame({c: [] for c in PIECE_COLUMNS}, geometry=[], crs=red.crs), tmp)
            write_figure_tables(c, tmp)
    if xlsx is not None:
        write_figures_xlsx(c, xlsx)
    return c
