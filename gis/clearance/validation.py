"""What is wrong with a layer: problems, repairs and warnings, and the geometry checks.

A :class:`LayerReport` collects everything found in one layer: each kind of
unusable input as a :class:`Problem` with *every* offending id (``gis check``
prints them all; :meth:`LayerReport.raise_for_problems` raises the first one's
error, listing the others), each geometry repaired with ``make_valid``, and
warnings (:class:`Notice`: text that knows its :class:`gis.errors.GisWarning`
class), which :func:`warn_about` issues through :mod:`warnings` once the layer is read.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from gis import errors
from gis.crs import MAX_AREA_DISTORTION, area_distortion, extent_lonlat
from gis.geometry import POLYGONAL, is_valid_threaded, polygonal
from gis.schema import LayerSchema

class Notice(str):
    """The text of a warning about a layer, which knows its :class:`gis.errors.GisWarning` class.

    A ``str``, so reports print, compare and serialise it as the text it is.
    """

    category: type[errors.GisWarning]

    def __new__(cls, text: str, category: type[errors.GisWarning] = errors.GisWarning) -> Notice:
        notice = super().__new__(cls, text)
        notice.category = category
        return notice


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
        d["ids"] = [errors.plain(i) for i in self.ids]
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
    warnings: list[Notice] = field(default_factory=list)

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
        d["warnings"] = [str(w) for w in self.warnings]
        d["ok"] = self.ok
        return d


def merge_reports(reports: list[LayerReport]) -> LayerReport:
    """One report for a layer read in batches: counts summed, repairs and problems
    joined, each warning once, the extent of them all."""
    first = reports[0]
    seen = list(dict.fromkeys(w for r in reports for w in r.warnings))
    bounds = [r.bounds for r in reports if r.bounds]
    return LayerReport(
        path=first.path, layer=first.layer, kind=first.kind, count=sum(r.count for r in reports),
        source_crs=first.source_crs, crs=first.crs, reprojected=any(r.reprojected for r in reports),
        bounds=(min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds),
                max(b[3] for b in bounds)) if bounds else None,
        renamed=first.renamed, repairs=[x for r in reports for x in r.repairs],
        problems=[p for r in reports for p in r.problems], warnings=seen)


def warn_about(report: LayerReport) -> None:
    """Issue the report's repairs and warnings through :mod:`warnings`, each with its class and the file."""
    for r in report.repairs:
        warnings.warn(f"{report.path}: repaired {report.kind} {r['id']}: {r['reason']}",
                      errors.GeometryRepairWarning, stacklevel=3)
    for w in report.warnings:
        warnings.warn(f"{report.path}: {w}", getattr(w, "category", errors.GisWarning), stacklevel=3)


# --- geometry -----------------------------------------------------------------


def check_geometry(gdf: gpd.GeoDataFrame, schema: LayerSchema, report: LayerReport) -> gpd.GeoDataFrame:
    """Empty and non-polygon features are problems; invalid ones are repaired with ``make_valid``
    (each repair reported), unless nothing of them is left."""
    idc = schema.id_column
    geoms = gdf.geometry.to_numpy()
    changed = bool(shapely.has_z(geoms).any())
    if changed:
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
        geoms = geoms.copy()
        geoms[invalid] = fixed
        changed = True
    if changed:
        # the column replaced in place: set_geometry would copy (and consolidate) the whole
        # frame, 1.5 s at a million parcels; the frame is already this read's own
        gdf[gdf.geometry.name] = gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs)
    return gdf


def note_distortion(gdf: gpd.GeoDataFrame, working: CRS, report: LayerReport) -> None:
    """Say so when the layer's own projected CRS was passed over because it distorts areas."""
    if not gdf.crs.is_projected:
        return
    off = area_distortion(gdf.crs, *extent_lonlat([gdf]))
    if off > MAX_AREA_DISTORTION:
        report.warnings.append(Notice(
            f"{gdf.crs.to_string()} ({gdf.crs.name}) makes areas up to {off:.0%} too large here: "
            f"reprojected to {working.to_string()} ({working.name}) for every area", errors.AreaDistortionWarning))


def check_min_area(gdf: gpd.GeoDataFrame, min_m2: float, report: LayerReport) -> None:
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
