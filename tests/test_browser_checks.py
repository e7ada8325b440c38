"""The map and the bulletin opened in headless Chromium, offline, as a person would.

Each page is opened with every non-file request blocked; the tests assert
that nothing was requested or failed, that no dialog opened (hostile text in
the layers must not run), look at the page (Leaflet map, drawn parcels,
legend, popups on click) and keep screenshots under test-artifacts/.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

import mapsdata
from browser import Browser, find_chromium
from gis.products.webmap import write_clearance_map
from gis.products.bulletin import write_bulletin
from gis.workspace import BulletinSettings

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    find_chromium()  # a missing browser is an error here, not a skip: `make system` installs it
    folder = tmp_path_factory.mktemp("browser")
    return folder, *mapsdata.build(folder)


@pytest.fixture(scope="module")
def browser():
    with Browser(width=1280, height=860) as b:
        yield b


def _clean(b: Browser) -> None:
    assert b.external_requests == []
    assert b.failed_requests == []
    assert b.dialogs == []
    assert b.exceptions == []


def _reset(b: Browser) -> None:
    for lst in (b.external_requests, b.failed_requests, b.dialogs, b.exceptions, b.console_errors):
        lst.clear()


def _click_layer(b: Browser, expr: str) -> None:
    """Click at the screen point of a layer's centre (``expr`` evaluates to the layer)."""
    x, y = b.evaluate(f"""(() => {{ const l = {expr}; const m = window.gisMap;
        const ll = l.getBounds ? l.getBounds().getCenter() : l.getLatLng();
        const p = m.latLngToContainerPoint(ll); const r = m.getContainer().getBoundingClientRect();
        return [p.x + r.left, p.y + r.top]; }})()""")
    b.click(x, y)


def test_clearance_map_offline(demo, browser):
    folder, county, c, alerts, store_dir, ortho = demo
    out = write_clearance_map(c, folder / "clearance.html", alerts=alerts, store_dir=store_dir,
                              orthophoto=ortho, orthophoto_label="2026-11-21", as_of=mapsdata.AS_OF)
    _reset(browser)
    browser.open(out, ready="window.gisReady === true")
    assert browser.evaluate("typeof L === 'object' && window.gisMap instanceof L.Map")
    assert browser.evaluate("window.gisLayers.parcels.count") == len(c.parcels)
    assert browser.evaluate("window.gisLayers.parcels.drawn") == len(c.parcels)  # all in view
    # parcels were really painted: the canvas has many coloured pixels
    painted = browser.evaluate("""(() => { const cv = document.querySelector('.leaflet-overlay-pane canvas');
        const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data; let k = 0;
        for (let i = 3; i < d.length; i += 4 * 7) if (d[i] > 0) k++; return k; })()""")
    assert painted > 10000
    legend = browser.evaluate("""(() => { const r = document.getElementById('gis-legend').getBoundingClientRect();
        return [r.width, r.height, r.bottom <= innerHeight, getComputedStyle(
            document.getElementById('gis-legend')).visibility]; })()""")
    assert legend[0] > 100 and legend[1] > 100 and legend[2] and legend[3] == "visible"
    assert "净地交付" in browser.evaluate("document.getElementById('gis-legend').textContent")
    assert browser.evaluate("document.querySelectorAll('.leaflet-control-layers-selector').length") >= 4
    assert browser.evaluate("document.querySelector('.leaflet-control-scale-line').textContent").strip()
    assert browser.evaluate("document.querySelector('.leaflet-image-layer').complete")
    browser.screenshot(mapsdata.artifact("clearance_map.png"))

    # a click on a parcel opens its popup
    pid = str(c.parcels["parcel_id"].iloc[0])
    first = "({getBounds: () => window.gisLayers.parcels.featureBounds(0)})"
    browser.evaluate(f"window.gisMap.setView({first}.getBounds().getCenter(), 18, {{animate: false}}); true")
    _click_layer(browser, first)
    text = browser.evaluate("([...document.querySelectorAll('.leaflet-popup-content')].pop() || {}).textContent || ''")
    assert pid in text and "状态" in text

    # a click on an alert marker opens its popup with both chips decoded
    browser.evaluate("window.gisMap.closePopup(); window.gisMap.setView(window.gisLayers.alerts.getLayers()[1]"
                     ".getLatLng(), 18, {animate: false}); true")
    _click_layer(browser, "window.gisLayers.alerts.getLayers()[1]")
    text = browser.evaluate("[...document.querySelectorAll('.leaflet-popup-content')].pop().textContent")
    assert "A000" in text and "新增建筑" in text and "亩" in text and "冻结日后新增" in text
    assert mapsdata.NOTE in text  # the hostile note, shown as text
    assert browser.evaluate("[...document.querySelectorAll('.gis-chips img')].filter(i => i.naturalWidth"
                            " === 64).length") == 2
    time.sleep(0.5)  # let the popup fade in and the map pan to it before the picture
    browser.screenshot(mapsdata.artifact("clearance_map_alert_popup.png"))

    # search by project id and by parcel id
    assert browser.evaluate("window.gisFind('P02')") == "project"
    assert "P02" in browser.evaluate("[...document.querySelectorAll('.leaflet-popup-content')].pop().textContent")
    hostile = mapsdata.hostile_parcel_id(c)
    browser.evaluate(f"document.getElementById('gis-search-input').value = {hostile!r};"
                     "document.querySelector('#gis-search button').click(); true")
    text = browser.evaluate("[...document.querySelectorAll('.leaflet-popup-content')].pop().textContent")
    assert mapsdata.SCRIPT in text and mapsdata.IMG in text
    assert browser.evaluate("document.querySelectorAll('img[src=\"x\"], .leaflet-popup-content script,"
                            " .leaflet-popup-content b').length") == 0
    time.sleep(0.5)
    browser.screenshot(mapsdata.artifact("clearance_map_hostile_popup.png"))
    assert browser.evaluate("window.gisFind('no-such-id')") is None
    assert browser.evaluate("document.getElementById('gis-search-msg').textContent") == "未找到"
    _clean(browser)


def test_battle_map_and_english(demo, browser):
    folder, county, c, alerts, store_dir, ortho = demo
    out = write_clearance_map(c, folder / "P03.html", alerts=alerts, store_dir=store_dir, orthophoto=ortho,
                              project="P03", as_of=mapsdata.AS_OF)
    _reset(browser)
    browser.open(out, ready="window.gisReady === true")
    panel = browser.evaluate("document.getElementById('gis-panel').textContent")
    assert "征地完成率" in panel and "P03" in panel
    zoom = browser.evaluate("window.gisMap.getZoom()")
    assert zoom >= 16  # zoomed to the project, not the county
    browser.screenshot(mapsdata.artifact("battle_map_P03.png"))
    hostile = write_clearance_map(c, folder / "P05.html", project="P05", lang="en")
    browser.open(hostile, ready="window.gisReady === true")
    assert "</script><script>alert(3)" in browser.evaluate("document.title")
    assert "Parcel clearance status" in browser.evaluate("document.getElementById('gis-legend').textContent")
    browser.screenshot(mapsdata.artifact("battle_map_P05_en.png"))
    _clean(browser)


def test_bulletin_offline(demo, browser):
    folder, county, c, alerts, store_dir, ortho = demo
    out = write_bulletin(c, folder / "bulletin.html", alerts=alerts, store_dir=store_dir,
                         as_of=mapsdata.AS_OF, number=46, settings=BulletinSettings(office="某县征地拆迁指挥部"),
                         compared=(dt.date(2026, 11, 14), mapsdata.AS_OF),
                         start_dates={"P01": "2026-01-01", "P03": "2026-06-01", "P04": "2026-02-01"})
    _reset(browser)
    browser.open(out)
    assert browser.evaluate("document.querySelectorAll('table').length") >= 7
    assert browser.evaluate("document.querySelector('img.chart').naturalWidth") > 400
    body = browser.evaluate("document.body.innerText")
    assert "红榜" in body and "黑榜" in body and "本周新增预警" in body
    assert browser.evaluate("document.querySelectorAll('img[src=\"x\"], td b, td script').length") == 0
    summary = browser.evaluate("document.getElementById('summary').innerText")
    assert "本周" in summary and "累计" in summary and "2026年第46期" in body and "序时进度" in body
    browser.screenshot(mapsdata.artifact("bulletin.png"), full_page=True)
    _clean(browser)


def test_alerts_draw_above_project_names_and_orthophoto_stays_sharp(demo, browser, tmp_path):
    """An alert under a project's name is drawn over it and takes the click; zoomed in to the
    imagery's own resolution, the orthophoto is drawn from its tiles, not the stretched overview."""
    from gis.synthetic.render import render_orthophoto

    folder, county, c, alerts, store_dir, ortho = demo
    x0, y0, x1, y1 = c.redlines.loc[c.redlines["project_id"] == "P03"].total_bounds
    fine = render_orthophoto(tmp_path / "fine.tif", bounds=(x0 - 60, y0 - 60, x1 + 60, y1 + 60), resolution=0.5,
                             crs=c.crs, seed=5, date=mapsdata.AS_OF)
    out = write_clearance_map(c, folder / "labels.html", alerts=alerts, store_dir=store_dir, orthophoto=fine,
                              as_of=mapsdata.AS_OF)
    _reset(browser)
    browser.open(out, ready="window.gisReady === true")
    w, s_, e, n = c.redlines.loc[c.redlines["project_id"] == "P03"].to_crs(4326).total_bounds
    bounds = f"[[{s_}, {w}], [{n}, {e}]]"
    browser.evaluate(f"window.gisMap.fitBounds({bounds}, {{animate: false}}); true")  # P03: its name is on its alerts
    time.sleep(0.3)
    hits = browser.evaluate("""(() => { const out = [];
        const labels = [...document.querySelectorAll('.gis-project-label')].map(e => e.getBoundingClientRect());
        window.gisLayers.alerts.eachLayer(l => { if (!l.getLatLng) return;
          const p = window.gisMap.latLngToContainerPoint(l.getLatLng());
          const r = window.gisMap.getContainer().getBoundingClientRect(), x = p.x + r.left, y = p.y + r.top;
          if (x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) return;
          if (!labels.some(b => x > b.left && x < b.right && y > b.top && y < b.bottom)) return;
          const top = document.elementFromPoint(x, y);
          out.push([top.tagName, top.parentElement.className]); });
        return out; })()""")
    assert hits, "no alert lies under a project name: the check would prove nothing"
    assert all(tag == "CANVAS" and "gisVectors" in pane for tag, pane in hits), hits
    browser.screenshot(mapsdata.artifact("clearance_map_labels_under_alerts.png"))
    # zoomed to the imagery's own resolution (0.5 m: zoom 19), its tiles are drawn
    browser.evaluate(f"window.gisMap.setView(L.latLngBounds({bounds}).getCenter(), 19, {{animate: false}}); true")
    browser.wait_for("document.querySelectorAll('.leaflet-gisBase-pane img.leaflet-tile-loaded').length > 0",
                     what="orthophoto tiles")
    tiles = browser.evaluate("""[...document.querySelectorAll('.leaflet-gisBase-pane img.leaflet-tile-loaded')]
        .filter(i => i.src.startsWith('data:image/jpeg') && i.naturalWidth === 256).length""")
    assert tiles >= 4
    time.sleep(0.3)
    browser.screenshot(mapsdata.artifact("clearance_map_ortho_zoom19.png"))
    _clean(browser)


def test_bench_script_runs_small(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "bench_map", Path(__file__).resolve().parent.parent / "scripts" / "bench_map.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.bench([300], tmp_path, repeat=1)
    assert results[0]["drawn"] == 300
    assert results[0]["failed_requests"] == 0 and results[0]["external_requests"] == 0
    assert results[0]["html_mb"] > 0


def test_the_checks_themselves_catch_requests_and_dialogs(tmp_path, browser):
    """The offline guard and the dialog trap work, so the clean results above mean something."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><img src='http://example.invalid/x.png'>"
                    "<script>alert('boom'); window.done = 1;</script></body></html>", encoding="utf-8")
    _reset(browser)
    browser.open(page, ready="window.done === 1")
    time.sleep(0.3)
    assert browser.external_requests == ["http://example.invalid/x.png"]
    assert browser.failed_requests and browser.dialogs == ["boom"]
    _reset(browser)
