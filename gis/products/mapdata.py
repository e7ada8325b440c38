"""Turn layers, rasters and chips into compact data for the web map.

The web map must open 100,000 parcels in a few seconds, so geometry is not
written as GeoJSON: polygons are simplified for display in the working CRS,
reprojected to longitude/latitude, quantised to 1e-6 degree (about 0.1 m) and
delta-encoded as one flat integer array with offset arrays (the shapely
ragged-array layout). Attributes go column by column, repeated strings as a
dictionary plus codes. All of it is vectorised; no loop over features.
"""

from __future__ import annotations

import base64
import io
import logging
import mimetypes
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.errors import CorruptRasterError, InputError
from gis.schema import M2_PER_MU

log = logging.getLogger(__name__)

QUANTUM = 1e6  # integer units per degree


def encode_polygons(gdf: gpd.GeoDataFrame, *, simplify: float = 0.3) -> dict[str, Any]:
    """Polygons of ``gdf`` as {base, coords, rings, parts, geoms} for the JS decoder.

    ``simplify`` is the display tolerance in CRS units (metres), well under a
    screen pixel at the zoom where single parcels are read. Each ring drops
    its closing vertex (Leaflet closes rings itself).
    """
    if gdf.crs is None:
        raise InputError("layer has no CRS; cannot place it on the web map",
                         hint="set a CRS on the layer (gis check shows which one)")
    geoms = gdf.geometry.values
    if simplify and gdf.crs.is_projected:
        geoms = shapely.simplify(np.asarray(geoms), simplify, preserve_topology=True)
    geoms = gpd.GeoSeries(geoms, crs=gdf.crs).to_crs(4326).values
    geoms = np.asarray(geoms)
    empty = shapely.is_empty(geoms) | shapely.is_missing(geoms)
    geoms = np.where(empty, shapely.from_wkt("POLYGON((0 0,0 0,0 0,0 0))"), geoms)
    types = shapely.get_type_id(geoms)
    if not np.isin(types, (3, 6)).all():
        raise InputError("non-polygon geometry cannot be drawn as an area",
                         hint="keep only polygons in the layer")
    # Promote every feature to a MultiPolygon so the ragged layout is always
    # coords / rings / parts / geoms.
    parts, index = shapely.get_parts(geoms, return_index=True)
    multi = shapely.multipolygons(parts, indices=index)
    _, coords, (ring_off, part_off, geom_off) = shapely.to_ragged_array(multi)
    q = np.rint(coords[:, :2] * QUANTUM).astype(np.int64)
    # Drop each ring's closing vertex.
    last = ring_off[1:] - 1
    keep = np.ones(len(q), dtype=bool)
    keep[last] = False
    q = q[keep]
    ring_off = ring_off - np.arange(len(ring_off))
    base = q[0] if len(q) else np.zeros(2, dtype=np.int64)
    delta = np.diff(q, axis=0, prepend=base[None, :])
    return {
        "base": [int(base[0]), int(base[1])],
        "coords": delta.ravel().tolist(),
        "rings": ring_off.tolist(),
        "parts": part_off.tolist(),
        "geoms": geom_off.tolist(),
        "empty": np.flatnonzero(empty).tolist(),
    }


def status_areas(clearance, project: str | None = None) -> tuple[pd.Series, pd.Series]:
    """(parcel count, mu) per clearance status of the land inside red lines, as the bulletin counts it.

    A parcel counts when any of it lies inside a red line, and only its land
    inside them (overlapping red lines once). For a ``project`` (battle map):
    its parcels and the land inside its own red line. The map legends show
    these, so a legend never sums the whole cadastre beside the bulletin's
    figures. Empty series when the clearance has no pieces.
    """
    from gis.clearance.overlay import parcel_inside_area

    parcels, pieces = clearance.parcels, getattr(clearance, "pieces", None)
    if pieces is None or not len(pieces):
        return pd.Series(dtype=int), pd.Series(dtype=float)
    if project is not None:
        mine = pieces[pieces["project_id"].astype(str) == str(project)]
        area = mine.geometry.area.groupby(mine["parcel_id"]).sum()
        status = parcels.set_index("parcel_id")["status"].reindex(area.index)
    else:
        inside = parcel_inside_area(pieces, len(parcels))
        keep = inside > 0
        area, status = pd.Series(inside[keep]), pd.Series(parcels["status"].to_numpy()[keep])
    return (status.value_counts(), area.groupby(status.to_numpy()).sum() / M2_PER_MU)


def encode_column(values: pd.Series) -> Any:
    """One attribute column as a JSON-able list (or {k: uniques, v: codes})."""
    if pd.api.types.is_datetime64_any_dtype(values):
        out = values.dt.strftime("%Y-%m-%d").fillna("")
        return _maybe_dictionary(out)
    if pd.api.types.is_bool_dtype(values):
        return values.fillna(False).astype(int).tolist()
    if pd.api.types.is_integer_dtype(values):
        return values.fillna(0).astype(np.int64).tolist()
    if pd.api.types.is_float_dtype(values):
        rounded = values.astype(float).round(2)
        return [None if np.isnan(v) else v for v in rounded.tolist()]
    text = values.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return _maybe_dictionary(text)


def _maybe_dictionary(text: pd.Series) -> Any:
    codes, uniques = pd.factorize(text, sort=False)
    if len(uniques) * 4 < len(text):
        return {"k": [str(u) for u in uniques], "v": codes.tolist()}
    return text.astype(str).tolist()


def columns(df: pd.DataFrame, names: list[str]) -> dict[str, Any]:
    """Columns present in ``df`` among ``names``, encoded."""
    return {n: encode_column(df[n]) for n in names if n in df.columns}


def data_uri(path: str | Path, *, root: str | Path | None = None) -> str:
    """A small image file (chip) as a data: URI; '' when it does not exist.

    With ``root``, a path that leads outside it (``../``) is refused: chip
    paths come from the alert store and must stay in the store's folder.
    """
    p = Path(path)
    if root is not None and not p.resolve().is_relative_to(Path(root).resolve()):
        log.warning("chip %s is outside the store folder %s; left out", p, root)
        return ""
    if not p.is_file():
        log.warning("chip %s not found; popup shows no image", p)
        return ""
    mime = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
    if not mime.startswith("image/"):
        return ""
    return f"data:{mime};base64,{base64.b64encode(p.read_bytes()).decode()}"


def orthophoto_overlay(path: str | Path, *, max_size: int = 2048, quality: int = 80) -> dict[str, Any]:
    """The orthophoto warped to Web Mercator and downsampled, as a JPEG data URI.

    Returns {url, bounds: [[south, west], [north, east]], date}: ``date`` is the
    file's ACQUISITION_DATE tag ('' if none). Warping to EPSG:3857
    is what makes a Leaflet image overlay sit exactly on the parcels.
    """
    import rasterio
    from PIL import Image
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import transform_bounds

    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise InputError("orthophoto has no CRS", path=path,
                                 hint="write the CRS into the GeoTIFF (gdal_edit.py -a_srs EPSG:...)")
            with WarpedVRT(src, crs="EPSG:3857", resampling=Resampling.bilinear) as vrt:
                scale = max(vrt.width, vrt.height) / max_size
                scale = max(scale, 1.0)
                w, h = int(round(vrt.width / scale)), int(round(vrt.height / scale))
                bands = list(range(1, min(3, vrt.count) + 1))
                data = vrt.read(bands, out_shape=(len(bands), h, w), resampling=Resampling.average)
                west, south, east, north = transform_bounds(vrt.crs, "EPSG:4326", *vrt.bounds)
            date = src.tags().get("ACQUISITION_DATE", "") or src.tags().get("TIFFTAG_DATETIME", "")
    except rasterio.errors.RasterioIOError as exc:
        raise CorruptRasterError(f"cannot read orthophoto: {exc}", path=path,
                                 hint="check that the file is a complete GeoTIFF") from exc
    img = _to_uint8(data)
    if img.shape[0] == 1:
        img = np.repeat(img, 3, axis=0)
    buf = io.BytesIO()
    Image.fromarray(np.moveaxis(img, 0, -1)).save(buf, format="JPEG", quality=quality)
    url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    return {"url": url, "bounds": [[south, west], [north, east]], "date": str(date)[:10]}


#: Half the width of the Web Mercator world (m): tile x, y count from its north-west corner.
MERCATOR_HALF = 20037508.342789244
TILE = 256
#: At most this many tiles go into one map (about 15 MB of JPEG): beyond it the finest levels are left out.
MAX_TILES = 4000


def orthophoto_tiles(path: str | Path, areas: gpd.GeoDataFrame | None, *, overview_px: int = 2048,
                     quality: int = 75, margin_m: float = 50.0, max_tiles: int = MAX_TILES) -> dict[str, Any]:
    """Web Mercator tiles of the orthophoto, as JPEG data URIs, so the map stays sharp zoomed in.

    From the first zoom level finer than the overview image of
    :func:`orthophoto_overlay` (``overview_px`` wide) down to the level at
    least as fine as the imagery's own resolution (``maxZoom``), for the tiles
    over ``areas`` (the red lines, ``margin_m`` around them; every tile when
    None). Returns {minZoom, maxZoom, nativeZoom, tiles: {"z/x/y": uri}};
    no tiles when the overview already shows every pixel. Edge tiles are
    filled black where the image has no data (JPEG has no transparency).
    """
    import rasterio
    from affine import Affine
    from PIL import Image
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window

    world = 2 * MERCATOR_HALF
    with rasterio.open(path) as src:
        with WarpedVRT(src, crs="EPSG:3857") as vrt:
            left, bottom, right, top = vrt.bounds
            res = vrt.res[0]
        native = int(np.ceil(np.log2(world / (TILE * res))))
        overview_res = max(right - left, top - bottom) / overview_px
        first = int(np.floor(np.log2(world / (TILE * overview_res)))) + 1
        shapes = (None if areas is None or not len(areas)
                  else np.asarray(areas.to_crs(3857).geometry.buffer(margin_m).values))
        wanted = {z: _tiles_over(z, (left, bottom, right, top), shapes) for z in range(first, native + 1)}
        while wanted and sum(len(t) for t in wanted.values()) > max_tiles:
            log.warning("orthophoto tiles: zoom %d left out (more than %d tiles)", max(wanted), max_tiles)
            wanted.pop(max(wanted))
        tiles: dict[str, str] = {}
        for z, xy in wanted.items():
            size = world / 2 ** z
            x0, y0 = min(x for x, _ in xy), min(y for _, y in xy)
            nx, ny = max(x for x, _ in xy) - x0 + 1, max(y for _, y in xy) - y0 + 1
            grid = Affine(size / TILE, 0, -MERCATOR_HALF + x0 * size, 0, -size / TILE, MERCATOR_HALF - y0 * size)
            fine = size / TILE < res
            with WarpedVRT(src, crs="EPSG:3857", transform=grid, width=nx * TILE, height=ny * TILE,
                           resampling=Resampling.bilinear if fine else Resampling.average) as vrt:
                bands = list(range(1, min(3, vrt.count) + 1))
                for x, y in sorted(xy):
                    win = Window((x - x0) * TILE, (y - y0) * TILE, TILE, TILE)
                    mask = vrt.read_masks(1, window=win)
                    if not mask.any():
                        continue
                    img = _to_uint8(vrt.read(bands, window=win))
                    img = np.repeat(img, 3, axis=0) if img.shape[0] == 1 else img
                    img = np.where(mask[None] > 0, img, 0).astype(np.uint8)
                    buf = io.BytesIO()
                    Image.fromarray(np.moveaxis(img, 0, -1)).save(buf, format="JPEG", quality=quality)
                    tiles[f"{z}/{x}/{y}"] = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    zooms = sorted({int(k.split("/")[0]) for k in tiles})
    return {"minZoom": zooms[0] if zooms else None, "maxZoom": zooms[-1] if zooms else None,
            "nativeZoom": native, "tiles": tiles}


def _tiles_over(z: int, bounds, shapes) -> set[tuple[int, int]]:
    """(x, y) of the zoom-``z`` tiles inside ``bounds`` (3857) that touch one of ``shapes``."""
    size = 2 * MERCATOR_HALF / 2 ** z
    left, bottom, right, top = bounds
    xs = np.arange(int((left + MERCATOR_HALF) // size), int((right + MERCATOR_HALF) // size) + 1)
    ys = np.arange(int((MERCATOR_HALF - top) // size), int((MERCATOR_HALF - bottom) // size) + 1)
    gx, gy = np.meshgrid(xs, ys)
    gx, gy = gx.ravel(), gy.ravel()
    if shapes is None:
        return set(zip(gx.tolist(), gy.tolist()))
    boxes = shapely.box(-MERCATOR_HALF + gx * size, MERCATOR_HALF - (gy + 1) * size,
                        -MERCATOR_HALF + (gx + 1) * size, MERCATOR_HALF - gy * size)
    hit = shapely.STRtree(shapes).query(boxes, predicate="intersects")[0]
    keep = np.unique(hit)
    return set(zip(gx[keep].tolist(), gy[keep].tolist()))


def _to_uint8(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.uint8:
        return data
    arr = data.astype(np.float64)
    valid = arr[arr > 0]
    lo, hi = (np.percentile(valid, (2, 98)) if valid.size else (0.0, 1.0))
    hi = hi if hi > lo else lo + 1
    return (np.clip((arr - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
