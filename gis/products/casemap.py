"""The location map of one alert for its evidence pack (证据材料), as a PNG.

The alert polygon, the red line of its project and its cadastral parcel,
drawn over the orthophoto of the alert's latest sighting (reprojected onto
the map's grid in the working CRS, so what is drawn lies where it is) or
over a plain background when there is no imagery, with a scale bar, a north
arrow, a legend and an inset of the whole red line with the alert marked.

Drawn with matplotlib's object API (no pyplot, no global backend state);
Chinese labels need a CJK font (:func:`gis.products.staticmap.font_for`).
:func:`image_bytes` turns any stored picture (chip or field photo) into
bytes a PDF can embed, or None when it cannot be read.
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
import rasterio
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as MplPolygon
from matplotlib.patches import Rectangle
from PIL import Image, ImageOps
from rasterio.transform import from_bounds
from rasterio.warp import Resampling, reproject
from shapely import get_parts

from gis.products import style as mapstyle
from gis.products.staticmap import font_for

log = logging.getLogger(__name__)

#: Outline and fill of the alert on the map: yellow stands out on imagery and on grey.
ALERT_EDGE = "#ffff00"
ALERT_FILL = "#ff0000"
PARCEL_EDGE = "#00a0ff"
#: Pixels on the longer side of a field photo as embedded (enough for A4 at ~200 dpi).
PHOTO_PIXELS = 900


@dataclass
class MapLayers:
    """What the location map draws, all in one projected CRS (metres)."""

    alert: Any
    crs: Any
    redline: Any = None
    parcel: Any = None
    alert_label: str = ""
    redline_label: str = ""
    parcel_label: str = ""
    ortho: str | os.PathLike | None = None


def map_extent(geom, aspect: float, *, min_span: float = 160.0) -> tuple[float, float, float, float]:
    """Bounds around ``geom`` (width / height = ``aspect``): the alert with room around it."""
    minx, miny, maxx, maxy = geom.bounds
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    span = max(min_span, 3.0 * max(maxx - minx, maxy - miny))
    w, h = (span * aspect, span) if aspect >= 1 else (span, span / aspect)
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def read_background(ortho: str | os.PathLike, bounds, crs, width: int, height: int) -> np.ndarray | None:
    """RGB (height, width, 3) uint8 of ``ortho`` on the grid of ``bounds`` in ``crs``, or None."""
    dst_transform = from_bounds(*bounds, width, height)
    try:
        with rasterio.open(ortho) as src:
            bands = [1, 2, 3] if src.count >= 3 else [1]
            out = np.zeros((len(bands), height, width), dtype=np.float64)
            for k, b in enumerate(bands):
                reproject(rasterio.band(src, b), out[k], dst_transform=dst_transform, dst_crs=crs,
                          resampling=Resampling.bilinear, dst_nodata=0)
            native = src.dtypes[0]
    except (rasterio.errors.RasterioError, OSError) as exc:
        log.warning("no imagery under the location map: %s (%s)", ortho, exc)
        return None
    if native != "uint8":
        valid = out[out > 0]
        lo, hi = np.percentile(valid, [2, 98]) if valid.size else (0.0, 1.0)
        out = (out - lo) / max(hi - lo, 1e-9) * 255
    rgb = np.clip(out, 0, 255).astype(np.uint8)
    if rgb.shape[0] == 1:
        rgb = np.repeat(rgb, 3, axis=0)
    return np.moveaxis(rgb, 0, -1)


def _nice_length(span: float) -> float:
    """A round scale-bar length near a quarter of the map width (1, 2 or 5 x 10^n m)."""
    target = span / 4
    exp = 10 ** math.floor(math.log10(target))
    return max(m * exp for m in (1, 2, 5) if m * exp <= target)


def _draw_scale_bar(ax, bounds) -> None:
    xmin, ymin, xmax, ymax = bounds
    length = _nice_length(xmax - xmin)
    x0, y0 = xmin + 0.04 * (xmax - xmin), ymin + 0.05 * (ymax - ymin)
    h = 0.018 * (ymax - ymin)
    ax.add_patch(Rectangle((x0 - 0.01 * (xmax - xmin), y0 - 0.025 * (ymax - ymin)),
                           length + 0.06 * (xmax - xmin), 0.12 * (ymax - ymin),
                           facecolor="white", alpha=0.8, edgecolor="none", zorder=6))
    for i in range(4):
        ax.add_patch(Rectangle((x0 + i * length / 4, y0), length / 4, h, zorder=7, linewidth=0.8,
                               facecolor="black" if i % 2 == 0 else "white", edgecolor="black"))
    for frac in (0, 0.5, 1):
        ax.text(x0 + frac * length, y0 + 1.8 * h, f"{frac * length:g}", ha="center", va="bottom",
                fontsize=7, zorder=7)
    ax.text(x0 + length + 0.012 * (xmax - xmin), y0 + h / 2, "m", va="center", fontsize=7, zorder=7)


def _draw_north_arrow(ax) -> None:
    ax.annotate("", xy=(0.95, 0.95), xytext=(0.95, 0.83), xycoords="axes fraction", zorder=8,
                arrowprops={"facecolor": "black", "edgecolor": "white", "width": 5, "headwidth": 13,
                            "headlength": 12})
    ax.text(0.95, 0.955, "北", transform=ax.transAxes, ha="center", va="bottom", fontsize=11,
            fontweight="bold", zorder=8, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                                               "alpha": 0.8})


def _outline(ax, geom, **kw) -> None:
    for part in get_parts(geom.boundary):
        xy = np.asarray(part.coords)
        ax.plot(xy[:, 0], xy[:, 1], **kw)
        kw.pop("label", None)


def _fill(ax, geom, **kw) -> None:
    for poly in get_parts(geom):
        ax.add_patch(MplPolygon(np.asarray(poly.exterior.coords), closed=True, **kw))
        kw.pop("label", None)


def location_map_png(layers: MapLayers, *, size_in: tuple[float, float] = (7.0, 4.4), dpi: int = 200) -> bytes:
    """The location map of one alert as PNG bytes."""
    family = font_for("zh")
    fig = Figure(figsize=size_in, dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    bounds = map_extent(layers.alert, size_in[0] / size_in[1])
    xmin, ymin, xmax, ymax = bounds
    with matplotlib.rc_context({"font.family": family, "axes.unicode_minus": False}):
        background = None
        if layers.ortho is not None:
            background = read_background(layers.ortho, bounds, layers.crs,
                                         int(size_in[0] * dpi / 2), int(size_in[1] * dpi / 2))
        if background is not None:
            ax.imshow(background, extent=(xmin, xmax, ymin, ymax), origin="upper", zorder=0,
                      interpolation="bilinear")
        else:
            ax.set_facecolor("#eef0f2")
        if layers.parcel is not None:
            _outline(ax, layers.parcel, color=PARCEL_EDGE, linewidth=1.6, linestyle=(0, (5, 3)), zorder=3,
                     label=layers.parcel_label)
        if layers.redline is not None:
            _outline(ax, layers.redline, color=mapstyle.REDLINE_COLOUR, linewidth=2.2, zorder=4,
                     label=layers.redline_label)
        _fill(ax, layers.alert, facecolor=ALERT_FILL, alpha=0.35, edgecolor="none", zorder=5)
        _outline(ax, layers.alert, color=ALERT_EDGE, linewidth=2.0, zorder=5, label=layers.alert_label)
        c = layers.alert.centroid
        ax.plot([c.x], [c.y], marker="+", color=ALERT_EDGE, markersize=9, zorder=6)
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        _draw_scale_bar(ax, bounds)
        _draw_north_arrow(ax)
        ax.legend(loc="lower right", fontsize=7.5, framealpha=0.9, borderaxespad=0.6)
        if layers.redline is not None:
            _inset(ax, layers)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _inset(ax, layers: MapLayers) -> None:
    """The whole red line, the alert marked: where in the project the case is."""
    inset = ax.inset_axes((0.01, 0.6, 0.26, 0.33))
    inset.set_facecolor("white")
    _outline(inset, layers.redline, color=mapstyle.REDLINE_COLOUR, linewidth=1.2)
    c = layers.alert.centroid
    inset.plot([c.x], [c.y], marker="o", color=ALERT_FILL, markeredgecolor="black", markersize=5)
    minx, miny, maxx, maxy = layers.redline.union(layers.alert).bounds
    half = 0.54 * max(maxx - minx, maxy - miny, 1.0)  # a square view with a margin
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    inset.set_xlim(cx - half, cx + half)
    inset.set_ylim(cy - half, cy + half)
    inset.set_aspect("equal", adjustable="box")
    inset.set_xticks([])
    inset.set_yticks([])
    inset.set_title("项目红线全图", fontsize=7, pad=2)


def image_bytes(data: bytes | None, *, pixels: int = PHOTO_PIXELS) -> tuple[bytes, float] | None:
    """``data`` (any picture Pillow reads) as JPEG bytes a PDF embeds, upright (EXIF orientation)
    and at most ``pixels`` on its longer side, with its width / height; None when unreadable."""
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            im = ImageOps.exif_transpose(im)
            im = im.convert("RGB")
            im.thumbnail((pixels, pixels))
            out = io.BytesIO()
            im.save(out, "JPEG", quality=85)
            return out.getvalue(), im.width / max(im.height, 1)
    except Exception as exc:  # noqa: BLE001 - any picture Pillow cannot read is "cannot be shown"
        log.warning("a picture could not be read for the evidence pack: %s", exc)
        return None
