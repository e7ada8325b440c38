"""gis.detect.detect_changes on synthetic pairs with planted structures and crops."""

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely

from detect_fixtures import BOUNDS, CRS, X0, Y0, crops, ortho, redlines, scene, structures  # noqa: F401
from gis.detect import COLUMNS, detect_changes
from gis.synthetic.render import render_orthophoto


def _matched(found: gpd.GeoDataFrame, planted: gpd.GeoDataFrame) -> np.ndarray:
    """For each planted polygon: does a detection cover >= 30 % of it (the eval's rule)?"""
    hit = []
    for g in planted.geometry:
        cover = found.geometry.intersection(g).area.sum() / g.area if len(found) else 0
        hit.append(cover >= 0.3)
    return np.array(hit)


def test_planted_structures_and_crops_found_no_false_alarms(scene):
    ch = detect_changes(scene["before"], scene["after"])
    assert list(ch.columns) == COLUMNS + ["geometry"] and ch.crs.to_epsg() == 4547
    st, cr = structures(), crops()
    assert _matched(ch[ch.kind == "new_structure"], st).all()
    assert _matched(ch[ch.kind == "new_crops"], cr).all()  # the greenhouse counts as a crop
    planted = shapely.union_all(np.concatenate([st.geometry.values, cr.geometry.values]))
    false = ~ch.geometry.intersects(planted)
    assert not false.any(), ch[false]
    assert ch.confidence.between(0, 1).all()
    assert np.allclose(ch.area_mu, ch.area_m2 / (10000 / 15))
    assert (ch.area_m2[ch.kind == "new_structure"] >= 20).all()


def test_unchanged_pair_stays_quiet(scene):
    assert len(detect_changes(scene["before"], scene["same"])) == 0


def test_attributes_within_parcels_inventory(scene):
    red = redlines()
    parcels = gpd.GeoDataFrame({"parcel_id": ["A", "B"], "district": ["east", "west"], "status": ["signed", "signed"]},
                               geometry=[shapely.box(X0, Y0, X0 + 400, Y0 + 150), shapely.box(X0, Y0 + 150, X0 + 400, Y0 + 300)],
                               crs=CRS)
    inv = structures().iloc[[0]].assign(structure_id="S1", parcel_id="A")
    ch = detect_changes(scene["before"], scene["after"], within=red.iloc[[0]], parcels=parcels, inventory=inv, buffer=0)
    # only the western project (x < 200 m) is searched
    assert len(ch) and (ch.geometry.bounds.maxx <= X0 + 200.5).all()
    assert set(ch.project_id) == {"P1"}
    c = ch.geometry.centroid
    assert (ch.parcel_id == np.where(c.y < Y0 + 150, "A", "B")).all()
    known = ch[ch.in_inventory]
    assert len(known) == 1 and known.geometry.intersects(inv.geometry.iloc[0]).all()


def test_workers_and_small_blocks_give_the_same_objects(scene):
    one = detect_changes(scene["before"], scene["after"])
    # 256 px blocks cut objects; pieces are merged back, and two processes agree
    two = detect_changes(scene["before"], scene["after"], workers=2, block=256)
    assert len(one) == len(two)
    assert abs(one.area_m2.sum() - two.area_m2.sum()) / one.area_m2.sum() < 0.05


def test_parallel_run_is_identical_to_sequential(scene):
    # sampled windows run in this process, the rest in worker chunks: the output must
    # not depend on who ran what (same rows, same order, same geometry)
    red = redlines()
    done = []
    one = detect_changes(scene["before"], scene["after"], within=red, block=128)
    two = detect_changes(scene["before"], scene["after"], within=red, block=128, workers=2,
                         progress=lambda i, n: done.append((i, n)))
    assert len(one) > 0 and len(done) == done[-1][1] > 24  # more windows than the sample
    pd.testing.assert_frame_equal(one.drop(columns="geometry"), two.drop(columns="geometry"))
    assert one.geometry.geom_equals_exact(two.geometry, 1e-9).all()


def test_edge_piece_groups_match_scipy():
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from gis.detect.output import _components
    rng = np.random.default_rng(5)
    for _ in range(100):
        n, k = int(rng.integers(1, 40)), int(rng.integers(0, 60))
        i, j = rng.integers(0, n, k), rng.integers(0, n, k)
        _, ref = connected_components(coo_matrix((np.ones(k), (i, j)), shape=(n, n)))
        np.testing.assert_array_equal(_components(i, j, n), ref)


def test_otsu_matches_scikit_image():
    from skimage.filters import threshold_otsu as reference

    from gis.detect.scene import threshold_otsu
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = np.concatenate([rng.normal(0.1, 0.05, rng.integers(200, 5000)),
                            rng.normal(rng.uniform(0.2, 0.9), 0.1, rng.integers(20, 2000))]).astype(np.float32)
        assert threshold_otsu(x) == float(reference(x))


def test_mask_out_on_after_grid(scene, tmp_path):
    m = tmp_path / "mask.tif"
    ch = detect_changes(scene["before"], scene["after"], mask_out=m)
    with rasterio.open(m) as src, rasterio.open(scene["after"]) as a:
        assert src.transform == a.transform and src.shape == a.shape
        mask = src.read(1)
    assert set(np.unique(mask)) == {0, 1}
    assert abs(mask.sum() * 0.25 - ch.area_m2.sum()) / ch.area_m2.sum() < 0.1


def test_misaligned_before_image(scene, tmp_path):
    from rasterio.warp import transform_bounds
    b = transform_bounds(CRS, "EPSG:32649", *BOUNDS)
    other = ortho(tmp_path / "utm.tif", epoch=1, planted=False, crs="EPSG:32649", resolution=0.7,
                  bounds=(b[0] - 20, b[1] - 20, b[2] + 20, b[3] + 20))
    ch = detect_changes(other, scene["after"])
    assert _matched(ch[ch.kind == "new_structure"], structures()).mean() >= 0.8
    planted = shapely.union_all(np.concatenate([structures().geometry.values, crops().geometry.values]))
    assert (~ch.geometry.intersects(planted.buffer(3))).sum() <= 1


def test_nodata_is_never_change(scene, tmp_path, caplog):
    # the before image has no data over its western half: nothing may be reported there
    p = tmp_path / "holes.tif"
    with rasterio.open(scene["before"]) as src:
        prof, data = src.profile, src.read()
    data[:, :, : data.shape[2] // 2] = 0
    prof.update(nodata=0)
    with rasterio.open(p, "w", **prof) as dst:
        dst.write(data)
    ch = detect_changes(p, scene["after"])
    assert len(ch) and (ch.geometry.bounds.minx >= X0 + 200 - 1).all()
    # a window of nothing but nodata: no changes, and a warning
    data[:] = 0
    with rasterio.open(p, "w", **prof) as dst:
        dst.write(data)
    with caplog.at_level(logging.WARNING, logger="gis.detect"):
        assert len(detect_changes(p, scene["after"])) == 0
    assert "no valid data" in caplog.text


def test_edge_of_one_flight_is_not_change(scene, tmp_path):
    # the before flight ends along a ragged line where the after flight goes on (each
    # week's flight covers a slightly different area): the ground next to its edge is
    # examined, and the missing ground beyond it must not bleed into it as change
    p = tmp_path / "ends.tif"
    with rasterio.open(scene["before"]) as src:
        prof, data = src.profile, src.read()
    rows, cols = np.mgrid[:data.shape[1], :data.shape[2]]
    data[:, cols + rows > 900 + 30 * np.sin(rows / 40)] = 0
    prof.update(nodata=0)
    with rasterio.open(p, "w", **prof) as dst:
        dst.write(data)
    assert len(detect_changes(p, scene["same"])) == 0
    # and the planted houses on the covered side are still found
    ch = detect_changes(p, scene["after"])
    inside = [g for g in structures().geometry.values if g.centroid.x - X0 + (Y0 + 300 - g.centroid.y) < 400]
    assert inside and all(ch.geometry.intersection(g).area.sum() / g.area >= 0.3 for g in inside)


def test_another_colour_rendering_is_not_change(tmp_path):
    # the after flight's camera or mosaicking program renders colours more saturated, or
    # with another tone curve: every field and roof looks different, nothing was built
    # (matched band by band, the roofs of a square kilometre's villages gave 35 and 18
    # false alarms)
    bounds = (X0, Y0, X0 + 1024, Y0 + 1024)
    before = render_orthophoto(tmp_path / "before.tif", bounds=bounds, resolution=1.0, crs=CRS, seed=5, epoch=1)
    same = render_orthophoto(tmp_path / "same.tif", bounds=bounds, resolution=1.0, crs=CRS, seed=5, epoch=2)
    with rasterio.open(same) as src:
        prof, data = src.profile, src.read().astype(np.float32) / 255
    for gamma, saturation in ((1.0, 1.4), (0.8, 1.3), (1.0, 0.7)):
        x = data ** gamma
        grey = x.mean(axis=0, keepdims=True)
        x = grey + (x - grey) * saturation
        path = tmp_path / "rendered.tif"
        with rasterio.open(path, "w", **prof) as dst:
            dst.write(np.clip(np.rint(x * 255), 0, 255).astype(np.uint8))
        assert len(detect_changes(before, path)) == 0, (gamma, saturation)


def test_moving_shadows_are_not_change(tmp_path):
    # another hour or season: every house's shadow falls elsewhere, nothing was built
    before = ortho(tmp_path / "morning.tif", epoch=1, planted=False)
    for sun in ((0.6, 0.6), (0.0, 1.2)):  # afternoon; low winter sun
        after = ortho(tmp_path / "later.tif", epoch=2, planted=False, shadow=sun)
        assert len(detect_changes(before, after)) == 0


def _with_collar(src_path, out, collar, **profile):
    with rasterio.open(src_path) as src:
        prof, data = src.profile, src.read()
    assert prof.get("nodata") is None
    data[:, collar] = 0
    with rasterio.open(out, "w", **{**prof, **profile}) as dst:
        dst.write(data)
    return out


def test_black_collar_without_nodata_is_not_change(scene, tmp_path, caplog):
    # mosaicking software fills unflown ground with black and does not always declare
    # it; read as imagery, such a collar in the later image was hectares of "new structures"
    yy, xx = np.mgrid[:600, :800]
    collar = (xx < 120) | (xx + yy > 1120)  # a west strip and a ragged south-east corner
    # JPEG, as orthophotos are: its blocks leave a dark fringe along the collar's edge
    p = _with_collar(scene["same"], tmp_path / "collar.tif", collar, compress="jpeg", photometric="ycbcr",
                     jpeg_quality=85)
    with caplog.at_level(logging.WARNING, logger="gis.detect"):
        assert len(detect_changes(scene["before"], p)) == 0
    assert f"{p}:" in caplog.text and "pure black" in caplog.text
    area = float(caplog.text.split(f"{p}: ")[1].split(" m²")[0])
    assert collar.sum() * 0.25 <= area <= collar.sum() * 0.25 * 1.2  # the collar and its fringe only
    # what is not collar is still examined: the planted objects outside it are all found
    collar = (xx >= 720) | (yy - xx > 480)
    p = _with_collar(scene["after"], tmp_path / "collar_planted.tif", collar)
    ch = detect_changes(scene["before"], p)
    st, cr = structures(), crops()
    planted = shapely.union_all(np.concatenate([st.geometry.values, cr.geometry.values]))
    assert not (~ch.geometry.intersects(planted)).any(), ch
    assert _matched(ch[ch.kind == "new_structure"], st).all() and _matched(ch[ch.kind == "new_crops"], cr).all()


def test_black_collar_is_large_black_areas_and_their_fringe():
    from gis.imagery.reading import COLLAR_FRINGE_PX, black_collar

    data = np.full((3, 200, 200), 90, np.float32)
    assert black_collar(data, 2, 1.0) is None
    data[:, :, :50] = 0  # a collar: 10,000 m² at 1 m pixels
    data[:, 100:103, 150:156] = 0  # a clipped shadow: 18 m²
    data[0, 150:160, 150:160] = 0  # black in one band only: imagery
    black = black_collar(data, 2, 1.0)
    fringe = COLLAR_FRINGE_PX // 2
    assert black[:, : 50 + fringe].all() and black.sum() == 200 * (50 + fringe)
    data[:, :, :50] = 90
    assert black_collar(data, 2, 1.0) is None


def test_dsm_height_gain(scene):
    ch = detect_changes(scene["before"], scene["after"], dsm_before=scene["dsm_before"], dsm_after=scene["dsm_after"])
    st = ch[ch.kind == "new_structure"]
    assert _matched(st, structures()).all()
    assert (st.confidence > 0.5).all()  # a height gain confirms what the colours say
    # the other way round the houses are gone: the DSMs alone say so (no spectral demolition)
    back = detect_changes(scene["after"], scene["before"], dsm_before=scene["dsm_after"], dsm_after=scene["dsm_before"])
    assert _matched(back[back.kind == "demolished"], structures()).all()
    assert len(detect_changes(scene["after"], scene["before"])[lambda d: d.kind == "demolished"]) == 0


def test_nir_uint16_imagery(tmp_path):
    # RGB+NIR, 16 bit: NDVI drives the crop detector, the images are scaled to 0-255
    from detect_fixtures import ortho as render
    b = render(tmp_path / "b.tif", epoch=1, planted=False, nir=True, dtype="uint16")
    a = render(tmp_path / "a.tif", epoch=2, planted=True, nir=True, dtype="uint16")
    ch = detect_changes(b, a)
    assert _matched(ch[ch.kind == "new_structure"], structures()).mean() >= 0.8
    # the planted field replaces a crop field (NDVI barely moves); the greenhouse is found
    assert _matched(ch[ch.kind == "new_crops"], crops())[1]
    planted = shapely.union_all(np.concatenate([structures().geometry.values, crops().geometry.values]))
    assert (~ch.geometry.intersects(planted)).sum() == 0


def _with_alpha(src_path, dst_path, *, edge_px: int = 0, alpha=None):
    """``src_path`` rewritten as RGBA, as drone mapping software exports orthophotos:
    a fourth band labelled alpha, 0 over the ``edge_px`` westernmost columns."""
    with rasterio.open(src_path) as src:
        data, prof = src.read(), src.profile
    if alpha is None:
        alpha = np.full(data.shape[1:], 255, data.dtype)
        alpha[:, :edge_px] = 0
    data[:, :, :edge_px] = 0
    prof.update(count=4, photometric="RGB", alpha="YES")
    with rasterio.open(dst_path, "w", **prof) as dst:
        dst.write(np.concatenate([data, alpha[None]]))
    return dst_path


def test_rgba_orthophotos_alpha_is_the_mask_not_nir(scene, tmp_path):
    # an RGBA pair gives what the RGB pair gives: the alpha band is neither NIR nor change
    b = _with_alpha(scene["before"], tmp_path / "b.tif")
    a = _with_alpha(scene["after"], tmp_path / "a.tif")
    ch, rgb = detect_changes(b, a), detect_changes(scene["before"], scene["after"])
    assert sorted(ch.area_m2.round(2)) == sorted(rgb.area_m2.round(2)) and len(ch)
    # RGBA with RGB, and a transparent (alpha 0) western half: nothing reported there
    half = _with_alpha(scene["before"], tmp_path / "half.tif", edge_px=400)
    ch = detect_changes(half, scene["after"])
    assert len(ch) and (ch.geometry.bounds.minx >= X0 + 200 - 1).all()
    # and an RGBA image on another grid (warped along with its own alpha band)
    from rasterio.warp import transform_bounds
    bb = transform_bounds(CRS, "EPSG:32649", *BOUNDS)
    other = ortho(tmp_path / "utm.tif", epoch=1, planted=False, crs="EPSG:32649", resolution=0.7,
                  bounds=(bb[0] - 20, bb[1] - 20, bb[2] + 20, bb[3] + 20))
    ch = detect_changes(_with_alpha(other, tmp_path / "utm_rgba.tif", edge_px=20), scene["after"])
    assert _matched(ch[ch.kind == "new_structure"], structures()).mean() >= 0.8


def test_fourth_band_labelled_alpha_with_continuous_values_is_nir(scene, tmp_path):
    # GDAL labels the 4th band of a default 4-band byte GeoTIFF "alpha", NIR included
    from gis.imagery.pair import open_pair
    with rasterio.open(scene["before"]) as src:
        nir = src.read(2)  # any continuous band will do
    p = _with_alpha(scene["before"], tmp_path / "rgbn.tif", alpha=nir)
    assert open_pair(p, p).has_nir
    masked = _with_alpha(scene["before"], tmp_path / "rgba.tif", edge_px=10)
    pair = open_pair(masked, masked)
    assert not pair.has_nir and pair.bands_after == (1, 2, 3)


def test_imagery_in_degrees_is_processed_on_its_gauss_kruger_zone(scene, tmp_path, caplog):
    # CGCS2000 geographic (EPSG:4490) orthophotos: on degrees every house would be a
    # fraction of a pixel; they are processed on the 3-degree GK zone of their centre
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    def in_degrees(src_path, dst_path):
        with rasterio.open(src_path) as src:
            tf, w, h = calculate_default_transform(src.crs, "EPSG:4490", src.width, src.height, *src.bounds)
            prof = src.profile
            prof.update(crs="EPSG:4490", transform=tf, width=w, height=h)
            with rasterio.open(dst_path, "w", **prof) as dst:
                for i in range(1, src.count + 1):
                    reproject(rasterio.band(src, i), rasterio.band(dst, i), resampling=Resampling.bilinear)
        return dst_path

    b, a = in_degrees(scene["before"], tmp_path / "b.tif"), in_degrees(scene["after"], tmp_path / "a.tif")
    with caplog.at_level(logging.WARNING, logger="gis.imagery.pair"):
        ch = detect_changes(b, a, within=redlines().to_crs("EPSG:4490"))
    assert "in degrees" in caplog.text and "EPSG:4547" in caplog.text
    assert ch.crs.to_epsg() == 4547
    assert _matched(ch[ch.kind == "new_structure"], structures()).all()
    assert _matched(ch[ch.kind == "new_crops"], crops()).all()
    assert set(ch.project_id) <= {"P1", "P2"} and ch.project_id.notna().all()
    ref = detect_changes(scene["before"], scene["after"])
    assert abs(ch.area_m2.sum() - ref.area_m2.sum()) / ref.area_m2.sum() < 0.03


def test_red_lines_the_imagery_does_not_reach(scene, tmp_path, caplog):
    # "no changes" must never stand for "not looked at"
    from gis.errors import RasterAlignmentError
    far = gpd.GeoDataFrame({"project_id": ["FAR"], "name": ["x"], "district": ["d"]},
                           geometry=[shapely.box(X0 + 50000, Y0, X0 + 50100, Y0 + 100)], crs=CRS)
    p = tmp_path / "far.gpkg"
    far.to_file(p)
    with pytest.raises(RasterAlignmentError, match=r"outside the imagery.*FAR") as err:
        detect_changes(scene["before"], scene["after"], within=p)
    assert err.value.path == str(p)
    # some inside, one outside, one across the edge: the ones inside are examined, the others named
    red = pd.concat([redlines(), far, gpd.GeoDataFrame(
        {"project_id": ["EDGE"], "name": ["y"], "district": ["d"]},
        geometry=[shapely.box(X0 + 300, Y0 + 200, X0 + 500, Y0 + 280)], crs=CRS)], ignore_index=True)
    with caplog.at_level(logging.WARNING, logger="gis.detect"):
        ch = detect_changes(scene["before"], scene["after"], within=red)
    assert "1 red-line feature(s) outside the imagery were not examined: FAR" in caplog.text
    assert "only partly inside the imagery; the rest was not examined: EDGE" in caplog.text
    assert _matched(ch[ch.kind == "new_structure"], structures()).all()
