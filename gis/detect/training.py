"""Training the object classifier: from labelled pairs or from patrol verdicts.

Labelled pairs: a folder with ``A/`` (before), ``B/`` (after) and ``label/``
(255 = changed) holding files of the same name: PNG/JPEG tiles (taken as
0.5 m pixels, the LEVIR-CD layout) or GeoTIFFs (their own pixel size).

Verdicts: a GeoPackage of alerts (the alert store's ``alerts`` layer, or any
polygon layer with a ``verdict`` or ``status`` column) plus the before and after
orthophotos the alerts came from. ``illegal``, ``legal`` and ``demolished``
mean the change was real (a legal building is still a building);
``false_alarm`` means it was not; alerts without a verdict are skipped. Each
alert polygon is one training object, described by the same features the
detector computes over it; the result is a ``mode="objects"`` model that
drops unsupervised detections patrols would have called false alarms.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.windows import Window, from_bounds

from gis.detect import classifier as C
from gis.detect.features import compute_features, feature_stack
from gis.detect.objects import MIN_AREA
from gis.detect.register import estimate_shift
from gis.detect.sampling import sample_scene, work_factor
from gis.detect.scene import estimate_stats
from gis.detect.spectral import building_mask
from gis.errors import InputError, ModelError
from gis.imagery.pair import open_pair
from gis.imagery.reading import gdal_env, read_window
from gis.imagery.windows import windows_within

log = logging.getLogger(__name__)

__all__ = ["read_pair_folder", "train_from_pairs", "train_from_alerts", "object_rows", "inside_images",
           "pair_object_rows", "REAL", "FALSE", "JUDGED_CHANGE"]

REAL = ("illegal", "legal", "demolished", "closed")
FALSE = ("false_alarm",)
#: a candidate over labelled pairs is a real change when at least this share of it is
#: labelled change (the verdict a patrol would give)
JUDGED_CHANGE = 0.3
_EXT = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def _read_image(path: Path) -> tuple[np.ndarray, float]:
    """(bands, h, w) float32 and pixel size; non-georeferenced files are 0.5 m."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            data = src.read().astype(np.float32)
            res = abs(src.transform.a) if src.crs is not None else 0.5
    return data, res


def read_pair_folder(folder) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, float]]:
    """[(name, before, after, label bool, res)] from an A/ B/ label/ folder."""
    folder = Path(folder)
    for sub in ("A", "B", "label"):
        if not (folder / sub).is_dir():
            raise InputError(f"training folder has no {sub}/ subfolder", path=folder,
                             hint="lay it out as A/ (before), B/ (after), label/ (255 = changed), same file names")
    out = []
    for a in sorted(p for p in (folder / "A").iterdir() if p.suffix.lower() in _EXT):
        b, lab = folder / "B" / a.name, folder / "label" / a.name
        if not b.exists() or not lab.exists():
            raise InputError(f"{a.name} has no matching file in B/ or label/", path=folder,
                             hint="every tile needs A/NAME, B/NAME and label/NAME")
        before, res = _read_image(a)
        after, _ = _read_image(b)
        label, _ = _read_image(lab)
        out.append((a.stem, before[:3], after[:3], label[0] > 127, res))
    if not out:
        raise InputError("training folder holds no image tiles", path=folder / "A")
    return out


def _pair_stats(before, after, res):
    valid = np.ones(before.shape[1:], bool)
    return estimate_stats([(before, after, valid)], res=res)


def _shrink(arr: np.ndarray, factor: int) -> np.ndarray:
    """Area-average (bands, h, w) by ``factor``, as detection does (gis.imagery.reading)."""
    if factor == 1:
        return arr
    size = (-(-arr.shape[2] // factor), -(-arr.shape[1] // factor))
    return np.stack([cv2.resize(b, size, interpolation=cv2.INTER_AREA) for b in arr.astype(np.float32)])


def _registered(before: np.ndarray, before_w: np.ndarray, after_w: np.ndarray, factor: int) -> np.ndarray | None:
    """The full-resolution before tile moved onto the after tile's content, as
    detection reads it (gis.detect.register: measured on the work-pixel tiles
    ``before_w``, ``after_w``, applied by whole full-resolution pixels, no
    resampling), or None when they agree; the label, drawn on the after tile, then
    fits both. Ground the shift uncovers repeats the tile's edge."""
    shift = estimate_shift([(before_w, after_w, np.ones(before_w.shape[1:], bool))])
    if shift is None:
        return None
    # after[r, c] shows before[r - dy, c - dx]
    cols, rows = round(shift[0] * factor), round(shift[1] * factor)
    log.info("before tile offset by (%d, %d) px: moved onto the after tile", cols, rows)
    h, w = before.shape[1:]
    r = np.clip(np.arange(h) - rows, 0, h - 1)
    c = np.clip(np.arange(w) - cols, 0, w - 1)
    return before[:, r[:, None], c[None, :]]


def _work_pairs(folder, *, register: bool, exclude: tuple[str, ...] = ()):
    """Each labelled pair of ``folder`` as detection sees it: shrunk to the work
    resolution, the before tile moved onto the after tile (``register``), the label
    shrunk with it; yields ``(name, before, after, label, work_res, stats)``."""
    for name, before, after, label, res in read_pair_folder(folder):
        if name in exclude:
            continue
        k = work_factor(res)
        before_w, after = _shrink(before, k), _shrink(after, k)
        moved = _registered(before, before_w, after, k) if register else None
        before = before_w if moved is None else _shrink(moved, k)
        label = _shrink(label[None].astype(np.float32), k)[0] > 0.5
        yield name, before, after, label, res * k, _pair_stats(before, after, res * k)


def train_from_pairs(folder, *, exclude: tuple[str, ...] = (), seed: int = 0, register: bool = True) -> dict:
    """A ``mode="segments"`` model from labelled pairs (tiles named in ``exclude`` left out);
    ``register``: each before tile is moved onto its after tile first (as detection does)."""
    Xs, ys, refs = [], [], []
    for _, before, after, label, res_w, stats in _work_pairs(folder, register=register, exclude=exclude):
        X, y = C.pair_samples(before, after, label, res_w, stats, nir=False)
        refs.append(stats.lab_ref)
        Xs.append(X)
        ys.append(y)
    if not Xs:
        raise InputError("no training tiles left", path=folder)
    X, y = np.concatenate(Xs), np.concatenate(ys)
    log.info("training on %d segments (%d change) from %d tiles", len(y), int(y.sum()), len(Xs))
    model = C.fit(X, y, mode="segments", nir=False, seed=seed)
    model["lab_ref"] = [float(v) for v in np.mean(refs, axis=0)]
    return model


def object_rows(before, after, geoms, *, crs=None, register: bool = True) -> tuple[np.ndarray, dict]:
    """Feature rows of polygons over one pair of orthophotos, as the object model sees
    them at detection; and facts of the scene: ``{"nir": bool, "lab_ref": [L, a, b]}``.

    ``geoms``: polygons in ``crs`` (default: the after image's). The scene statistics
    are computed as detection computes them (same sample of blocks, co-registered when
    ``register``), so the features seen in training are the ones the detector will
    show the model. A polygon outside the images gives a row of the window's edge:
    the caller keeps only polygons that meet them (:func:`inside_images`)."""
    pair = open_pair(before, after)
    geoms = np.asarray(geoms, dtype=object)
    if crs is not None:
        geoms = gpd.GeoSeries(geoms, crs=crs).to_crs(pair.grid.crs).values
    k = work_factor(pair.grid.res)
    res = pair.grid.res * k
    blocks = windows_within(pair.grid, geoms, buffer=0.0, block=512)
    with gdal_env():
        # co-registered as detection will be
        pair, samples = sample_scene(pair, blocks, k, register=register)
        stats = estimate_stats(samples, nir=pair.has_nir, res=res)
        rows = []
        for geom in geoms:
            # the polygon plus 32 px of context, so blurred features see the surroundings
            pad = 32 * res
            x0, y0, x1, y1 = geom.bounds
            win = from_bounds(x0 - pad, y0 - pad, x1 + pad, y1 + pad, pair.grid.transform)
            win = win.round_offsets().round_lengths().intersection(Window(0, 0, pair.grid.width, pair.grid.height))
            wd = read_window(pair, win, k)
            f = compute_features(wd.before, wd.after, stats, nir=pair.has_nir, full=True, res=res, valid=wd.valid)
            lab = rasterize([(geom, 1)], out_shape=wd.valid.shape, transform=wd.transform, fill=0, dtype="int32")
            lab[~wd.valid] = 0
            rows.append(C.region_features(feature_stack(f), lab, 2)[1])
    ref = stats.lab_ref if stats.lab_ref is not None else np.zeros(3, np.float32)
    X = np.stack(rows) if rows else np.zeros((0, 2 * len(C.FEATURE_NAMES) + 1), np.float32)
    return X, {"nir": bool(pair.has_nir), "lab_ref": [float(v) for v in ref]}


def inside_images(before, after, geoms, crs) -> np.ndarray:
    """Which polygons (in ``crs``) meet the ground both images cover."""
    pair = open_pair(before, after)
    g = gpd.GeoSeries(np.asarray(geoms, dtype=object), crs=crs).to_crs(pair.grid.crs)
    return g.intersects(shapely.box(*pair.grid.bounds)).to_numpy()


def pair_object_rows(folder, *, proposer: float = 1.0, register: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Object rows from labelled pairs, as verdicts would give them: every candidate of the
    unsupervised detector (its threshold times ``proposer``) judged from the label (real
    when :data:`JUDGED_CHANGE` of it is labelled change), and every labelled structure
    the candidates miss as a positive (a patrol-reported miss). Returns (X, y)."""
    Xs, ys = [], []
    for name, before, after, label, res_w, stats in _work_pairs(folder, register=register):
        f = compute_features(before, after, stats, nir=False, full=True, res=res_w)
        stack = feature_stack(f)
        sens = dataclasses.replace(stats, building_threshold=stats.building_threshold * proposer)
        mask, _ = building_mask(f, sens, res_w)
        min_px = MIN_AREA["new_structure"] / res_w ** 2
        n, cand = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        size = np.bincount(cand.ravel(), minlength=n)
        hit = np.bincount(cand[label], minlength=n)
        keep = np.flatnonzero(size >= min_px)
        keep = keep[keep > 0]
        X = C.region_features(stack, cand, n)
        Xs.append(X[keep])
        ys.append((hit[keep] >= JUDGED_CHANGE * size[keep]).astype(np.uint8))
        m, lab = cv2.connectedComponents(label.astype(np.uint8), connectivity=8)
        lsize = np.bincount(lab.ravel(), minlength=m)
        covered = np.bincount(lab[mask], minlength=m)
        missed = np.flatnonzero((covered < JUDGED_CHANGE * lsize) & (lsize >= min_px))
        missed = missed[missed > 0]
        Xs.append(C.region_features(stack, lab, m)[missed])
        ys.append(np.ones(len(missed), np.uint8))
        log.info("%s: %d candidates (%d real), %d missed structures", name, len(keep), int(ys[-2].sum()),
                 len(missed))
    return np.concatenate(Xs), np.concatenate(ys)


def train_from_alerts(alerts, before, after, *, layer: str | None = "alerts", seed: int = 0,
                      register: bool = True) -> dict:
    """A ``mode="objects"`` model from alerts with verdicts over two orthophotos."""
    gdf = gpd.read_file(alerts, layer=layer) if not isinstance(alerts, gpd.GeoDataFrame) else alerts
    cols = [c for c in ("verdict", "status") if c in gdf.columns]
    if not cols:
        raise InputError("alerts layer has neither a verdict nor a status column", path=alerts, layer=layer,
                         hint="use the alert store (store.gpkg) or add a verdict column")
    # the verdict where one is recorded, else the status (which carries it in the store)
    v = gdf[cols[0]].fillna("").astype(str).str.strip()
    if len(cols) == 2:
        v = v.where(v != "", gdf["status"].fillna("").astype(str).str.strip())
    y_all = np.where(v.isin(REAL), 1, np.where(v.isin(FALSE), 0, -1))
    gdf = gdf[y_all >= 0]
    y = y_all[y_all >= 0].astype(np.uint8)
    if len(np.unique(y)) < 2:
        raise ModelError(f"need both real changes and false alarms among the verdicts, found "
                         f"{int(y.sum())} real and {int((1 - y).sum())} false", path=alerts,
                         hint="record more verdicts (false_alarm and illegal/legal), then train again")
    inside = inside_images(before, after, gdf.geometry.values, gdf.crs)
    if not inside.all():
        log.warning("%d alert(s) lie outside the images and are skipped", int((~inside).sum()))
        gdf, y = gdf[inside], y[inside]
    X, scene = object_rows(before, after, gdf.geometry.values, crs=gdf.crs, register=register)
    log.info("training on %d verdicts (%d real changes)", len(y), int(y.sum()))
    model = C.fit(X, y, mode="objects", nir=scene["nir"], seed=seed)
    model["lab_ref"] = scene["lab_ref"]
    return model
