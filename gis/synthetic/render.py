"""Synthetic orthophotos and DSMs of a plausible rural scene, for tests and the demo.

The background (fields with row texture, roads and tracks, tree clumps,
village houses with shadows, gentle terrain in the DSM) is a pure function of
``seed`` and of *ground* coordinates: two epochs rendered with the same seed
share it exactly, whatever their grid, and differ only by what the caller
plants (``structures``, ``crops``) plus a mild illumination change and sensor
noise. Those two depend on ``epoch`` (default: a hash of the planted features,
so two epochs with different plantings also differ in noise; pass ``epoch``
explicitly to make an unchanged pair that still has noise).

Rendering is windowed (strips of 512 rows), so a 20,000 x 20,000 px pair can
be written with flat memory. Texture noise is an integer hash of ground
coordinates, not a random stream, which is what keeps windows seamless.

Planted features:
- ``structures``: polygons; optional ``roof`` hint (``red``, ``blue``,
  ``grey``, ``white``, ``dark``, or ``"#rrggbb"``), optional ``height`` (m,
  used by :func:`render_dsm`; default 4 m per ``floors`` or 4 m).
- ``crops``: polygons; optional ``crop`` kind (``crop``, ``orchard``,
  ``greenhouse``, ``nursery``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.transform import from_origin
from rasterio.windows import Window

from gis.atomic import atomic_path

__all__ = ["render_orthophoto", "render_dsm", "restyle", "ROOF_COLOURS"]

STRIP = 512

#: RGB + NIR reflectance-like values (0-255 scale) of the materials.
ROOF_COLOURS = {
    "red": (168, 72, 58, 95),
    "blue": (64, 108, 172, 80),
    "grey": (128, 128, 132, 110),
    "white": (222, 222, 216, 190),
    "dark": (72, 72, 78, 60),
}
_ROOF_ORDER = ("red", "blue", "grey", "white", "dark")
#: field materials: crop, bare soil, stubble, grass
_FIELD = np.array(
    [(78, 122, 58, 190), (158, 136, 110, 105), (182, 168, 122, 125), (112, 126, 84, 150)],
    dtype=np.float32,
)
_FIELD_P = np.array([0.42, 0.22, 0.16, 0.20])
_ROAD = np.array((176, 174, 168, 120), dtype=np.float32)
_TRACK = np.array((160, 146, 122, 115), dtype=np.float32)
_TREE = np.array((46, 78, 42, 205), dtype=np.float32)
_CROPS = {
    "crop": (70, 132, 52, 205),
    "nursery": (60, 112, 50, 200),
    "orchard": (150, 132, 104, 110),  # soil between the tree rows
    "greenhouse": (214, 220, 226, 150),
}


# --- deterministic hash noise --------------------------------------------------


def _hash(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """uint32 hash of integer lattice coordinates -> float32 in [0, 1)."""
    ix, iy = np.broadcast_arrays(ix, iy)
    with np.errstate(over="ignore"):
        h = ix.astype(np.uint32) * np.uint32(0x8DA6B343)
        h ^= iy.astype(np.uint32) * np.uint32(0xD8163841)
        h ^= np.uint32(salt & 0xFFFFFFFF) * np.uint32(0xCB1AB31F)
        h ^= h >> np.uint32(15)
        h *= np.uint32(0x2C1B3C6D)
        h ^= h >> np.uint32(12)
        h *= np.uint32(0x297A2D39)
        h ^= h >> np.uint32(15)
    return (h >> np.uint32(8)).astype(np.float32) / np.float32(1 << 24)


def _value_noise(x: np.ndarray, y: np.ndarray, cell: float, salt: int) -> np.ndarray:
    """Smooth noise in [0, 1) on a lattice of ``cell`` metres (x: cols, y: rows, broadcast)."""
    gx, gy = x / cell, y / cell
    x0, y0 = np.floor(gx), np.floor(gy)
    fx, fy = (gx - x0).astype(np.float32), (gy - y0).astype(np.float32)
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    a, b = _hash(x0, y0, salt), _hash(x0 + 1, y0, salt)
    c, d = _hash(x0, y0 + 1, salt), _hash(x0 + 1, y0 + 1, salt)
    return (a + (b - a) * fx) * (1 - fy) + (c + (d - c) * fx) * fy


# --- the background scene ----------------------------------------------------------


@dataclass
class _Scene:
    seed: int
    x_edges: np.ndarray  # field column edges (m)
    y_edges: np.ndarray  # (ncols, nrows+1) row edges per column
    col_road: np.ndarray  # road width at the left edge of each column (0 = none)
    row_track: np.ndarray  # (ncols, nrows+1) track width at each row edge
    trees: np.ndarray  # (n, 4): x, y, radius, height
    houses: np.ndarray  # shapely polygons
    house_roof: np.ndarray  # index into _ROOF_ORDER
    house_height: np.ndarray


def _scene(bounds, seed: int) -> _Scene:
    """The background in ground coordinates. Fields are laid on a lattice anchored
    at multiples of 2 km so that two epochs with different extents agree."""
    xmin, ymin, xmax, ymax = bounds
    pad = 300.0
    ax = np.floor((xmin - pad) / 2000.0) * 2000.0
    ay = np.floor((ymin - pad) / 2000.0) * 2000.0
    span_x = xmax + pad - ax
    span_y = ymax + pad - ay
    rng = np.random.default_rng([seed, int(ax) & 0xFFFFFFF, int(ay) & 0xFFFFFFF])
    widths = rng.uniform(40, 150, int(span_x / 40) + 2)
    x_edges = ax + np.concatenate([[0], np.cumsum(widths)])
    x_edges = x_edges[: np.searchsorted(x_edges, xmax + pad) + 2]
    ncols = len(x_edges) - 1
    nrows = int(span_y / 30) + 2
    y_edges = ay + np.concatenate(
        [np.zeros((ncols, 1)), np.cumsum(rng.uniform(30, 120, (ncols, nrows)), axis=1)], axis=1
    )
    col_road = np.where(rng.random(ncols) < 0.25, rng.uniform(4, 7, ncols), 0.0)
    row_track = np.where(rng.random((ncols, nrows + 1)) < 0.12, 3.0, 0.0)

    area_ha = (xmax - xmin + 2 * pad) * (ymax - ymin + 2 * pad) / 1e4
    # tree clumps: 1 per ~0.6 ha, 3-9 crowns each
    n_clumps = rng.poisson(area_ha / 0.6)
    cx = rng.uniform(xmin - pad, xmax + pad, n_clumps)
    cy = rng.uniform(ymin - pad, ymax + pad, n_clumps)
    per = rng.integers(3, 10, n_clumps)
    tx = np.repeat(cx, per) + rng.normal(0, 5, per.sum())
    ty = np.repeat(cy, per) + rng.normal(0, 5, per.sum())
    tr = rng.uniform(1.5, 3.5, per.sum())
    trees = np.column_stack([tx, ty, tr, 3 * tr + rng.uniform(0, 3, per.sum())])

    # villages: 1 per ~30 ha, 8-35 houses on a rotated grid with yards
    n_vill = max(1, rng.poisson(area_ha / 30))
    houses, roofs, heights = [], [], []
    for vx, vy, n, ang in zip(
        rng.uniform(xmin - pad, xmax + pad, n_vill),
        rng.uniform(ymin - pad, ymax + pad, n_vill),
        rng.integers(8, 36, n_vill),
        rng.uniform(-0.3, 0.3, n_vill),
    ):
        k = int(np.ceil(np.sqrt(n)))
        gi, gj = np.divmod(np.arange(n), k)
        lx = (gj - k / 2) * 24 + rng.normal(0, 2, n)
        ly = (gi - k / 2) * 22 + rng.normal(0, 2, n)
        w, h = rng.uniform(8, 15, n), rng.uniform(9, 16, n)
        corners = np.stack(
            [np.stack([lx - w / 2, lx + w / 2, lx + w / 2, lx - w / 2], 1),
             np.stack([ly - h / 2, ly - h / 2, ly + h / 2, ly + h / 2], 1)], -1)
        c, s = np.cos(ang), np.sin(ang)
        rot = np.stack([vx + corners[..., 0] * c - corners[..., 1] * s,
                        vy + corners[..., 0] * s + corners[..., 1] * c], -1)
        houses.append(shapely.polygons(rot))
        roofs.append(rng.choice(len(_ROOF_ORDER), n, p=[0.3, 0.25, 0.3, 0.05, 0.1]))
        heights.append(rng.choice([3.5, 6.5, 9.5], n, p=[0.4, 0.45, 0.15]) + rng.normal(0, 0.3, n))
    return _Scene(
        seed, x_edges, y_edges, col_road, row_track, trees,
        np.concatenate(houses), np.concatenate(roofs), np.concatenate(heights),
    )


def _ground_xy(transform, row0: int, height: int, width: int):
    xs = transform.c + (np.arange(width) + 0.5) * transform.a
    ys = transform.f + (row0 + np.arange(height) + 0.5) * transform.e
    return xs, ys


def _fields(scene: _Scene, xs, ys):
    """Per pixel: field id (int64) and road/track material mask (0 none, 1 road, 2 track)."""
    col = np.clip(np.searchsorted(scene.x_edges, xs) - 1, 0, len(scene.x_edges) - 2)
    fid = np.empty((len(ys), len(xs)), np.int64)
    road = np.zeros((len(ys), len(xs)), np.uint8)
    nrows = scene.y_edges.shape[1]
    for c in np.unique(col):  # a strip spans only a few field columns
        sel = col == c
        ye = scene.y_edges[c]
        row = np.clip(np.searchsorted(ye, ys) - 1, 0, nrows - 2)
        fid[:, sel] = (c * nrows + row)[:, None]
        # tracks along the row edges of this column
        d_lo, d_hi = ys - ye[row], ye[row + 1] - ys
        tw = np.where(d_lo < d_hi, scene.row_track[c, row], scene.row_track[c, row + 1])
        road[:, sel] = np.where((np.minimum(d_lo, d_hi) < tw / 2)[:, None], 2, road[:, sel])
    # roads along the column edges
    d_left = xs - scene.x_edges[col]
    d_right = scene.x_edges[col + 1] - xs
    w_left = scene.col_road[col]
    w_right = scene.col_road[np.minimum(col + 1, len(scene.col_road) - 1)]
    on_road = (d_left < w_left / 2) | (d_right < w_right / 2)
    road[:, on_road] = 1
    return fid, road


def _burn(geoms, values, out_shape, transform, dtype="int32"):
    if len(geoms) == 0:
        return np.zeros(out_shape, dtype)
    return rasterize(zip(geoms, values), out_shape=out_shape, transform=transform,
                     fill=0, dtype=dtype, all_touched=False)


def _planted(gdf, crs, column: str | None):
    """Planted polygons in the image CRS, plus one attribute column (or Nones)."""
    if gdf is None or len(gdf) == 0:
        return np.array([], dtype=object), []
    if gdf.crs is not None and crs is not None and gdf.crs != rasterio.crs.CRS.from_user_input(crs):
        gdf = gdf.to_crs(crs)
    values = list(gdf[column]) if column and column in gdf.columns else [None] * len(gdf)
    return np.asarray(gdf.geometry.values), values


def _roof_rgbn(hint, i: int) -> tuple:
    if isinstance(hint, str) and hint.startswith("#") and len(hint) == 7:
        r, g, b = (int(hint[k:k + 2], 16) for k in (1, 3, 5))
        return (r, g, b, (r + g + b) / 3 * 0.8)
    if isinstance(hint, str) and hint in ROOF_COLOURS:
        return ROOF_COLOURS[hint]
    return ROOF_COLOURS[_ROOF_ORDER[i % 4]]  # no white by default: it would look like a greenhouse


def _features_hash(*arrays) -> int:
    h = hashlib.blake2b(digest_size=4)
    for geoms, values in arrays:
        for g in geoms:
            h.update(shapely.to_wkb(g))
        h.update(repr(values).encode())
    return int.from_bytes(h.digest(), "little")


def _render_strip(scene, transform, row0, height, width, structures, crops, epoch, nodata_safe,
                  shadow=(-0.6, 0.6)):
    xs, ys = _ground_xy(transform, row0, height, width)
    strip_tf = transform @ rasterio.Affine.translation(0, row0)
    fid, road = _fields(scene, xs, ys)
    seed = scene.seed
    h_f = _hash(fid, fid * 0 + 7, seed)
    mat = np.searchsorted(np.cumsum(_FIELD_P), h_f)
    mat = np.minimum(mat, len(_FIELD) - 1)
    img = _FIELD[mat].transpose(2, 0, 1).copy()  # (4, h, w)
    img *= (0.88 + 0.24 * _hash(fid, fid * 0 + 11, seed))[None]
    # plough / crop rows: stripes along x or y per field, 1.5-3 m period
    gx, gy = xs[None, :], ys[:, None]
    period = 1.5 + 1.5 * _hash(fid, fid * 0 + 13, seed)
    along_x = _hash(fid, fid * 0 + 17, seed) < 0.5
    phase = np.where(along_x, gy + 0 * gx, gx + 0 * gy)
    img *= (1 + 0.07 * np.sin(2 * np.pi * phase / period))[None]
    img *= (0.92 + 0.16 * _value_noise(gx, gy, 9.0, seed + 1))[None]
    img[:, road == 1] = _ROAD[:, None]
    img[:, road == 2] = _TRACK[:, None]

    # trees (shared background), then planted crops, village houses, planted structures
    t = scene.trees
    sel = (t[:, 1] > ys.min() - 5) & (t[:, 1] < ys.max() + 5)
    crowns = shapely.buffer(shapely.points(t[sel, 0], t[sel, 1]), t[sel, 2], quad_segs=3)
    tree_mask = _burn(crowns, np.ones(len(crowns)), (height, width), strip_tf, "uint8") > 0
    img[:, tree_mask] = _TREE[:, None] * (0.75 + 0.5 * _value_noise(gx, gy, 1.2, seed + 2))[tree_mask][None]

    crop_geoms, crop_kind = crops
    if len(crop_geoms):
        cid = _burn(crop_geoms, np.arange(1, len(crop_geoms) + 1), (height, width), strip_tf)
        for k, kind in enumerate(crop_kind, start=1):
            m = cid == k
            if not m.any():
                continue
            kind = kind if kind in _CROPS else "crop"
            img[:, m] = np.asarray(_CROPS[kind], np.float32)[:, None]
            if kind == "greenhouse":  # ribbed plastic, bright
                img[:, m] *= (1 + 0.06 * np.sin(2 * np.pi * (gx + 0 * gy) / 3.0))[m][None]
            elif kind == "orchard":  # young trees on a 4 m grid
                dot = (np.hypot((gx % 4.0) - 2, (gy % 4.0) - 2) + 0 * gx) < 1.3
                img[:, m & dot] = np.asarray(_CROPS["crop"], np.float32)[:, None] * 0.8
            else:
                img[:, m] *= (1 + 0.08 * np.sin(2 * np.pi * (gy + 0 * gx) / 1.8))[m][None]

    def roofs(geoms, rgbn, heights):
        # shadow first (by default towards the north-west, ~0.6 x height each way), then the roof
        h = np.asarray(heights, dtype=float)
        coords, idx = shapely.get_coordinates(geoms, return_index=True)
        coords = coords + np.column_stack([shadow[0] * h[idx], shadow[1] * h[idx]])
        shadows = shapely.set_coordinates(np.array(geoms, dtype=object).copy(), coords)
        sh = _burn(shadows, np.ones(len(shadows)), (height, width), strip_tf, "uint8") > 0
        img[:, sh] *= 0.45
        rid = _burn(geoms, np.arange(1, len(geoms) + 1), (height, width), strip_tf)
        on = rid > 0
        if on.any():
            col = np.asarray(rgbn, np.float32)[rid[on] - 1].T
            img[:, on] = col * (0.94 + 0.12 * _value_noise(gx, gy, 2.0, seed + 3))[on][None]

    hb = shapely.bounds(scene.houses)
    sel = (hb[:, 3] > ys.min() - 10) & (hb[:, 1] < ys.max() + 10)
    if sel.any():
        roofs(scene.houses[sel], [ROOF_COLOURS[_ROOF_ORDER[r]] for r in scene.house_roof[sel]],
              scene.house_height[sel])
    st_geoms, st_roof, st_height = structures
    if len(st_geoms):
        roofs(st_geoms, [_roof_rgbn(r, i) for i, r in enumerate(st_roof)], st_height)

    # epoch: illumination gain/offset per band and sensor noise
    erng = np.random.default_rng([seed, epoch & 0xFFFFFFFF])
    gain = erng.uniform(0.94, 1.06, 4).astype(np.float32)
    offset = erng.uniform(-6, 6, 4).astype(np.float32)
    img = img * gain[:, None, None] + offset[:, None, None]
    ix = np.floor(gx / 0.5).astype(np.int64) + 0 * np.floor(gy).astype(np.int64)
    iy = np.floor(gy / 0.5).astype(np.int64) + 0 * ix
    for b in range(4):
        img[b] += (_hash(ix, iy, (epoch * 31 + b * 7919 + seed) & 0xFFFFFFFF) - 0.5) * 8.0
    return np.clip(img, nodata_safe, 255)


def _profile(bounds, resolution, crs, count, dtype, nodata, width=None, height=None):
    xmin, ymin, xmax, ymax = bounds
    width = width or int(round((xmax - xmin) / resolution))
    height = height or int(round((ymax - ymin) / resolution))
    return dict(
        driver="GTiff", width=width, height=height, count=count, dtype=dtype, crs=crs,
        transform=from_origin(xmin, ymax, resolution, resolution), nodata=nodata,
        tiled=True, blockxsize=512, blockysize=512, compress="deflate", predictor=2,
        num_threads="ALL_CPUS", BIGTIFF="IF_SAFER",
    )


def render_orthophoto(path, *, bounds, resolution, crs, structures=None, crops=None, seed=0,
                      nir=False, dtype="uint8", nodata=None, epoch=None, date=None,
                      shadow=(-0.6, 0.6)) -> Path:
    """Write a tiled DEFLATE GeoTIFF orthophoto (RGB, or RGB+NIR with ``nir=True``).

    ``bounds`` (xmin, ymin, xmax, ymax) are in ``crs`` (a projected CRS, metres);
    ``resolution`` is the pixel size in metres. ``dtype`` uint8 or uint16 (values
    scaled by 257). ``nodata``: written as the file's nodata value; real pixels are
    kept off it. ``date`` (datetime.date or ISO string) is written as the
    ``ACQUISITION_DATE`` tag. ``shadow``: where buildings cast their shadow, in
    metres east and north per metre of height (the sun's direction and elevation;
    the default is a mid-morning summer sun). Returns the path.
    """
    path = Path(path)
    st = _planted(structures, crs, "roof")
    heights = _heights(structures, crs)
    cr = _planted(crops, crs, "crop")
    if epoch is None:
        epoch = _features_hash(st, cr)
    scene = _scene(bounds, seed)
    count = 4 if nir else 3
    prof = _profile(bounds, resolution, crs, count, dtype, nodata)
    # colour bands labelled as such; without it GDAL labels a 4th byte band alpha
    prof["photometric"] = "RGB"
    scale = 257.0 if np.dtype(dtype) == np.uint16 else 1.0
    nodata_safe = 1.0 if nodata is not None and nodata <= 0 else 0.0
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **prof) as dst:
        if date is not None:
            dst.update_tags(ACQUISITION_DATE=str(date))
        for row0 in range(0, prof["height"], STRIP):
            h = min(STRIP, prof["height"] - row0)
            img = _render_strip(scene, prof["transform"], row0, h, prof["width"],
                                (st[0], st[1], heights), cr, epoch, nodata_safe, shadow)[:count]
            img = img * scale
            if nodata is not None and nodata > 0:
                img = np.minimum(img, nodata - 1)
            dst.write(np.rint(img).astype(dtype), window=Window(0, row0, prof["width"], h))
    return path


def _heights(structures, crs) -> list:
    if structures is None or len(structures) == 0:
        return []
    if "height" in structures.columns:
        return [float(h) if h == h else 4.0 for h in structures["height"]]
    if "floors" in structures.columns:
        return [4.0 * float(f) if f == f else 4.0 for f in structures["floors"]]
    return [4.0] * len(structures)


def render_dsm(path, *, bounds, resolution, crs, structures=None, seed=0, epoch=None,
               date=None, nodata=-9999.0) -> Path:
    """Write a float32 DSM (metres) of the same scene: terrain + trees + houses +
    planted ``structures`` (``height`` column, else 4 m per ``floors``, else 4 m).
    ``date`` is written as the ``ACQUISITION_DATE`` tag (see gis.imagery.pair)."""
    path = Path(path)
    st_geoms, _ = _planted(structures, crs, None)
    st_h = _heights(structures, crs)
    if epoch is None:
        epoch = _features_hash((st_geoms, st_h))
    scene = _scene(bounds, seed)
    prof = _profile(bounds, resolution, crs, 1, "float32", nodata)
    prof["predictor"] = 3
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **prof) as dst:
        if date is not None:
            dst.update_tags(ACQUISITION_DATE=str(date))
        for row0 in range(0, prof["height"], STRIP):
            h = min(STRIP, prof["height"] - row0)
            xs, ys = _ground_xy(prof["transform"], row0, h, prof["width"])
            tf = prof["transform"] @ rasterio.Affine.translation(0, row0)
            gx, gy = xs[None, :], ys[:, None]
            z = 40 + 6 * _value_noise(gx, gy, 400.0, seed + 5) + 1.5 * _value_noise(gx, gy, 60.0, seed + 6)
            t = scene.trees
            sel = (t[:, 1] > ys.min() - 5) & (t[:, 1] < ys.max() + 5)
            crowns = shapely.buffer(shapely.points(t[sel, 0], t[sel, 1]), t[sel, 2], quad_segs=3)
            above = rasterize(zip(crowns, t[sel, 3]), out_shape=(h, w := prof["width"]), transform=tf,
                              fill=0, dtype="float32", merge_alg=rasterio.enums.MergeAlg.replace)
            hb = shapely.bounds(scene.houses)
            hs = (hb[:, 3] > ys.min() - 10) & (hb[:, 1] < ys.max() + 10)
            geoms = list(scene.houses[hs]) + list(st_geoms)
            hts = list(scene.house_height[hs]) + list(st_h)
            if geoms:
                bld = rasterize(zip(geoms, hts), out_shape=(h, w), transform=tf, fill=0, dtype="float32")
                above = np.where(bld > 0, bld, above)
            erng = np.random.default_rng([seed, epoch & 0xFFFFFFFF, row0])
            z = z + above + erng.normal(0, 0.08, z.shape).astype(np.float32)
            dst.write(z.astype("float32")[None], window=Window(0, row0, w, h))
    return path


def restyle(img: np.ndarray, gain: float = 1.0, gamma: float = 1.0, saturation: float = 1.0) -> np.ndarray:
    """``img`` ((bands, h, w), 0-255) as another flight, or the same flight processed
    otherwise, would show the same ground: tone curve ``x ** gamma`` and exposure
    ``gain`` on every band, then red, green and blue pushed away from (or towards)
    their grey by ``saturation``. float32, clipped to 0-255. For checking that a
    detector or a trained model does not depend on one flight's look (see
    ``scripts/eval_detection.py --look``)."""
    x = np.clip(np.asarray(img, np.float32) / np.float32(255), 0, 1) ** np.float32(gamma)
    x *= np.float32(gain)
    rgb = x[:3]
    grey = rgb.mean(0, keepdims=True)
    x[:3] = grey + np.float32(saturation) * (rgb - grey)
    return np.clip(x * np.float32(255), 0, 255)
