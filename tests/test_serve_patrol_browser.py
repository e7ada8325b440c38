"""The patrol phone app in a real headless Chromium at phone size, against a real `gis serve`.

As a patrol would use it: log in, open an alert, record a verdict with a
photo; lose the network (DevTools offline emulation of the page and of its
service worker), reload the app from the service worker, record another
verdict with two photos, see them wait in the queue while the server has
none of it; get the network back and watch the queue empty. The server is
then asked, over its API, for both verdicts and every photo, byte for byte
(SHA-256). A second test makes the office change alerts while the phone is
offline: the phone shows each conflict, server and phone side by side, and
the patrol keeps its verdict once and takes the office's once.

Screenshots of the list, an alert page and the queue go to test-artifacts/.
"""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

import mapsdata
from browser import Browser, find_chromium
from serve_fixtures import USERS, ServerProcess, alert_ids_by_district, jpeg, serve_workspace

pytestmark = pytest.mark.browser

PATROL = "p_dc"
DISTRICT = "东城区"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    find_chromium()  # a missing browser is an error here, not a skip: `make system` installs it
    root = serve_workspace(tmp_path_factory.mktemp("patrol") / "ws")
    srv = ServerProcess(root).start()
    try:
        office = srv.login("office1")
        ids = alert_ids_by_district(root)[DISTRICT]
        with srv.client(office) as c:
            r = c.post("/api/alerts/dispatch", json={"alert_ids": ids, "team": DISTRICT})
            assert r.status_code == 200, r.text
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def api(server):
    """The patrol's own view of the server (a second device token of the same user)."""
    with server.client(server.login(PATROL, device="test")) as c:
        yield c


@pytest.fixture(scope="module")
def phone(server, api):
    alerts = api.get("/api/alerts").json()
    first = alerts[0]
    with Browser(width=360, height=740, mobile=True, scale=2, allow=(server.url + "/",)) as b:
        # the patrol stands a few metres from the first alert
        b.set_geolocation(first["lat"] + 0.00003, first["lon"], origin=server.url)
        yield b


def _photos(folder, seeds):
    out = []
    for s in seeds:
        path = folder / f"site_{s}.jpg"
        path.write_bytes(jpeg(s, size=48))
        out.append(path)
    return out


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _js(s: str) -> str:
    return json.dumps(s)


def _open_alert(b: Browser, alert_id: str) -> None:
    b.evaluate(f"location.hash = '#/alert/' + encodeURIComponent({_js(alert_id)})")
    b.wait_for(f"document.querySelector('#record-form[data-alert-id=' + JSON.stringify({_js(alert_id)}) + ']')",
               what=f"the record form of {alert_id}")


def _record(b: Browser, status: str, note: str, files, reason: str = "") -> None:
    if files:
        b.set_files("#record-photos", files)
        b.wait_for(f"document.querySelectorAll('#photo-list li').length === {len(files)}",
                   what="the chosen photos listed")
    b.evaluate(f"""(() => {{ const s = document.getElementById('record-status'); s.value = {_js(status)};
        s.dispatchEvent(new Event('change'));
        document.getElementById('record-reason').value = {_js(reason)};
        document.getElementById('record-note').value = {_js(note)};
        document.getElementById('record-submit').click(); }})()""")


def _queue_states(b: Browser, where: str = "#queue-list") -> list[tuple[str, str]]:
    """(verdict|photo, state) of each item shown in ``where`` (#queue-list: waiting; #queue-done: sent)."""
    return [tuple(x) for x in b.evaluate(
        f"[...document.querySelectorAll('{where} [data-state]')]"
        ".map(e => [e.dataset.clientId ? 'verdict' : 'photo', e.dataset.state])")]


def _pending(b: Browser) -> int:
    return int(b.evaluate("document.getElementById('queue-count').hidden ? 0 : +document.getElementById('queue-count').textContent"))


def test_patrol_records_online_and_offline(server, api, phone, tmp_path):
    b = phone
    ids = alert_ids_by_district(server.root)[DISTRICT]
    other = [i for d, v in alert_ids_by_district(server.root).items() if d != DISTRICT for i in v]

    # log in
    b.open(server.url + "/patrol/", ready="window.patrolReady === true && !!document.getElementById('login-form')")
    assert b.evaluate("document.documentElement.lang") == "zh-CN"  # Chinese by default
    b.evaluate(f"""(() => {{ document.getElementById('username').value = {_js(PATROL)};
        document.getElementById('password').value = {_js(USERS[PATROL][2])};
        document.getElementById('login-submit').click(); }})()""")
    b.wait_for(f"document.querySelectorAll('.alert-item').length === {len(ids)}", what="the team's alerts listed")
    listed = b.evaluate("[...document.querySelectorAll('.alert-item')].map(e => e.dataset.alertId)")
    assert sorted(listed) == ids and not set(listed) & set(other)
    assert b.evaluate("[...document.querySelectorAll('.tag.dist')].length") == len(ids)  # distance from the phone
    assert b.evaluate("document.body.scrollWidth") <= 360  # nothing wider than the phone
    b.wait_for("window.patrolCached === true && window.patrolShellCached === true",
               what="alerts, chips and app shell kept for offline use")
    b.screenshot(mapsdata.artifact("patrol_list.png"))
    b.evaluate("document.getElementById('lang').click()")  # English is one tap away
    b.wait_for("document.querySelector('.page-title').textContent.startsWith('Alerts to verify')", what="English")
    b.evaluate("document.getElementById('lang').click()")
    b.wait_for("document.querySelector('.page-title').textContent.startsWith('待核查图斑')", what="Chinese again")

    # open an alert: chips, small map, facts, navigation link; record a verdict with a photo
    first, second = ids
    _open_alert(b, first)
    b.wait_for("[...document.querySelectorAll('.chip-img')].every(i => i.complete && i.naturalWidth > 0)",
               what="both chips shown")
    assert b.evaluate("document.querySelectorAll('.leaflet-overlay-pane path').length") >= 2  # alert + parcel/red line
    assert b.evaluate("document.getElementById('navigate').getAttribute('href')").startswith("geo:")
    assert b.evaluate("[...document.getElementById('record-status').options].map(o => o.value)") == [
        "", "illegal", "legal", "false_alarm"]  # only the lifecycle's next statuses of "dispatched"
    p1 = _photos(tmp_path, [1])
    _record(b, "illegal", "现场有新建砖房 <b>未批</b>", p1)
    b.wait_for("document.querySelector('#recorded-here [data-state=\"confirmed\"]')"
               " && document.querySelector('#recorded-here [data-client-id][data-state=\"sent\"]')",
               timeout=30, what="the first verdict sent and its photo confirmed")
    b.screenshot(mapsdata.artifact("patrol_alert.png"), full_page=True)
    assert b.evaluate("document.documentElement.scrollWidth") <= 360
    # the note came back from the server in the history: shown as text, never as markup
    assert "<b>未批</b>" in b.evaluate("document.querySelector('.history').textContent")
    assert b.evaluate("document.querySelectorAll('#view b').length") == 0
    assert api.get(f"/api/alerts/{first}").json()["status"] == "illegal"

    # the network goes; the app reloads from the service worker with the team's alerts
    assert b.evaluate("!!navigator.serviceWorker.controller")
    b.set_offline(True)
    b.evaluate("location.hash = '#/'; window.beforeReload = true")
    b.send("Page.reload", {"ignoreCache": True})
    b.wait_for("!window.beforeReload && window.patrolReady === true && document.querySelectorAll('.alert-item').length > 0",
               what="the app reloaded offline")
    assert b.evaluate("navigator.onLine") is False
    assert b.evaluate("document.getElementById('banner').hidden") is False  # "offline: data saved at ..."
    _open_alert(b, second)
    b.wait_for("[...document.querySelectorAll('.chip-img')].every(i => i.complete && i.naturalWidth > 0)",
               what="both chips shown offline")
    there = api.get(f"/api/alerts/{second}").json()
    b.set_geolocation(there["lat"], there["lon"] + 0.00003, origin=server.url)  # the patrol walked over
    p2 = _photos(tmp_path, [2, 3])
    _record(b, "false_alarm", "大棚，季节性", p2, reason="temporary_shed")
    b.wait_for(f"document.querySelector('#recorded-here [data-client-id]')", what="the offline verdict on the page")
    assert _pending(b) == 3  # one verdict, two photos
    b.evaluate("location.hash = '#/queue'")
    b.wait_for("document.querySelectorAll('#queue-list .qitem').length === 1", what="the queue page")
    assert _queue_states(b) == [("verdict", "queued"), ("photo", "queued"), ("photo", "queued")]
    b.screenshot(mapsdata.artifact("patrol_queue_offline.png"), full_page=True)
    # really offline: the server has none of it yet
    now = api.get(f"/api/alerts/{second}").json()
    assert now["status"] == "dispatched" and now["photos"] == []

    # the network comes back: everything is sent, every photo confirmed by its hash
    b.set_offline(False)
    b.wait_for("document.getElementById('queue-count').hidden === true", timeout=60, what="the queue emptied")
    b.wait_for("document.querySelectorAll('#queue-list .qitem').length === 0", what="the queue page redrawn")
    assert _queue_states(b, "#queue-done") == [("verdict", "sent"), ("photo", "confirmed"), ("photo", "confirmed"),
                                               ("verdict", "sent"), ("photo", "confirmed")]
    b.screenshot(mapsdata.artifact("patrol_queue_synced.png"), full_page=True)

    # the server has both verdicts and every photo, byte for byte
    a1, a2 = api.get(f"/api/alerts/{first}").json(), api.get(f"/api/alerts/{second}").json()
    assert a1["status"] == "illegal" and "未批" in a1["note"]
    assert a2["status"] == "false_alarm" and a2["reason"] == "temporary_shed"
    assert {p["sha256"] for p in a1["photos"]} == {_sha(p) for p in p1}
    assert {p["sha256"] for p in a2["photos"]} == {_sha(p) for p in p2}
    for path in p1 + p2:
        got = api.get(f"/api/photos/{_sha(path)}")
        assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == _sha(path)
    assert all(p["on_site"] is True for p in a1["photos"] + a2["photos"])  # taken where the phone was
    # a re-send after a lost answer is a no-op: no second photo record
    assert len(a2["photos"]) == 2
    assert b.exceptions == [] and b.dialogs == [] and b.external_requests == []


def test_conflict_is_shown_and_the_patrol_chooses(server, api, phone):
    b = phone
    first = alert_ids_by_district(server.root)[DISTRICT][0]  # illegal since the first test
    b.set_offline(True)
    _open_alert(b, first)
    _record(b, "demolished", "已拆除，现场平整", [])
    b.wait_for("document.querySelector('#recorded-here [data-client-id][data-state=\"queued\"]')",
               what="the offline verdict queued")
    # meanwhile the office writes a note on the same alert
    with server.client(server.login("office1")) as office:
        r = office.post(f"/api/alerts/{first}/verdict", data={"status": "illegal", "note": "office: owner summoned"})
        assert r.status_code == 200, r.text
    b.evaluate("location.hash = '#/queue'")
    b.set_offline(False)
    b.wait_for("document.querySelector('.qitem[data-state=\"conflict\"] .conflict')", timeout=60,
               what="the conflict shown")
    text = b.evaluate("document.querySelector('.qitem[data-state=\"conflict\"]').textContent")
    assert "office: owner summoned" in text and "已拆除，现场平整" in text  # server's and phone's side by side
    assert api.get(f"/api/alerts/{first}").json()["status"] == "illegal"  # nothing overwritten silently
    b.screenshot(mapsdata.artifact("patrol_conflict.png"), full_page=True)
    b.evaluate("document.querySelector('.keep-mine').click()")
    b.wait_for("!document.querySelector('[data-state=\"conflict\"]') && document.getElementById('queue-count').hidden",
               timeout=60, what="the patrol's verdict re-sent")
    now = api.get(f"/api/alerts/{first}").json()
    assert now["status"] == "demolished" and now["note"] == "已拆除，现场平整"

    # the other choice: the office closed the second alert meanwhile; the patrol takes theirs
    second = alert_ids_by_district(server.root)[DISTRICT][1]
    b.set_offline(True)
    _open_alert(b, second)
    _record(b, "closed", "手机上的备注", [])
    b.wait_for("document.querySelector('#recorded-here [data-client-id][data-state=\"queued\"]')",
               what="the second offline verdict queued")
    with server.client(server.login("office1")) as office:
        r = office.post("/api/alerts/status", json={"alert_ids": [second], "status": "closed"})
        assert r.status_code == 200, r.text
    b.evaluate("location.hash = '#/queue'")
    b.set_offline(False)
    b.wait_for("document.querySelector('.qitem[data-state=\"conflict\"] .take-theirs')", timeout=60,
               what="the second conflict shown")
    b.evaluate("document.querySelector('.take-theirs').click()")
    b.wait_for("!document.querySelector('[data-state=\"conflict\"]') && document.querySelector('#queue-done [data-state=\"dropped\"]')",
               what="the phone's verdict dropped")
    now = api.get(f"/api/alerts/{second}").json()
    assert now["status"] == "closed" and now["note"] != "手机上的备注"
    assert _pending(b) == 0
    assert b.exceptions == [] and b.dialogs == [] and b.external_requests == []
