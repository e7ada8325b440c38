"""`gis serve` against a real server process: the API flows, roles, bad input and the office pages.

One server per module (a workspace with three alerts: two in 东城区, one in
临港区; see serve_fixtures.py); tests that change an alert use their own.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import uuid

import httpx
import pytest

from gis.serve import accounts
from gis.serve.app import STATIC_DIR
from gis.serve.storage import open_engine
from gis.workspace import load_workspace
from serve_fixtures import HOSTILE, USERS, ServerProcess, alert_ids_by_district, gis_executable, jpeg, \
    serve_workspace, sha256


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def server(request, tmp_path_factory):
    """One server per store backend: a GeoPackage file, or a fresh PostGIS database."""
    if request.param == "gpkg":
        url = "store.gpkg"
    else:
        pg = request.getfixturevalue("pg_server")
        url = pg.url(pg.new_database())
    root = serve_workspace(tmp_path_factory.mktemp("serve") / "ws", url)
    with open(root / "gis.toml", "a", encoding="utf-8") as f:
        f.write('\n[serve]\nupload_limit_mb = 1\nlogin_limit = "5/minute"\n')
    srv = ServerProcess(root).start()
    srv.ids = alert_ids_by_district(root)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def tokens(server):
    return {name: server.login(name) for name in USERS}


def _photos_on_disk(server) -> set[str]:
    """Every photo the store holds (its table), and the copies in the store folder."""
    folder = server.root / "photos"
    files = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    return files | set(load_workspace(server.root).open_store().photos()["sha256"])


def test_each_role_lists_what_it_may_see(server, tokens):
    seen = {}
    for name in USERS:
        with server.client(tokens[name]) as c:
            r = c.get("/api/alerts")
            assert r.status_code == 200
            seen[name] = sorted(a["alert_id"] for a in r.json())
    everything = sorted(sum(server.ids.values(), []))
    assert seen["office1"] == seen["leader1"] == everything
    assert seen["p_dc"] == server.ids["东城区"] and seen["p_lg"] == server.ids["临港区"]
    assert seen["admin1"] == []
    with server.client(tokens["p_dc"]) as c:
        me = c.get("/api/me").json()
        first = c.get("/api/alerts").json()[0]
    assert me == {"username": "p_dc", "role": "patrol", "districts": ["东城区"], "lang": "zh"}
    assert {"alert_id", "district", "status", "kind", "area_mu", "rev", "lon", "lat", "geometry"} <= set(first)
    assert first["geometry"]["type"] == "Polygon" and 100 < first["lon"] < 130


def test_other_districts_alert_is_not_found_by_id_photo_or_filter(server, tokens):
    theirs = server.ids["东城区"][1]
    img = jpeg(seed=11)
    with server.client(tokens["p_dc"]) as c:  # p_dc adds a photo to its own alert
        r = c.post(f"/api/alerts/{theirs}/photos", data={"sha256": sha256(img)},
                   files={"photo": ("x.jpg", img, "image/jpeg")})
        assert r.status_code == 200, r.text
    with server.client(tokens["p_lg"]) as c:
        missing = c.get("/api/alerts/A00000000-9999")
        hidden = c.get(f"/api/alerts/{theirs}")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["error"] == missing.json()["error"] == "not_found"
        assert c.get(f"/api/alerts/{theirs}/chips/after").status_code == 404
        assert c.get(f"/api/alerts/{theirs}/geometry").status_code == 404
        assert c.get(f"/api/photos/{sha256(img)}").status_code == 404
        assert c.get("/api/alerts", params={"district": "东城区"}).json() == []
        r = c.post(f"/api/alerts/{theirs}/verdict", data={"status": "dispatched"})
        assert r.status_code == 404
    with server.client(tokens["p_dc"]) as c:
        assert c.get(f"/api/photos/{sha256(img)}").content == img


def test_verdict_with_photo_replay_conflict_and_bad_transition(server, tokens):
    aid = server.ids["东城区"][0]
    img = jpeg(seed=1)
    cid = str(uuid.uuid4())
    with server.client(tokens["p_dc"]) as c:
        rev = c.get(f"/api/alerts/{aid}").json()["rev"]
        form = {"status": "dispatched", "note": "到场核查", "rev": str(rev), "client_id": cid}
        r = c.post(f"/api/alerts/{aid}/verdict", data=form,
                   files=[("photo", ("IMG_1.jpg", img, "image/jpeg"))])
        assert r.status_code == 200, r.text
        a = r.json()
        assert a["status"] == "dispatched" and a["rev"] == rev + 1 and a["note"] == "到场核查"
        assert [p["sha256"] for p in a["photos"]] == [sha256(img)]
        again = c.post(f"/api/alerts/{aid}/verdict", data=form,
                       files=[("photo", ("IMG_1.jpg", img, "image/jpeg"))])
        assert again.status_code == 200 and again.json()["replayed"] is True
        assert again.json()["rev"] == rev + 1 and len(again.json()["photos"]) == 1
        stale = c.post(f"/api/alerts/{aid}/verdict", data={"status": "illegal", "rev": str(rev)})
        assert stale.status_code == 409
        assert stale.json()["current"]["rev"] == rev + 1 and stale.json()["current"]["status"] == "dispatched"
        bad = c.post(f"/api/alerts/{aid}/verdict", data={"status": "closed", "rev": str(rev + 1)})
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_transition"
        assert "allowed next statuses" in bad.json()["hint"]
        reason = c.post(f"/api/alerts/{aid}/verdict", data={"status": "false_alarm", "reason": "no_such"})
        assert reason.status_code == 400
        ok = c.post(f"/api/alerts/{aid}/verdict",
                    data={"status": "false_alarm", "reason": "seasonal_crops", "rev": str(rev + 1)})
        assert ok.status_code == 200 and ok.json()["reason"] == "seasonal_crops"
        history = ok.json()["history"]
    assert [h["by"] for h in history if h["field"] == "status"][-2:] == ["p_dc", "p_dc"]
    ev = load_workspace(server.root).open_store().events()
    assert ((ev["alert_id"] == aid) & (ev["action"] == "photo") & (ev["by"] == "p_dc")).sum() == 1


def test_photo_upload_verifies_hash_and_resend_is_a_noop(server, tokens):
    aid = server.ids["临港区"][0]
    img = jpeg(seed=2)
    with server.client(tokens["p_lg"]) as c:
        r = c.post(f"/api/alerts/{aid}/photos", data={"sha256": sha256(img), "photo_client_id": "ph-1"},
                   files={"photo": ("p.jpg", img, "image/jpeg")})
        assert r.status_code == 200 and r.json()["sha256"] == sha256(img) and r.json()["stored"] is True
        again = c.post(f"/api/alerts/{aid}/photos", data={"sha256": sha256(img), "photo_client_id": "ph-1"},
                       files={"photo": ("p.jpg", img, "image/jpeg")})
        assert again.json()["sha256"] == sha256(img) and again.json()["replayed"] is True
        other = jpeg(seed=3)
        before = _photos_on_disk(server)
        damaged = c.post(f"/api/alerts/{aid}/photos", data={"sha256": sha256(img)},
                         files={"photo": ("q.jpg", other, "image/jpeg")})
        assert damaged.status_code == 400 and "SHA-256" in damaged.json()["message"]
        assert _photos_on_disk(server) == before
        photos = c.get(f"/api/alerts/{aid}").json()["photos"]
    assert [p["sha256"] for p in photos].count(sha256(img)) == 1


@pytest.mark.parametrize("name, data, words", [
    ("notes.jpg", b"this is a text file, not a photo", "not a photo"),
    ("big.jpg", b"\xff\xd8\xff\xe0" + b"0" * (1024 * 1024 + 10), "larger than"),
    ("../../x.jpg", None, "path"),
    ("..\\..\\x.jpg", None, "path"),
])
def test_bad_uploads_get_400_and_nothing_is_stored(server, tokens, name, data, words):
    aid = server.ids["东城区"][1]
    data = jpeg(seed=4) if data is None else data
    before = _photos_on_disk(server)
    with server.client(tokens["p_dc"]) as c:
        rev = c.get(f"/api/alerts/{aid}").json()["rev"]
        r = c.post(f"/api/alerts/{aid}/verdict", data={"note": "x"}, files=[("photo", (name, data, "image/jpeg"))])
        r2 = c.post(f"/api/alerts/{aid}/photos", files={"photo": (name, data, "image/jpeg")})
        after = c.get(f"/api/alerts/{aid}").json()
    for answer in (r, r2):
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "bad_upload" and words in answer.json()["message"]
    assert _photos_on_disk(server) == before and after["rev"] == rev


def test_roles_that_may_not_get_403(server, tokens):
    aid = server.ids["临港区"][0]
    with server.client(tokens["leader1"]) as c:
        r = c.post(f"/api/alerts/{aid}/verdict", data={"note": "leader"})
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
    with server.client(tokens["p_lg"]) as c:
        assert c.post("/api/alerts/dispatch", json={"alert_ids": [aid], "team": "临港区"}).status_code == 403
        assert c.post("/api/alerts/status", json={"alert_ids": [aid], "status": "dispatched"}).status_code == 403
    with server.client(tokens["admin1"]) as c:
        assert c.get(f"/api/alerts/{aid}").status_code == 404  # admins manage users, not alerts


def test_sync_batch_is_answered_item_by_item(server, tokens):
    mine = server.ids["东城区"][1]
    theirs = server.ids["临港区"][0]
    img = jpeg(seed=5)
    items = [
        {"type": "verdict", "client_id": "s-1", "alert_id": mine, "status": "dispatched"},
        {"type": "verdict", "client_id": "s-2", "alert_id": mine, "status": "closed"},
        {"type": "verdict", "client_id": "s-3", "alert_id": theirs, "status": "dispatched"},
        {"type": "photo", "photo_client_id": "s-4", "alert_id": mine, "sha256": sha256(img),
         "data": base64.b64encode(img).decode()},
    ]
    with server.client(tokens["p_dc"]) as c:
        r = c.post("/api/sync", json={"items": items})
        assert r.status_code == 200
        answers = r.json()["items"]
        assert [a["status"] for a in answers] == [200, 400, 404, 200]
        assert answers[3]["result"]["sha256"] == sha256(img)
        again = c.post("/api/sync", json={"items": items[:1]}).json()["items"][0]
        assert again["ok"] and again["result"]["replayed"] is True


def test_photo_far_from_the_alert_is_marked_not_on_site(server, tokens):
    aid = server.ids["东城区"][1]
    with server.client(tokens["p_dc"]) as c:
        a = c.get(f"/api/alerts/{aid}").json()
        near = jpeg(seed=6)
        far = jpeg(seed=7, gps=(a["lat"] + 0.01, a["lon"]))  # ~1.1 km north, from EXIF
        r1 = c.post(f"/api/alerts/{aid}/photos", data={"photo_lat": a["lat"], "photo_lon": a["lon"]},
                    files={"photo": ("near.jpg", near, "image/jpeg")})
        r2 = c.post(f"/api/alerts/{aid}/photos", data={"photo_lat": a["lat"], "photo_lon": a["lon"]},
                    files={"photo": (HOSTILE[1] + ".jpg", far, "image/jpeg")})
    assert r1.json()["on_site"] is True and r1.json()["distance_m"] < 100
    assert r2.json()["on_site"] is False and r2.json()["distance_m"] > 1000


@pytest.mark.parametrize("north_m, on_site", [(500, False), (20, True)])
def test_phone_position_sent_as_lat_lon_places_a_photo_without_exif(server, tokens, north_m, on_site):
    """The phone app sends its position as lat/lon: used when the photo has no EXIF GPS."""
    aid = server.ids["东城区"][1]
    with server.client(tokens["p_dc"]) as c:
        a = c.get(f"/api/alerts/{aid}").json()
        r = c.post(f"/api/alerts/{aid}/photos", data={"lat": a["lat"] + north_m / 111_320, "lon": a["lon"]},
                   files={"photo": ("phone.jpg", jpeg(seed=20 + north_m), "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["on_site"] is on_site and r.json()["distance_m"] is not None
    assert (r.json()["distance_m"] > 300) if north_m == 500 else (r.json()["distance_m"] < 25)


def test_served_map_links_chips_through_the_checked_route(server):
    with _browser_login(server, "office1") as c:
        page = c.get("/office/map")
        assert page.status_code == 200
        data = json.loads(re.search(r'<script type="application/json" id="gis-data">(.*?)</script>',
                                    page.text, re.S).group(1))
        urls = [u for pair in data["alerts"]["chips"] for u in pair if u]
        assert urls and all(re.fullmatch(r"/api/alerts/[^/]+/chips/(before|after)", u) for u in urls), urls
        assert "img-src data: blob: 'self'" in page.text  # the page's own CSP lets it load them
        for u in urls:
            r = c.get(u)
            assert r.status_code == 200 and r.headers["content-type"] == "image/png"
            assert r.content.startswith(b"\x89PNG")
    mine = [u for u in urls if any(f"/{aid}/" in u for aid in server.ids["东城区"])]
    assert mine
    with _browser_login(server, "p_lg") as c:  # a patrol of another district
        assert {c.get(u).status_code for u in mine} == {404}
    with _browser_login(server, "p_dc") as c:
        assert {c.get(u).status_code for u in mine} == {200}


def test_bad_token_unknown_and_disabled_user_get_the_same_401(server):
    engine = open_engine(load_workspace(server.root))
    accounts.add_user(engine, "temp1", "temp-password-1", role="patrol", districts=["东城区"])
    token = httpx.post(server.url + "/api/login",
                       json={"username": "temp1", "password": "temp-password-1"}).json()["token"]
    with server.client(token) as c:
        assert c.get("/api/me").status_code == 200
        out = subprocess.run([gis_executable(), "users", "disable", "temp1", "--workspace", str(server.root)],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        disabled = c.get("/api/me")
    with server.client("not-a-token") as c:
        bad = c.get("/api/me")
    with server.client() as c:
        none = c.get("/api/me")
    assert disabled.status_code == bad.status_code == none.status_code == 401
    assert disabled.json() == bad.json() == none.json()
    unknown = httpx.post(server.url + "/api/login", json={"username": "nobody", "password": "x" * 10})
    wrong = httpx.post(server.url + "/api/login", json={"username": "office1", "password": "x" * 10})
    gone = httpx.post(server.url + "/api/login", json={"username": "temp1", "password": "temp-password-1"})
    assert unknown.status_code == wrong.status_code == gone.status_code == 401
    assert unknown.json() == wrong.json() == gone.json()


def test_one_lost_phone_is_revoked_without_disabling_the_user(server):
    engine = open_engine(load_workspace(server.root))
    accounts.add_user(engine, "temp2", "temp-password-2", role="patrol", districts=["临港区"])

    def login(device):
        return httpx.post(server.url + "/api/login", json={"username": "temp2", "password": "temp-password-2",
                                                           "device": device}).json()["token"]

    lost, kept = login("lost-phone"), login("new-phone")
    out = subprocess.run([gis_executable(), "users", "revoke-token", "temp2", "--device", "lost-phone",
                          "--workspace", str(server.root)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    with server.client(lost) as c:
        assert c.get("/api/me").status_code == 401
    with server.client(kept) as c:
        assert c.get("/api/me").json()["username"] == "temp2"


def test_repeated_bad_logins_are_throttled(server):
    engine = open_engine(load_workspace(server.root))
    accounts.add_user(engine, "temp3", "temp-password-3", role="leader")
    codes = [httpx.post(server.url + "/api/login", json={"username": "temp3", "password": f"wrong-{k}"}).status_code
             for k in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    right = httpx.post(server.url + "/api/login", json={"username": "temp3", "password": "temp-password-3"})
    assert right.status_code == 429  # still throttled, even with the right password
    other = httpx.post(server.url + "/api/login", json={"username": "office1", "password": USERS["office1"][2]})
    assert other.status_code == 200  # another user is not locked out


def test_sql_in_filters_does_nothing(server, tokens):
    with server.client(tokens["office1"]) as c:
        n = len(c.get("/api/alerts").json())
        for params in ({"district": "东城区' OR '1'='1"}, {"status": "new; DROP TABLE alerts; --"},
                       {"project": "P01\" OR 1=1 --"}, {"kind": "' UNION SELECT * FROM users --"}):
            r = c.get("/api/alerts", params=params)
            assert r.status_code == 200 and r.json() == []
        assert c.get("/api/alerts", params={"waiting_over": "1 OR 1=1"}).status_code == 400
        assert len(c.get("/api/alerts").json()) == n
        page = c.get("/office/alerts", params={"district": "x' OR '1'='1"})
    assert page.status_code in (200, 303)


@contextlib.contextmanager
def _browser_login(server, name):
    """A browser-like client (cookies, forms with the CSRF token) logged in as ``name``."""
    with httpx.Client(base_url=server.url, timeout=30, follow_redirects=False) as c:
        page = c.get("/login")
        token = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
        r = c.post("/login", data={"csrftoken": token, "username": name, "password": USERS[name][2]})
        assert r.status_code == 303, r.text
        yield c


def _csrf_of(c: httpx.Client, path: str) -> str:
    return re.search(r'name="csrftoken" value="([^"]+)"', c.get(path).text).group(1)


def test_browser_post_without_csrf_token_is_refused(server):
    aid = server.ids["临港区"][0]
    with _browser_login(server, "office1") as c:
        refused = c.post("/office/alerts/bulk", data={"alert_id": aid, "action": "dispatch", "team": "临港区"})
        assert refused.status_code == 403
        assert c.get(f"/api/alerts/{aid}").json()["status"] == "new"
        token = _csrf_of(c, "/office/alerts")
        done = c.post("/office/alerts/bulk", data={"csrftoken": token, "alert_id": aid, "action": "dispatch",
                                                   "team": "临港区"})
        assert done.status_code == 303
        a = c.get(f"/api/alerts/{aid}").json()
    assert a["status"] == "dispatched"
    assert any(h["action"] == "dispatch" and h["new"] == "临港区" and h["by"] == "office1" for h in a["history"])
    with _browser_login(server, "p_dc") as c:  # the phone app logs in by JSON, cookies or not
        assert c.post("/api/login", json={"username": "p_dc", "password": USERS["p_dc"][2]}).status_code == 200
        assert c.post("/api/logout").status_code == 403  # a cookie-only POST without the token


def test_hostile_text_is_escaped_on_every_page(server, tokens):
    aid = server.ids["东城区"][1]
    with server.client(tokens["p_dc"]) as c:
        r = c.post(f"/api/alerts/{aid}/verdict", data={"note": HOSTILE[0] + " " + HOSTILE[1]})
        assert r.status_code == 200, r.text
    with _browser_login(server, "office1") as c:
        pages = [c.get(p) for p in ("/office/alerts", f"/office/alerts/{aid}", "/office/teams",
                                    "/office/alerts?district=" + HOSTILE[1], "/office/figures")]
    for page in pages:
        assert page.status_code == 200, page.url
        for text in HOSTILE:
            assert text not in page.text, page.url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[1].text


def test_leaders_read_figures_and_map_without_forms_and_patrols_do_not(server):
    with _browser_login(server, "leader1") as c:
        figures = c.get("/office/figures")
        assert figures.status_code == 200 and "<table" in figures.text
        assert 'action="/office/alerts/bulk"' not in c.get("/office/alerts").text
        assert c.get("/office/teams").status_code == 403
    with _browser_login(server, "p_dc") as c:
        assert c.get("/").headers["location"] == "/patrol/"
        assert c.get("/office/figures").status_code == 403


def test_static_files_and_the_patrol_app_are_served(server):
    assert httpx.get(server.url + "/static/office.css").status_code == 200
    assert httpx.get(server.url + "/static/assets/leaflet/leaflet.js").status_code == 200
    assert httpx.get(server.url + "/static/../gis.toml").status_code == 404
    if (STATIC_DIR / "patrol" / "index.html").exists():  # the patrol app (its own tests drive it)
        assert httpx.get(server.url + "/patrol/").status_code == 200
        assert httpx.get(server.url + "/patrol/sw.js").status_code == 200
