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
        assert b.exceptions == [] and b.external_requests == []
