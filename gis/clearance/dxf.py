"""Red lines from CAD drawings (DXF).

Closed polylines become polygons; open ones are kept as lines so that
validation names them ("close the outline"). A red line's project id and
name come from the text label drawn inside it ("P01 金沙大道": id, then
name); its district from the drawing layer it sits on (CAD drawings usually
keep one layer per district or town office). An outline with no label
inside is an error naming its handle and CAD layer, unless ids may be made
from the layer and handle (``--id-from-layer``: ``高新区-3A``). DXF carries no
CRS: the caller must give one (``--crs``).
"""

from __future__ import annotations

import os

import geopandas as gpd
import numpy as np
import shapely

from gis.errors import MissingLabelError

#: Drawing layers that say nothing about the district.
_GENERIC_LAYERS = {"0", "defpoints"}


def read_dxf(path: str | os.PathLike, *, layer: str | None = None) -> gpd.GeoDataFrame:
    """Polygons (and unclosed outlines as lines) of a DXF's model space.

    ``layer`` restricts to one drawing layer. Outlines without a text label
    inside get the id ``<layer>-<handle>``; the closed ones are listed in
    ``attrs["unlabelled"]`` for :func:`require_labels`.
    """
    from ezdxf import recover

    doc, _auditor = recover.readfile(os.fspath(path))  # tolerates minor CAD export damage
    msp = doc.modelspace()

    shapes, layers, handles = [], [], []
    for e in msp.query("LWPOLYLINE POLYLINE"):
        if layer is not None and e.dxf.layer != layer:
            continue
        if e.dxftype() == "LWPOLYLINE":
            pts = [(p[0], p[1]) for p in e.get_points("xy")]
            closed = e.closed
        else:
            pts = [(v.dxf.location.x, v.dxf.location.y) for v in e.vertices]
            closed = e.is_closed
        if len(pts) >= 2 and pts[0] == pts[-1]:
            closed, pts = True, pts[:-1]
        if closed and len(pts) >= 3:
            shapes.append(shapely.Polygon(pts))
        elif len(pts) >= 2:
            shapes.append(shapely.LineString(pts))
        else:
            continue
        layers.append(e.dxf.layer)
        handles.append(e.dxf.handle)

    labels, label_points = [], []
    for t in msp.query("TEXT MTEXT"):
        text = t.plain_text() if t.dxftype() == "MTEXT" else t.dxf.text
        text = " ".join(str(text).split())
        if text:
            labels.append(text)
            label_points.append(shapely.Point(t.dxf.insert.x, t.dxf.insert.y))

    geoms = np.array(shapes, dtype=object)
    ids = [f"{lyr}-{h}" for lyr, h in zip(layers, handles)]
    names: list = [None] * len(geoms)
    labelled = np.zeros(len(geoms), dtype=bool)
    if labels and len(geoms):
        # an open outline still encloses its label: match labels against it as if closed
        areas = np.array([g if g.geom_type == "Polygon" or len(g.coords) < 3 else shapely.Polygon(g.coords)
                          for g in geoms], dtype=object)
        tree = shapely.STRtree(areas)
        lab_idx, geom_idx = tree.query(np.array(label_points), predicate="within")
        # the first label inside a shape names it; more are ignored
        for li, gi in zip(lab_idx[::-1], geom_idx[::-1]):
            pid, _, name = labels[li].partition(" ")
            ids[gi], names[gi] = pid, (name or None)
            labelled[gi] = True
    closed = np.array([g.geom_type == "Polygon" for g in geoms], dtype=bool)
    districts = [None if lyr.lower() in _GENERIC_LAYERS else lyr for lyr in layers]
    gdf = gpd.GeoDataFrame(
        {"project_id": ids, "name": names, "district": districts, "dxf_layer": layers},
        geometry=list(geoms) if len(geoms) else [], crs=None,
    )
    gdf.attrs["unlabelled"] = [f"handle {handles[i]} on CAD layer {layers[i]}"
                               for i in np.flatnonzero(closed & ~labelled)]
    return gdf


def require_labels(gdf: gpd.GeoDataFrame, path: str | os.PathLike) -> None:
    """MissingLabelError naming each closed outline of a DXF read with no label inside.

    Open outlines are left to validation, which asks to close them.
    """
    missing = gdf.attrs.get("unlabelled", [])
    if missing:
        raise MissingLabelError(
            f"{len(missing)} closed outline(s) without a text label inside to give the project id",
            path=path, ids=missing,
            hint="put a text label such as 'P01 金沙大道' (project id, space, name) inside each outline, "
                 "or pass --id-from-layer to make ids from the CAD layer and handle (e.g. 东区-2F)",
        )
