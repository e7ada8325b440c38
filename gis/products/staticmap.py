"""Printable clearance map (PNG) with matplotlib: for paper and for slides.

Title, date, parcels coloured by clearance status, red lines, alerts, a
legend, a scale bar and a north arrow, all in Chinese by default. Chinese
needs a CJK font: :func:`cjk_font` finds one through matplotlib's font
manager (Debian's fonts-noto-cjk, installed by ``make system``) and fails
with a clear message when there is none, instead of printing empty boxes.

Nothing hides: project names are placed where no alert dot is (the first of
a few positions around the red line's centre that is clear, drawn with a
white halo), the legend and the battle map's figures are measured once drawn
and the map narrowed until they fit on the page (English labels are longer),
and the legend's areas count the land inside red lines, as the bulletin does.
A battle map (``project=``) is zoomed to its project.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from gis.products import mapdata
from gis.products import style as mapstyle
from gis.atomic import atomic_path
from gis.errors import MissingFontError, UnknownProjectError
from gis.labels import table
from gis.schema import ALERT_KINDS, M2_PER_MU, STATUSES

log = logging.getLogger(__name__)

#: Preferred CJK families, simplified Chinese first.
CJK_FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Zen Hei",
                "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "Noto Sans CJK JP")


def cjk_font() -> str:
    """Name of an installed CJK font family usable by matplotlib."""
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in names:
            return family
    other = sorted(n for n in names if "CJK" in n or "Hei" in n or "Han Sans" in n)
    if other:
        return other[0]
    raise MissingFontError(
        "no CJK font found, so Chinese labels cannot be drawn",
        hint="install one (Debian: apt-get install fonts-noto-cjk, or `make system`), "
        "then delete matplotlib's font cache (~/.cache/matplotlib) and run again")


def write_static_map(clearance, out_png, *, alerts=None, project=None, lang: str = "zh",
                     title: str | None = None, as_of=None, dpi: int = 150) -> Path:
    """Write a printable PNG of the clearance map (or of one project's battle map)."""
    import matplotlib.pyplot as plt

    fig = static_map_figure(clearance, alerts=alerts, project=project, lang=lang, title=title, as_of=as_of,
                            dpi=dpi)
    try:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return Path(out_png)


def static_map_figure(clearance, *, alerts=None, project=None, lang: str = "zh", title: str | None = None,
                      as_of=None, dpi: int = 150):
    """The printable map as a matplotlib figure (A4 landscape), drawn and laid out; the caller closes it.

    Project names carry ``gid="project-label"``, the alert dots ``gid="alert-dots"``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.lines import Line2D

    T = table("text", lang)
    family = font_for(lang)
    redlines, parcels = clearance.redlines, clearance.parcels
    figures = getattr(clearance, "projects", None)
    day = (pd.Timestamp(as_of).date() if as_of is not None
           else getattr(clearance, "as_of", None) or dt.date.today())
    if project is not None:
        ids = redlines["project_id"].astype(str)
        if not (ids == str(project)).any():
            raise UnknownProjectError(f"no project {project!r} among the red lines", layer="redlines",
                                      ids=sorted(ids.unique())[:20], hint="use one of the project ids listed")
        focus = redlines[ids == str(project)]
        xmin, ymin, xmax, ymax = focus.total_bounds
        pad = 0.12 * max(xmax - xmin, ymax - ymin)
        xmin, ymin, xmax, ymax = _fit_aspect(xmin - pad, ymin - pad, xmax + pad, ymax + pad)
        parcels = parcels.cx[xmin:xmax, ymin:ymax]
        if alerts is not None:
            alerts = alerts.to_crs(redlines.crs).cx[xmin:xmax, ymin:ymax]
        if title is None:
            name = focus["name"].iloc[0] if "name" in focus and pd.notna(focus["name"].iloc[0]) else project
            title = f"{name} {T['battle']}"
    else:
        xmin, ymin, xmax, ymax = _fit_aspect(*(parcels.total_bounds if len(parcels)
                                               else redlines.total_bounds))
        focus = None
    title = title or T["title"]

    with plt.rc_context({"font.family": family, "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(11.69, 8.27), dpi=dpi)  # A4 landscape
        fig.subplots_adjust(left=0.02, right=0.80, bottom=0.03, top=0.91)
        colours = parcels["status"].map(mapstyle.STATUS_COLOURS).fillna("#ffffff")
        # In a battle map, parcels outside the project are faded: the eye goes to the project.
        alpha = np.ones(len(parcels))
        pieces = getattr(clearance, "pieces", None)
        if focus is not None and pieces is not None and len(pieces):
            mine = set(pieces.loc[pieces["project_id"].astype(str) == str(project), "parcel_id"])
            alpha = np.where(parcels["parcel_id"].isin(mine), 1.0, 0.3)
        if len(parcels):
            parcels.plot(ax=ax, color=colours.tolist(), edgecolor="#6e6e6e", alpha=alpha,
                         linewidth=0.15 if len(parcels) > 2000 else 0.4)
        redlines.boundary.plot(ax=ax, color=mapstyle.REDLINE_COLOUR,
                               linewidth=1.2 if focus is None else 0.8, alpha=0.9)
        if focus is not None:
            focus.boundary.plot(ax=ax, color=mapstyle.REDLINE_COLOUR, linewidth=2.5)
        if alerts is not None and len(alerts):
            a = alerts.to_crs(redlines.crs)
            fill = a["kind"].map(mapstyle.KIND_COLOURS).fillna("#888888")
            edge = a["status"].map(mapstyle.ALERT_STATUS_COLOURS).fillna("#333333")
            a.plot(ax=ax, color=fill.tolist(), edgecolor=edge.tolist(), linewidth=1.2)
            pts = a.geometry.representative_point()
            # Dots above the project labels, and the labels placed away from them (below).
            ax.scatter(pts.x, pts.y, s=DOT_SIZE, c=fill.tolist(), edgecolors=edge.tolist(),
                       linewidths=DOT_EDGE, zorder=6, gid="alert-dots")
            dots = np.column_stack([pts.x, pts.y])
        else:
            dots = np.empty((0, 2))
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
        ax.set_aspect("equal")
        ax.apply_aspect()  # the axes' final place on the page: label positions are measured in it
        _project_labels(fig, ax, redlines if focus is None else focus, dots)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.set_ylabel("")

        labels = table("status", lang)
        _, mu = mapdata.status_areas(clearance, project)
        inside = bool(len(mu))
        if not inside:  # no pieces: the whole cadastre, and the legend says so by its missing note
            mu = parcels.geometry.area.groupby(parcels["status"]).sum() / M2_PER_MU
        handles = [Patch(facecolor=mapstyle.STATUS_COLOURS[s], edgecolor="#6e6e6e",
                         label=f"{labels[s]}  {mu.get(s, 0.0):.1f} {T['mu']}") for s in STATUSES]
        handles.append(Line2D([], [], color=mapstyle.REDLINE_COLOUR, linewidth=2, label=T["redlines"]))
        if alerts is not None and len(alerts):
            kinds = table("kind", lang)
            for k in ALERT_KINDS:
                if (alerts["kind"] == k).any():
                    handles.append(Line2D([], [], marker="o", linestyle="", markersize=7,
                                          markerfacecolor=mapstyle.KIND_COLOURS[k], markeredgecolor="#333",
                                          label=f"{T['alerts']}: {kinds[k]}"))
        # Legend and figures sit right of the map, so they never hide a red line.
        title_legend = f"{T['legend']}\n{T['inside_note']}" if inside else T["legend"]
        legend = ax.legend(handles=handles, title=title_legend, loc="lower left", bbox_to_anchor=(1.01, 0.0),
                           fontsize=9, title_fontsize=9, framealpha=0.95, borderaxespad=0.0)
        legend.get_title().set_multialignment("left")
        _scale_bar(ax, xmin, xmax, ymin, ymax)
        _north_arrow(ax, T)
        boxes = [legend]
        if focus is not None and figures is not None:
            boxes.append(_figures_box(ax, figures, str(project), T))
        fig.suptitle(title, fontsize=16, fontweight="bold", y=0.97)
        crs_name = getattr(redlines.crs, "name", "")
        fig.text(0.5, 0.925, f"{T['as_of']} {day}    {crs_name}", ha="center", fontsize=9, color="#444")
        fig.text(0.99, 0.01, f"{T['date']}: {dt.date.today()}", ha="right", fontsize=7, color="#666")
        _fit_right_column(fig, ax, [b for b in boxes if b is not None], dots,
                          redlines if focus is None else focus)
    return fig


#: Size (points squared) and edge width (points) of an alert's dot on the printed map.
DOT_SIZE, DOT_EDGE = 55, 1.6


def _fit_right_column(fig, ax, boxes, dots, red) -> None:
    """Narrow the map until the legend and figures box right of it end inside the page."""
    for _ in range(4):
        renderer = fig.canvas.get_renderer()
        right = max(b.get_window_extent(renderer).x1 for b in boxes) if boxes else 0
        over = right - (fig.bbox.x1 - 0.01 * fig.bbox.width)
        if over <= 0:
            return
        pos = fig.subplotpars
        fig.subplots_adjust(right=pos.right - over / fig.bbox.width - 0.005)
        ax.apply_aspect()
        _project_labels(fig, ax, red, dots)  # the map moved: place the names again


#: Width / height of the map frame on the A4 landscape page (axes 0.78 x 0.88 of 11.69 x 8.27 in).
FRAME_ASPECT = (0.78 * 11.69) / (0.88 * 8.27)


def _fit_aspect(xmin, ymin, xmax, ymax, aspect: float = FRAME_ASPECT):
    """Grow a box about its centre to the frame's shape, so a long road fills the page."""
    w, h = max(xmax - xmin, 1.0), max(ymax - ymin, 1.0)
    if w / h < aspect:
        w = h * aspect
    else:
        h = w / aspect
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def font_for(lang: str) -> str:
    """The font family for text in ``lang``: a CJK one for Chinese (or a
    :class:`MissingFontError`); for English one too when installed, since project
    names may still be Chinese, else matplotlib's default."""
    if lang == "zh":
        return cjk_font()
    try:
        return cjk_font()
    except MissingFontError:
        return "DejaVu Sans"


#: Where a project's name may go, in points from its red line's centre: the first clear one wins.
LABEL_OFFSETS = ((0, 0), (0, 14), (0, -14), (0, 28), (0, -28), (48, 0), (-48, 0), (0, 42), (0, -42),
                 (48, 21), (-48, -21), (48, -21), (-48, 21), (0, 56), (0, -56))


def _project_labels(fig, ax, red: gpd.GeoDataFrame, dots: np.ndarray) -> None:
    """Names of the projects, each at the first of :data:`LABEL_OFFSETS` where it covers no alert dot
    (nor a name placed before it); with a white halo instead of a box, so it hides little of the map."""
    from matplotlib import patheffects

    for old in [t for t in ax.texts if t.get_gid() == "project-label"]:
        old.remove()
    if len(red) > 60:
        return
    renderer = fig.canvas.get_renderer()
    radius = (math.sqrt(DOT_SIZE) / 2 + DOT_EDGE) * fig.dpi / 72 + 1
    at = ax.transData.transform(dots) if len(dots) else np.empty((0, 2))
    frame, taken = ax.get_window_extent(renderer), []
    pts = red.geometry.representative_point()
    halo = [patheffects.withStroke(linewidth=3, foreground="white")]
    for x, y, name in zip(pts.x, pts.y, red.get("name", red["project_id"])):
        text = str(name) if pd.notna(name) and str(name) else ""
        if not text:
            continue
        best = None
        for dx, dy in LABEL_OFFSETS:
            label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha="center",
                                va="center", fontsize=8, color="#8b0000", fontweight="bold",
                                annotation_clip=True, zorder=5, gid="project-label", path_effects=halo)
            box = label.get_window_extent(renderer)
            hits = int(((at[:, 0] > box.x0 - radius) & (at[:, 0] < box.x1 + radius)
                        & (at[:, 1] > box.y0 - radius) & (at[:, 1] < box.y1 + radius)).sum())
            hits += sum(box.overlaps(t) for t in taken) + (0 if frame.contains(box.x0, box.y0)
                                                            and frame.contains(box.x1, box.y1) else 1)
            if best is None or hits < best[0]:
                if best is not None:
                    best[1].remove()
                best = (hits, label, box)
            else:
                label.remove()
            if hits == 0:
                break
        taken.append(best[2])


def _nice_length(span: float) -> float:
    """A round scale-bar length near a fifth of the map width (1, 2 or 5 x 10^n m)."""
    target = span / 5
    exp = 10 ** math.floor(math.log10(target))
    return max(m * exp for m in (1, 2, 5) if m * exp <= target)


def _scale_bar(ax, xmin, xmax, ymin, ymax) -> None:
    from matplotlib.patches import Rectangle

    length = _nice_length(xmax - xmin)
    x0, y0 = xmin + 0.03 * (xmax - xmin), ymin + 0.04 * (ymax - ymin)
    h = 0.012 * (ymax - ymin)
    for i in range(4):
        ax.add_patch(Rectangle(
            (x0 + i * length / 4, y0), length / 4, h, facecolor="black" if i % 2 == 0 else "white",
            edgecolor="black", linewidth=0.8, zorder=6))
    unit, div = ("km", 1000) if length >= 1000 else ("m", 1)
    for frac in (0, 0.5, 1):
        v = frac * length / div
        ax.text(x0 + frac * length, y0 + 1.6 * h, f"{v:g}", ha="center", va="bottom", fontsize=8, zorder=6)
    ax.text(x0 + length + 0.01 * (xmax - xmin), y0 + h / 2, unit, va="center", fontsize=8, zorder=6)


def _north_arrow(ax, T) -> None:
    ax.annotate("", xy=(0.96, 0.95), xytext=(0.96, 0.86), xycoords="axes fraction",
                arrowprops={"facecolor": "black", "width": 5, "headwidth": 14, "headlength": 14})
    ax.text(0.96, 0.955, T["north"], transform=ax.transAxes, ha="center", va="bottom", fontsize=12,
            fontweight="bold")


def _figures_box(ax, figures: pd.DataFrame, project: str, T) -> None:
    row = figures[figures["project_id"].astype(str) == project]
    if not len(row):
        return None
    r = row.iloc[0]
    lines = []
    for col, fmt in (("total_mu", "{:.1f} " + T["mu"]), ("acquired_mu", "{:.1f} " + T["mu"]),
                     ("delivered_mu", "{:.1f} " + T["mu"]), ("completion_rate", "pct"),
                     ("clean_land_rate", "pct"), ("houses_left", "{:.0f}"), ("graves_left", "{:.0f}"),
                     ("deadline", "date"), ("overdue", "yn")):
        if col not in r.index or r[col] is None or (isinstance(r[col], float) and np.isnan(r[col])):
            continue
        v = r[col]
        text = (f"{100 * v:.1f}%" if fmt == "pct" else T["yes"] if fmt == "yn" and bool(v)
                else T["no"] if fmt == "yn" else pd.Timestamp(v).date().isoformat() if fmt == "date"
                else fmt.format(v))
        lines.append(f"{T[col]}: {text}")
    return ax.text(1.01, 1.0, f"{T['figures']}\n" + "\n".join(lines), transform=ax.transAxes, va="top",
            ha="left", fontsize=9, linespacing=1.5,
            zorder=7, bbox={"boxstyle": "round,pad=0.5", "fc": "white", "ec": "#8b1a1a", "alpha": 0.92})
