"""Clearance-status maps: one self-contained, offline HTML page (Leaflet).

:func:`write_clearance_map` draws the project red lines (popups with the
project figures), the parcels coloured by clearance status, the alerts
coloured by kind and status (popups with before/after chips), the latest
orthophoto as a base layer, a legend, a layer control, search by parcel or
project id and a scale bar. With ``project=`` it writes the battle map
(作战图) of one project, zoomed to it with its figures in a panel.

Everything the page needs is inside the one HTML file: Leaflet (vendored in
``gis/assets/leaflet``, its icons as data URIs), the drawing script
(``gis/assets/map.js``), the data, the orthophoto and the chips. The page
requests nothing, so it works on an offline government network.

Why not folium's GeoJson + style_function: folium writes one JavaScript case
per feature and links Leaflet from a CDN; at 100,000 parcels that takes over a
minute to open (docs/decisions.md, "folium dropped for a canvas layer";
timings in docs/benchmarks.md, "Maps and the bulletin"). Here the geometry is packed by
:mod:`gis.products.mapdata` and styled by status in a few lines of JavaScript.

The printable PNG is :func:`gis.products.staticmap.write_static_map`.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.products import mapdata

from gis.products import style as mapstyle
from gis.atomic import write_text_atomic
from gis.errors import InputError, UnknownProjectError
from gis.labels import table
from gis.schema import ALERT_KINDS, ALERT_STATUSES, M2_PER_MU, OPEN_ALERT_STATUSES, STATUSES

log = logging.getLogger(__name__)

__all__ = ["write_clearance_map", "clearance_map_html"]

PARCEL_COLUMNS = ["parcel_id", "district", "owner_type", "land_use", "status_date", "houses",
                  "households", "graves", "special_crops", "attachments", "area_m2", "projects"]
PROJECT_COLUMNS = ["project_id", "name", "district", "project_type", "leader", "unit", "deadline",
                   "freeze_date", "total_mu", "acquired_mu", "delivered_mu", "completion_rate",
                   "clean_land_rate", "houses_left", "households_left", "graves_left",
                   "special_crops_left", "attachments_left", "overdue"]
ALERT_COLUMNS = ["alert_id", "kind", "status", "verdict", "area_m2", "first_seen", "last_seen",
                 "post_freeze", "freeze_date", "growing", "project_id", "parcel_id", "district",
                 "confidence", "note"]
#: Project names are drawn on the map only when there are few enough to read.
MAX_PROJECT_LABELS = 60


def write_clearance_map(clearance, out, *, alerts=None, store_dir=None, orthophoto=None,
                        project=None, lang: str = "zh", title: str | None = None,
                        as_of=None, orthophoto_label: str | None = None,
                        simplify: float = 0.3) -> Path:
    """Write the offline clearance map (or a project's battle map) to ``out``.

    ``clearance`` is a :class:`gis.clearance.pipeline.Clearance` (``.redlines``,
    ``.parcels``, ``.pieces``, ``.projects``). ``alerts`` is the alert layer
    (GeoDataFrame) whose chip paths are relative to ``store_dir``.
    ``orthophoto`` is a GeoTIFF path shown as the base layer.
    """
    page = clearance_map_html(clearance, alerts=alerts, store_dir=store_dir, orthophoto=orthophoto,
                              project=project, lang=lang, title=title, as_of=as_of,
                              orthophoto_label=orthophoto_label, simplify=simplify)
    out = Path(out)
    write_text_atomic(out, page)
    log.info("wrote %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out


def clearance_map_html(clearance, *, alerts=None, store_dir=None, orthophoto=None, project=None,
                       lang="zh", title=None, as_of=None, orthophoto_label=None,
                       simplify: float = 0.3, chip_url=None) -> str:
    """The map page as a string (see :func:`write_clearance_map`).

    ``chip_url(alert_id, "before" | "after") -> str`` links each popup chip
    instead of embedding it (the page served by ``gis serve``, whose chip
    route checks who asks); without it chips are embedded as data URIs.
    """
    T = table("text", lang)
    redlines, parcels, pieces = clearance.redlines, clearance.parcels, getattr(clearance, "pieces", None)
    projects_tab = _project_table(clearance)
    if project is not None:
        project = str(project)
        ids = redlines["project_id"].astype(str)
        if not (ids == project).any():
            raise UnknownProjectError(f"no project {project!r} among the red lines",
                                      layer="redlines", ids=sorted(ids.unique())[:20],
                                      hint="use one of the project ids listed")
        redlines = redlines[ids == project]
        projects_tab = projects_tab[projects_tab["project_id"].astype(str) == project]
        if pieces is not None and len(pieces):
            inside = set(pieces.loc[pieces["project_id"].astype(str) == project, "parcel_id"])
            parcels = parcels[parcels["parcel_id"].isin(inside)]
        else:
            parcels = parcels[parcels.intersects(redlines.union_all())]
        if alerts is not None and "project_id" in alerts.columns:
            alerts = alerts[alerts["project_id"].astype(str) == project]

    parcels = _parcel_table(parcels, pieces)
    red = redlines[["project_id", "geometry"]].merge(
        projects_tab.drop(columns="geometry", errors="ignore"), on="project_id", how="left")
    red = gpd.GeoDataFrame(red, geometry="geometry", crs=redlines.crs)

    status_codes = pd.Categorical(parcels["status"], categories=list(STATUSES)).codes
    if (status_codes < 0).any():
        bad = parcels.loc[status_codes < 0, "parcel_id"].tolist()
        raise InputError("parcels with an unknown clearance status", layer="parcels", ids=bad,
                         hint=f"use one of {', '.join(STATUSES)}")
    data: dict[str, Any] = {
        "labels": T,
        "m2PerMu": M2_PER_MU,
        "statusOrder": list(STATUSES),
        "statusLabels": table("status", lang),
        "statusColours": mapstyle.STATUS_COLOURS,
        "redlineColour": mapstyle.REDLINE_COLOUR,
        "kindColours": mapstyle.KIND_COLOURS,
        "kindLabels": table("kind", lang),
        "alertStatusColours": mapstyle.ALERT_STATUS_COLOURS,
        "alertStatusLabels": table("alert_status", lang),
        "openStatuses": list(OPEN_ALERT_STATUSES),
        "projectLabels": len(red) <= MAX_PROJECT_LABELS,
        "parcels": {"geom": mapdata.encode_polygons(parcels, simplify=simplify),
                    "status": status_codes.tolist(),
                    "cols": mapdata.columns(parcels, PARCEL_COLUMNS)},
        "redlines": {"geom": mapdata.encode_polygons(red, simplify=simplify),
                     "cols": mapdata.columns(red, PROJECT_COLUMNS)},
        "alerts": _alert_data(alerts, store_dir, simplify, chip_url) if alerts is not None and len(alerts) else None,
        "ortho": None,
        "view": _view(red if project is not None or not len(parcels) else parcels),
    }
    if orthophoto is not None:
        data["ortho"] = mapdata.orthophoto_overlay(orthophoto)
        data["ortho"]["label"] = orthophoto_label or data["ortho"].pop("date") or Path(orthophoto).stem
        # sharp when zoomed in: tiles down to the imagery's own resolution over the red lines
        data["ortho"]["tiles"] = mapdata.orthophoto_tiles(orthophoto, redlines)

    day = _date_text(as_of)
    if title is None:
        title = T["title"]
        if project is not None:
            name = str(red["name"].iloc[0]) if "name" in red and pd.notna(red["name"].iloc[0]) else ""
            title = f"{name or project} {T['battle']}"
    # The legend counts the parcels and land inside red lines, as the bulletin does (a battle
    # map: inside the project's own red line, as its panel does); without pieces, every parcel.
    counts, mu = mapdata.status_areas(clearance, project)
    inside = bool(len(counts))
    if not inside:
        counts, mu = parcels["status"].value_counts(), parcels.groupby("status")["area_m2"].sum() / M2_PER_MU
    legend = _legend_html(counts, mu, alerts, T, lang, inside=inside)
    panel = _panel_html(red, parcels, alerts, T, lang) if project is not None else ""
    return _page(title=title, day=day, T=T, legend=legend, panel=panel, data=data, lang=lang,
                 linked_images=chip_url is not None)


# --- tables ---------------------------------------------------------------------


def _project_table(clearance) -> pd.DataFrame:
    """Red-line attributes joined with the project figures, one row per project."""
    red = clearance.redlines.drop(columns="geometry")
    figures = getattr(clearance, "projects", None)
    if figures is None or not len(figures):
        return red
    extra = [c for c in figures.columns if c not in red.columns or c == "project_id"]
    return red.merge(figures[extra], on="project_id", how="left")


def _parcel_table(parcels: gpd.GeoDataFrame, pieces) -> gpd.GeoDataFrame:
    out = parcels.copy()
    out["area_m2"] = out.geometry.area
    if pieces is not None and len(pieces):
        pairs = pieces[["parcel_id", "project_id"]].drop_duplicates().astype(str)
        joined = pairs.groupby("parcel_id")["project_id"].agg(", ".join)
        out["projects"] = out["parcel_id"].astype(str).map(joined).fillna("")
    return out


def _alert_data(alerts: gpd.GeoDataFrame, store_dir, simplify: float, chip_url=None) -> dict[str, Any]:
    missing = alerts.geometry.isna() | alerts.geometry.is_empty
    if missing.any():
        log.warning("%d alerts without geometry are left off the map", int(missing.sum()))
        alerts = alerts[~missing]
    pts = gpd.GeoSeries(shapely.point_on_surface(np.asarray(alerts.geometry.values)),
                        crs=alerts.crs).to_crs(4326)
    xy = np.rint(shapely.get_coordinates(np.asarray(pts.values)) * mapdata.QUANTUM).astype(np.int64)
    root = Path(store_dir) if store_dir is not None else None
    chips = []
    for aid, before, after in zip(alerts.get("alert_id", [""] * len(alerts)),
                                  alerts.get("chip_before", [""] * len(alerts)),
                                  alerts.get("chip_after", [""] * len(alerts))):
        pair = []
        for which, rel in (("before", before), ("after", after)):
            if chip_url is not None:
                pair.append(chip_url(str(aid), which) if isinstance(rel, str) and rel else "")
                continue
            ok = root is not None and isinstance(rel, str) and rel
            pair.append(mapdata.data_uri(root / rel, root=root) if ok else "")
        chips.append(pair)
    return {"geom": mapdata.encode_polygons(alerts, simplify=min(simplify, 0.1)),
            "points": xy.ravel().tolist(), "cols": mapdata.columns(alerts, ALERT_COLUMNS),
            "chips": chips}


def _view(gdf: gpd.GeoDataFrame) -> list[list[float]]:
    if not len(gdf):
        return [[-1, -1], [1, 1]]
    w, s, e, n = gdf.to_crs(4326).total_bounds
    return [[float(s), float(w)], [float(n), float(e)]]


def _date_text(as_of) -> str:
    if as_of is None:
        return dt.date.today().isoformat()
    return pd.Timestamp(as_of).date().isoformat()


# --- HTML pieces (every text escaped) ----------------------------------------------


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _legend_html(counts: pd.Series, mu: pd.Series, alerts, T, lang, *, inside: bool = True) -> str:
    labels = table("status", lang)
    rows = [f"<div class='gis-legend-title'>{_esc(T['status_legend'])}</div>"]
    if inside:
        rows.append(f"<div class='gis-legend-note'>{_esc(T['inside_note'])}</div>")
    for s in STATUSES:
        rows.append(
            f"<div class='gis-legend-row'><i style='background:{mapstyle.STATUS_COLOURS[s]}'></i>"
            f"<span>{_esc(labels[s])}</span><span class='n'>{int(counts.get(s, 0))} {_esc(T['count_unit'])}"
            f" · {mu.get(s, 0.0):.1f} {_esc(T['mu'])}</span></div>")
    rows.append(f"<div class='gis-legend-row'><i class='line' style='border-color:{mapstyle.REDLINE_COLOUR}'>"
                f"</i><span>{_esc(T['redlines'])}</span></div>")
    if alerts is not None and len(alerts):
        kinds = table("kind", lang)
        present = set(alerts["kind"].astype(str))
        rows.append(f"<div class='gis-legend-title'>{_esc(T['kind_legend'])}</div>")
        for k in ALERT_KINDS:
            if k in present:
                rows.append(f"<div class='gis-legend-row'><i class='dot' style='background:"
                            f"{mapstyle.KIND_COLOURS[k]}'></i><span>{_esc(kinds[k])}</span></div>")
        rows.append(f"<div class='gis-legend-title'>{_esc(T['astatus_legend'])}</div>")
        st_labels = table("alert_status", lang)
        present = set(alerts["status"].astype(str))
        for s in ALERT_STATUSES:
            if s in present:
                dash = "" if s in OPEN_ALERT_STATUSES else "border-style:dashed;"
                rows.append(f"<div class='gis-legend-row'><i class='ring' style='border-color:"
                            f"{mapstyle.ALERT_STATUS_COLOURS[s]};{dash}'></i>"
                            f"<span>{_esc(st_labels[s])}</span></div>")
    return "<div id='gis-legend' class='gis-box'>" + "".join(rows) + "</div>"


def _panel_html(red, parcels, alerts, T, lang) -> str:
    row = red.iloc[0]

    def get(c, fmt=None):
        v = row.get(c, "")
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
            return ""
        if fmt == "pct":
            return f"{100 * float(v):.1f}%"
        if fmt == "mu":
            return f"{float(v):.2f} {T['mu']}"
        if fmt == "yn":
            return T["yes"] if bool(v) else T["no"]
        if fmt == "count":  # counts left are apportioned by area share: show whole units
            return f"{float(v):.0f}"
        if isinstance(v, (pd.Timestamp, dt.date)):
            return pd.Timestamp(v).date().isoformat()
        return v

    items = [("project_id", None), ("district", None), ("leader", None), ("unit", None),
             ("deadline", None), ("freeze_date", None), ("total_mu", "mu"), ("acquired_mu", "mu"),
             ("delivered_mu", "mu"), ("completion_rate", "pct"), ("clean_land_rate", "pct"),
             ("houses_left", "count"), ("households_left", "count"), ("graves_left", "count"),
             ("special_crops_left", "count"), ("attachments_left", "count"), ("overdue", "yn")]
    rows = [(T[c], get(c, f)) for c, f in items if c in red.columns]
    rows.append((T["parcel_count"], len(parcels)))
    if alerts is not None:
        open_n = int(alerts["status"].isin(OPEN_ALERT_STATUSES).sum()) if len(alerts) else 0
        rows += [(T["alerts_total"], len(alerts)), (T["alerts_open"], open_n)]
    body = "".join(f"<tr{' class=late' if k == T['overdue'] else ''}><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>"
                   for k, v in rows if v != "")
    late = row.get("overdue", False)
    overdue = " overdue" if late is not None and late is not pd.NA and bool(late) else ""
    return (f"<div id='gis-panel' class='gis-box{overdue}'><h3>{_esc(T['figures'])}: {_esc(get('name'))}</h3>"
            f"<table class='gis-popup-table'>{body}</table></div>")


def _asset(*parts: str) -> bytes:
    return resources.files("gis").joinpath("assets", *parts).read_bytes()


def _leaflet_css() -> str:
    """Leaflet's CSS with its images inlined, so it requests no file."""
    css = _asset("leaflet", "leaflet.css").decode()

    def inline(m: re.Match) -> str:
        import base64

        data = base64.b64encode(_asset("leaflet", "images", m.group(1))).decode()
        return f"url(data:image/png;base64,{data})"

    return re.sub(r"url\(images/([\w.-]+\.png)\)", inline, css)


def _json_for_script(data: Any) -> str:
    # Inside <script type="application/json"> only "</script" and "<!--" could
    # end the block early: escaping <, > and & as \u003c... makes that impossible.
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page(*, title, day, T, legend, panel, data, lang, linked_images: bool = False) -> str:
    css = _leaflet_css() + _asset("map.css").decode()
    leaflet_js = _asset("leaflet", "leaflet.js").decode()
    map_js = _asset("parcels.js").decode() + "\n" + _asset("map.js").decode()
    search = (f"<div id='gis-search' class='gis-box'><form id='gis-search-form'>"
              f"<input id='gis-search-input' type='search' placeholder='{_esc(T['search'])}'>"
              f"<button type='submit'>{_esc(T['search_btn'])}</button></form>"
              f"<div id='gis-search-msg'></div></div>")
    return f"""<!DOCTYPE html>
<html lang="{'zh-CN' if lang == 'zh' else 'en'}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data: blob:{" 'self'" if linked_images else ""}; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{_esc(title)}</title>
<style>{css}</style>
</head>
<body>
<header id="gis-header"><h1>{_esc(title)}</h1><span>{_esc(T['as_of'])} {_esc(day)}</span></header>
<div id="map"></div>
<div id="gis-boxes" hidden>{legend}{panel}{search}</div>
<script type="application/json" id="gis-data">{_json_for_script(data)}</script>
<script>{leaflet_js}</script>
<script>{map_js}</script>
</body>
</html>
"""
