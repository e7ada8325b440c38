"""The clearance pipeline: layers -> overlay -> figures, and writing them.

:func:`clearance` chains the stages; the CLI and the weekly run call it.
:func:`write_clearance` writes the GeoPackage (and optional Excel workbook)
atomically: an interrupted write leaves the previous files untouched.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
from pyproj import CRS

from gis.clearance import layers
from gis.atomic import atomic_path
from gis.products.excel import Sheet, write_workbook
from gis.clearance.figures import district_figures, project_figures
from gis.clearance.overlay import PIECE_COLUMNS, overlay_parcels
from gis.schema import FIGURE_HEADERS_ZH, LIST_LABELS_ZH

log = logging.getLogger(__name__)

Source = str | os.PathLike | gpd.GeoDataFrame


@dataclass
class Clearance:
    """Everything the maps and the bulletin need about clearance progress."""

    redlines: gpd.GeoDataFrame
    parcels: gpd.GeoDataFrame
    pieces: gpd.GeoDataFrame
    projects: pd.DataFrame
    districts: pd.DataFrame
    crs: CRS
    as_of: dt.date
    inventory: gpd.GeoDataFrame | None = None
    previous: pd.DataFrame | None = None  # parcel_id, status of the previous snapshot
    reports: list = field(default_factory=list)


def load_layers(
    redlines: Source,
    parcels: Source,
    *,
    previous: Source | None = None,
    inventory: Source | None = None,
    source_crs: Any = None,
    working_crs: Any = None,
    min_redline_m2: float = layers.MIN_REDLINE_M2,
    id_from_layer: bool = False,
) -> dict[str, gpd.GeoDataFrame | None]:
    """Read and validate the layers into one working CRS (red lines' first).

    ``min_redline_m2`` and ``id_from_layer`` are for the red lines (see
    :func:`gis.clearance.layers.inspect_layer`).
    """
    crs = layers.common_working_crs([redlines, parcels, inventory], source_crs=source_crs,
                                    working_crs=working_crs)
    kw = {"source_crs": source_crs, "working_crs": crs}
    out = {
        "redlines": layers.read_redlines(redlines, **kw, min_redline_m2=min_redline_m2,
                                         id_from_layer=id_from_layer),
        "parcels": layers.read_parcels(parcels, **kw),
        "previous": None if previous is None else layers.read_statuses(previous),
        "inventory": None if inventory is None else layers.read_inventory(inventory, **kw),
    }
    return out


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
) -> Clearance:
    """Read, overlay and count. Sources may be paths or GeoDataFrames."""
    as_of = as_of or dt.date.today()
    lyr = load_layers(redlines, parcels, previous=previous, inventory=inventory,
                      source_crs=source_crs, working_crs=working_crs,
                      min_redline_m2=min_redline_m2, id_from_layer=id_from_layer)
    red, par = lyr["redlines"], lyr["parcels"]
    pieces = overlay_parcels(par, red, threads=threads)
    projects = project_figures(pieces, par, red, previous=lyr["previous"], as_of=as_of)
    districts = district_figures(pieces, par, red, projects)
    reports = [g.attrs.get("report") for k, g in lyr.items() if g is not None and k != "previous"]
    return Clearance(redlines=red, parcels=par, pieces=pieces, projects=projects,
                     districts=districts, crs=red.crs, as_of=as_of,
                     inventory=lyr["inventory"], previous=lyr["previous"], reports=reports)


# --- writing ----------------------------------------------------------------

PROJECT_TABLE = ["project_id", "name", "district", "project_type", "total_mu", "acquired_mu",
                 "delivered_mu", "completion_rate", "clean_land_rate", "houses_left",
                 "households_left", "graves_left", "special_crops_left", "attachments_left",
                 "deadline", "overdue", "progressed"]
DISTRICT_TABLE = ["district", "total_mu", "acquired_mu", "delivered_mu", "completion_rate",
                  "clean_land_rate", "houses_left", "households_left", "graves_left",
                  "special_crops_left", "attachments_left", "projects", "projects_progressed",
                  "progress_ratio", "overdue_projects", "rank", "list"]


def project_table(c: Clearance) -> pd.DataFrame:
    return c.projects[[col for col in PROJECT_TABLE if col in c.projects.columns]]


def district_table(c: Clearance) -> pd.DataFrame:
    return c.districts[[col for col in DISTRICT_TABLE if col in c.districts.columns]]


def write_clearance(c: Clearance, out_gpkg: str | os.PathLike, *, xlsx: str | os.PathLike | None = None) -> Path:
    """``parcel_pieces`` layer and the two figure tables, in one new GeoPackage.

    The file is built beside the target and renamed over it, so readers see
    either the old or the new file, never a half-written one.
    """
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
    pyogrio.write_dataframe(_for_file(project_table(c)), gpkg, layer="project_figures")
    pyogrio.write_dataframe(_for_file(district_table(c)), gpkg, layer="district_figures")


def _for_file(df: pd.DataFrame) -> pd.DataFrame:
    """Nullable columns as plain ones GDAL can store."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object and out[col].map(lambda v: isinstance(v, bool) or v is pd.NA).all():
            out[col] = out[col].map(lambda v: None if v is pd.NA else bool(v))
    return out


def write_figures_xlsx(c: Clearance, out: str | os.PathLike) -> Path:
    """The figure tables with Chinese headers, through the one safe writer of :mod:`gis.products.excel`."""
    proj = project_table(c).copy()
    dist = district_table(c).copy()
    dist["list"] = dist["list"].map(LIST_LABELS_ZH).fillna(dist["list"])
    for df in (proj, dist):
        if "deadline" in df:
            df["deadline"] = pd.to_datetime(df["deadline"]).dt.date
    meta = pd.DataFrame({"item": ["统计日期", "坐标系"], "value": [c.as_of.isoformat(), c.crs.to_string()]})
    return write_workbook(out, [Sheet("项目进度", proj, FIGURE_HEADERS_ZH),
                                Sheet("区县排名", dist, FIGURE_HEADERS_ZH),
                                Sheet("说明", meta, {"item": "项目", "value": "值"})])
