"""The office pages of `gis serve` in a real headless Chromium: log in with the form, the alert
table, an alert page and the live clearance map; screenshots kept in test-artifacts/."""

from __future__ import annotations

import json

import pytest

import mapsdata
from browser import Browser, find_chromium
from serve_fixtures import USERS, ServerProcess, alert_ids_by_district, serve_workspace

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    find_chromium()  # a missing browser is an error here, not a skip: `make system` installs it
    root = serve_workspace(tmp_path_factory.mktemp("office") / "ws")
    srv = ServerProcess(root).start()
    srv.ids = alert_ids_by_district(root)
    yield srv
    srv.stop()


def test_office_logs_in_and_sees_table_alert_and_live_map(server):
    with Browser(width=1280, height=860, allow=(server.url + "/",)) as b:
        b.open(server.url + "/login", ready="document.querySelector('form.login') !== null")
        b.evaluate(f"""(() => {{ const f = document.querySelector('form.login');
            f.username.value = {json.dumps('office1')}; f.password.value = {json.dumps(USERS['office1'][2])};
            f.submit(); return true; }})()""")
        b.wait_for("location.pathname === '/office/alerts' && document.readyState === 'complete'",
                   what="the alert table after logging in")
        rows = b.evaluate("document.querySelectorAll('table.alerts tbody tr').length")
        assert rows == sum(len(v) for v in server.ids.values())
        b.screenshot(mapsdata.artifact("serve_office_alerts.png"), full_page=True)
        aid = server.ids["东城区"][0]
        b.open(f"{server.url}/office/alerts/{aid}",
               ready="document.querySelector('.chips img') && document.querySelector('.chips img').complete")
        assert b.evaluate("document.querySelector('.chips img').naturalWidth") > 0  # the chip, permission-checked
        b.screenshot(mapsdata.artifact("serve_office_alert.png"), full_page=True)
        b.open(server.url + "/office/map", ready="window.gisReady === true")
        assert b.evaluate("window.gisLayers.parcels.count") > 1000
        assert b.evaluate("window.gisLayers.alerts.getLayers().length") >= 3  # the store's current alerts
        b.screenshot(mapsdata.artifact("serve_office_map.png"))
        # a popup's chips come from the permission-checked chip route (the page's own server)
        src = b.evaluate("""(() => {
            const D = JSON.parse(document.getElementById('gis-data').textContent);
            const i = D.alerts.chips.findIndex((p) => p[0] || p[1]);
            const layer = window.gisLayers.alerts.getLayers().find((l) => l.gisIndex === i && l.getBounds);
            window.gisLayers.alerts.fire('click', { latlng: layer.getBounds().getCenter(), layer: layer });
            return D.alerts.chips[i].filter(Boolean)[0]; })()""")
        assert src.startswith("/api/alerts/")
        b.wait_for("document.querySelector('.gis-chips img') && [...document.querySelectorAll('.gis-chips img')]"
                   ".every((im) => im.complete && im.naturalWidth > 0)", what="the popup's chips")
        b.screenshot(mapsdata.artifact("serve_office_map_popup.png"))
        b.open(f"{server.url}/office/teams", ready="document.readyState === 'complete'")
        assert "已处置" in b.evaluate("document.querySelector('table').innerText")  # settled, not 已销号
        b.screenshot(mapsdata.artifact("serve_office_teams.png"), full_page=True)
        b.open(f"{server.url}/office/figures", ready="document.readyState === 'complete'")
        b.screenshot(mapsdata.artifact("serve_office_figures.png"), full_page=True)
        assert b.exceptions == [] and b.external_requests == []


#: The figures page at a desktop's and a phone's size: (width, height, mobile).
SIZES = {"desktop": (1280, 800, False), "phone": (360, 740, True)}


@pytest.mark.parametrize("size", SIZES)
def test_figures_page_reads_well_on_desktop_and_phone(server, size):
    """The leader's figures: bulletin-style values; on a phone the wide tables scroll sideways
    in their own box (first column kept in view) while the page itself never does."""
    width, height, mobile = SIZES[size]
    with Browser(width=width, height=height, mobile=mobile, allow=(server.url + "/",)) as b:
        b.open(server.url + "/login", ready="document.querySelector('form.login') !== null")
        b.evaluate(f"""(() => {{ const f = document.querySelector('form.login');
            f.username.value = 'leader1'; f.password.value = {json.dumps(USERS['leader1'][2])};
            f.submit(); return true; }})()""")
        b.wait_for("location.pathname === '/office/figures' && document.readyState === 'complete'",
                   what="the figures page after logging in")
        page, inner = b.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert inner == width and page <= width  # nothing sticks out of the page
        projects = b.evaluate("document.querySelector('table.figures-projects').innerText")
        assert "%" in projects and "e+0" not in projects and "00:00:00" not in projects
        assert "征地完成率" in projects and ("是" in projects or "否" in projects)
        boxes = b.evaluate("[...document.querySelectorAll('.scroll')].map((d) => "
                           "[d.querySelector('table').className, d.scrollWidth, d.clientWidth])")
        assert boxes and all(client <= width for _, _, client in boxes)
        b.screenshot(mapsdata.artifact(f"serve_figures_{size}.png"), full_page=True)
        wide = {name for name, scroll, client in boxes if scroll > client + 1}
        if size == "desktop":
            assert wide == set()  # the projects table fits a desktop screen
        else:
            assert "figures figures-projects" in wide
            left = b.evaluate("""(() => {
                const box = document.querySelector('table.figures-projects').parentElement;
                box.scrollIntoView(); box.scrollLeft = box.scrollWidth;
                const first = box.querySelector('tbody td').getBoundingClientRect().left;
                return [first - box.getBoundingClientRect().left, box.scrollLeft]; })()""")
            assert left[1] > 0 and abs(left[0]) <= 1  # scrolled, and the project id still in view
            b.screenshot(mapsdata.artifact("serve_figures_phone_scrolled.png"))
        assert b.exceptions == [] and b.external_requests == []
