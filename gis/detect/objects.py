"""From change masks to change objects: components, polygons, kind, confidence.

Each kind's mask is labelled with OpenCV (8-connected, ~400 MP/s), small
components are dropped by ground area, and only components whose centre lies
in the window's core are kept (windows overlap, so an object on a block edge
is seen whole by one block and reported once). The surviving labels are
polygonised each on its own bounding box: OpenCV traces the outline and it is
rounded onto pixel corners, giving GDAL's polygons vertex for vertex at a
fraction of the cost of a :func:`rasterio.features.shapes` pass (still used for
the rare label that touches itself only diagonally).
"""

from __future__ import annotations

import cv2
import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes
from shapely.geometry import shape

from gis.schema import ALERT_KINDS

__all__ = ["KINDS", "components", "polygonise", "refine", "MIN_AREA"]

KINDS = ALERT_KINDS
#: default minimum areas (m2) per kind
MIN_AREA = {"new_structure": 20.0, "new_crops": 100.0, "demolished": 20.0, "other": 20.0}
#: a bright, unvegetated new object this large is a greenhouse (a crop), not a house
GREENHOUSE_BRIGHTNESS = 175.0  # mean of R, G, B on the 0-255 scale: white plastic
GREENHOUSE_MIN_AREA = 150.0


def components(masks: dict[str, tuple[np.ndarray, np.ndarray]], *, res: float,
               core: tuple[int, int, int, int], min_area: dict[str, float],
               brightness=None, tall: np.ndarray | None = None):
    """Label each kind's mask. Returns (labels int32 image, records list).

    ``masks``: kind -> (bool mask, confidence map in [0, 1]); earlier kinds win
    where masks overlap. ``core``: (row0, col0, row1, col1) in window pixels.
    Records: dicts with id, kind, confidence, pixels, edge and box (row0, col0, row1,
    col1 of the object in the window).
    ``brightness`` (after image, 0-255) and ``tall`` (DSM height gain, if any) let
    large bright new objects that did not rise be labelled greenhouses (new_crops).
    A confidence map or ``brightness`` may also be a function of the flat indexes
    of the object pixels returning their values: it is then computed only there
    (a few % of a window), and only for a window that holds objects of its kind.
    """
    shape = next(iter(masks.values()))[0].shape
    labels = np.zeros(shape, np.int32)
    taken = np.zeros(shape, bool)
    records: list[dict] = []
    next_id = 1
    px_area = res * res
    r0, c0, r1, c1 = core
    for kind, (mask, conf) in masks.items():
        m = mask & ~taken
        if not m.any():
            continue
        # Grana's block-based labelling: the same labels as the default, ~3x faster here
        n, lab, st, cen = cv2.connectedComponentsWithStatsWithAlgorithm(m.view(np.uint8), 8, cv2.CV_32S,
                                                                      cv2.CCL_GRANA)
        area = st[:, cv2.CC_STAT_AREA] * px_area
        cx, cy = cen[:, 0], cen[:, 1]
        x, y = st[:, cv2.CC_STAT_LEFT], st[:, cv2.CC_STAT_TOP]
        # cut by the window edge: kept whatever its size, merged and filtered later
        edge = (x == 0) | (y == 0) | (x + st[:, cv2.CC_STAT_WIDTH] >= shape[1]) | \
            (y + st[:, cv2.CC_STAT_HEIGHT] >= shape[0])
        keep = ((area >= min_area.get(kind, 20.0)) | edge) & (cy >= r0) & (cy < r1) & (cx >= c0) & (cx < c1)
        keep[0] = False
        if not keep.any():
            continue
        # per-object sums over the object pixels only (a few % of the window), in
        # the same pixel order as over the whole window
        fg = np.flatnonzero(m)
        flat = lab.ravel()[fg]
        conf_sum = np.bincount(flat, weights=_at(conf, fg), minlength=n)
        mean_conf = conf_sum / np.maximum(st[:, cv2.CC_STAT_AREA], 1)
        bright = None
        if brightness is not None and kind == "new_structure":
            bright = np.bincount(flat, weights=_at(brightness, fg), minlength=n) / \
                np.maximum(st[:, cv2.CC_STAT_AREA], 1)
            if tall is not None:  # a DSM saw it rise: a building, however bright
                rose = np.bincount(flat, weights=tall.ravel()[fg].astype(np.float64), minlength=n)
                bright = np.where(rose > 0.3 * st[:, cv2.CC_STAT_AREA], 0, bright)
        ids = np.flatnonzero(keep)
        remap = np.zeros(n, np.int32)
        remap[ids] = np.arange(next_id, next_id + len(ids))
        sel = remap[flat]  # m holds no pixel an earlier kind has taken (labels 0 there)
        labels.ravel()[fg] = sel
        taken.ravel()[fg] = sel > 0
        for i in ids:
            k = kind
            if bright is not None and bright[i] >= GREENHOUSE_BRIGHTNESS and area[i] >= GREENHOUSE_MIN_AREA:
                k = "new_crops"
            records.append({"id": int(remap[i]), "kind": k, "confidence": float(np.clip(mean_conf[i], 0, 1)),
                            "pixels": int(st[i, cv2.CC_STAT_AREA]), "edge": bool(edge[i]),
                            "box": (int(y[i]), int(x[i]), int(y[i] + st[i, cv2.CC_STAT_HEIGHT]),
                                    int(x[i] + st[i, cv2.CC_STAT_WIDTH]))})
        next_id += len(ids)
    return labels, records


def refine(labels: np.ndarray, records: list[dict], soft: dict[str, tuple[np.ndarray, float]],
           valid: np.ndarray, factor: int, min_pixels: dict[str, float] | None = None) -> np.ndarray:
    """Labels on the imagery's own grid, ``factor`` times finer than the work pixels.

    Detection works on ~1 m pixels, so a roof's outline would come out as a 1 m
    staircase on 0.2-0.5 m imagery (and its area off by up to half a metre all
    round). Objects of a kind in ``soft`` (kind -> (score map, level)) are drawn
    again at the fine grid: where the score, interpolated bilinearly between work
    pixel centres, reaches ``level``, within one work pixel of the object. Other
    objects are repeated pixel for pixel. Each record's ``pixels`` becomes its count
    of fine pixels; a redrawn object now under its kind's ``min_pixels`` (fine pixels)
    is dropped from both, unless it is cut by the window's edge (see
    :func:`components`)."""
    h, w = labels.shape
    size = (w * factor, h * factor)
    fine = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    for kind, (score, level) in soft.items():
        ids = [r["id"] for r in records if r["kind"] == kind]
        if not ids:
            continue
        of_kind = np.zeros(int(labels.max()) + 1, bool)
        of_kind[ids] = True
        own = np.where(of_kind[labels], labels, 0)
        # the object's id over the background ring around it (float32: ids are far below 2^24)
        grown = cv2.dilate(own.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int32)
        cand = cv2.resize(np.where(labels > 0, own, grown), size, interpolation=cv2.INTER_NEAREST)
        keep = cv2.resize(score.astype(np.float32, copy=False), size, interpolation=cv2.INTER_LINEAR) >= level
        keep &= cv2.resize(valid.view(np.uint8), size, interpolation=cv2.INTER_NEAREST).view(bool)
        redraw = cand > 0
        fine[redraw] = np.where(keep[redraw], cand[redraw], 0)
    count = np.bincount(fine.ravel(), minlength=int(labels.max()) + 1)
    gone = np.zeros(len(count), bool)
    for r in records:
        r["pixels"] = int(count[r["id"]])
        gone[r["id"]] = r["kind"] in soft and not r["edge"] and r["pixels"] < (min_pixels or {}).get(r["kind"], 0)
    if gone.any():
        records[:] = [r for r in records if not gone[r["id"]]]
        fine[gone[fine]] = 0
    return fine


def _at(values, fg: np.ndarray) -> np.ndarray:
    """``values`` (an image, or a function of flat pixel indexes) at the pixels ``fg``."""
    return values(fg) if callable(values) else values.ravel()[fg]


def polygonise(labels: np.ndarray, transform, res: float, boxes: dict | None = None) -> dict[int, object]:
    """Label image -> {id: polygon}, pixel-edged polygons simplified by half a pixel.
    ``boxes``: {id: (row0, col0, row1, col1)} of every label, if known (as
    :func:`components` gives them), else they are found here.

    Each label's outline is traced by OpenCV on its own bounding box (see
    :func:`_trace`): the same rings, vertex for vertex, as GDAL's polygoniser
    (8-connected) gives over the labels' bounding box, at a fraction of its cost
    per call. A label that touches itself only diagonally somewhere (a pinch: GDAL's
    ring passes that corner twice, in an order of its own) is left to GDAL."""
    if boxes is None:
        boxes = _boxes(labels)
    if not boxes:
        return {}
    b = np.array(list(boxes.values()))
    r0, c0 = int(b[:, 0].min()), int(b[:, 1].min())
    r1, c1 = int(b[:, 2].max()), int(b[:, 3].max())
    # the same box and transform as a polygoniser pass over the labels' bounding box
    tf = transform @ Affine.translation(c0, r0)
    box = labels[r0:r1, c0:c1]
    rings, rest = _trace(box, {i: (ra - r0, ca - c0, rb - r0, cb - c0) for i, (ra, ca, rb, cb) in boxes.items()})
    ids, polys = [], []
    for i, rs in rings.items():
        # GDAL puts the pixel corner (X, Y) at gt0 + X * gt1 + Y * gt2 (and so on):
        # the same sums in the same order give the same coordinates
        coords = [np.column_stack([tf.c + X * tf.a + Y * tf.b, tf.f + X * tf.d + Y * tf.e]) for X, Y in rs]
        ids.append(i)
        polys.append(shapely.Polygon(_closed(coords[0]), [_closed(c) for c in coords[1:]]))
    if rest:
        for geom, value in shapes(box, mask=box > 0, transform=tf, connectivity=8):
            if int(value) in rest:
                ids.append(int(value))
                polys.append(shape(geom))
    polys = np.array(polys, dtype=object)
    ids = np.asarray(ids)
    order = np.argsort(ids, kind="stable")
    ids, polys = ids[order], polys[order]
    uniq, start = np.unique(ids, return_index=True)
    geoms = [polys[a] if b - a == 1 else shapely.union_all(polys[a:b])
             for a, b in zip(start, list(start[1:]) + [len(ids)])]
    simple = shapely.simplify(np.array(geoms, dtype=object), res * 0.5, preserve_topology=True)
    return dict(zip(uniq.tolist(), simple))


def _closed(xy: np.ndarray) -> np.ndarray:
    return np.concatenate([xy, xy[:1]])


def _boxes(labels: np.ndarray) -> dict[int, tuple[int, int, int, int]]:
    """{id: (row0, col0, row1, col1)} of every label in ``labels``."""
    nz = np.flatnonzero(labels)
    if not len(nz):
        return {}
    lab = labels.ravel()[nz]
    order = np.argsort(lab, kind="stable")
    nz, lab = nz[order], lab[order]
    ids, start = np.unique(lab, return_index=True)
    r, c = nz // labels.shape[1], nz % labels.shape[1]
    return dict(zip(ids.tolist(), zip(np.minimum.reduceat(r, start).tolist(), np.minimum.reduceat(c, start).tolist(),
                                      (np.maximum.reduceat(r, start) + 1).tolist(),
                                      (np.maximum.reduceat(c, start) + 1).tolist())))


def _trace(box: np.ndarray, boxes: dict) -> tuple[dict[int, list], set[int]]:
    """Pixel-edge rings of every label in ``box`` (``boxes``: {id: (row0, col0, row1,
    col1)} in the box): {id: [(X, Y) exterior, (X, Y) holes...]} in pixel-corner
    coordinates of the box, as GDAL orders them (exterior from its top left corner
    down the left edge, holes from theirs along the top edge, holes sorted by that
    corner, no collinear vertices); and the ids left to GDAL.

    OpenCV traces the centres of a region's border pixels; on the mask upsampled 2x
    those centres sit a quarter of a pixel inside the pixel edges (or cut a concave
    corner by a quarter pixel), so rounding them gives the pixel corners exactly."""
    out: dict[int, list] = {}
    rest: set[int] = set()
    for i, (ra, ca, rb, cb) in sorted(boxes.items()):
        sub = box[ra:rb, ca:cb] == i
        # a pinch: a 2 x 2 block holding the label on one diagonal only
        nw, ne, sw, se = sub[:-1, :-1], sub[:-1, 1:], sub[1:, :-1], sub[1:, 1:]
        if ((nw & se & ~ne & ~sw) | (ne & sw & ~nw & ~se)).any():
            rest.add(i)
            continue
        up = cv2.resize(sub.view(np.uint8), (2 * sub.shape[1], 2 * sub.shape[0]), interpolation=cv2.INTER_NEAREST)
        m = cv2.copyMakeBorder(up, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=0)  # a zero frame around it
        cnts, hier = cv2.findContours(m, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        hier = hier[0]
        outer = np.flatnonzero(hier[:, 3] < 0)
        rings = []
        if len(outer) == 1:
            for k in [outer[0], *np.flatnonzero(hier[:, 3] == outer[0]).tolist()]:
                q = _ring(cnts[k][:, 0, :], hole=k != outer[0])
                if q is None:
                    break
                rings.append((q[:, 0] + (ca - 1), q[:, 1] + (ra - 1)))
        if len(rings) != len(cnts):
            rest.add(i)  # not one simple outline: GDAL decides
            continue
        rings[1:] = sorted(rings[1:], key=lambda xy: (xy[1][0], xy[0][0]))
        out[i] = rings
    return out, rest


def _ring(p: np.ndarray, hole: bool) -> np.ndarray | None:
    """(col, row) pixel corners of an OpenCV contour of the 2x mask (see :func:`_trace`),
    or None if they do not make an axis-aligned ring."""
    q = (2 * p + 3) // 4  # ((p + 0.5) / 2) rounded: never a tie
    q = q[np.diff(q, axis=0, append=q[:1]).any(1)]  # a cut corner's two ends are one corner
    if len(q) < 4:
        return None
    d = np.diff(q, axis=0, append=q[:1])  # edge from each vertex to the next
    flat = d == 0
    if not flat.any(1).all():
        return None
    q = q[~(flat & flat[np.arange(-1, len(q) - 1)]).any(1)]  # no vertex mid-edge
    if len(q) < 4:
        return None
    q = np.roll(q, -int(np.lexsort((q[:, 0], q[:, 1]))[0]), 0)  # top row, then left column
    if (q[1, 1] > q[0, 1]) == hole:  # exteriors start downwards, holes rightwards
        q = np.concatenate([q[:1], q[:0:-1]])
    return q
