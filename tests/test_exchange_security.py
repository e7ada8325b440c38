"""A patrol file is untrusted input: it may only rule on what was exported to it and
bring photos that travel with it; photos are photos by content (issue 15: 1, 4, 13, 17)."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in, spot_outside, write_photo
from gis.cli import main
from gis.errors import DuplicateIdError, InputError, NotExportedError, PhotoError
from gis.alerts.exchange import export_district, import_field
from gis.alerts.lifecycle import check_photo, photo_kind, set_alert
from gis.alerts.store import open_store
from gis.weekly import run_weekly


@pytest.fixture
def store(tmp_path):
    root = make_workspace(tmp_path / "ws")
    ch = changes(("new_structure", spot_in(root, "P03", 20, dx=-150)), ("new_crops", spot_in(root, "P03", 40)),
                 ("new_structure", spot_outside(root)))
    run_weekly(root, DATES[1], detect=FakeDetect({DATES[1].isoformat(): ch}), maps=False)
    return open_store(root / "store.gpkg")


@pytest.fixture
def patrol(store, tmp_path):
    """高新区's patrol file in its own folder, and the ids it carries."""
    out = tmp_path / "field" / "patrol.gpkg"
    out.parent.mkdir()
    return out, export_district(store, "高新区", out).alert_ids


def edit(gpkg, alert_id, **values):
    """Change attributes in the patrol file as a field app does (plain SQL UPDATE)."""
    with contextlib.closing(sqlite3.connect(gpkg)) as con, con:
        sets = ", ".join(f"{k} = ?" for k in values)
        con.execute(f"UPDATE alerts SET {sets} WHERE alert_id = ?", (*values.values(), alert_id))


def snapshot(store):
    """Everything an import could change: the store file and the photos folder."""
    photos = store.store_dir / "photos"
    return store.path.read_bytes(), sorted(p.name for p in photos.iterdir()) if photos.exists() else []


def gis(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# --- 1. path traversal ---------------------------------------------------------------------


def _outside_folder(tmp_path, field):
    """Make ``field/DCIM/out`` a symlinked folder and ``field/DCIM/link.jpg`` a symlinked file,
    both pointing at a real JPEG outside the patrol file's folder."""
    write_photo(tmp_path / "secret" / "secret.jpg")
    (field / "DCIM").mkdir(exist_ok=True)
    (field / "DCIM" / "link.jpg").symlink_to(tmp_path / "secret" / "secret.jpg")
    (field / "DCIM" / "out").symlink_to(tmp_path / "secret", target_is_directory=True)


HOSTILE = ["/etc/passwd", "../../../../etc/hostname", "../secret/secret.jpg", "DCIM/../../secret/secret.jpg",
           "C:\\Windows\\win.ini", "C:x.jpg", "\\\\server\\share\\x.jpg", "DCIM/link.jpg", "DCIM/out/secret.jpg",
           "../secret/none.jpg", "DCIM/none.jpg"]


@pytest.mark.parametrize("value", HOSTILE)
def test_photo_names_outside_the_patrol_folder_are_never_read(store, patrol, tmp_path, value):
    out, ids = patrol
    _outside_folder(tmp_path, out.parent)
    edit(out, ids[0], status="illegal", photo=value)
    before = snapshot(store)
    res = gis("alerts", "import", out, "--workspace", store.store_dir)
    assert res.exit_code == 2, res.output
    assert "missing or not inside its folder" in res.output and "Traceback" not in res.output
    assert snapshot(store) == before and store.alert(ids[0])["status"] == "dispatched"


def test_an_existing_and_a_missing_outside_file_get_the_same_refusal(store, patrol, tmp_path):
    out, ids = patrol
    _outside_folder(tmp_path, out.parent)
    errors = []
    for value in ("../secret/secret.jpg", "../secret/none.jpg", "/etc/hostname", "/no/such/file"):
        edit(out, ids[0], status="illegal", photo=value)
        with pytest.raises(PhotoError) as exc:
            import_field(store, out)
        assert exc.value.ids == [value]
        errors.append((exc.value.message, exc.value.hint, exc.value.path))
    assert len(set(errors)) == 1


def test_photos_inside_the_patrol_folder_are_imported(store, patrol):
    out, ids = patrol
    one = write_photo(out.parent / "DCIM" / "sub" / "IMG_1.jpg", "JPEG").read_bytes()
    two = write_photo(out.parent / "DCIM" / "IMG_2.png", "PNG", seed=1).read_bytes()
    edit(out, ids[0], status="illegal", photo="DCIM\\sub\\IMG_1.jpg;DCIM/sub/../IMG_2.png")
    res = import_field(store, out)
    assert res.applied == [ids[0]] and res.photos == 2
    rels = store.alert(ids[0])["photos"].split(";")
    assert [p.rsplit(".", 1)[1] for p in rels] == ["jpg", "png"]
    assert [(store.store_dir / p).read_bytes() for p in rels] == [one, two]


def test_export_copies_no_chip_from_outside_the_store_folder(store, tmp_path):
    secret = write_photo(tmp_path / "secret.png", "PNG")
    with store.transaction(by="test") as tx:
        tx.alerts.loc[:, "chip_before"] = ["../secret.png", str(secret), "/etc/hostname"][:len(tx.alerts)]
    out = tmp_path / "field" / "patrol.gpkg"
    out.parent.mkdir()
    export_district(store, "高新区", out)
    with contextlib.closing(sqlite3.connect(out)) as con:
        assert con.execute("SELECT count(*) FROM alerts WHERE chip_before_img IS NOT NULL "
                           "OR chip_before != ''").fetchone()[0] == 0
    assert not list((out.parent / "patrol_files" / "chips").glob("secret*"))


# --- 4. only the alerts exported to the file -------------------------------------------------


def _add_row(gpkg, alert_id, status="illegal", snapshot_too=False):
    """A row added to the patrol file (QGIS would let a patrol add a feature)."""
    with contextlib.closing(sqlite3.connect(gpkg)) as con, con:
        con.execute("INSERT INTO alerts (alert_id, status, note) VALUES (?, ?, 'added')", (alert_id, status))
        if snapshot_too:  # a forged gis_export row, copying the export's id
            con.execute("INSERT INTO gis_export SELECT ?, 0, 'dispatched', '', '', '', exported_at, store, "
                        "district, export_id FROM gis_export LIMIT 1", (alert_id,))


@pytest.mark.parametrize("forged", [False, True])
def test_a_row_for_an_alert_not_exported_is_refused_even_preferring_the_field(store, patrol, forged):
    out, ids = patrol
    other = store.alerts().query("district != '高新区'")["alert_id"].iloc[0]
    set_alert(store, other, status="dispatched", by="调度")
    edit(out, ids[0], status="illegal")
    _add_row(out, other, snapshot_too=forged)
    before = snapshot(store)
    for prefer in (None, "field", "store"):
        with pytest.raises(NotExportedError) as exc:
            import_field(store, out, prefer=prefer)
        msg = str(exc.value)
        assert f"alert {other} was not exported to this patrol file" in msg and "高新区" in msg
        assert "changed both" not in msg
    assert snapshot(store) == before and store.alert(other)["status"] == "dispatched"
    res = gis("alerts", "import", out, "--workspace", store.store_dir, "--prefer", "field")
    assert res.exit_code == 2 and "was not exported to this patrol file" in res.output


def test_a_patrol_file_of_another_store_is_refused(store, tmp_path):
    other = tmp_path / "other" / "store.gpkg"
    other.parent.mkdir()
    shutil.copyfile(store.path, other)  # same alerts, but it never exported this file
    out = tmp_path / "patrol.gpkg"
    ids = export_district(store, "高新区", out).alert_ids
    edit(out, ids[0], status="illegal")
    with pytest.raises(NotExportedError, match="not exported from this store"):
        import_field(open_store(other), out)
    assert import_field(store, out).applied == [ids[0]]


def test_duplicate_rows_are_named_not_a_traceback(store, patrol):
    out, ids = patrol
    _add_row(out, ids[0])
    with pytest.raises(DuplicateIdError) as exc:
        import_field(store, out)
    assert exc.value.ids == [ids[0]]


def test_a_file_without_export_id_asks_for_a_new_export(store, patrol):
    out, _ = patrol
    with contextlib.closing(sqlite3.connect(out)) as con, con:
        con.execute("ALTER TABLE gis_export DROP COLUMN export_id")
    with pytest.raises(InputError, match="export the district again") as exc:
        import_field(store, out)
    assert exc.value.exit_code == 2


# --- 17. no server path in the patrol file ---------------------------------------------------


def test_the_patrol_file_names_the_store_without_the_server_path(store, patrol, tmp_path):
    out, _ = patrol
    with contextlib.closing(sqlite3.connect(out)) as con:
        refs = {r[0] for r in con.execute("SELECT store FROM gis_export")}
    assert refs == {"store.gpkg"}
    data = out.read_bytes()
    for folder in (tmp_path, tmp_path.resolve(), store.store_dir):
        assert str(folder).encode() not in data


# --- 13. photos that are not photos ----------------------------------------------------------


HEADS = {
    ".jpg": b"\xff\xd8\xff\xe1\x00\x10Exif",
    ".png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    ".webp": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    ".heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
    ".heif": b"\x00\x00\x00\x14ftypmif1\x00\x00\x00\x00mif1",
}


@pytest.mark.parametrize("ext", HEADS)
def test_photo_kind_by_content(ext):
    assert photo_kind(HEADS[ext]) == ext
    # HEIC whose major brand is mif1, with heic among the compatible brands
    assert photo_kind(b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1heicmiaf") == ".heic"


@pytest.mark.parametrize("head", [b"", b"hello, not a photo", b"<html><script>", b"%PDF-1.7",
                                  b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00isomavc1", b"RIFF\x00\x00\x00\x00WAVE"])
def test_not_photos_by_content(head):
    assert photo_kind(head) is None


def test_set_refuses_empty_files_and_non_images_named_jpg(store, tmp_path):
    aid = store.alerts()["alert_id"].iloc[0]
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    good = write_photo(tmp_path / "IMG_1.jpg")
    before = snapshot(store)
    for bad, why in ((empty, "empty"), (text, "not a photo")):
        with pytest.raises(PhotoError, match=why) as exc:
            set_alert(store, aid, status="dispatched", by="x", photos=[good, bad])
        assert exc.value.path == str(bad)
        res = gis("alerts", "set", aid, "--workspace", store.store_dir, "--status", "dispatched",
                  "--by", "x", "--photo", good, "--photo", bad)
        assert res.exit_code == 2 and bad.name in res.output and why in res.output
    assert snapshot(store) == before  # the good photo was not copied either


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_real_photos_are_stored_under_their_content_type(store, tmp_path, fmt):
    aid = store.alerts()["alert_id"].iloc[0]
    photo = write_photo(tmp_path / "IMG_0001.dat", fmt)  # the name says nothing
    ext = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}[fmt]
    assert check_photo(photo) == ext
    rel = set_alert(store, aid, status="dispatched", by="x", photos=[photo])["photos"]
    assert rel.endswith(ext) and (store.store_dir / rel).read_bytes() == photo.read_bytes()


def test_a_heic_photo_is_accepted(store, tmp_path):
    aid = store.alerts()["alert_id"].iloc[0]
    photo = tmp_path / "IMG_0002.HEIC"
    photo.write_bytes(HEADS[".heic"] + bytes(200))
    assert set_alert(store, aid, status="dispatched", by="x", photos=[photo])["photos"].endswith(".heic")


@pytest.mark.parametrize("content", [b"", b"just text", b"<svg onload=alert(1)>"])
def test_import_refuses_photos_that_are_not_photos(store, patrol, content):
    out, ids = patrol
    (out.parent / "DCIM").mkdir()
    (out.parent / "DCIM" / "IMG_9.jpg").write_bytes(content)
    edit(out, ids[0], status="illegal", photo="DCIM/IMG_9.jpg")
    before = snapshot(store)
    res = gis("alerts", "import", out, "--workspace", store.store_dir)
    assert res.exit_code == 2 and "IMG_9.jpg" in res.output
    assert ("empty" if not content else "not a photo") in res.output
    assert snapshot(store) == before
