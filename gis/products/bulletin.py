"""The weekly bulletin (周通报): one self-contained HTML page and an Excel file.

What the leaders and inspectors read each week: headline figures, per-project
and per-district tables (completion rate, clean-land rate, progress ratio,
counts left, overdue), the red list and black list (红黑榜), new alerts this
week by district and kind, growing alerts, alerts waiting for a verdict more
than the workspace's ``waiting_days`` (gis.toml), and a progress chart (PNG,
embedded as a data URI).

:func:`bulletin_tables` computes every table once; the HTML and the xlsx are
two renderings of the same tables, so they cannot disagree. Which alerts are
growing or waiting is decided by :func:`gis.alerts.identity.growing_alerts`
and :func:`gis.alerts.identity.waiting_for_verdict`, the rules of the weekly
summary too. Every word comes from :mod:`gis.labels`, and the workbook shows
every value in the bulletin's language (kinds, statuses, lists, yes/no).
Every text from the layers (names, notes, ids) is escaped in the HTML.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from gis.alerts.identity import growing_alerts, waiting_for_verdict
from gis.atomic import write_text_atomic
from gis.labels import BULLETIN_SHEETS, table, waiting_heading, yes_no
from gis.products import style
from gis.products.excel import DECIMAL, INTEGER, PERCENT, Sheet, write_workbook
from gis.schema import OPEN_ALERT_STATUSES
from gis.workspace import DEFAULT_THRESHOLDS

log = logging.getLogger(__name__)

__all__ = ["write_bulletin", "bulletin_tables", "write_bulletin_xlsx", "DEFAULT_WAITING_DAYS"]

#: Alerts without a verdict for more days than this are listed, unless the caller
#: passes the workspace's own ``thresholds.waiting_days``.
DEFAULT_WAITING_DAYS = int(DEFAULT_THRESHOLDS["waiting_days"])
PROJECT_COLUMNS = ["project_id", "name", "district", "total_mu", "acquired_mu", "delivered_mu",
                   "completion_rate", "clean_land_rate", "houses_left", "households_left", "graves_left",
                   "special_crops_left", "attachments_left", "deadline", "overdue", "progressed"]
DISTRICT_COLUMNS = ["rank", "district", "total_mu", "acquired_mu", "delivered_mu", "completion_rate",
                    "clean_land_rate", "projects", "projects_progressed", "progress_ratio",
                    "houses_left", "graves_left", "list"]
LIST_COLUMNS = ["rank", "district", "completion_rate", "clean_land_rate", "progress_ratio"]
ALERT_COLUMNS = ["alert_id", "kind", "status", "district", "project_id", "parcel_id", "area_m2", "area_mu",
                 "first_seen", "last_seen", "post_freeze", "status_since", "note"]
RATE_COLUMNS = {"completion_rate", "clean_land_rate", "progress_ratio"}
BOOL_COLUMNS = ("overdue", "progressed", "post_freeze")
#: Columns holding codes, and the label table that names them.
CODE_COLUMNS = {"kind": "kind", "status": "alert_status", "list": "list"}


def bulletin_tables(clearance, *, alerts=None, as_of=None, period_start=None, lang: str = "zh",
                    waiting_days: int = DEFAULT_WAITING_DAYS) -> dict[str, pd.DataFrame]:
    """Every table of the bulletin, in canonical (English) column names.

    ``waiting_days`` is the workspace's ``thresholds.waiting_days``: alerts without
    a verdict for more days than that are listed.
    """
    as_of = pd.Timestamp(as_of or getattr(clearance, "as_of", None) or dt.date.today()).normalize()
    start = pd.Timestamp(period_start).normalize() if period_start is not None else as_of - pd.Timedelta(days=6)
    projects = clearance.projects[[c for c in PROJECT_COLUMNS if c in clearance.projects.columns]].copy()
    districts = clearance.districts.sort_values("rank")
    districts = districts[[c for c in DISTRICT_COLUMNS if c in districts.columns]].copy()
    T = table("bulletin", lang)

    total = districts["total_mu"].sum()  # districts count land once (overlapping projects)
    acquired, delivered = districts["acquired_mu"].sum(), districts["delivered_mu"].sum()
    n_proj = len(projects)
    progressed = int(projects["progressed"].eq(True).sum()) if "progressed" in projects else 0
    overdue = int(projects["overdue"].eq(True).sum()) if "overdue" in projects else 0

    a = _alerts_frame(alerts)
    first = pd.to_datetime(a["first_seen"], errors="coerce")
    new = a[(first >= start) & (first <= as_of)]
    open_mask = a["status"].isin(OPEN_ALERT_STATUSES)
    waiting = waiting_for_verdict(a, as_of, waiting_days)
    growing = growing_alerts(a)

    headline = pd.DataFrame({"figure": [T[k] for k in (
        "n_projects", "total_mu", "acquired_mu", "delivered_mu", "completion_rate", "clean_land_rate",
        "progress_ratio", "overdue_projects", "alerts_new", "alerts_open", "alerts_post_freeze")],
        "value": pd.Series(dtype=object, data=[n_proj, round(total, 2), round(acquired, 2), round(delivered, 2),
                  acquired / total if total else np.nan, delivered / total if total else np.nan,
                  progressed / n_proj if n_proj else np.nan, overdue, len(new), int(open_mask.sum()),
                  int((a["post_freeze"].astype(bool) & open_mask).sum())])})
    kinds = table("kind", lang)
    if len(new):
        by = pd.crosstab(new["district"].replace("", "-"), new["kind"].map(kinds).fillna(new["kind"]))
        by["total"] = by.sum(axis=1)
        by = by.reset_index()
    else:
        by = pd.DataFrame(columns=["district", "total"])
    lists = districts[districts["list"].isin(["red", "black"])] if "list" in districts else districts.iloc[:0]
    return {
        "headline": headline,
        "projects": projects,
        "districts": districts,
        "red_list": lists.loc[lists["list"] == "red", [c for c in LIST_COLUMNS if c in lists]],
        "black_list": lists.loc[lists["list"] == "black", [c for c in LIST_COLUMNS if c in lists]],
        "new_alerts": by,
        "growing": growing[[c for c in ALERT_COLUMNS if c in growing.columns]],
        "waiting": waiting[[c for c in ALERT_COLUMNS + ["waiting_days"] if c in waiting.columns]],
        "_period": pd.DataFrame({"start": [start.date()], "end": [as_of.date()],
                                 "waiting_days": [int(waiting_days)]}),
    }


def _alerts_frame(alerts) -> pd.DataFrame:
    cols = {"alert_id": "", "kind": "", "status": "", "district": "", "project_id": "", "parcel_id": "",
            "area_m2": 0.0, "area_mu": 0.0, "first_seen": "", "last_seen": "", "post_freeze": False,
            "growing": False, "status_since": "", "note": ""}
    if alerts is None:
        return pd.DataFrame({k: pd.Series(dtype=type(v)) for k, v in cols.items()})
    a = pd.DataFrame(alerts.drop(columns="geometry", errors="ignore")).copy()
    for k, v in cols.items():
        if k not in a:
            a[k] = v
    a[["post_freeze", "growing"]] = a[["post_freeze", "growing"]].fillna(False).astype(bool)
    for k in ("status_since", "first_seen", "last_seen", "note", "district"):
        a[k] = a[k].fillna("").astype(str)
    return a


def write_bulletin(clearance, out_html, *, alerts=None, store_dir=None, xlsx=None, as_of=None,
                   lang: str = "zh", period_start=None, waiting_days: int = DEFAULT_WAITING_DAYS) -> Path:
    """Write the bulletin HTML (and the xlsx when asked); returns the HTML path.

    ``waiting_days`` is the workspace's ``thresholds.waiting_days`` (see :func:`bulletin_tables`).
    """
    tables = bulletin_tables(clearance, alerts=alerts, as_of=as_of, period_start=period_start, lang=lang,
                             waiting_days=waiting_days)
    chart = _progress_chart(tables["projects"], lang)
    page = _html(tables, chart, lang)
    out = write_text_atomic(out_html, page)
    if xlsx is not None:
        write_bulletin_xlsx(tables, xlsx, lang=lang)
    log.info("wrote bulletin %s", out)
    return Path(out)


# --- rendering -----------------------------------------------------------------------


def _display(df: pd.DataFrame, lang: str) -> pd.DataFrame:
    """Values as people read them: rates in %, mu to 2 decimals, yes/no, labels."""
    T, out = table("bulletin", lang), _labelled(df, lang)
    for c in out.columns:
        if c in RATE_COLUMNS:
            out[c] = out[c].map(lambda v: "" if pd.isna(v) else f"{100 * v:.1f}%")
        elif c.endswith("_mu") or c == "area_m2":
            out[c] = out[c].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
        elif c.endswith("_left"):
            out[c] = out[c].map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
        elif c in BOOL_COLUMNS:
            out[c] = out[c].map(lambda v: yes_no(v, lang))
        elif c == "deadline":
            out[c] = pd.to_datetime(out[c]).dt.strftime("%Y-%m-%d").fillna("")
    if "figure" in out:  # the headline mixes rates, areas and counts in one column
        rates = {T[k] for k in RATE_COLUMNS}
        out["value"] = ["" if pd.isna(v) else f"{100 * v:.1f}%" if f in rates
                        else f"{v:,.2f}" if isinstance(v, float) else f"{v}"
                        for f, v in zip(df["figure"], df["value"])]
    return out


def _labelled(df: pd.DataFrame, lang: str) -> pd.DataFrame:
    """A copy with the code columns (kind, alert status, red/black list) in words."""
    out = df.copy()
    for col, name in CODE_COLUMNS.items():
        if col in out:
            out[col] = out[col].map(table(name, lang)).fillna(out[col])
    return out


def _table_html(df: pd.DataFrame, lang: str, *, row_class=None) -> str:
    if not len(df):
        return f"<p class='none'>{html.escape(table('bulletin', lang)['none'])}</p>"
    head = table("header", lang)
    shown = _display(df, lang)
    th = "".join(f"<th>{html.escape(str(head.get(c, c)))}</th>" for c in shown.columns)
    rows = []
    for i, (_, r) in enumerate(shown.iterrows()):
        cls = f" class='{row_class[i]}'" if row_class is not None and row_class[i] else ""
        tds = "".join(f"<td>{html.escape('' if pd.isna(v) else str(v))}</td>" if not isinstance(v, str)
                      else f"<td>{html.escape(v)}</td>" for v in r.tolist())
        rows.append(f"<tr{cls}>{tds}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _progress_chart(projects: pd.DataFrame, lang: str) -> str:
    """Horizontal bars per project (completion and clean-land rate) as a PNG data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gis.products.staticmap import font_for

    T = table("bulletin", lang)
    family = font_for(lang)
    p = projects.sort_values("completion_rate", ascending=True)
    names = [str(n) if pd.notna(n) and str(n) else str(i) for n, i in zip(p.get("name", p["project_id"]),
                                                                        p["project_id"])]
    y = np.arange(len(p))
    with plt.rc_context({"font.family": family, "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(p) + 1.4), dpi=110)
        ax.barh(y + 0.2, p["completion_rate"].fillna(0) * 100, 0.4, color=style.COMPLETION_COLOUR,
                label=T["completion_rate"])
        ax.barh(y - 0.2, p["clean_land_rate"].fillna(0) * 100, 0.4, color=style.CLEAN_LAND_COLOUR,
                label=T["clean_land_rate"])
        ax.set_yticks(y, names)
        overdue = p["overdue"].fillna(False).astype(bool).to_numpy() if "overdue" in p else np.zeros(len(p), bool)
        for tick, late in zip(ax.get_yticklabels(), overdue):
            tick.set_color("#b30000" if late else "black")
        ax.set_xlim(0, 100)
        ax.set_xlabel("%")
        ax.set_title(T["chart"])
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


CSS = """
body { font: 14px/1.5 "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", sans-serif;
  margin: 24px auto; max-width: 1200px; color: #222; padding: 0 16px; }
h1 { text-align: center; color: #8b1a1a; margin-bottom: 4px; }
.meta { text-align: center; color: #555; margin-bottom: 20px; }
h2 { border-left: 5px solid #8b1a1a; padding-left: 8px; font-size: 18px; margin-top: 28px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 3px 6px; text-align: center; }
td { white-space: nowrap; } td:nth-child(2) { white-space: normal; }
th { background: #f3e6e6; }
tr.overdue td { color: #b30000; }
.lists { display: flex; gap: 24px; } .lists > div { flex: 1; }
.lists h3.red { color: #b30000; } .lists h3.black { color: #111; }
.headline table { width: auto; min-width: 420px; } .headline td:first-child { text-align: left; }
.none { color: #777; } .note { color: #777; font-size: 12px; }
img.chart { max-width: 100%; display: block; margin: 8px auto; }
"""


def _html(t: dict[str, pd.DataFrame], chart: str, lang: str) -> str:
    T = table("bulletin", lang)
    esc = html.escape
    period = t["_period"].iloc[0]
    overdue = (["overdue" if bool(v) else "" for v in t["projects"]["overdue"].fillna(False)]
               if "overdue" in t["projects"] else None)
    parts = [
        f"<h1>{esc(T['title'])}</h1>",
        f"<div class='meta'>{esc(T['period'])}: {esc(str(period['start']))} ~ {esc(str(period['end']))}"
        f" &nbsp; {esc(T['made'])}: {esc(dt.date.today().isoformat())}</div>",
        f"<h2>{esc(T['headline'])}</h2><div class='headline'>{_table_html(t['headline'], lang)}</div>",
        f"<img class='chart' alt='{esc(T['chart'])}' src='{chart}'>",
        f"<h2>{esc(T['projects'])}</h2>{_table_html(t['projects'], lang, row_class=overdue)}"
        f"<p class='note'>{esc(T['overdue_note'])}</p>",
        f"<h2>{esc(T['districts'])}</h2>{_table_html(t['districts'], lang)}",
        f"<h2>{esc(T['lists'])}</h2><div class='lists'>"
        f"<div><h3 class='red'>{esc(T['red'])}</h3>{_table_html(t['red_list'], lang)}</div>"
        f"<div><h3 class='black'>{esc(T['black'])}</h3>{_table_html(t['black_list'], lang)}</div></div>",
        f"<h2>{esc(T['new_alerts'])}</h2>{_table_html(t['new_alerts'], lang)}",
        f"<h2>{esc(T['growing'])}</h2>{_table_html(t['growing'], lang)}",
        f"<h2>{esc(waiting_heading(int(period['waiting_days']), lang))}</h2>{_table_html(t['waiting'], lang)}",
    ]
    return (f"<!DOCTYPE html>\n<html lang='{'zh-CN' if lang == 'zh' else 'en'}'><head><meta charset='utf-8'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">"
            f"<title>{esc(T['title'])} {esc(str(period['end']))}</title><style>{CSS}</style></head>"
            f"<body>{''.join(parts)}</body></html>\n")


def write_bulletin_xlsx(tables: dict[str, pd.DataFrame], out, *, lang: str = "zh") -> Path:
    """The bulletin's tables, one sheet each, through the one safe writer of :mod:`gis.products.excel`."""
    head, names = table("header", lang), table("sheet", lang)
    sheets = [Sheet(names[key], _xlsx_frame(tables[key], lang), head,
                    {"value": _headline_formats(tables[key], lang)} if key == "headline" else {})
              for key in BULLETIN_SHEETS]
    return write_workbook(out, sheets, lang=lang)


def _xlsx_frame(df: pd.DataFrame, lang: str) -> pd.DataFrame:
    """Deadlines as dates; kinds, alert statuses and lists in the bulletin's language
    (yes/no are the writer's); the rest as computed."""
    out = _labelled(df, lang)
    if "deadline" in out:
        out["deadline"] = pd.to_datetime(out["deadline"]).dt.date
    return out


def _headline_formats(headline: pd.DataFrame, lang: str) -> list[str]:
    """The headline mixes rates, areas and counts in one column: a format per row."""
    T = table("bulletin", lang)
    rates = {T[k] for k in RATE_COLUMNS}
    return [PERCENT if f in rates else DECIMAL if isinstance(v, float) else INTEGER
            for f, v in zip(headline["figure"], headline["value"])]
