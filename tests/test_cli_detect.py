"""`gis detect` and `gis model train` from the command line."""

import gc
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from click.testing import CliRunner
import shapely
from detect_fixtures import X0, Y0, redlines, scene  # noqa: F401
from PIL import Image
from rasterio.features import rasterize

from gis.cli import main


def test_detect_writes_changes_layer(scene, tmp_path):
    red = tmp_path / "red.gpkg"
    redlines().to_file(red, layer="redlines")
    out = tmp_path / "changes.gpkg"
    r = CliRunner().invoke(main, ["detect", "--before", str(scene["before"]), "--after", str(scene["after"]),
                                  "--within", str(red), "--out", str(out), "--no-progress", "--min-area", "25"])
    assert r.exit_code == 0, r.output
    ch = gpd.read_file(out, layer="changes")
    assert {"kind", "area_m2", "area_mu", "confidence", "project_id", "parcel_id", "in_inventory"} <= set(ch.columns)
    assert len(ch) >= 5 and set(ch.project_id) <= {"P1", "P2"} and (ch.area_m2 >= 25).all()
    assert "change polygons" in r.output


def test_detect_process_writes_the_same_layer(scene, tmp_path):
    """The `gis` program itself (its own process: the imports are frozen out of the
    collector's way and stay so at exit, so nothing may depend on exit-time
    collection) writes a complete GeoPackage, the same as the in-process command."""
    red = tmp_path / "red.gpkg"
    redlines().to_file(red, layer="redlines")
    args = ["detect", "--before", str(scene["before"]), "--after", str(scene["after"]), "--within", str(red),
            "--no-progress"]
    p = subprocess.run([str(Path(sys.executable).with_name("gis")), *args, "--out", str(tmp_path / "p.gpkg")],
                       capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert "change polygons" in p.stdout
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "r.gpkg")])
    assert r.exit_code == 0, r.output
    assert gc.isenabled() and gc.get_freeze_count() == 0  # an in-process caller gets its collector back
    a, b = gpd.read_file(tmp_path / "p.gpkg", layer="changes"), gpd.read_file(tmp_path / "r.gpkg", layer="changes")
    assert len(a) >= 5 and len(a) == len(b)
    assert (a.drop(columns="geometry") == b.drop(columns="geometry")).all().all()
    assert a.geometry.geom_equals_exact(b.geometry, 1e-9).all()


def test_detect_bad_input_exit_2(scene, tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_text("junk")
    r = CliRunner().invoke(main, ["detect", "--before", str(bad), "--after", str(scene["after"]),
                                  "--out", str(tmp_path / "x.gpkg"), "--no-progress"])
    assert r.exit_code == 2 and "error:" in r.output and "bad.tif" in r.output
    assert not (tmp_path / "x.gpkg").exists()


def test_model_train_then_detect(scene, tmp_path, monkeypatch):
    from gis.detect import classifier

    # two members are enough to run the ensemble end to end (five cost 60 s here)
    monkeypatch.setattr(classifier, "ENSEMBLE", 2)
    # a labelled pair folder cut from the synthetic scene (A/, B/, label/ PNGs)
    d = tmp_path / "pairs"
    with rasterio.open(scene["before"]) as a, rasterio.open(scene["after"]) as b:
        A, B = a.read(), b.read()
    diff = np.abs(A.astype(int) - B.astype(int)).sum(0) > 60
    for sub, arr in (("A", A), ("B", B)):
        (d / sub).mkdir(parents=True)
        for k, (r0, c0) in enumerate([(0, 0), (0, 400), (300, 0), (300, 400)]):
            Image.fromarray(arr[:, r0:r0 + 300, c0:c0 + 400].transpose(1, 2, 0)).save(d / sub / f"t{k}.png")
    (d / "label").mkdir()
    for k, (r0, c0) in enumerate([(0, 0), (0, 400), (300, 0), (300, 400)]):
        Image.fromarray((diff[r0:r0 + 300, c0:c0 + 400] * 255).astype(np.uint8)).save(d / "label" / f"t{k}.png")
    model = tmp_path / "model.joblib"
    r = CliRunner().invoke(main, ["model", "train", "--pairs", str(d), "--out", str(model)])
    assert r.exit_code == 0, r.output
    assert len(classifier.load_model(model)["classifier"].members) == 2
    out, mask = tmp_path / "c.gpkg", tmp_path / "mask.tif"
    r = CliRunner().invoke(main, ["detect", "--before", str(scene["before"]), "--after", str(scene["after"]),
                                  "--model", str(model), "--out", str(out), "--mask-out", str(mask), "--no-progress"])
    assert r.exit_code == 0, r.output
    ch = gpd.read_file(out, layer="changes")
    houses = ch[ch.kind == "new_structure"]
    assert len(houses) >= 4
    # outlines drawn on the imagery's 0.5 m pixels, not the 1 m work pixels' (objects.refine)
    xy = shapely.get_coordinates(houses.geometry.values) - (X0, Y0)
    assert np.allclose(xy * 2, np.round(xy * 2)) and not np.allclose(xy, np.round(xy))
    assert np.allclose(houses.area_m2, houses.area, rtol=0.03)
    with rasterio.open(mask) as src:
        drawn = rasterize(ch.geometry.values, out_shape=src.shape, transform=src.transform).astype(bool)
        assert (drawn == (src.read(1) > 0)).mean() > 0.999
    r = CliRunner().invoke(main, ["detect", "--before", str(scene["before"]), "--after", str(scene["after"]),
                                  "--model", str(tmp_path / "none.joblib"), "--out", str(out), "--no-progress"])
    assert r.exit_code == 2 and "model" in r.output
