"""`gis alerts evidence`: the evidence pack (违法建设证据材料) of an illegal alert, as a PDF.

The PDF is read back with poppler (`pdftotext`, `pdfinfo`) and its first page
kept as a PNG under test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from pyproj import Transformer
from shapely.geometry import Point

from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in, write_photo
from gis.alerts.lifecycle import set_alert
from gis.alerts.photos import exif_facts
from gis.cli import main
from gis.errors import InputError
from gis.products.evidence import check_alert_id
from gis.weekly import run_weekly
from gis.workspace import load_workspace
from mapsdata import artifact


NOTE = "新建砖房两层 <b>x</b> =1+1 **y**"


def gps_photo(path: Path, lon: float, lat: float, seed: int = 3) -> Path:
    """A JPEG with EXIF DateTimeOriginal and GPS, as a phone writes it."""
    im = Image.fromarray(np.random.default_rng(seed).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2026:04:16 09:30:00"
    gps = exif.get_ifd(0x8825)

    def dms(v: float) -> tuple[float, float, float]:
        d, m = int(v), int((v - int(v)) * 60)
        return (float(d), float(m), (v - d - m / 60) * 3600)

    gps[1], gps[2], gps[3], gps[4] = "N", dms(lat), "E", dms(lon)
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif)
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Three alerts in P01 (东城区): two illegal (one with a note and photos), one new."""
    tmp = tmp_path_factory.mktemp("evidence")
    root = make_workspace(tmp / "ws", freeze_dates={"P01": dt.date(2026, 3, 1)})
    a1, a2, a3 = (spot_in(root, "P01", 20), spot_in(root, "P01", 16, dx=-120), spot_in(root, "P01", 16, dx=120))
    grown = spot_in(root, "P01", 26)
    det = FakeDetect({DATES[1].isoformat(): changes(("new_structure", a1), ("new_structure", a2),
                                                    ("new_structure", a3)),
                      DATES[2].isoformat(): changes(("new_structure", grown))})
    run_weekly(root, DATES[1], detect=det, maps=False)
    run_weekly(root, DATES[2], detect=det, maps=False)
    ws = load_workspace(root)
    store = ws.open_store()
    alerts = store.alerts()
    ids = list(alerts["alert_id"])
    assert len(ids) == 3 and set(alerts["project_id"]) == {"P01"}
    main_id = alerts.loc[alerts.geometry.intersects(a1), "alert_id"].iloc[0]
    other_id = next(i for i in ids if i != main_id)
    c = alerts.set_index("alert_id").loc[main_id, "geometry"].centroid
    to_lonlat = Transformer.from_crs(ws.working_crs, "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(c.x, c.y)
    away = gps_photo(tmp / "IMG_0003.jpg", *to_lonlat.transform(c.x + 60, c.y), seed=4)
    for aid in (main_id, other_id):
        set_alert(store, aid, status="dispatched", by="调度员")
    set_alert(store, main_id, status="illegal", by="张三", note=NOTE,
              photos=[gps_photo(tmp / "IMG_0001.jpg", lon, lat), write_photo(tmp / "IMG_0002.png", "PNG"), away])
    set_alert(store, other_id, status="illegal", by="李四")
    facts = exif_facts(away.read_bytes())
    x, y = Transformer.from_crs("EPSG:4326", ws.working_crs, always_xy=True).transform(facts["lon"], facts["lat"])
    return {"root": root, "tmp": tmp, "main": main_id, "other": other_id,
            "away_m": store.alert(main_id).geometry.distance(Point(x, y)),
            "new": next(i for i in ids if i not in (main_id, other_id)),
            "alert": store.alert(main_id)}


def tamper(root: Path, which: str, **values) -> None:
    """Change an alert's columns behind the lifecycle's back (as a hand edit of the store would)."""
    store = load_workspace(root).open_store()
    with store.transaction(by="test") as tx:
        tx.update(which, values, rev=int(store.alert(which)["rev"]), bump=False)


def gis(*args, code: int = 0):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == code, res.output
    return res


def poppler(tool: str, *args) -> str:
    """Run a poppler tool; a missing one is an error, not a skip: `make system` installs it."""
    exe = shutil.which(tool)
    if exe is None:
        pytest.fail(f"{tool} not found: install poppler-utils (`make system`)")
    return subprocess.run([exe, *map(str, args)], check=True, capture_output=True, text=True).stdout


def pdf_text(path: Path) -> str:
    """The text in the order it was written (table cells whole, not interleaved by position)."""
    return poppler("pdftotext", "-raw", path, "-")


def pages(path: Path) -> int:
    info = poppler("pdfinfo", path)
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


def test_evidence_pack_of_an_illegal_alert(built, tmp_path):
    aid, a = built["main"], built["alert"]
    out = tmp_path / f"{aid}.pdf"
    res = gis("alerts", "evidence", aid, "--workspace", built["root"], "--out", out)
    assert str(out) in res.output
    assert out.read_bytes().startswith(b"%PDF-") and pages(out) <= 2
    text = pdf_text(out)
    flat = "".join(text.split())
    assert "违法建设证据材料" in text and f"案件编号：{aid}" in text
    assert f"{a['area_mu']:.2f}亩" in flat and f"{a['area_m2']:,.1f}m²" in flat
    assert "P01" in text and "金沙大道" in text and "东城区" in text and str(a["parcel_id"]) in text
    # the freeze date and whether the change appeared after it
    assert a["post_freeze"] and "是：冻结日期2026-03-01；前期2026-02-15影像未见，2026-03-15影像首次发现，" \
        "变化出现在冻结日之后" in flat
    # coordinates: projected CGCS2000 and lon/lat (EPSG:4490)
    c = a.geometry.centroid
    assert f"E{c.x:,.2f}m，N{c.y:,.2f}m" in flat and "EPSG:4547" in flat and "EPSG:4490" in flat
    # the verdict history (who, what) and the note, printed as typed (no markup)
    assert "调度员" in text and "张三" in text
    assert "状态：新发现→已派发" in flat and "状态：已派发→违法" in flat and "核查结论：违法" in flat
    assert "<b>x</b>=1+1**y**" in flat
    # the photos: embedded, with their time, position and distance from the alert
    assert "IMG_0001.jpg" in text and "IMG_0002.png" in text
    assert "拍摄时间：2026-04-1609:30:00" in flat and "与图斑距离：0m（位于图斑内）" in flat
    assert 40 < built["away_m"] < 55 and f"与图斑距离：{built['away_m']:,.0f}m" in flat
    assert "照片未记录位置" in flat  # the PNG has no GPS
    images = poppler("pdfimages", "-list", out)
    assert len(images.strip().splitlines()) - 2 >= 1 + 4 + 3  # map, 4 chips, 3 photos
    # the chips of the first sighting and of the latest
    for caption in ("首次发现·前期2026-02-15", "首次发现·后期2026-03-15", "最近一期·后期2026-04-15"):
        assert caption in flat
    assert "图片缺失" not in flat
    png = artifact(f"evidence_{aid}")
    poppler("pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", out, png)
    assert Path(f"{png}-1.png").stat().st_size > 10_000


def test_missing_chip_and_photo_are_said_in_the_pack(built, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(built["root"], root)
    aid = built["main"]
    (root / f"chips/{aid}_2026-03-15_after.png").unlink()
    tamper(root, aid, photos=f"photos/{'0' * 64}.jpg")  # a photo neither in the store nor its folder
    out = tmp_path / "pack.pdf"
    gis("alerts", "evidence", aid, "--workspace", root, "--out", out)
    flat = "".join(pdf_text(out).split())
    # the 2026-03-15 chip is the after of the first sighting and the before of the latest; the photo
    assert flat.count("图片缺失") == 3 and "首次发现·后期2026-03-15" in flat


def test_unknown_alert_and_protected_output(built, tmp_path):
    res = gis("alerts", "evidence", "A20990101-0001", "--workspace", built["root"], "--out",
              tmp_path / "x.pdf", code=2)
    assert "A20990101-0001" in res.output and "gis alerts list" in res.output
    assert not (tmp_path / "x.pdf").exists()
    res = gis("alerts", "evidence", built["main"], "--workspace", built["root"], "--out",
              built["root"] / "gis.toml", code=2)
    assert "gis.toml" in res.output
    (tmp_path / "table.xlsx").write_bytes(b"PK\x03\x04 not a pdf")
    gis("alerts", "evidence", built["main"], "--workspace", built["root"], "--out", tmp_path / "table.xlsx",
        code=2)


def test_batch_writes_one_pack_per_illegal_alert(built, tmp_path):
    out = tmp_path / "packs"
    res = gis("alerts", "evidence", "--workspace", built["root"], "--district", "东城区",
              "--status", "illegal", "--out", out)
    assert "2 evidence packs" in res.output
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{i}.pdf" for i in (built["main"], built["other"]))
    assert built["other"] in pdf_text(out / f"{built['other']}.pdf")
    res = gis("alerts", "evidence", "--workspace", built["root"], "--district", "西城区", "--out", tmp_path / "none")
    assert "0 evidence packs" in res.output


@pytest.mark.parametrize("bad", ["../x", "a/b", "a\\b", "", ".hidden", "A..B", "C:x", "a\x00b"])
def test_alert_ids_with_path_characters_are_refused(bad):
    with pytest.raises(InputError, match="path characters"):
        check_alert_id(bad)
    assert check_alert_id("A20260415-0003") == "A20260415-0003"


def test_batch_refuses_a_stored_id_with_path_characters(built, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(built["root"], root)
    tamper(root, built["other"], alert_id="../../evil")
    out = tmp_path / "packs"
    res = gis("alerts", "evidence", "--workspace", root, "--out", out, code=2)
    assert "../../evil" in res.output
    assert not out.exists() or not any(out.iterdir())
    assert not (tmp_path / "evil.pdf").exists()
