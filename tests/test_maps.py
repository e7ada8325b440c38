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


# --- issue 19: legends count land inside red lines, names never hide alerts, tiles --------------


def fine_orthophoto(c, folder, project="P03", resolution=0.5):
    """A sharp orthophoto over one project (the module's county image is 5 m: no tiles needed)."""
    from gis.synthetic.render import render_orthophoto

    x0, y0, x1, y1 = c.redlines.loc[c.redlines["project_id"] == project].total_bounds
    return render_orthophoto(folder / f"fine_{project}.tif", bounds=(x0 - 60, y0 - 60, x1 + 60, y1 + 60),
                             resolution=resolution, crs=c.crs, seed=5, date=mapsdata.AS_OF)


def alerts_on_label_spots(c, alerts):
    """The alerts moved onto the red lines' centres, where project names go first."""
    a = alerts.copy()
    pts = c.redlines.set_index("project_id").geometry.representative_point()
    a["geometry"] = [shapely.box(pts[p].x - 5, pts[p].y - 5, pts[p].x + 5, pts[p].y + 5) for p in a["project_id"]]
    return a


def test_legends_count_the_land_inside_red_lines(demo):
    _, c, alerts, _, _ = demo
    inside = c.districts["total_mu"].sum()  # what the bulletin reports
    page = clearance_map_html(c, alerts=alerts)
    legend = re.search(r"<div id='gis-legend'.*?</div></div>", page, re.S).group(0)
    assert sum(float(x) for x in re.findall(r"· ([\d.]+) 亩", legend)) == pytest.approx(inside, abs=0.5)
    assert "只计红线内宗地" in legend
    counts = [int(x) for x in re.findall(r"(\d+) 宗 ·", legend)]
    touched = c.pieces["parcel_id"].nunique()
    assert sum(counts) == touched < len(c.parcels)
    from gis.products.staticmap import static_map_figure
    import matplotlib.pyplot as plt

    fig = static_map_figure(c, alerts=alerts, as_of=mapsdata.AS_OF)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)
    assert sum(float(m) for t in texts for m in re.findall(r"([\d.]+) 亩", t)) == pytest.approx(inside, abs=0.5)


@pytest.mark.parametrize("lang,project", [("zh", None), ("en", None), ("zh", "P03"), ("en", "P07")])
def test_png_project_names_never_under_alert_dots_and_legend_fits(demo, lang, project):
    import matplotlib.pyplot as plt

    from gis.products.staticmap import DOT_EDGE, DOT_SIZE, static_map_figure

    _, c, alerts, _, _ = demo
    a = alerts_on_label_spots(c, alerts)
    fig = static_map_figure(c, alerts=a, project=project, lang=lang, as_of=mapsdata.AS_OF)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        labels = [t for t in ax.texts if t.get_gid() == "project-label"]
        assert labels and all(t.get_text() for t in labels)
        dots = next(coll for coll in ax.collections if coll.get_gid() == "alert-dots")
        xy = ax.transData.transform(dots.get_offsets())
        r = (np.sqrt(DOT_SIZE) / 2 + DOT_EDGE) * fig.dpi / 72
        frame = ax.get_window_extent(renderer)
        for t in labels:
            box = t.get_window_extent(renderer)
            inside_frame = (xy[:, 0] > frame.x0) & (xy[:, 0] < frame.x1) & (xy[:, 1] > frame.y0) & (xy[:, 1] < frame.y1)
            under = ((xy[:, 0] > box.x0 - r) & (xy[:, 0] < box.x1 + r) & (xy[:, 1] > box.y0 - r)
                     & (xy[:, 1] < box.y1 + r) & inside_frame)
            assert not under.any(), (t.get_text(), xy[under])
        # the legend (and a battle map's figures) end inside the page
        page = fig.bbox
        boxes = [ax.get_legend()] + [t for t in ax.texts if t.get_gid() is None and t.get_bbox_patch() is not None]
        for b in boxes:
            e = b.get_window_extent(renderer)
            assert page.x0 <= e.x0 and e.x1 <= page.x1 and page.y0 <= e.y0 and e.y1 <= page.y1, (lang, e, page)
        if project is not None:  # zoomed to the project, as the HTML battle map is
            x0, y0, x1, y1 = c.redlines.loc[c.redlines["project_id"] == project].total_bounds
            (vx0, vx1), (vy0, vy1) = ax.get_xlim(), ax.get_ylim()
            cx0, cy0, cx1, cy1 = c.parcels.total_bounds
            assert vx0 <= x0 and x1 <= vx1 and vy0 <= y0 and y1 <= vy1
            assert (vx1 - vx0) * (vy1 - vy0) < 0.6 * (cx1 - cx0) * (cy1 - cy0)
        fig.savefig(mapsdata.artifact(f"static_{project or 'map'}_{lang}.png"), dpi=fig.dpi)
    finally:
        plt.close(fig)


def test_cli_png_of_a_project_is_its_battle_map(demo, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from gis.cli import main
    from gis.products import staticmap
    from gis.workspace import init_workspace

    county, c, alerts, store_dir, ortho = demo
    ws = tmp_path / "ws"
    init_workspace(ws, redlines=county.redlines, parcels=county.parcels, epochs=[(mapsdata.AS_OF, ortho)])
    views, draw = [], staticmap.static_map_figure

    def spy(*args, **kw):  # the view the CLI's PNG was drawn with
        fig = draw(*args, **kw)
        views.append((fig.axes[0].get_xlim(), fig.axes[0].get_ylim()))
        return fig

    monkeypatch.setattr(staticmap, "static_map_figure", spy)
    for args, name in ((["--project", "P03"], "p03.png"), ([], "all.png")):
        r = CliRunner().invoke(main, ["map", "--workspace", str(ws), "--png", str(tmp_path / name), *args])
        assert r.exit_code == 0, r.output
    (bx, by), (wx, wy) = views
    x0, y0, x1, y1 = c.redlines.loc[c.redlines["project_id"] == "P03"].total_bounds
    assert bx[0] <= x0 and x1 <= bx[1] and by[0] <= y0 and y1 <= by[1]
    assert (bx[1] - bx[0]) < 0.4 * (wx[1] - wx[0])  # zoomed to the project, not the county


def test_orthophoto_tiles_reach_the_imagery_resolution(demo, tmp_path):
    import rasterio
    from rasterio.vrt import WarpedVRT

    _, c, _, _, _ = demo
    fine = fine_orthophoto(c, tmp_path)
    data = _data(clearance_map_html(c, orthophoto=fine, project="P03"))
    tiles = data["ortho"]["tiles"]
    with rasterio.open(fine) as src, WarpedVRT(src, crs="EPSG:3857") as vrt:
        res = vrt.res[0]
    assert tiles["tiles"] and tiles["maxZoom"] == tiles["nativeZoom"]
    assert 2 * mapdata.MERCATOR_HALF / (mapdata.TILE * 2 ** tiles["maxZoom"]) <= res  # a tile pixel <= an image pixel
    # a coarser overview leaves more levels to the tiles: every one from the first finer than it
    pyramid = mapdata.orthophoto_tiles(fine, c.redlines[c.redlines["project_id"] == "P03"], overview_px=256)
    zooms = {int(k.split("/")[0]) for k in pyramid["tiles"]}
    assert zooms == set(range(pyramid["minZoom"], pyramid["nativeZoom"] + 1)) and len(zooms) >= 3
    assert all(u.startswith("data:image/jpeg;base64,") for u in tiles["tiles"].values())
    coarse = _data(clearance_map_html(c, orthophoto=demo[4], project="P03"))["ortho"]["tiles"]
    assert coarse["tiles"] == {}  # a 5 m image: the overview already shows every pixel
