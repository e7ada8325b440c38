"""Before/after image chips around alerts, for maps, bulletins and patrols.

Each chip is a small PNG cut from an orthophoto by a windowed read (only the
pixels around the alert are decoded), with the alert's outline drawn on it
and a scale bar with its length in metres. Chips live under the store's
folder (``chips/<alert_id>_<date>_<before|after>.png``) and alerts refer to
them by that relative path. A chip is only rewritten when its bytes differ,
so re-running the same week leaves the files as they were.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
import rasterio
import shapely
from PIL import Image, ImageDraw
from pyproj import CRS, Transformer
from rasterio.windows import from_bounds

from gis.atomic import write_bytes_atomic
from gis.errors import CorruptRasterError, OutputWriteError
from gis.imagery.reading import decoding

log = logging.getLogger(__name__)

CHIP_DIR = "chips"
OUTLINE = (255, 40, 40)
_NICE = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000)


def _stretch(data: np.ndarray) -> np.ndarray:
    """Bands to uint8 for display; non-byte imagery is stretched 2-98 %."""
    if data.dtype == np.uint8:
        return data
    lo, hi = np.nanpercentile(data, [2, 98])
    scaled = (data.astype(float) - lo) / max(hi - lo, 1e-9) * 255
    return np.clip(np.nan_to_num(scaled), 0, 255).astype(np.uint8)


def chip_image(src: rasterio.DatasetReader, geometry, crs, *, margin: float = 30.0,
               size: int = 256) -> Image.Image:
    """An RGB chip of ``src`` around ``geometry`` (in ``crs``) with outline and scale bar.

    The chip is a square in ``crs`` (metres); imagery in another CRS is read over
    that square's envelope, which for a chip of a few hundred metres is the same.
    """
    minx, miny, maxx, maxy = geometry.bounds
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    half = max(maxx - minx, maxy - miny) / 2 + margin  # square chip
    bounds = (cx - half, cy - half, cx + half, cy + half)
    read_bounds = bounds
    if crs is not None and src.crs is not None and CRS.from_user_input(crs) != CRS.from_user_input(src.crs):
        read_bounds = Transformer.from_crs(crs, src.crs, always_xy=True).transform_bounds(*bounds)
    window = from_bounds(*read_bounds, transform=src.transform)
    px = max(1, min(size, int(round(max(window.width, window.height)))))
    bands = [1, 2, 3] if src.count >= 3 else [1]
    with decoding(src.name, window, src.transform, src.crs):
        data = src.read(bands, window=window, out_shape=(len(bands), px, px), boundless=True, fill_value=0)
    rgb = _stretch(data)
    if rgb.shape[0] == 1:
        rgb = np.repeat(rgb, 3, axis=0)
    img = Image.fromarray(np.moveaxis(rgb, 0, -1), "RGB")
    if px < size:  # small footprints: enlarge so the outline is visible
        img = img.resize((size, size), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    scale = size / (2 * half)  # pixels per metre

    def to_px(coords: np.ndarray) -> list[tuple[float, float]]:
        return list(zip((coords[:, 0] - bounds[0]) * scale, (bounds[3] - coords[:, 1]) * scale))

    for ring in shapely.get_parts(shapely.boundary(geometry)):  # outer rings and holes
        draw.line(to_px(shapely.get_coordinates(ring)), fill=OUTLINE, width=2)
    # scale bar: the nicest length that fits in a quarter of the chip
    metres = max([n for n in _NICE if n * scale <= size / 4] or [_NICE[0]])
    x0, y0, bar = 8, size - 12, metres * scale
    draw.rectangle([x0 - 1, y0 - 1, x0 + bar + 1, y0 + 4], fill=(0, 0, 0))
    draw.rectangle([x0, y0, x0 + bar, y0 + 3], fill=(255, 255, 255))
    draw.text((x0, y0 - 13), f"{metres} m", fill=(255, 255, 255), stroke_width=1, stroke_fill=(0, 0, 0))
    return img


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False)
    return buf.getvalue()


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` unless it holds them already; a failed write (a full
    disk, a folder that cannot be written) is an :class:`~gis.errors.OutputWriteError`."""
    try:
        if path.is_file() and path.read_bytes() == data:
            return
        write_bytes_atomic(path, data)
    except OSError as exc:
        raise OutputWriteError(f"cannot write an image chip ({exc.strerror or exc})", path=path,
                               hint="free disk space or make the folder writable, then run again") from exc


def write_chips(alerts, image: str | os.PathLike, store_dir: str | os.PathLike, *, which: str,
                date: str, margin: float = 30.0, size: int = 256) -> list[str]:
    """Write one chip per alert from ``image``; return the paths relative to ``store_dir``.

    ``which`` is "before" or "after"; ``date`` (ISO) names the imagery epoch.
    """
    rels: list[str] = []
    if len(alerts) == 0:
        return rels
    try:
        src = rasterio.open(image)
    except rasterio.errors.RasterioIOError as exc:
        raise CorruptRasterError(f"cannot open imagery for chips ({exc})", path=image,
                                 hint="check the epoch's ortho path in gis.toml") from None
    with src:
        for aid, geom in zip(alerts["alert_id"], alerts.geometry.values):
            rel = f"{CHIP_DIR}/{aid}_{date}_{which}.png"
            img = chip_image(src, geom, alerts.crs, margin=margin, size=size)
            _write_if_changed(Path(store_dir) / rel, _png(img))
            rels.append(rel)
    log.info("wrote %d %s chips from %s", len(rels), which, image)
    return rels
