"""The weekly bulletin as one self-contained HTML page (with its progress chart).

Renders the tables of :func:`gis.products.bulletin.bulletin_tables`: the
heading (期号, issuing office and date, period, the surveys compared), a two or
three sentence summary written from the figures (:func:`summary_text`), the
headline with each figure's scope (本周 / 累计), the tables, the rule of the
red and black lists under them (:func:`rule_text`) and a chart (PNG, embedded
as a data URI). Values are shown as the workbook shows them, through the one
cell formatter :func:`gis.products.cells.format_cell` (also the served figures
page's): rates ``0.0%``, mu to two decimals, counts rounded half up, yes/no,
days and codes in words. Every text from the layers (names, notes, ids) is
escaped.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd

from gis.labels import HEADERS, table, waiting_heading
from gis.products import style
from gis.products.cells import CODE_COLUMNS, percent, shown_frame

__all__ = ["bulletin_html", "summary_text", "rule_text", "labelled"]


def labelled(df: pd.DataFrame, lang: str) -> pd.DataFrame:
    """A copy with the code columns (kind, alert status, red/black list) in words."""
    out = df.copy()
    for col, name in CODE_COLUMNS.items():
        if col in out:
            out[col] = out[col].map(table(name, lang)).fillna(out[col])
    return out


def _pct(v) -> str:
    """A rate of the summary sentences, as the tables show it."""
    return percent(v)


def _table_html(df: pd.DataFrame, lang: str, *, row_class=None) -> str:
    if not len(df):
        return f"<p class='none'>{html.escape(table('bulletin', lang)['none'])}</p>"
    head = table("header", lang)
    shown = shown_frame(df, lang)
    th = "".join(f"<th>{html.escape(str(head.get(c, c)))}</th>" for c in shown.columns)
    rows = []
    for i, (_, r) in enumerate(shown.iterrows()):
        cls = f" class='{row_class[i]}'" if row_class is not None and row_class[i] else ""
        tds = "".join(f"<td>{html.escape('' if not isinstance(v, str) and pd.isna(v) else str(v))}</td>"
                      for v in r.tolist())
        rows.append(f"<tr{cls}>{tds}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def rule_text(period: pd.Series, lang: str) -> str:
    """The red/black list rule in words, with the districts the overdue rule kept off the red list."""
    T = table("bulletin", lang)
    n = int(period["n_list"])
    figure = HEADERS[lang].get(period["rank_by"], period["rank_by"])
    share = period["list_share"]
    if share is not None and not pd.isna(share):
        pct = f"{100 * float(share):.0f}%"
        top, bottom = T["rule_share"].format(pct=pct, n=n), T["rule_black_share"].format(pct=pct, n=n)
    else:
        top, bottom = T["rule_count"].format(n=n), T["rule_black_count"].format(n=n)
    text = T["rule"].format(figure=figure, top=top, bottom=bottom)
    if bool(period["overdue_off_red"]):
        names = [d for d in str(period["excluded"]).split("\t") if d]
        which = T["rule_excluded"].format(names=T["sep"].join(names)) if names else ""
        text += T["rule_overdue"].format(which=which)
    return text


def summary_text(t: dict[str, pd.DataFrame], lang: str) -> str:
    """Two or three sentences from the figures: what moved this week, the totals, who is behind."""
    T = table("bulletin", lang)
    v = t["_values"].iloc[0]
    period = t["_period"].iloc[0]
    sep = T["sep"]

    def names(df: pd.DataFrame, limit: int = 4) -> str:
        if not len(df):
            return ""
        shown = [str(n) if pd.notna(n) and str(n) else str(i) for n, i in zip(df["name"], df["project_id"])]
        more = "…" if len(shown) > limit else ""
        return T["sum_names"].format(names=sep.join(shown[:limit]) + more)

    projects, schedule = t["projects"], t["schedule"]
    black = t["black_list"]["district"].tolist()
    return "".join([
        T["sum_week"].format(start=period["start"], end=period["end"], new=int(v["alerts_new"]),
                             post=int(v["alerts_new_post_freeze"]),
                             moved=int(projects["progressed"].eq(True).sum()) if "progressed" in projects else 0,
                             ratio=_pct(v["progress_ratio"]) or "-"),
        " " if lang == "en" else "",
        T["sum_total"].format(completion=_pct(v["completion_rate"]) or "-", clean=_pct(v["clean_land_rate"]) or "-",
                              open=int(v["alerts_open"])),
        " " if lang == "en" else "",
        T["sum_behind"].format(overdue=int(v["overdue_projects"]),
                               overdue_names=names(projects[projects["overdue"].eq(True)]),
                               behind_part=T["sum_behind_part"].format(
                                   behind=int(v["behind_projects"]),
                                   behind_names=names(schedule[schedule["behind_schedule"].eq(True)]))
                               if len(schedule) else T["sum_no_schedule"],
                               black=sep.join(black) if black else T["none"]),
    ])


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
.number { text-align: center; font-size: 15px; margin: 0; }
.meta { text-align: center; color: #555; margin-bottom: 12px; }
.summary { border: 1px solid #d8b4b4; background: #fbf5f5; padding: 8px 14px; margin: 12px 0 20px; }
.summary h2 { border: 0; padding: 0; margin: 0 0 4px; font-size: 16px; }
h2 { border-left: 5px solid #8b1a1a; padding-left: 8px; font-size: 18px; margin-top: 28px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 3px 6px; text-align: center; }
td { white-space: nowrap; } td:nth-child(2) { white-space: normal; }
th { background: #f3e6e6; }
tr.overdue td { color: #b30000; }
.lists { display: flex; gap: 24px; } .lists > div { flex: 1; }
.lists h3.red { color: #b30000; } .lists h3.black { color: #111; }
.headline table { width: auto; min-width: 480px; } .headline td:nth-child(2) { text-align: left; }
.none { color: #777; } .note { color: #666; font-size: 12px; }
img.chart { max-width: 100%; display: block; margin: 8px auto; }
"""


def bulletin_html(t: dict[str, pd.DataFrame], lang: str) -> str:
    """The bulletin page of the tables ``t``."""
    T = table("bulletin", lang)
    esc = html.escape
    period = t["_period"].iloc[0]
    overdue = (["overdue" if bool(v) else "" for v in t["projects"]["overdue"].fillna(False)]
               if "overdue" in t["projects"] else None)
    number = (f"<p class='number'>{esc(T['number'].format(year=period['end'].year, n=int(period['number'])))}</p>"
              if period["number"] else "")
    issued = [f"{esc(T['office'])}: {esc(str(period['office']))}"] if period["office"] else []
    issued.append(f"{esc(T['issued'])}: {esc(str(period['end']))}")
    compared = (T["compared_dates"].format(before=period["before"], after=period["after"])
                if period["before"] and period["after"] else T["no_compare"])
    meta = (f"{esc(T['period'])}: {esc(str(period['start']))} ~ {esc(str(period['end']))}"
            f" ({esc(T['days'].format(n=int(period['days'])))}) &nbsp; {esc(T['compared'])}: {esc(compared)}")
    schedule = (f"{_table_html(t['schedule'], lang)}<h3>{esc(T['schedule_districts'])}</h3>"
                f"{_table_html(t['schedule_districts'], lang)}<p class='note'>{esc(T['schedule_note'])}</p>"
                if len(t["schedule"]) else f"<p class='none'>{esc(T['schedule_none'])}</p>")
    rounding = table("text", lang)["rounding_note"]
    parts = [
        f"<h1>{esc(T['title'])}</h1>{number}",
        f"<div class='meta'>{' &nbsp; '.join(issued)}<br>{meta}</div>",
        f"<div class='summary' id='summary'><h2>{esc(T['summary'])}</h2><p>{esc(summary_text(t, lang))}</p></div>",
        f"<h2>{esc(T['headline'])}</h2><div class='headline'>{_table_html(t['headline'], lang)}</div>",
        f"<img class='chart' alt='{esc(T['chart'])}' src='{_progress_chart(t['projects'], lang)}'>",
        f"<h2>{esc(T['projects'])}</h2>{_table_html(t['projects'], lang, row_class=overdue)}"
        f"<p class='note'>{esc(T['overdue_note'])} {esc(rounding)}</p>",
        f"<h3 id='schedule'>{esc(T['schedule'])}</h3>{schedule}",
        f"<h2>{esc(T['districts'])}</h2>{_table_html(t['districts'], lang)}",
        f"<h2>{esc(T['lists'])}</h2><div class='lists'>"
        f"<div><h3 class='red'>{esc(T['red'])}</h3>{_table_html(t['red_list'], lang)}</div>"
        f"<div><h3 class='black'>{esc(T['black'])}</h3>{_table_html(t['black_list'], lang)}</div></div>"
        f"<p class='note' id='list-rule'>{esc(rule_text(period, lang))}</p>",
        f"<h2>{esc(T['new_alerts'])}</h2>{_table_html(t['new_alerts'], lang)}",
        f"<h2>{esc(T['growing'])}</h2>{_table_html(t['growing'], lang)}",
        f"<h2>{esc(waiting_heading(int(period['waiting_days']), lang))}</h2>{_table_html(t['waiting'], lang)}",
    ]
    return (f"<!DOCTYPE html>\n<html lang='{'zh-CN' if lang == 'zh' else 'en'}'><head><meta charset='utf-8'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">"
            f"<title>{esc(T['title'])} {esc(str(period['end']))}</title><style>{CSS}</style></head>"
            f"<body>{''.join(parts)}</body></html>\n")
