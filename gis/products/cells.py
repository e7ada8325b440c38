"""Table cells as people read them: one formatter for the bulletin page and the served figures.

The bulletin's HTML page (:mod:`gis.products.bulletinpage`) and the figures
page of ``gis serve`` show a value of a column the same way, through
:func:`format_cell`: rates as percentages with one decimal (81.0%), mu with
two decimals and thousands separators (2,162.04), counts as whole numbers
(rounded half up, as Excel's ``0`` format shows them: 14.5 -> 15), yes/no as
是/否, codes (alert kind and status, red/black list) in words, and days as
YYYY-MM-DD. Which column is a rate, an area or a count is the workbooks'
:func:`gis.products.excel.column_format`, so a page and a workbook cannot
disagree about it.

The headline table mixes rates, areas and counts in its ``value`` column:
:func:`shown_frame` formats each of its cells by the figure of its row.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd

from gis.labels import label, table, yes_no
from gis.products.excel import DECIMAL, INTEGER, PERCENT, column_format, round_half_up

__all__ = ["format_cell", "column_kind", "percent", "shown_frame", "figure_keys",
           "BOOL_COLUMNS", "CODE_COLUMNS", "DATE_COLUMNS"]

#: Columns holding a truth value, shown as 是 / 否.
BOOL_COLUMNS = frozenset({"overdue", "progressed", "post_freeze", "behind_schedule"})
#: Columns holding codes, and the label table that names them.
CODE_COLUMNS = {"kind": "kind", "status": "alert_status", "list": "list"}
#: Columns holding a day (their time of day, if any, is not shown).
DATE_COLUMNS = frozenset({"deadline", "start_date", "freeze_date", "status_date", "first_seen", "last_seen",
                          "status_since"})


def column_kind(column: str) -> str:
    """How a column's values are shown: ``rate``, ``mu`` (two decimals), ``count``, ``yes_no``,
    ``date``, the label table of a code column (``kind``, ``alert_status``, ``list``) or ``""``."""
    fmt = column_format(column)
    if fmt == PERCENT:
        return "rate"
    if fmt == DECIMAL:
        return "mu"
    if fmt == INTEGER:
        return "count"
    if column in BOOL_COLUMNS:
        return "yes_no"
    if column in DATE_COLUMNS:
        return "date"
    return CODE_COLUMNS.get(column, "")


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value))


def percent(value: Any) -> str:
    """A share as a percentage with one decimal (0.8096 -> ``81.0%``); ``""`` when missing."""
    if _missing(value) or (isinstance(value, float) and math.isinf(value)):
        return ""
    return f"{100 * float(value):.1f}%"


def _day(value: Any, with_time: bool) -> str:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    if pd.isna(ts):
        return ""
    return ts.strftime("%Y-%m-%d %H:%M" if with_time and ts != ts.normalize() else "%Y-%m-%d")


def format_cell(column: str, value: Any, lang: str = "zh") -> str:
    """``value`` of ``column`` as people read it (see the module docstring); a missing value
    is ``""``. Plain text (names, ids, notes) is returned as it is: the page escapes it."""
    if _missing(value):
        return ""
    kind = column_kind(column)
    if isinstance(value, np.generic):
        value = value.item()
    if kind == "date" or isinstance(value, (dt.date, pd.Timestamp)):
        return _day(value, with_time=kind != "date")
    if kind == "yes_no" or isinstance(value, bool):
        return yes_no(value, lang)
    if kind in CODE_COLUMNS.values():
        return label(kind, value, lang)
    if isinstance(value, str) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and math.isinf(value):
        return ""
    if kind == "rate":
        return percent(value)
    if kind == "mu":
        return f"{value:,.2f}"
    if kind == "count" or isinstance(value, int) or value == int(value):
        return f"{round_half_up(value):,}"
    return f"{value:,.2f}"


def figure_keys(figures, lang: str = "zh") -> list[str]:
    """The figure names of a headline's ``figure`` column (the bulletin's words) as the
    column each row's value is formatted by (``completion_rate``, ``total_mu``, ...)."""
    by_word = {word: key for key, word in table("bulletin", lang).items()}
    return [by_word.get(f, "") for f in figures]


def shown_frame(df: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """A copy of ``df`` with every cell as its text (:func:`format_cell`); in a headline
    (a ``figure`` and a ``value`` column) each value is formatted by its row's figure."""
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        out[col] = [format_cell(str(col), v, lang) for v in df[col].tolist()]
    if "figure" in df and "value" in df:
        keys = figure_keys(df["figure"], lang)
        out["value"] = [format_cell(k, v, lang) for k, v in zip(keys, df["value"].tolist(), strict=True)]
    return out
