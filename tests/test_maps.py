"""Clearance map HTML and static PNG: content, escaping, self-containment, packing."""

from __future__ import annotations

import json
import re

import geopandas as gpd
import numpy as np
import pytest
import shapely

import mapsdata
from gis.products import mapdata
from gis.errors import MissingFontError, UnknownProjectError
from gis.products.staticmap import write_static_map
from gis.products.webmap import clearance_map_html, write_clearance_map


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return mapsdata.build(tmp_path_factory.mktemp("maps"))


def _data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="gis-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def _decode(enc):
    c = np.asarray(enc["coords"], dtype=np.int64).reshape(-1, 2)
    xy = (np.cumsum(c, axis=0) + np.asarray(enc["base"])) / mapdata.QUANTUM
    return xy


def test_packed_polygons_round_trip_within_a_decimetre():
    gdf = gpd.GeoDataFrame(geometry=[
        shapely.box(512000, 3390000, 512050, 3390040),
        shapely.MultiPolygon([shapely.box(512100, 3390000, 512120, 3390020),
                              shapely.box(512200, 3390000, 512260, 3390060).difference(
                                  shapely.box(512210, 3390010, 512220, 3390020))])], crs="EPSG:4547")
    enc = mapdata.encode_polygons(gdf, simplify=0)
    xy = _decode(enc)
    assert enc["geoms"] == [0, 1, 3]          # feature 1 has two parts
    assert enc["parts"] == [0, 1, 2, 4]       # the last part has a hole
    truth = shapely.get_coordinates(gdf.to_crs(4326).geometry.values)
    # closing vertices are dropped: every decoded vertex is one of the originals
    d = np.abs(xy[:, None, :] - truth[None, :, :]).sum(axis=2).min(axis=1)
    assert d.max() < 2e-6
    assert len(xy) == len(truth) - 4  # four rings, one closing vertex each


def test_map_is_self_contained_and_escaped(demo, tmp_path):
    county, c, alerts, store_dir, ortho = demo
    out = write_clearance_map(c, tmp_path / "m.html", alerts=alerts, store_dir=store_dir,
                              orthophoto=ortho, as_of=mapsdata.AS_OF)
    page = out.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?(https?:)?//", page)
    assert "url(http" not in page and "@import" not in page
    for bad in (mapsdata.SCRIPT, "<img src=x", "</script><script>alert(3)"):
        assert bad not in page
    data = _data(page)
    assert len(data["parcels"]["status"]) == len(c.parcels)
    assert len(data["alerts"]["chips"]) == len(alerts)
    assert all(ch.startswith("data:image/png;base64,") for pair in data["alerts"]["chips"] for ch in pair)
    assert data["ortho"]["url"].startswith("data:image/jpeg;base64,")
    assert data["ortho"]["label"] == "2026-11-21"  # from the GeoTIFF's ACQUISITION_DATE tag
    owners = data["parcels"]["cols"]["owner_type"]
    values = owners["k"] if isinstance(owners, dict) else owners
    assert mapsdata.SCRIPT in values  # the text survives, as data
    assert "征地拆迁清表进度图" in page and "宗地征收状态" in page and "净地交付" in page


def test_english_labels(demo):
    _, c, alerts, store_dir, _ = demo
    page = clearance_map_html(c, alerts=alerts, store_dir=store_dir, lang="en")
    assert "Parcel clearance status" in page and "delivered (clean land)" in page
    assert "宗地征收状态" not in page


def test_battle_map_keeps_only_the_project(demo):
    _, c, alerts, store_dir, _ = demo
    page = clearance_map_html(c, alerts=alerts, store_dir=store_dir, project="P03")
    data = _data(page)
    inside = set(c.pieces.loc[c.pieces["project_id"] == "P03", "parcel_id"])
    assert len(data["parcels"]["status"]) == len(inside)
    assert data["redlines"]["cols"]["project_id"] == ["P03"]
    assert set(data["alerts"]["cols"]["project_id"]["k"] if isinstance(
        data["alerts"]["cols"]["project_id"], dict) else data["alerts"]["cols"]["project_id"]) == {"P03"}
    assert "id='gis-panel'" in page and "作战图" in page and "征地完成率" in page


def test_hostile_project_name_in_battle_title_is_escaped(demo):
    _, c, _, _, _ = demo
    page = clearance_map_html(c, project="P05")
    assert "&lt;/script&gt;&lt;script&gt;alert(3)&lt;/script&gt;项目 作战图" in page
    assert "</script><script>alert(3)" not in page


def test_unknown_project_names_the_choices(demo):
    _, c, _, _, _ = demo
    with pytest.raises(UnknownProjectError) as err:
        clearance_map_html(c, project="NOPE")
    assert "P01" in str(err.value) and err.value.exit_code == 2


def test_static_map_png(demo, tmp_path):
    _, c, alerts, _, _ = demo
    from PIL import Image

    out = write_static_map(c, tmp_path / "s.png", alerts=alerts, as_of=mapsdata.AS_OF)
    battle = write_static_map(c, tmp_path / "b.png", alerts=alerts, project="P03", as_of=mapsdata.AS_OF)
    for p in (out, battle):
        im = Image.open(p)
        assert im.size[0] > 1500 and im.size[1] > 1000
        arr = np.asarray(im.convert("RGB"))
        # the red lines and at least four status colours are on the page
        assert ((arr[..., 0] > 200) & (arr[..., 1] < 60) & (arr[..., 2] < 60)).sum() > 500
    import shutil

    shutil.copy(out, mapsdata.artifact("static_map.png"))
    shutil.copy(battle, mapsdata.artifact("static_battle_P03.png"))


def test_static_map_without_cjk_font_says_what_to_install(demo, tmp_path, monkeypatch):
    _, c, _, _, _ = demo
    from matplotlib import font_manager

    monkeypatch.setattr(font_manager.fontManager, "ttflist",
                        [f for f in font_manager.fontManager.ttflist if "CJK" not in f.name
                         and "Hei" not in f.name and "Han" not in f.name])
    with pytest.raises(MissingFontError, match="fonts-noto-cjk"):
        write_static_map(c, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_battle_map_legend_counts_land_inside_the_red_line(demo):
    _, c, _, _, _ = demo
    page = clearance_map_html(c, project="P03")
    legend = re.search(r"<div id='gis-legend'.*?</div></div>", page, re.S).group(0)
    mus = [float(x) for x in re.findall(r"· ([\d.]+) 亩", legend)]
    total = float(c.projects.loc[c.projects["project_id"] == "P03", "total_mu"].iloc[0])
    assert sum(mus) == pytest.approx(total, abs=0.5)


def test_chip_paths_cannot_leave_the_store(demo, tmp_path):
    _, c, alerts, store_dir, _ = demo
    outside = store_dir.parent / "outside.png"
    outside.write_bytes((store_dir / alerts["chip_before"].iloc[0]).read_bytes())
    a = alerts.head(2).copy()
    a["chip_before"] = "../outside.png"
    data = _data(clearance_map_html(c, alerts=a, store_dir=store_dir))
    assert [pair[0] for pair in data["alerts"]["chips"]] == ["", ""]
    assert all(pair[1].startswith("data:image/png") for pair in data["alerts"]["chips"])


def test_battle_map_panel_marks_an_overdue_project(demo):
    _, c, _, _, _ = demo
    late = c.projects.loc[c.projects["overdue"].astype(bool), "project_id"].iloc[0]
    on_time = c.projects.loc[~c.projects["overdue"].astype(bool), "project_id"].iloc[0]
    assert "class='gis-box overdue'" in clearance_map_html(c, project=late)
    assert "class='gis-box overdue'" not in clearance_map_html(c, project=on_time)
