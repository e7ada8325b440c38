"""One home for the domain's words (gis.labels) and codes (gis.schema), and rules computed once.

The words people read are defined in gis/labels.py and nowhere else in the
package; every code has its word in both languages and its colour; the weekly
summary and the bulletin list the same alerts as waiting for a verdict, with
the workspace's own threshold.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import gis
from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in, spot_outside
from gis import labels, schema
from gis.alerts.identity import growing_alerts, is_growing, waiting_for_verdict
from gis.alerts.lifecycle import TRANSITIONS, set_alert
from gis.alerts.store import open_store
from gis.errors import InputError
from gis.products import style
from gis.products.bulletin import bulletin_tables
from gis.products.excel import HEADER_ROW
from gis.weekly import run_weekly

PACKAGE = Path(gis.__file__).resolve().parent
LABELS_PY = PACKAGE / "labels.py"


def _words() -> set[str]:
    """The Chinese words for statuses, alert statuses, kinds, lists and sheets."""
    out: set[str] = set()
    for tab in (labels.STATUS, labels.ALERT_STATUS, labels.KIND, labels.LIST, labels.SHEETS):
        out |= set(tab["zh"].values())
    return out


def _string_constants(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_status_and_sheet_words_are_defined_in_labels_only():
    words = _words()
    assert {"已派发", "已销号", "净地交付", "已签约", "新增建筑", "红榜", "项目进度"} <= words
    assert words <= _string_constants(LABELS_PY)
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == LABELS_PY:
            continue
        for word in words & _string_constants(path):
            found.setdefault(word, []).append(str(path.relative_to(PACKAGE)))
    for path in sorted((PACKAGE / "assets").glob("*.js")):
        text = path.read_text(encoding="utf-8")
        for word in words:
            if re.search(rf"""['"`]{re.escape(word)}['"`]""", text):
                found.setdefault(word, []).append(str(path.relative_to(PACKAGE)))
    assert not found, f"words defined outside gis/labels.py: {found}"


def _literal_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            counts[node.value] = counts.get(node.value, 0) + 1
    return counts


def test_status_words_are_written_once_in_labels():
    """Other tables (map, office pages) take the status words from the status tables."""
    counts = _literal_counts(LABELS_PY)
    twice = {w: counts[w] for tab in (labels.STATUS, labels.ALERT_STATUS, labels.KIND)
             for w in tab["zh"].values() if counts[w] > 1}
    # 已拆除 names both a demolished parcel and a demolished illegal building
    assert twice == {labels.STATUS["zh"]["demolished"]: 2}
    assert labels.STATUS["zh"]["demolished"] == labels.ALERT_STATUS["zh"]["demolished"]


def test_a_closed_alert_has_one_chinese_name():
    assert labels.label("alert_status", "closed") == "已销号"
    for name in vars(labels).values():  # every table that names the closed status agrees
        if isinstance(name, dict) and isinstance(name.get("zh"), dict) and "closed" in name["zh"]:
            assert name["zh"]["closed"] == "已销号"


@pytest.mark.parametrize("lang", labels.LANGS)
def test_every_code_has_a_word_and_a_colour(lang):
    assert set(labels.STATUS[lang]) == set(schema.STATUSES) == set(style.STATUS_COLOURS)
    assert set(labels.ALERT_STATUS[lang]) == set(schema.ALERT_STATUSES) == set(style.ALERT_STATUS_COLOURS)
    assert set(labels.KIND[lang]) == set(schema.ALERT_KINDS) == set(style.KIND_COLOURS)
    for tab in (labels.TEXT, labels.HEADERS, labels.BULLETIN, labels.SHEETS, labels.LIST):
        assert set(tab[lang]) == set(tab["zh"])  # both languages say the same things
    assert set(labels.BULLETIN_SHEETS) <= set(labels.SHEETS[lang])


def test_alert_status_sets_are_built_from_the_codes():
    codes = set(schema.ALERT_STATUSES)
    assert set(TRANSITIONS) == codes and all(set(v) <= codes for v in TRANSITIONS.values())
    assert set(schema.OPEN_ALERT_STATUSES) | set(schema.SETTLED_ALERT_STATUSES) == codes
    assert not set(schema.OPEN_ALERT_STATUSES) & set(schema.SETTLED_ALERT_STATUSES)
    assert set(schema.WAITING_FOR_VERDICT) <= set(schema.OPEN_ALERT_STATUSES)
    assert set(schema.VERDICT_STATUSES) <= codes


def test_status_labels_are_accepted_as_aliases():
    for lang in labels.LANGS:
        for code, word in labels.STATUS[lang].items():
            assert schema.STATUS_ALIASES[word.lower()] == code


def test_label_api():
    assert labels.label("kind", "new_crops", "en") == "new crops"
    assert labels.label("alert_status", "spelt_its_own_way") == "spelt_its_own_way"
    assert labels.label("alert_status", "") == ""
    assert labels.table("status", "zh")["delivered"] == "净地交付"
    assert [labels.yes_no(v, "zh") for v in (True, False, None, float("nan"), pd.NA)] == ["是", "否", "", "", ""]
    assert labels.waiting_heading(10) == "七、超过10天未核查的预警"
    with pytest.raises(InputError, match="--lang zh or --lang en"):
        labels.table("kind", "fr")
    with pytest.raises(KeyError):
        labels.table("no_such_table", "zh")


def _alerts(as_of: dt.date, waits: dict[str, tuple[str, int]]) -> pd.DataFrame:
    rows = [{"alert_id": aid, "status": st, "status_since": (as_of - dt.timedelta(days=d)).isoformat(),
             "first_seen": "2026-01-01", "growing": False} for aid, (st, d) in waits.items()]
    return pd.DataFrame(rows)


def test_waiting_rule_counts_more_than_the_threshold():
    day = dt.date(2026, 5, 1)
    a = _alerts(day, {"A": ("new", 11), "B": ("dispatched", 10), "C": ("dispatched", 6),
                      "D": ("illegal", 30), "E": ("new", 40)})
    a.loc[a["alert_id"] == "E", "status_since"] = ""  # falls back to first_seen
    got = waiting_for_verdict(a, day, 10)
    assert list(got["alert_id"]) == ["E", "A"] and list(got["waiting_days"]) == [120, 11]
    assert list(waiting_for_verdict(a, day, 3)["alert_id"]) == ["E", "A", "B", "C"]
    assert waiting_for_verdict(a.iloc[:0], day, 3).empty


def test_growing_rule():
    a = _alerts(dt.date(2026, 5, 1), {"A": ("new", 1), "B": ("closed", 1), "C": ("illegal", 1)})
    a["growing"] = [True, True, False]
    assert list(growing_alerts(a)["alert_id"]) == ["A"]
    assert list(is_growing([121.0, 120.0], [100.0, 100.0], 0.2)) == [True, False]


def test_bulletin_and_weekly_summary_agree_on_waiting_alerts(tmp_path):
    """With waiting_days = 10 in gis.toml: the weekly summary, the bulletin it writes
    and ``gis report`` list the same alerts, and none waiting 10 days or fewer."""
    ws = make_workspace(tmp_path / "ws", thresholds={"waiting_days": 10})
    detect = FakeDetect({DATES[1].isoformat(): changes(("new_structure", spot_in(ws, "P01")),
                                                       ("new_crops", spot_in(ws, "P05", 60)),
                                                       ("new_structure", spot_outside(ws)))})
    run_weekly(ws, DATES[1], detect=detect, maps=False, today=dt.date(2026, 4, 1))
    store = open_store(ws / "store.gpkg")
    ids = sorted(store.alerts()["alert_id"])
    assert len(ids) == 3
    # 30 days since created (new), 10 days and 6 days since dispatched
    set_alert(store, ids[1], status="dispatched", by="test", today=dt.date(2026, 4, 21))
    set_alert(store, ids[2], status="dispatched", by="test", today=dt.date(2026, 4, 25))
    day = dt.date(2026, 5, 1)
    s = run_weekly(ws, DATES[1], detect=detect, today=day, out_dir=tmp_path / "out")
    assert s.waiting_days == 10
    assert [w["alert_id"] for w in s.waiting] == [ids[0]] and s.waiting[0]["days"] == 30

    sheet = labels.SHEETS["zh"]["waiting"]
    id_header = labels.HEADERS["zh"]["alert_id"]
    written = pd.read_excel(tmp_path / "out" / f"figures_{DATES[1].isoformat()}.xlsx", sheet_name=sheet, header=HEADER_ROW - 1)
    assert list(written[id_header]) == [w["alert_id"] for w in s.waiting]
    page = (tmp_path / "out" / f"bulletin_{DATES[1].isoformat()}.html").read_text(encoding="utf-8")
    assert labels.waiting_heading(10) in page

    # the library's default threshold (3) would list the dispatched ones too
    alerts = store.alerts()
    assert len(waiting_for_verdict(alerts, day, 3)) == 3

    from gis.cli import main

    out = tmp_path / "report"
    out.mkdir()
    r = CliRunner().invoke(main, ["report", "--workspace", str(ws), "--out", str(out / "b.html"),
                                  "--xlsx", str(out / "b.xlsx"), "--as-of", day.isoformat()])
    assert r.exit_code == 0, r.output
    reported = pd.read_excel(out / "b.xlsx", sheet_name=sheet, header=HEADER_ROW - 1)
    assert list(reported[id_header]) == [w["alert_id"] for w in s.waiting]


def test_bulletin_workbook_shows_kinds_and_statuses_in_chinese(tmp_path):
    import mapsdata

    county, c, alerts, store_dir, ortho = mapsdata.build(tmp_path)
    from gis.products.bulletin import write_bulletin

    xlsx = tmp_path / "b.xlsx"
    write_bulletin(c, tmp_path / "b.html", alerts=alerts, xlsx=xlsx, as_of=mapsdata.AS_OF)
    head = labels.HEADERS["zh"]
    for key in ("growing", "waiting"):
        sheet = pd.read_excel(xlsx, sheet_name=labels.SHEETS["zh"][key], header=HEADER_ROW - 1)
        assert len(sheet)
        assert set(sheet[head["kind"]]) <= set(labels.KIND["zh"].values())
        assert set(sheet[head["status"]]) <= set(labels.ALERT_STATUS["zh"].values())
        assert not any(str(h).isascii() for h in sheet.columns), list(sheet.columns)
    tables = bulletin_tables(c, alerts=alerts, as_of=mapsdata.AS_OF)
    assert set(tables["waiting"]["status"]) <= set(schema.WAITING_FOR_VERDICT)  # codes until shown
