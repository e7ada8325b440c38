"""Builders of small synthetic image pairs for the detection tests (seeded, so
anyone can regenerate exactly what the tests use)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from gis.synthetic.render import render_dsm, render_orthophoto

CRS = "EPSG:4547"
X0, Y0 = 500000.0, 3400000.0
BOUNDS = (X0, Y0, X0 + 400.0, Y0 + 300.0)


def structures() -> gpd.GeoDataFrame:
    boxes = [(60, 60, 12, 10), (200, 150, 15, 10), (300, 50, 10, 16), (330, 230, 14, 12), (120, 240, 9, 9)]
    return gpd.GeoDataFrame(
        {"roof": ["blue", "grey", "red", "grey", "blue"], "height": [4.0, 7.0, 3.5, 6.5, 4.0]},
        geometry=[shapely.box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h) for x, y, w, h in boxes], crs=CRS)


def crops() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"crop": ["crop", "greenhouse"]},
        geometry=[shapely.box(X0 + 20, Y0 + 150, X0 + 70, Y0 + 190), shapely.box(X0 + 240, Y0 + 20, X0 + 280, Y0 + 40)],
        crs=CRS)


def redlines() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"project_id": ["P1", "P2"], "name": ["road", "park"], "district": ["east", "west"]},
                            geometry=[shapely.box(X0, Y0, X0 + 200, Y0 + 300), shapely.box(X0 + 200, Y0, X0 + 400, Y0 + 300)],
                            crs=CRS)


def ortho(path: Path, *, epoch: int, planted: bool, **kw) -> Path:
    kw.setdefault("bounds", BOUNDS)
    kw.setdefault("resolution", 0.5)
    kw.setdefault("crs", CRS)
    if planted:
        kw.setdefault("structures", structures())
        kw.setdefault("crops", crops())
    return render_orthophoto(path, seed=5, epoch=epoch, **kw)


@pytest.fixture(scope="session")
def scene(tmp_path_factory):
    """before.tif, after.tif (planted), same.tif (unchanged, other noise), DSMs."""
    d = tmp_path_factory.mktemp("scene")
    paths = {
        "before": ortho(d / "before.tif", epoch=1, planted=False),
        "after": ortho(d / "after.tif", epoch=2, planted=True),
        "same": ortho(d / "same.tif", epoch=3, planted=False),
        "dsm_before": render_dsm(d / "dsm_before.tif", bounds=BOUNDS, resolution=0.5, crs=CRS, seed=5, epoch=1),
        "dsm_after": render_dsm(d / "dsm_after.tif", bounds=BOUNDS, resolution=0.5, crs=CRS, seed=5, epoch=2,
                                structures=structures()),
        "dir": d,
    }
    return paths
