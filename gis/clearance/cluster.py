"""The overlay on a Dask cluster: the cadastre in spatial partitions, one task each.

A cadastre too large for one machine is cut into spatial partitions: a grid
over the parcel layer's extent, each parcel in the cell that holds the centre
of its bounding box (half-open cells whose outer edges run to infinity, so
every parcel is in exactly one). :func:`plan` finds the cells from the
features' bounds alone (``pyogrio.read_bounds``: no attributes, no GEOS
objects); each partition is a list of row numbers, and a worker reads only its
rows (:func:`read_rows`: by feature id through GDAL, by row group from
GeoParquet), validates them at the edge as every read does, overlays them
with the red lines and returns attributes, areas and the pieces' geometry as
WKB (:func:`overlay_partition`). Parcels with no geometry, which have no
bounds, join the first partition: they are still validated (and refused).

The caller puts the partitions back in file order before counting, so the
pieces, their order and every figure are those of the single-process run.
Workers must reach the parcel file at the same path or URL (a shared folder,
or object storage through GDAL's ``/vsis3/`` and ``/vsicurl/``); a
GeoDataFrame, a Shapefile or a DXF is read here and its partitions sent.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import shapely

from gis.clearance import layers
from gis.clearance.overlay import overlay_parcels, parcel_inside_area
from gis.clearance.reading import is_shapefile
from gis.clearance.validation import LayerReport
from gis.errors import MissingCRSError, SchedulerError
from gis.schema import COUNT_COLUMNS

#: Parcels per partition aimed at: ~85 MB of GEOS geometry on a worker at a time.
PARTITION_SIZE = 100_000
#: Attribute columns of the parcels a partition sends back.
PARCEL_ATTRS = ["parcel_id", "district", "status", *COUNT_COLUMNS]

#: Files a worker reads itself (the rest are read by the caller and sent).
_BY_FID = (".gpkg", ".fgb", ".geojson", ".json")
_PARQUET = (".parquet", ".geoparquet")


@dataclass
class Part:
    """What one partition gives back: attributes in file order of its rows, its pieces
    (``_parcel`` counts rows of this partition), each parcel's area and area inside."""

    rows: np.ndarray
    report: LayerReport
    attrs: pd.DataFrame | None = None
    pieces: pd.DataFrame | None = None
    wkb: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    inside: np.ndarray | None = None
    parcel_area: np.ndarray | None = None


def grid(bounds: np.ndarray, n: int) -> list[np.ndarray]:
    """Row numbers of each non-empty cell of an about-square grid of ``n`` cells over
    the features' bounds (``(4, rows)``: xmin, ymin, xmax, ymax), by box centre."""
    cx = (bounds[0] + bounds[2]) / 2.0
    cy = (bounds[1] + bounds[3]) / 2.0
    if not len(cx):
        return []
    x0, x1, y0, y1 = cx.min(), cx.max(), cy.min(), cy.max()
    w, h = max(x1 - x0, 1e-9), max(y1 - y0, 1e-9)
    nx = max(1, int(round((n * w / h) ** 0.5)))
    ny = max(1, int(np.ceil(n / nx)))
    # interior edges only: the outer cells are open to infinity
    ix = np.searchsorted(np.linspace(x0, x1, nx + 1)[1:-1], cx, side="right")
    iy = np.searchsorted(np.linspace(y0, y1, ny + 1)[1:-1], cy, side="right")
    cell = iy * nx + ix
    order = np.argsort(cell, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(cell[order]) != 0])
    return [np.sort(r) for r in np.split(order, starts[1:])]


def plan(source: layers.Source, *, partitions: int | None = None, layer: str | None = None) -> list[np.ndarray]:
    """The keys of each spatial partition of the parcel layer, in file order: feature
    ids for a file read through GDAL, row numbers (0-based) otherwise.

    ``partitions`` defaults to one per :data:`PARTITION_SIZE` parcels.
    """
    if isinstance(source, gpd.GeoDataFrame):
        keys, bounds = np.arange(len(source)), shapely.bounds(source.geometry.to_numpy()).T
    elif Path(source).suffix.lower() in _PARQUET:
        pf = pq.ParquetFile(source)
        gcol = _geometry_column(pf)
        chunks = [shapely.bounds(shapely.from_wkb(b.column(0).to_numpy(zero_copy_only=False)))
                  for b in pf.iter_batches(columns=[gcol], batch_size=PARTITION_SIZE)]
        bounds = np.concatenate(chunks).T if chunks else np.empty((4, 0))
        keys = np.arange(bounds.shape[1])
    else:
        keys, bounds = pyogrio.read_bounds(source, layer=layer)
        if len(keys) != pyogrio.read_info(source, layer=layer)["features"]:  # features with no geometry
            every = pyogrio.read_dataframe(source, layer=layer, read_geometry=False, columns=[],
                                           fid_as_index=True).index.to_numpy()
            known, bounds = bounds, np.full((4, len(every)), np.nan)
            bounds[:, pd.Index(every).get_indexer(keys)] = known
            keys = every
    ok = np.isfinite(bounds).all(axis=0)
    n = partitions or max(1, int(np.ceil(len(keys) / PARTITION_SIZE)))
    parts = [keys[ok][r] for r in grid(bounds[:, ok], n)]
    missing = keys[~ok]  # no geometry: no bounds, no cell
    if len(missing):
        parts = [np.union1d(parts[0], missing)] + parts[1:] if parts else [np.sort(missing)]
    return parts


def _geometry_column(pf: pq.ParquetFile) -> str:
    meta = pf.schema_arrow.metadata or {}
    return json.loads(meta[b"geo"])["primary_column"] if b"geo" in meta else "geometry"


def read_rows(source: str, rows: np.ndarray, *, layer: str | None = None, source_crs: Any = None) -> gpd.GeoDataFrame:
    """The features of a partition (keys from :func:`plan`, ascending) of a parcel file a
    worker can read, with a CRS."""
    path = Path(source)
    if path.suffix.lower() in _PARQUET:
        pf = pq.ParquetFile(path)
        sizes = np.array([pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])
        starts = np.r_[0, np.cumsum(sizes)]
        groups = np.unique(np.searchsorted(starts, rows, side="right") - 1)
        table = pf.read_row_groups(groups.tolist())
        offsets = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in groups])
        table = table.take(pa.array(np.searchsorted(offsets, rows)))
        gcol = _geometry_column(pf)
        crs = _parquet_crs(pf, gcol)
        df = table.drop([gcol]).to_pandas()
        gdf = gpd.GeoDataFrame(df, geometry=shapely.from_wkb(table.column(gcol).to_numpy(zero_copy_only=False)),
                               crs=crs)
    else:
        gdf = pyogrio.read_dataframe(path, layer=layer, fids=rows)
    if gdf.crs is None:
        if source_crs is None:
            raise MissingCRSError("the layer has no coordinate reference system", path=path, layer=layer,
                                  hint="pass --crs EPSG:N with the CRS it was drawn in")
        gdf = gdf.set_crs(source_crs)
    return gdf


def _parquet_crs(pf: pq.ParquetFile, gcol: str):
    meta = pf.schema_arrow.metadata or {}
    if b"geo" not in meta:
        return None
    return json.loads(meta[b"geo"])["columns"][gcol].get("crs", "OGC:CRS84")


def worker_reads(source: layers.Source) -> bool:
    """Whether a worker can read this parcel source itself (else the caller reads and sends it)."""
    if isinstance(source, gpd.GeoDataFrame):
        return False
    path = Path(source)
    return path.suffix.lower() in _BY_FID + _PARQUET and not is_shapefile(path)


def overlay_partition(parcels: layers.Source, rows: np.ndarray, red: gpd.GeoDataFrame, *, where: str,
                      layer: str | None = None, source_crs: Any = None) -> Part:
    """Read (or take) the rows, validate, overlay: what one Dask task does.

    Problems are returned in the report, not raised: the caller joins every
    partition's, as it does the batches' of a streamed read.
    """
    if isinstance(parcels, gpd.GeoDataFrame):
        raw = parcels if len(parcels) == len(rows) else parcels.iloc[rows]
    else:
        raw = read_rows(parcels, rows, layer=layer, source_crs=source_crs)
    gdf, report = layers.inspect_layer(raw.reset_index(drop=True), "parcels", working_crs=red.crs,
                                       path=where, source_crs=source_crs)
    report.problems = [p for p in report.problems if p.code != "duplicate_id"]  # checked over all partitions
    if report.problems:
        return Part(rows=rows, report=report)
    pieces = overlay_parcels(gdf, red, threads=1)
    return Part(rows=rows, report=report, attrs=pd.DataFrame(gdf[PARCEL_ATTRS]),
                pieces=pd.DataFrame(pieces.drop(columns="geometry")),
                wkb=shapely.to_wkb(pieces.geometry.to_numpy()),
                inside=parcel_inside_area(pieces, len(gdf)), parcel_area=shapely.area(gdf.geometry.to_numpy()))


def in_file_order(parts: list[Part], red: gpd.GeoDataFrame) -> tuple[pd.DataFrame, gpd.GeoDataFrame,
                                                                     np.ndarray, np.ndarray]:
    """The partitions joined as one read would give them: parcels in file order, pieces
    sorted by red line then parcel (as :func:`overlay_parcels` sorts them), with geometry."""
    rows = np.concatenate([p.rows for p in parts])
    order = np.argsort(rows, kind="stable")
    rank = np.empty(len(rows), dtype=np.int64)
    rank[order] = np.arange(len(rows))
    attrs = pd.concat([p.attrs for p in parts], ignore_index=True).iloc[order].reset_index(drop=True)
    inside = np.concatenate([p.inside for p in parts])[order]
    parcel_area = np.concatenate([p.parcel_area for p in parts])[order]
    offsets = np.r_[0, np.cumsum([len(p.rows) for p in parts])]
    tables = []
    for k, p in enumerate(parts):
        t = p.pieces.copy()
        t["_parcel"] = rank[t["_parcel"].to_numpy() + offsets[k]]
        t["geometry"] = shapely.from_wkb(p.wkb)
        tables.append(t)
    pieces = pd.concat(tables, ignore_index=True)
    red_row = pd.Series(np.arange(len(red)), index=red["project_id"].to_numpy())
    by = np.lexsort((pieces["_parcel"].to_numpy(), red_row.reindex(pieces["project_id"]).to_numpy()))
    pieces = gpd.GeoDataFrame(pieces.iloc[by].reset_index(drop=True), geometry="geometry", crs=red.crs)
    return attrs, pieces, inside, parcel_area


@contextlib.contextmanager
def client_for(scheduler) -> Iterator[Any]:
    """A ``distributed.Client``: ``scheduler`` itself if it is one (left open), else one on
    the cluster at that address or on ``local:N`` worker processes started here (closed after)."""
    if scheduler is not None and not isinstance(scheduler, str):
        yield scheduler
        return
    # imported here: ~0.5 s (and OpenCV's ~0.3 s for the address parser) that a run
    # without --scheduler does not pay
    from distributed import Client, LocalCluster

    from gis.detect.pool import CONNECT_TIMEOUT, parse_address

    where, n = parse_address(scheduler)
    cluster = client = None
    try:
        try:
            if where == "local":
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
                client = Client(cluster)
            else:
                client = Client(where, timeout=CONNECT_TIMEOUT)
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise SchedulerError(
                f"cannot use the Dask cluster at {scheduler} ({exc})",
                hint="check that `dask scheduler` runs there with at least one `dask worker`, that this "
                     "machine reaches its port, and that gis is installed on the workers") from None
        yield client
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def overlay_on_cluster(client, parcels: layers.Source, red: gpd.GeoDataFrame, *, where: str,
                       partitions: int | None = None, layer: str | None = None,
                       source_crs: Any = None) -> list[Part]:
    """Every partition overlaid as a task of the cluster; the results in partition order."""
    from distributed.scheduler import KilledWorker

    if worker_reads(parcels):
        source = str(parcels)
    else:  # read here (Shapefile encodings, DXF), sent to the workers in pieces
        source = parcels if isinstance(parcels, gpd.GeoDataFrame) else layers.read_raw(parcels, layer=layer,
                                                                                        source_crs=source_crs)
    keys = plan(source, partitions=partitions, layer=layer)
    # the red lines go to the cluster once, as a task (a task's result is computed again if
    # the worker holding it dies; scattered data would be lost)
    red_f = client.submit(_same, red, pure=False)
    futures = [client.submit(overlay_partition, source if isinstance(source, str) else source.iloc[k], k, red_f,
                             where=where, layer=layer, source_crs=source_crs, pure=False) for k in keys]
    try:
        return client.gather(futures)
    except KilledWorker as exc:
        raise SchedulerError(
            f"an overlay task of the Dask cluster was running on each worker that died ({exc})",
            hint="the workers may lack memory (give each at least 2 GB per 100,000 parcels) or cannot "
                 "read the parcel file at its path; see the workers' logs") from None
    finally:
        for f in futures:
            f.release()
        red_f.release()


def _same(value):
    return value
