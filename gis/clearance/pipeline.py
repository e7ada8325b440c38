"""The clearance stage's one entry point: layers -> overlay -> figures.

:func:`clearance` reads and validates the layers, splits the parcels by the
red lines and counts the figures. It returns one :class:`Clearance`, with the
same fields, whichever way the parcels were read:

* in memory, for most cadastres: parcels and pieces keep their geometry
  (the maps draw them);
* in batches, when writing parcel files of more than :data:`STREAM_ABOVE`
  features or whenever ``batch_size`` is given. A GEOS polygon of a parcel
  costs ~800 bytes, so a city-wide cadastre of a million parcels is ~0.85 GB
  before any work starts. Each batch (an Arrow stream through GDAL, or GeoParquet row
  groups) is validated at the edge as usual, overlaid with the red lines and
  its pieces written to ``out``; only attributes and areas are kept, and the
  figures come from the same functions, so both ways give the same numbers
  while memory stays roughly flat. Ids must be unique across the layer, so
  duplicates are checked once every batch has been read.

With ``out`` the pieces and the figure tables go to one GeoPackage (and with
``xlsx`` to a workbook, :mod:`gis.products.workbooks`). The GeoPackage is built
beside the target and renamed over it, so a failed or interrupted run leaves
the previous file untouched.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import shapely
from pyproj import CRS

from gis import errors
from gis.atomic import atomic_path
from gis.clearance import cluster, layers
from gis.clearance.figures import district_figures, district_table, project_figures, project_table
from gis.clearance.overlay import PIECE_COLUMNS, overlay_parcels, parcel_inside_area
from gis.clearance.validation import LayerReport, merge_reports, warn_about
from gis.products.workbooks import write_figures_xlsx
from gis.schema import COUNT_COLUMNS

log = logging.getLogger(__name__)

Source = layers.Source

#: Parcels per batch: ~85 MB of GEOS geometry at a time. Measured at 1M
#: parcels: 200k batches peak at 1.02 GB, 100k at 0.92 GB, 50k at 0.88 GB,
#: all in the same time.
DEFAULT_BATCH = 100_000
#: Parcel files with more features than this are read in batches of DEFAULT_BATCH.
STREAM_ABOVE = 300_000

#: Attribute columns of the parcels kept when they are read in batches.
_PARCEL_ATTRS = ["parcel_id", "district", "status", *COUNT_COLUMNS]


@dataclass
class Clearance:
    """Everything the maps, the workbooks and the bulletin need about clearance progress.

    ``parcels`` and ``pieces`` are GeoDataFrames in the working CRS ``crs``.
    When the parcels were read in batches (``batch_size`` is set) their
    geometry is empty: it was never held, and the pieces' went to the output.
    ``reports`` are the :class:`~gis.clearance.validation.LayerReport` of the
    red lines, the parcels (all batches in one) and the inventory.
    """

    redlines: gpd.GeoDataFrame
    parcels: gpd.GeoDataFrame
    pieces: gpd.GeoDataFrame
    projects: pd.DataFrame
    districts: pd.DataFrame
    crs: CRS
    as_of: dt.date
    inventory: gpd.GeoDataFrame | None = None
    previous: pd.DataFrame | None = None  # parcel_id, status of the previous snapshot
    reports: list[LayerReport] = field(default_factory=list)
    batch_size: int | None = None
    #: spatial partitions the parcels were overlaid in on a Dask cluster (``scheduler=``)
    partitions: int | None = None

    @property
    def has_geometry(self) -> bool:
        """Whether parcels and pieces carry their geometry (they were read in memory, here)."""
        return self.batch_size is None and self.partitions is None


def clearance(
    redlines: Source,
    parcels: Source,
    *,
    previous: Source | None = None,
    inventory: Source | None = None,
    as_of: dt.date | None = None,
    source_crs: Any = None,
    working_crs: Any = None,
    threads: int | None = None,
    min_redline_m2: float = layers.MIN_REDLINE_M2,
    id_from_layer: bool = False,
    batch_size: int | None = None,
    out: str | os.PathLike | None = None,
    xlsx: str | os.PathLike | None = None,
    scheduler: Any = None,
    partitions: int | None = None,
) -> Clearance:
    """Read, overlay and count; with ``out`` (and ``xlsx``) write the results too.

    Sources may be paths or GeoDataFrames. Parcels are read in batches of
    ``batch_size``; when writing to ``out``, also in batches of
    :data:`DEFAULT_BATCH` whenever their file has more than :data:`STREAM_ABOVE`
    features (the pieces' geometry goes straight to ``out``). Without ``out``
    and ``batch_size`` every geometry is kept: the maps and the alerts need
    the parcels'. ``min_redline_m2`` and ``id_from_layer`` are for the red
    lines (see :func:`gis.clearance.layers.inspect_layer`).

    With ``scheduler`` (a Dask scheduler's address ``tcp://host:8786``,
    ``local:N`` for N worker processes started here, or a
    ``distributed.Client``) the parcels are overlaid on the cluster in
    ``partitions`` spatial partitions (:mod:`gis.clearance.cluster`; default one
    per 100,000 parcels): the pieces and figures are those of the run here, and
    parcels and pieces come back without geometry, as when read in batches.
    """
    as_of = as_of or dt.date.today()
    if scheduler is not None:
        batch_size = None
    else:
        batch_size = batch_size or (auto_batch_size(parcels) if out is not None else None)
    crs = layers.common_working_crs([redlines, parcels, inventory], source_crs=source_crs,
                                    working_crs=working_crs)
    kw = {"source_crs": source_crs, "working_crs": crs}
    red = layers.read_redlines(redlines, **kw, min_redline_m2=min_redline_m2, id_from_layer=id_from_layer)
    if scheduler is not None:
        prev = None if previous is None else layers.read_statuses(previous)
        inv = None if inventory is None else layers.read_inventory(inventory, **kw)
        c = _on_cluster(red, parcels, prev, inv, as_of=as_of, source_crs=source_crs, scheduler=scheduler,
                        partitions=partitions, out=out)
    elif batch_size:
        prev = None if previous is None else layers.read_statuses(previous)
        inv = None if inventory is None else layers.read_inventory(inventory, **kw)
        c = _in_batches(red, parcels, prev, inv, as_of=as_of, source_crs=source_crs, batch_size=batch_size,
                        threads=threads, out=out)
    else:
        par = layers.read_parcels(parcels, **kw)
        prev = None if previous is None else layers.read_statuses(previous)
        inv = None if inventory is None else layers.read_inventory(inventory, **kw)
        pieces = overlay_parcels(par, red, threads=threads)
        projects = project_figures(pieces, par, red, previous=prev, as_of=as_of)
        districts = district_figures(pieces, par, red, projects)
        c = Clearance(redlines=red, parcels=par, pieces=pieces, projects=projects, districts=districts,
                      crs=red.crs, as_of=as_of, inventory=inv, previous=prev,
                      reports=_reports(red, par, inv))
        if out is not None:
            write_clearance(c, out)
    if xlsx is not None:
        write_figures_xlsx(c, xlsx)
    return c


def _reports(red: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame | LayerReport,
             inv: gpd.GeoDataFrame | None) -> list[LayerReport]:
    par = parcels if isinstance(parcels, LayerReport) else parcels.attrs.get("report")
    return [r for r in (red.attrs.get("report"), par, None if inv is None else inv.attrs.get("report"))
            if r is not None]


def auto_batch_size(parcels: Source) -> int | None:
    """:data:`DEFAULT_BATCH` for a parcel file of more than :data:`STREAM_ABOVE` features, else None."""
    if isinstance(parcels, gpd.GeoDataFrame):
        return None
    path = Path(parcels)
    # a folder is refused by the reader with a named error; counting it would only warn
    return DEFAULT_BATCH if path.is_file() and (feature_count(path) or 0) > STREAM_ABOVE else None


def feature_count(path: str | os.PathLike, layer: str | None = None) -> int | None:
    """Number of features, read from the file's metadata (None if unknown)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            return pq.ParquetFile(path).metadata.num_rows
        if path.suffix.lower() == ".dxf":
            return None
        n = pyogrio.read_info(path, layer=layer).get("features")
        return None if n is None or n < 0 else int(n)
    except Exception:  # unreadable files are named properly by the full reader
        return None


# --- in batches -------------------------------------------------------------


def read_batches(source: Source, *, batch_size: int = DEFAULT_BATCH,
                 layer: str | None = None, source_crs: Any = None) -> Iterator[gpd.GeoDataFrame]:
    """The layer as GeoDataFrames of at most ``batch_size`` rows, with a CRS."""
    if isinstance(source, gpd.GeoDataFrame):
        for start in range(0, len(source), batch_size):
            yield _with_crs(source.iloc[start:start + batch_size], "<GeoDataFrame>", layer, source_crs)
        return
    path = Path(source)
    if not path.exists():
        raise errors.LayerNotFoundError("file does not exist", path=path, layer=layer,
                                        hint="check the path (and the working folder you run from)")
    if path.suffix.lower() in (".parquet", ".geoparquet"):
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


def _in_batches(red: gpd.GeoDataFrame, parcels_source: Source, prev: pd.DataFrame | None,
                inv: gpd.GeoDataFrame | None, *, as_of: dt.date, source_crs: Any, batch_size: int,
                threads: int | None, out: str | os.PathLike | None) -> Clearance:
    """Overlay and figures batch by batch, the pieces written to ``out`` as they come."""
    where = parcels_source if not isinstance(parcels_source, gpd.GeoDataFrame) else "<GeoDataFrame>"
    attrs, piece_tables, inside, parcel_area, reports = [], [], [], [], []
    offset = 0
    with (atomic_path(out) if out is not None else contextlib.nullcontext()) as tmp:
        for batch in read_batches(parcels_source, batch_size=batch_size, source_crs=source_crs):
            gdf, report = layers.inspect_layer(batch, "parcels", working_crs=red.crs, path=where)
            report.problems = [p for p in report.problems if p.code != "duplicate_id"]  # checked globally below
            report.raise_for_problems()
            reports.append(report)
            pieces = overlay_parcels(gdf, red, threads=threads)
            inside.append(parcel_inside_area(pieces, len(gdf)))
            parcel_area.append(shapely.area(gdf.geometry.to_numpy()))
            if tmp is not None and len(pieces):
                write_pieces(pieces, tmp, append=tmp.exists())
            pieces = pd.DataFrame(pieces.drop(columns="geometry"))
            pieces["_parcel"] += offset
            piece_tables.append(pieces)
            attrs.append(pd.DataFrame(gdf[_PARCEL_ATTRS]))
            offset += len(gdf)
            log.info("%s: %d parcels done", where, offset)

        if not attrs:
            raise errors.EmptyLayerError("the parcels layer (宗地) has no features", path=where,
                                         hint="check that this is the right file (and --layer)")
        c = _count(red, pd.concat(attrs, ignore_index=True), pd.concat(piece_tables, ignore_index=True),
                   np.concatenate(inside), np.concatenate(parcel_area), merge_reports(reports), prev, inv,
                   as_of=as_of, where=where)
        c.batch_size = batch_size
        if tmp is not None:
            if not tmp.exists():  # no parcel inside any red line: still an (empty) pieces layer
                write_pieces(gpd.GeoDataFrame({c: [] for c in PIECE_COLUMNS}, geometry=[], crs=red.crs), tmp)
            write_figure_tables(c, tmp)
    return c


def _count(red: gpd.GeoDataFrame, parcels: pd.DataFrame, pieces: pd.DataFrame, inside: np.ndarray,
           parcel_area: np.ndarray, report: LayerReport, prev: pd.DataFrame | None,
           inv: gpd.GeoDataFrame | None, *, as_of: dt.date, where) -> Clearance:
    """Figures from parcels read in parts (batches, partitions): ids unique over them all,
    the joined report's warnings issued, a :class:`Clearance` without geometry."""
    dup = parcels["parcel_id"][parcels["parcel_id"].duplicated(keep=False)]
    if len(dup):
        raise errors.DuplicateIdError(f"{dup.nunique()} duplicate parcel_id value(s)", path=where,
                                      ids=sorted(dup.unique().tolist()),
                                      hint="make every parcel_id unique, then run again")
    warn_about(report)
    projects = project_figures(pieces, parcels, red, previous=prev, as_of=as_of)
    districts = district_figures(pieces, parcels, red, projects, inside_area=inside, parcel_area=parcel_area)
    return Clearance(redlines=red, parcels=_without_geometry(parcels, red.crs),
                     pieces=_without_geometry(pd.DataFrame(pieces.drop(columns="geometry", errors="ignore")),
                                              red.crs),
                     projects=projects, districts=districts, crs=red.crs, as_of=as_of, inventory=inv,
                     previous=prev, reports=_reports(red, report, inv))


def _on_cluster(red: gpd.GeoDataFrame, parcels_source: Source, prev: pd.DataFrame | None,
                inv: gpd.GeoDataFrame | None, *, as_of: dt.date, source_crs: Any, scheduler: Any,
                partitions: int | None, out: str | os.PathLike | None) -> Clearance:
    """Overlay in spatial partitions on a Dask cluster, figures here from the parts in file order."""
    where = parcels_source if not isinstance(parcels_source, gpd.GeoDataFrame) else "<GeoDataFrame>"
    with cluster.client_for(scheduler) as client:
        parts = cluster.overlay_on_cluster(client, parcels_source, red, where=str(where), partitions=partitions,
                                           source_crs=source_crs)
    if not parts:
        raise errors.EmptyLayerError("the parcels layer (宗地) has no features", path=where,
                                     hint="check that this is the right file (and --layer)")
    report = merge_reports([p.report for p in parts])
    report.raise_for_problems()
    parcels, pieces, inside, parcel_area = cluster.in_file_order(parts, red)
    log.info("%s: %d parcels overlaid in %d partitions", where, len(parcels), len(parts))
    c = _count(red, parcels, pieces, inside, parcel_area, report, prev, inv, as_of=as_of, where=where)
    c.partitions = len(parts)
    if out is not None:
        with atomic_path(out) as tmp:
            write_pieces(gpd.GeoDataFrame(pieces, geometry="geometry", crs=red.crs), tmp)
            write_figure_tables(c, tmp)
    return c


def _without_geometry(df: pd.DataFrame, crs: CRS) -> gpd.GeoDataFrame:
    """The attribute table as a GeoDataFrame whose geometry is missing, so both paths have one shape."""
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([None] * len(df), index=df.index, crs=crs))


# --- writing ----------------------------------------------------------------


def write_clearance(c: Clearance, out_gpkg: str | os.PathLike, *, xlsx: str | os.PathLike | None = None) -> Path:
    """``parcel_pieces`` layer and the two figure tables of an in-memory :class:`Clearance`, in one new GeoPackage.

    The file is built beside the target and renamed over it, so readers see
    either the old or the new file, never a half-written one.
    """
    if not c.has_geometry:
        raise ValueError("the pieces of a clearance read in batches were written while it was read: "
                         "pass out= to clearance()")
    out_gpkg = Path(out_gpkg)
    with atomic_path(out_gpkg) as tmp:
        write_pieces(c.pieces, tmp)
        write_figure_tables(c, tmp)
    if xlsx is not None:
        write_figures_xlsx(c, xlsx)
    return out_gpkg


def write_pieces(pieces: gpd.GeoDataFrame, gpkg: str | os.PathLike, *, append: bool = False) -> None:
    """The ``parcel_pieces`` layer, all MultiPolygon as the GeoPackage spec wants one type per layer."""
    pieces[[*PIECE_COLUMNS, "geometry"]].to_file(gpkg, layer="parcel_pieces", driver="GPKG", engine="pyogrio",
                                                 promote_to_multi=True, append=append)


def write_figure_tables(c: Clearance, gpkg: str | os.PathLike) -> None:
    """Add the ``project_figures`` and ``district_figures`` tables to a GeoPackage."""
    pyogrio.write_dataframe(_for_file(project_table(c.projects)), gpkg, layer="project_figures")
    pyogrio.write_dataframe(_for_file(district_table(c.districts)), gpkg, layer="district_figures")


def _for_file(df: pd.DataFrame) -> pd.DataFrame:
    """Nullable columns as plain ones GDAL can store."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object and out[col].map(lambda v: isinstance(v, bool) or v is pd.NA).all():
            out[col] = out[col].map(lambda v: None if v is pd.NA else bool(v))
    return out
