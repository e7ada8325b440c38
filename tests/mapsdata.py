"""Test data for the maps and bulletin tests (seeded, regenerated on each run).

The demo county's clearance figures, with hostile text planted in a parcel,
a project name and an alert note, a handful of alerts with before/after chips
(small PNGs written here), and a coarse synthetic orthophoto.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from PIL import Image

from gis.synthetic.county import make_demo_county
from gis.clearance.pipeline import clearance

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'
NAME = "</script><script>alert(3)</script>项目"
NOTE = "<b>bold</b>\"'&<img src=x onerror=alert(4)>"
AS_OF = dt.date(2026, 11, 21)
HOSTILE_PARCEL_PROJECT = "P03"


def build(folder: Path):
    """(demo county, clearance with hostile text, alerts, store folder, orthophoto path)."""
    county = make_demo_county(folder / "layers")
    c = clearance(county.redlines, county.parcels, previous=county.previous_parcels,
                  inventory=county.inventory, as_of=AS_OF)
    c = _plant_hostile(c)
    store_dir = folder / "store"
    alerts = make_alerts(c, store_dir)
    from gis.synthetic.render import render_orthophoto

    ortho = render_orthophoto(folder / "ortho_2026-11-21.tif", bounds=county.bounds, resolution=5.0,
                              crs=county.crs, seed=3, date=AS_OF)
    return county, c, alerts, store_dir, ortho


def hostile_parcel_id(c) -> str:
    return str(c.parcels.attrs["hostile_parcel"])


def _plant_hostile(c):
    parcels = c.parcels.copy()
    inside = c.pieces.loc[c.pieces["project_id"] == HOSTILE_PARCEL_PROJECT, "parcel_id"]
    pid = sorted(inside)[len(inside) // 2]
    i = parcels.index[parcels["parcel_id"] == pid][0]
    parcels["owner_type"] = parcels["owner_type"].astype(object)
    parcels["land_use"] = parcels["land_use"].astype(object)
    parcels.loc[i, "owner_type"] = SCRIPT
    parcels.loc[i, "land_use"] = IMG
    parcels.attrs["hostile_parcel"] = pid
    red = c.redlines.copy()
    projects = c.projects.copy()
    red.loc[red["project_id"] == "P05", "name"] = NAME
    projects.loc[projects["project_id"] == "P05", "name"] = NAME
    return dataclasses.replace(c, parcels=parcels, redlines=red, projects=projects)


def make_alerts(c, store_dir: Path, n: int = 12) -> gpd.GeoDataFrame:
    """``n`` alerts inside the projects in the store's columns, with chip PNGs."""
    rng = np.random.default_rng(7)
    store_dir.mkdir(parents=True, exist_ok=True)
    chips = store_dir / "chips"
    chips.mkdir(exist_ok=True)
    red = c.redlines.sort_values("project_id").reset_index(drop=True)
    pts = red.geometry.representative_point()
    kinds = ["new_structure", "new_crops", "demolished", "other"]
    statuses = ["new", "dispatched", "illegal", "legal", "false_alarm", "closed"]
    rows, geoms = [], []
    for k in range(n):
        j = k % len(red)
        x, y = pts.iloc[j].x + rng.uniform(-20, 20), pts.iloc[j].y + rng.uniform(-20, 20)
        side = rng.uniform(8, 18)
        geoms.append(shapely.box(x, y, x + side, y + side))
        first = AS_OF - dt.timedelta(days=int(k * 3))
        status = statuses[k % len(statuses)]
        before, after = f"chips/A{k:03d}_before.png", f"chips/A{k:03d}_after.png"
        _chip(store_dir / before, (120, 140, 90))
        _chip(store_dir / after, (200, 60, 60) if k % 2 == 0 else (60, 160, 60))
        rows.append({
            "alert_id": f"A{k:03d}", "kind": kinds[k % 4], "status": status,
            "verdict": status if status in ("illegal", "legal", "false_alarm") else "",
            "area_m2": side * side, "area_mu": side * side / (10000 / 15), "confidence": 0.8,
            "project_id": red["project_id"].iloc[j], "parcel_id": "", "district": red["district"].iloc[j],
            "first_seen": first.isoformat(), "last_seen": AS_OF.isoformat(), "seen_count": 1 + k % 3,
            "growing": k % 3 == 1, "post_freeze": k % 2 == 0, "freeze_date": "2026-03-01",
            "note": NOTE if k == 0 else "", "updated_by": "", "updated_at": "",
            "chip_before": before, "chip_after": after, "ref_alert_id": "",
            "status_since": (first + dt.timedelta(days=1)).isoformat(),
        })
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs=c.crs)


def _chip(path: Path, rgb) -> None:
    arr = np.zeros((64, 64, 3), np.uint8)
    arr[:] = (90, 110, 70)
    arr[20:44, 20:44] = rgb
    Image.fromarray(arr).save(path)


#: Screenshots and PNGs kept for a person to look at after the run.
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
