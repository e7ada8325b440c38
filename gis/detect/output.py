"""The output of detection: change polygons as a table, and the change mask raster.

:func:`frame` turns the objects of every window into one GeoDataFrame;
:func:`merge_edges` joins the pieces of objects cut by window edges and then
applies the minimum areas; :func:`attach` names the red line and parcel each
change lies in (the one covering most of it) and marks changes on structures
of the inventory. The columns are :data:`COLUMNS` plus geometry.
:class:`MaskWriter` writes the binary change raster window by window, to a
temporary file renamed onto the output only when it is complete.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely

from gis.errors import GisError, OutputWriteError
from gis.imagery.pair import Grid
from gis.schema import m2_to_mu

__all__ = ["COLUMNS", "frame", "merge_edges", "attach", "MaskWriter"]

COLUMNS = ["kind", "area_m2", "area_mu", "confidence", "project_id", "parcel_id", "in_inventory"]
#: an inventory structure covering this share of a change polygon makes it known
INVENTORY_OVERLAP = 0.3


@contextlib.contextmanager
def _writing_mask(path):
    """A failed write of the change mask (a full disk, a folder that cannot be
    written) as an :class:`~gis.errors.OutputWriteError` naming the file."""
    try:
        yield
    except (OSError, rasterio.errors.RasterioError) as exc:
        if isinstance(exc, GisError):
            raise
        raise OutputWriteError(f"cannot write the change mask ({exc})", path=path,
                               hint="free disk space or give another --mask-out, then run again") from exc


class MaskWriter:
    """The binary change raster (1 = changed) on ``grid``, written window by window to
    a temporary file beside ``path``: :meth:`commit` renames it onto ``path``,
    :meth:`discard` deletes it, so no half-written mask is ever left. A failed write
    (a full disk, a folder that cannot be written) raises
    :class:`~gis.errors.OutputWriteError` naming the file."""

    def __init__(self, path, grid: Grid):
        self.path = Path(path)
        tmp = self.path.with_name(f".{self.path.name}.part")
        with _writing_mask(self.path):
            self.dst = rasterio.open(tmp, "w", driver="GTiff", width=grid.width, height=grid.height, count=1,
                                     dtype="uint8", crs=grid.crs, transform=grid.transform, tiled=True,
                                     blockxsize=256, blockysize=256, compress="deflate", nodata=None,
                                     sparse_ok=True)

    def write(self, mask: np.ndarray | None, window) -> None:
        """One window's mask (None: nothing to write there)."""
        if mask is not None:
            with _writing_mask(self.dst.name):
                self.dst.write(mask[None], window=window)

    def commit(self) -> None:
        with _writing_mask(self.path):
            self.dst.close()
            Path(self.dst.name).replace(self.path)

    def discard(self) -> None:
        self.dst.close()
        Path(self.dst.name).unlink(missing_ok=True)


def frame(records: list, wkbs: list, crs) -> gpd.GeoDataFrame:
    """The objects of every window (``records``: their kind, confidence, area and
    whether they touch a window edge; ``wkbs``: their outlines) as one table in ``crs``."""
    df = pd.DataFrame(records, columns=["kind", "confidence", "area_m2", "edge"])
    geom = shapely.from_wkb(np.array(wkbs, dtype=object)) if wkbs else np.array([], dtype=object)
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geom, crs=crs), crs=crs)
    gdf["area_m2"] = gdf["area_m2"].astype(float)
    gdf["area_mu"] = m2_to_mu(gdf["area_m2"])
    gdf["confidence"] = gdf["confidence"].astype(float).round(3)
    gdf["project_id"] = ""
    gdf["parcel_id"] = ""
    gdf["in_inventory"] = False
    return gdf


def merge_edges(gdf: gpd.GeoDataFrame, mins: dict) -> gpd.GeoDataFrame:
    """Join the pieces of objects cut by window edges (same kind, touching), then
    apply the minimum area they were spared in their windows."""
    edge = gdf["edge"].to_numpy(bool)
    if edge.sum() > 1:
        sub = gdf[edge]
        geoms = sub.geometry.values
        i, j = shapely.STRtree(geoms).query(shapely.buffer(geoms, 1e-6), predicate="intersects")
        same = sub["kind"].to_numpy()[i] == sub["kind"].to_numpy()[j]
        n = len(sub)
        group = _components(i[same], j[same], n)
        area = sub["area_m2"].to_numpy()
        merged = pd.DataFrame({"g": group, "kind": sub["kind"].to_numpy(), "area_m2": area,
                               "cw": sub["confidence"].to_numpy() * area})
        agg = merged.groupby("g").agg(kind=("kind", "first"), area_m2=("area_m2", "sum"), cw=("cw", "sum"))
        geo = gpd.GeoSeries(geoms, crs=gdf.crs).groupby(group).agg(lambda s: shapely.union_all(s.values))
        pieces = gpd.GeoDataFrame({"kind": agg["kind"].to_numpy(), "confidence": (agg["cw"] / agg["area_m2"]).round(3).to_numpy(),
                                   "area_m2": agg["area_m2"].to_numpy(), "edge": False},
                                  geometry=shapely.simplify(np.asarray(geo.values), 0.01), crs=gdf.crs)
        pieces["area_mu"] = m2_to_mu(pieces["area_m2"])
        gdf = pd.concat([gdf[~edge], pieces], ignore_index=True)
    if len(gdf):
        floor = gdf["kind"].map(lambda k: mins.get(k, 20.0)).to_numpy(float)
        gdf = gdf[gdf["area_m2"].to_numpy() >= floor]
    gdf = gdf.drop(columns="edge")
    gdf = gpd.GeoDataFrame(gdf, geometry="geometry", crs=gdf.crs)
    for col, val in (("project_id", ""), ("parcel_id", ""), ("in_inventory", False)):
        gdf[col] = val
    return gdf.reset_index(drop=True)


def _components(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Connected component of each of ``n`` nodes joined by edges (i, j), numbered by
    their lowest node as scipy's connected_components does (min-label propagation with
    pointer jumping; importing scipy.sparse would cost more than the whole merge)."""
    lab = np.arange(n)
    while True:
        m = np.minimum(lab[i], lab[j])
        new = lab.copy()
        np.minimum.at(new, i, m)
        np.minimum.at(new, j, m)
        new = new[new]
        if np.array_equal(new, lab):
            return np.unique(lab, return_inverse=True)[1]
        lab = new


def _largest_overlap(changes: gpd.GeoDataFrame, layer: gpd.GeoDataFrame, column: str) -> pd.Series:
    """Value of ``column`` of the feature covering most of each change ('' if none)."""
    out = pd.Series("", index=changes.index, dtype=object)
    if layer is None or column not in layer.columns or changes.empty:
        return out
    tree = shapely.STRtree(layer.geometry.values)
    i, j = tree.query(changes.geometry.values, predicate="intersects")
    if len(i) == 0:
        return out
    ov = shapely.area(shapely.intersection(changes.geometry.values[i], layer.geometry.values[j]))
    pairs = pd.DataFrame({"i": i, "j": j, "ov": ov}).sort_values("ov", ascending=False).drop_duplicates("i")
    out.iloc[pairs["i"].to_numpy()] = layer[column].astype(str).to_numpy()[pairs["j"].to_numpy()]
    return out


def attach(changes, within, parcels, inventory) -> gpd.GeoDataFrame:
    """``changes`` with the red line (``within``) and parcel covering most of each, and
    whether an ``inventory`` structure covers :data:`INVENTORY_OVERLAP` of it; any
    layer may be None. Columns :data:`COLUMNS` plus geometry."""
    changes["project_id"] = _largest_overlap(changes, within, "project_id")
    changes["parcel_id"] = _largest_overlap(changes, parcels, "parcel_id")
    if inventory is not None and not changes.empty:
        tree = shapely.STRtree(inventory.geometry.values)
        i, j = tree.query(changes.geometry.values, predicate="intersects")
        if len(i):
            ov = shapely.area(shapely.intersection(changes.geometry.values[i], inventory.geometry.values[j]))
            share = pd.Series(ov).groupby(i).sum() / changes.geometry.area.to_numpy()[
                np.unique(i)]
            known = share.index[share.to_numpy() >= INVENTORY_OVERLAP]
            changes.loc[changes.index[known], "in_inventory"] = True
    return changes[COLUMNS + ["geometry"]].reset_index(drop=True)
