"""gis.synthetic.render: deterministic, tiled, planted features visible, DSM heights."""

import numpy as np
import rasterio

from detect_fixtures import BOUNDS, CRS, X0, Y0, ortho, structures
from gis.synthetic.render import render_dsm


def test_same_seed_and_epoch_is_identical_and_tiled(tmp_path):
    a = ortho(tmp_path / "a.tif", epoch=1, planted=False)
    b = ortho(tmp_path / "b.tif", epoch=1, planted=False)
    with rasterio.open(a) as sa, rasterio.open(b) as sb:
        assert np.array_equal(sa.read(), sb.read())
        assert sa.profile["tiled"] and sa.profile["compress"] == "deflate" and sa.count == 3
        assert sa.crs.to_epsg() == 4547 and sa.res == (0.5, 0.5)


def test_epochs_differ_only_mildly_outside_planted(tmp_path):
    a = ortho(tmp_path / "a.tif", epoch=1, planted=False)
    b = ortho(tmp_path / "b.tif", epoch=2, planted=True)
    with rasterio.open(a) as sa, rasterio.open(b) as sb:
        da, db = sa.read().astype(float), sb.read().astype(float)
        r, c = sb.index(X0 + 66, Y0 + 65)  # inside a planted blue roof
        assert db[2, r, c] > db[0, r, c] + 40  # blue
        diff = np.abs(da - db).mean(0)
        assert np.median(diff) < 12  # background shared, light and noise only
        assert diff.max() > 60


def test_nir_uint16_and_nodata(tmp_path):
    p = ortho(tmp_path / "n.tif", epoch=1, planted=False, nir=True, dtype="uint16", nodata=0)
    with rasterio.open(p) as src:
        data = src.read()
        assert src.count == 4 and src.dtypes[0] == "uint16" and src.nodata == 0
        assert data.min() > 0 and data.max() > 255


def test_dsm_heights(tmp_path):
    st = structures()
    p = render_dsm(tmp_path / "d.tif", bounds=BOUNDS, resolution=0.5, crs=CRS, seed=5, structures=st, date="2026-11-01")
    q = render_dsm(tmp_path / "e.tif", bounds=BOUNDS, resolution=0.5, crs=CRS, seed=5)
    with rasterio.open(p) as a, rasterio.open(q) as b:
        assert a.tags()["ACQUISITION_DATE"] == "2026-11-01"
        za, zb = a.read(1), b.read(1)
        r, c = a.index(X0 + 206, Y0 + 155)  # 7 m building
        assert abs((za - zb)[r, c] - 7.0) < 0.6
        assert np.median(np.abs(za - zb)) < 0.3


def test_restyle_gives_another_flights_look():
    """synthetic.restyle: the same ground as another flight's processing would show it
    (exposure, tone curve, saturation), for the eval's --look robustness check."""
    from gis.synthetic.render import restyle

    rng = np.random.default_rng(3)
    img = rng.uniform(0, 255, (4, 20, 30)).astype(np.float32)  # RGB + NIR
    assert np.allclose(restyle(img), img, atol=1e-3)
    assert np.allclose(restyle(img, gain=0.8), img * 0.8, atol=1e-3)
    assert np.allclose(restyle(img, gamma=2.0), (img / 255) ** 2 * 255, atol=1e-3)
    grey = restyle(img, saturation=0.0)
    assert np.allclose(grey[:3], img[:3].mean(0), atol=1e-3)  # no colour left
    assert np.allclose(grey[3], img[3], atol=1e-3)  # NIR has no saturation
    bright = restyle(img.astype(np.uint8), gain=1.25, saturation=1.33)
    assert bright.dtype == np.float32 and bright.min() >= 0 and bright.max() <= 255
    assert (bright == 255).any()  # clipped, not wrapped
