"""`gis store init / check / backup / copy` on both backends; photos kept in the store."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in, write_photo
from gis.alerts.lifecycle import set_alert
from gis.cli import main
from gis.errors import StoreCorruptError
from gis.weekly import run_weekly
from storedata import execute, store_of, use_store


def gis(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def ws(tmp_path, store_url):
    root = use_store(make_workspace(tmp_path / "ws"), store_url)
    run_weekly(root, DATES[1], detect=FakeDetect({DATES[1].isoformat(): changes(
        ("new_structure", spot_in(root, "P01")), ("new_crops", spot_in(root, "P03", 40)))}), maps=False)
    return root


def exif_photo(path, *, lat=(30, 15, 0), lon=(114, 30, 0)):
    """A JPEG with EXIF DateTimeOriginal and GPS, as a phone writes it."""
    from PIL import Image

    write_photo(path)
    im = Image.open(path)
    exif = im.getexif()
    exif.get_ifd(0x8769)[0x9003] = "2026:04:16 09:30:00"
    exif.get_ifd(0x8825).update({1: "N", 2: lat, 3: "E", 4: lon})
    im.save(path, exif=exif)
    return path


def test_photos_live_in_the_store_with_their_facts_and_check_finds_altered_bytes(ws, tmp_path):
    store = store_of(ws)
    aid = store.alerts()["alert_id"][0]
    photo = exif_photo(tmp_path / "IMG_0042.jpg")
    data = photo.read_bytes()
    a = set_alert(store, aid, status="dispatched", by="张三", photos=[photo])
    photo.unlink()
    key = a["photos"]
    assert store.photo(key) == data
    facts = store.photos().iloc[0]
    assert (facts["name"], facts["uploaded_by"], facts["size"]) == ("IMG_0042.jpg", "张三", len(data))
    assert facts["taken_at"] == "2026-04-16T09:30:00"
    assert facts["lat"] == pytest.approx(30.25) and facts["lon"] == pytest.approx(114.5)
    res = gis("store", "check", "--workspace", ws)
    assert res.exit_code == 0 and "sound" in res.output, res.output
    # one byte of the photo altered in the database: check names it, a read refuses it
    sha = key.split("/")[1].split(".")[0]
    execute(store, "UPDATE photos SET data = :d WHERE sha256 = :s", {"d": data[:-1] + b"\x00", "s": sha})
    res = gis("store", "check", "--workspace", ws, "--json")
    assert res.exit_code == 2
    rep = json.loads(res.output)
    assert rep["bad_photos"] == [key] and not rep["ok"]
    with pytest.raises(StoreCorruptError, match="SHA-256"):
        store_of(ws).photo(key)


def test_check_compares_the_audit_log_with_the_alerts(ws):
    store = store_of(ws)
    aid = store.alerts()["alert_id"][0]
    set_alert(store, aid, status="dispatched", by="调度")
    assert store.verify()["ok"]
    execute(store, "UPDATE alerts SET status = 'illegal' WHERE alert_id = :a", {"a": aid})  # no event
    problems = store_of(ws).verify()["problems"]
    assert problems == [f"alert {aid}: status is 'illegal' but the audit log last set 'dispatched'"]


def test_init_creates_an_empty_store_once(tmp_path, store_url):
    root = use_store(make_workspace(tmp_path / "ws"), store_url)
    res = gis("store", "init", "--workspace", root)
    assert res.exit_code == 0 and "created an empty" in res.output, res.output
    assert "already" in gis("store", "init", "--workspace", root).output
    rep = store_of(root).verify()
    assert rep["ok"] and rep["schema_version"] == 2 and rep["alerts"] == 0
    run_weekly(root, DATES[1], detect=FakeDetect({DATES[1].isoformat(): changes(
        ("new_structure", spot_in(root, "P01")))}), maps=False)
    assert len(store_of(root).alerts()) == 1


def test_backup_is_a_consistent_copy(ws, tmp_path):
    store = store_of(ws)
    out = tmp_path / ("copy.gpkg" if store.kind == "gpkg" else "copy.dump")
    res = gis("store", "backup", out, "--workspace", ws)
    assert res.exit_code == 0, res.output
    if store.kind == "gpkg":
        from gis.alerts.store import open_store

        assert open_store(out).alerts().drop(columns="geometry").equals(store.alerts().drop(columns="geometry"))
    else:
        from gis.alerts.backends import pg_tool

        listing = subprocess.run([pg_tool("pg_restore"), "--list", str(out)], capture_output=True, text=True)
        assert listing.returncode == 0 and "TABLE DATA public alerts" in listing.stdout


def test_copy_moves_a_geopackage_store_to_postgis_and_back(tmp_path, pg_url):
    root = make_workspace(tmp_path / "ws")
    run_weekly(root, DATES[1], detect=FakeDetect({DATES[1].isoformat(): changes(
        ("new_structure", spot_in(root, "P01")), ("new_crops", spot_in(root, "P03", 40)))}), maps=False)
    store = store_of(root)
    aid = store.alerts()["alert_id"][0]
    set_alert(store, aid, status="dispatched", by="张三", note="派发", photos=[write_photo(tmp_path / "a.jpg")])
    before = store.alerts()
    events = store.events()
    res = gis("store", "copy", pg_url, "--workspace", root)
    assert res.exit_code == 0, res.output
    assert pg_url in (root / "gis.toml").read_text(encoding="utf-8")
    moved = store_of(root)
    assert moved.kind == "postgis"
    assert moved.alerts().drop(columns="geometry").equals(before.drop(columns="geometry"))
    assert moved.events()["action"].tolist() == events["action"].tolist()
    assert moved.photo(before.set_index("alert_id").loc[aid, "photos"]) == (tmp_path / "a.jpg").read_bytes()
    assert moved.verify()["ok"]
    # the workspace goes on with the new store; the copy refuses a store that is not empty
    set_alert(moved, aid, status="illegal", by="张三")
    assert gis("store", "copy", "back.gpkg", "--workspace", root).exit_code == 0
    back = store_of(root)
    assert back.kind == "gpkg" and back.alert(aid)["status"] == "illegal"
    other = use_store(make_workspace(tmp_path / "other"), "store.gpkg")
    run_weekly(other, DATES[1], detect=FakeDetect(), maps=False)
    res = CliRunner().invoke(main, ["store", "copy", pg_url, "--workspace", str(other)])
    assert res.exit_code != 0 and "not empty" in res.output
