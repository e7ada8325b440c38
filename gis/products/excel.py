"""One Excel writer for every workbook: the clearance figures and the bulletin.

Both workbooks go through :func:`write_workbook`, so they look alike, ready
to paste into a report: a title row (the table and its period), a note row
(units, how pro-rated counts are rounded), then the header row
(:data:`HEADER_ROW`) and the data; rates as numbers formatted ``0.0%``, mu as
``0.00``, counts left as ``0`` (Excel shows them rounded half up, the rounding
the bulletin's HTML uses too: :func:`round_half_up`), yes/no as 是/否, the rows
above the data and the id column frozen, column widths fitted to the text (CJK
characters count double).

Text from data is never a formula
---------------------------------
Project names, districts, leaders, patrol notes and ids come from files
other people made. openpyxl stores any ``str`` that starts with ``=`` as a
formula, and Excel re-reads a cell that starts with ``=``, ``+``, ``-`` or
``@`` as a formula when someone edits it (OWASP, "CSV injection"). So every
text cell, headers included, is:

* written with ``data_type = "s"``: stored as a string, whatever it starts with;
* given Excel's *quote prefix* style when it starts with one of
  :data:`FORMULA_PREFIXES`. That is how the file format records a text typed
  after ``'``: Excel and LibreOffice show the text unchanged and keep it text
  when the cell is edited.

We do not put a literal ``'`` into the value, as OWASP suggests for CSV: in a
workbook the apostrophe would become part of the text every reader (pandas, a
re-import, the web app) sees, while the style says the same without altering it.

Numbers (negative ones too), dates and booleans are never written as text.
Three things a cell cannot carry are changed, not refused: control characters
other than tab and line breaks are dropped, a CR or CRLF becomes the LF that
Excel uses for a line break in a cell (XML would turn it into one anyway), and
text beyond Excel's 32,767 characters per cell is cut with an ellipsis.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gis.atomic import atomic_path
from gis.labels import YES_NO, check_lang

__all__ = ["Sheet", "write_workbook", "column_format", "inert_text", "display_width", "round_half_up",
           "FORMULA_PREFIXES", "PERCENT", "DECIMAL", "INTEGER", "DATE", "HEADER_ROW", "RATE_COLUMNS"]

#: A text cell starting with one of these gets the quote-prefix style. OWASP's
#: list, LF (what a CR becomes), and the full-width forms a Chinese IME types.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
PERCENT, DECIMAL, INTEGER, DATE, DATETIME = "0.0%", "0.00", "0", "yyyy-mm-dd", "yyyy-mm-dd hh:mm"
#: Shares of a whole, shown as percentages: the clearance rates, the share of projects that
#: progressed, and progress against time (序时进度: time elapsed, completion minus time elapsed).
RATE_COLUMNS = frozenset({"completion_rate", "clean_land_rate", "progress_ratio", "time_elapsed",
                          "schedule_gap"})
HEADER_FILL = "DDEBF7"
MAX_CELL_TEXT = 32_767
MIN_WIDTH, MAX_WIDTH = 6, 60
#: Row of the column headers: row 1 is the title, row 2 the notes, the data start below.
HEADER_ROW = 3


@dataclass(frozen=True)
class Sheet:
    """One table on one sheet.

    ``headers`` maps column names to the header people read (missing ones
    are shown as they are). ``formats`` gives a number format per column,
    either one for the whole column or one per row (``None``: General); a
    column not named there gets :func:`column_format` of its name. ``title``
    (row 1; default the sheet's name) and ``notes`` (row 2) sit above the header.
    """

    name: str
    frame: pd.DataFrame
    headers: Mapping[str, str] = field(default_factory=dict)
    formats: Mapping[str, str | Sequence[str | None] | None] = field(default_factory=dict)
    title: str = ""
    notes: Sequence[str] = ()


def column_format(column: str) -> str | None:
    """The project's number format for a column, by its canonical name."""
    if column in RATE_COLUMNS or column.endswith("_rate"):
        return PERCENT
    if column.endswith("_mu") or column == "area_m2":
        return DECIMAL
    if column.endswith("_left"):
        return INTEGER
    return None


def write_workbook(out: str | os.PathLike, sheets: Iterable[Sheet], *, lang: str = "zh") -> Path:
    """Write ``sheets`` to one workbook at ``out``, atomically; returns the path."""
    from openpyxl import Workbook

    words = YES_NO[check_lang(lang)]
    wb = Workbook()
    wb.remove(wb.active)
    for sheet in sheets:
        _write_sheet(wb.create_sheet(sheet.name), sheet, words)
    with atomic_path(out) as tmp:
        wb.save(tmp)
    return Path(out)


def inert_text(value: str) -> str:
    """``value`` as a cell can hold it: no control characters, LF line breaks, cut to Excel's limit."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    text = ILLEGAL_CHARACTERS_RE.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    return text if len(text) <= MAX_CELL_TEXT else text[: MAX_CELL_TEXT - 1] + "…"


def round_half_up(value: float) -> int:
    """``value`` rounded to a whole number, halves away from zero, as Excel's ``0`` format
    shows it (Python's ``round`` and ``f"{x:.0f}"`` round halves to even: 2.5 -> 2)."""
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


def display_width(text: str) -> int:
    """Width of the longest line in character cells: wide and full-width (CJK) characters count 2."""
    return max((sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)
                for line in text.split("\n")), default=0)


def _write_sheet(ws, sheet: Sheet, yes_no: tuple[str, str]) -> None:
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    df = sheet.frame
    font, fill = Font(bold=True), PatternFill("solid", fgColor=HEADER_FILL)
    align = Alignment(wrap_text=True, horizontal="center", vertical="center")
    title = ws.cell(1, 1)
    # title and notes run on over the empty cells to their right: they do not widen the first column
    _put(title, sheet.title or sheet.name, None, yes_no)
    title.font = Font(bold=True, size=13)
    if sheet.notes:
        _put(ws.cell(2, 1), "；".join(sheet.notes), None, yes_no)
        ws.cell(2, 1).font = Font(italic=True, color="555555")
    for j, col in enumerate(df.columns, start=1):
        head = ws.cell(HEADER_ROW, j)
        _put(head, str(sheet.headers.get(col, col)), None, yes_no)
        head.font, head.fill, head.alignment = font, fill, align
        width = display_width(head.value)
        column = zip(df[col].tolist(), _formats(sheet, col, len(df)), strict=True)
        for i, (value, fmt) in enumerate(column, start=HEADER_ROW + 1):
            width = max(width, _put(ws.cell(i, j), value, fmt, yes_no))
        ws.column_dimensions[get_column_letter(j)].width = min(max(width + 2, MIN_WIDTH), MAX_WIDTH)
    ws.freeze_panes = f"{'B' if len(df.columns) > 1 else 'A'}{HEADER_ROW + 1}"


def _formats(sheet: Sheet, col: Any, n: int) -> Sequence[str | None]:
    fmt = sheet.formats[col] if col in sheet.formats else column_format(str(col))
    return [fmt] * n if fmt is None or isinstance(fmt, str) else list(fmt)


def _put(cell, value: Any, fmt: str | None, yes_no: tuple[str, str]) -> int:
    """Store one value in ``cell`` by its kind; returns its display width."""
    value = _plain(value)
    if isinstance(value, bool):
        value = yes_no[0] if value else yes_no[1]
    if value is None:
        return 0
    if isinstance(value, str):
        cell.value = inert_text(value)
        cell.data_type = "s"  # openpyxl made it a formula if it starts with "="
        if cell.value.startswith(FORMULA_PREFIXES):
            cell.quotePrefix = True
        return display_width(cell.value)
    cell.value = value
    if isinstance(value, dt.date):
        cell.number_format = DATETIME if isinstance(value, dt.datetime) else DATE
        return len(cell.number_format)
    if fmt:
        cell.number_format = fmt
    return len(_shown(value, fmt))


def _plain(value: Any) -> Any:
    """A pandas/numpy scalar as a plain Python one; missing values (and inf) as ``None``."""
    if isinstance(value, str):
        return value
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.tz_localize(None) if value.tzinfo else value
        return value.date() if value == value.normalize() else value.to_pydatetime()
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and math.isinf(value):
        return None
    if isinstance(value, (bool, int, float, dt.date)):
        return value
    return str(value)


def _shown(value: float, fmt: str | None) -> str:
    """Roughly how Excel shows a number in ``fmt``, to size the column."""
    if fmt == PERCENT:
        return f"{100 * value:.1f}%"
    if fmt == DECIMAL:
        return f"{value:.2f}"
    if fmt == INTEGER:
        return str(round_half_up(value))
    return f"{value:.10g}"
