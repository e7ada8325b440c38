"""Seeded builders for the alert tests: a demo-county workspace with tiny
imagery epochs, and a stand-in for change detection that returns changes the
test states exactly. Regenerate anything here by calling the builders."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from gis.synthetic.county import make_demo_county
from gis.workspace import init_workspace

CRS = "EPSG:4547"
DATES = (dt.date(2026, 2, 15), dt.date(2026, 3, 15), dt.date(2026, 4, 15))


def write_raster(path: Path, bounds, *, res: float = 10.0, seed: int = 0, crs: str = CRS) -> Path:
    xmin, ymin, xmax, ymax = bounds
    w, h = int((xmax - xmin) / res), int((ymax - ymin) / res)
    data = np.random.default_rng(seed).integers(40, 200, (3, h, w), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8", crs=crs,
                       transform=from_origin(xmin, ymax, res, res), tiled=True, blockxsize=256,
                       blockysize=256, compress="deflate") as dst:
        dst.write(data)
    return path


def make_workspace(root: Path, dates=DATES, freeze_dates=None, thresholds=None) -> Path:
    """A workspace over the demo county with one tiny orthophoto per date."""
    county = make_demo_county(root / "layers")
    (root / "imagery").mkdir(parents=True, exist_ok=True)
    epochs = [(d, write_raster(root / "imagery" / f"{d.isoformat()}.tif", county.bounds, seed=k))
              for k, d in enumerate(dates)]
    init_workspace(root, redlines=county.redlines, parcels=county.parcels,
                   previous_parcels=county.previous_parcels, inventory=county.inventory,
                   epochs=epochs, freeze_dates=freeze_dates, thresholds=thresholds)
    return root


def redline(root: Path, project_id: str):
    red = gpd.read_file(root / "layers" / "redlines.gpkg")
    red = red.rename(columns={"项目编号": "project_id", "所属区县": "district", "冻结日期": "freeze_date"})
    return red[red["project_id"] == project_id].iloc[0]


def spot_in(root: Path, project_id: str, size: float = 20.0, dx: float = 0.0, dy: float = 0.0):
    """A square of ``size`` m inside the project's red line (shifted by dx, dy)."""
    p = redline(root, project_id).geometry.representative_point()
    return box(p.x + dx, p.y + dy, p.x + dx + size, p.y + dy + size)


def spot_outside(root: Path, size: float = 20.0, dx: float = 0.0):
    """A square outside every red line, in the county."""
    red = gpd.read_file(root / "layers" / "redlines.gpkg")
    union = red.union_all()
    x0, y0, x1, y1 = red.total_bounds
    for fx in np.linspace(0.05, 0.95, 19):
        for fy in np.linspace(0.05, 0.95, 19):
            b = box(x0 + fx * (x1 - x0) + dx, y0 + fy * (y1 - y0), x0 + fx * (x1 - x0) + dx + size,
                    y0 + fy * (y1 - y0) + size)
            if not b.buffer(30).intersects(union):
                return b
    raise AssertionError("no free spot")


def changes(*rows, crs: str = CRS) -> gpd.GeoDataFrame:
    """Changes as gis.detect returns them: rows of (kind, geometry[, confidence])."""
    kinds = [r[0] for r in rows]
    geoms = [r[1] for r in rows]
    conf = [r[2] if len(r) > 2 else 0.9 for r in rows]
    area = np.array([g.area for g in geoms], dtype=float)
    return gpd.GeoDataFrame({"kind": kinds, "area_m2": area, "area_mu": area / 666.6667,
                             "confidence": conf, "project_id": [""] * len(rows),
                             "parcel_id": [""] * len(rows), "in_inventory": [False] * len(rows)},
                            geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)


class FakeDetect:
    """Stands in for gis.detect.detect_changes: the changes of each (before, after) pair.

    Keys are the after image's stem (its date), or (before stem, after stem).
    """

    def __init__(self, by_epoch: dict | None = None) -> None:
        self.by_epoch = dict(by_epoch or {})
        self.calls: list[tuple[str, str, bool]] = []

    def __call__(self, before, after, **kw):
        b, a = Path(before).stem, Path(after).stem
        self.calls.append((b, a, kw.get("within") is not None))
        out = self.by_epoch.get((b, a), self.by_epoch.get(a) if kw.get("within") is None else None)
        return changes() if out is None else out.copy()


def write_photo(path: Path, fmt: str = "JPEG", *, seed: int = 0) -> Path:
    """A real, tiny field photo (JPEG, PNG or WebP as Pillow writes it); ``seed`` varies the content."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return path
