"""The page layout of an evidence pack (证据材料): an :class:`~gis.products.evidence.Evidence` to PDF bytes.

A4, in Chinese, with fpdf2: page 1 holds the title, the case facts and the
location map; page 2 the imagery chips, the field photos, the verdict
history and the lines for signatures. Every text from the store is written
with ``markdown=False`` (fpdf2's default), so a note such as ``<b>x</b>`` or
``**x**`` prints as typed. A CJK font is embedded (subset): the first of
:data:`gis.products.staticmap.CJK_FAMILIES` installed, found through
matplotlib's font manager; inside a font collection (``.ttc``) the face is
picked by its family name.
"""

from __future__ import annotations

import io
import logging
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from fpdf import FPDF
from fpdf.enums import WrapMode
from fpdf.fonts import FontFace

from gis.errors import MissingFontError
from gis.labels import label
from gis.products.casemap import image_bytes
from gis.products.staticmap import CJK_FAMILIES

if TYPE_CHECKING:  # the facts module imports this one
    from gis.products.evidence import Evidence

log = logging.getLogger(__name__)

TITLE = "违法建设证据材料"
FONT = "cjk"
MISSING = "图片缺失"
WIDTH = 180.0  # mm between the margins of an A4 page
GREY = (110, 110, 110)
#: Height / width of the location map (gis.products.casemap draws it 7 x 4.4 inches).
MAP_ASPECT = 4.4 / 7.0


@lru_cache(maxsize=1)
def cjk_font_file() -> tuple[str, int]:
    """(path, face index) of a regular CJK font.

    One face only: embedding a second (bold) CJK face doubles the time a pack
    takes (subsetting a CFF font is the slow part), so headings are drawn
    bold by stroking the regular glyphs (:func:`_bold`).
    """
    from matplotlib import font_manager

    entries = font_manager.fontManager.ttflist
    for family in CJK_FAMILIES:
        regular = [f for f in entries if f.name == family and f.weight in (400, "normal", "regular")]
        if regular:
            return _face(regular[0].fname, family)
    raise MissingFontError("no CJK font found, so an evidence pack cannot be written in Chinese",
                           hint="install one (Debian: apt-get install fonts-noto-cjk, or `make system`), "
                           "then delete matplotlib's font cache (~/.cache/matplotlib) and run again")


def _face(path: str, family: str) -> tuple[str, int]:
    """The index of ``family`` inside a font collection (0 for a single font)."""
    if Path(path).suffix.lower() not in (".ttc", ".otc"):
        return path, 0
    from fontTools.ttLib import TTCollection

    with TTCollection(path, lazy=True) as collection:
        for i, font in enumerate(collection.fonts):
            if font["name"].getDebugName(1) == family:
                return path, i
    return path, 0


class _Pack(FPDF):
    """A4 pages with the case number above and the page count and date below."""

    def __init__(self, case: str, made: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.case, self.made = case, made
        self.set_margins(15, 14, 15)
        self.set_auto_page_break(True, margin=16)
        path, index = cjk_font_file()
        self.add_font(FONT, "", path, collection_font_number=index)
        self.set_title(f"{TITLE} {case}")
        self.set_creator("gis")

    def header(self) -> None:
        if self.page_no() > 1:
            self.set_font(FONT, "", 8)
            self.set_text_color(*GREY)
            self.cell(0, 5, f"{TITLE}  案件编号：{self.case}", align="R", new_x="LMARGIN", new_y="NEXT")
            self.ln(2)
            self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, "", 8)
        self.set_text_color(*GREY)
        self.cell(0, 5, f"第 {self.page_no()} 页 共 {{nb}} 页    制作日期：{self.made}", align="C")
        self.set_text_color(0, 0, 0)


def _bold(pdf: _Pack, stroke: float):
    """Bold text from the regular face: glyphs filled and outlined with ``stroke`` mm."""
    return pdf.local_context(text_mode="FILL_STROKE", line_width=stroke, draw_color=(0, 0, 0))


def clean(text: str) -> str:
    """Text from the store as it may be printed: control and format characters (bidi overrides
    that would reorder what a reader sees, zero-width marks) dropped; line breaks kept."""
    return "".join(ch for ch in str(text)
                   if ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))


def _section(pdf: _Pack, text: str) -> None:
    pdf.ln(2)
    pdf.set_font(FONT, "", 12)
    with _bold(pdf, 0.25):
        pdf.cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 10)


def _table(pdf: _Pack, rows: list[tuple[str, ...]], widths: tuple[float, ...], *, heading: bool = False) -> None:
    pdf.set_font(FONT, "", 9.5)
    with pdf.table(col_widths=widths, width=WIDTH, first_row_as_headings=heading, text_align="LEFT",
                   line_height=4.6, wrapmode=WrapMode.CHAR, markdown=False, padding=(0.9, 1.5),
                   headings_style=FontFace(family=FONT, emphasis="", fill_color=(225, 225, 225))) as t:
        for r in rows:
            row = t.row()
            for k, text in enumerate(r):
                if k == 0 and not heading:
                    row.cell(clean(text), style=FontFace(family=FONT, fill_color=(240, 240, 240)))
                else:
                    row.cell(clean(text))


def _picture(pdf: _Pack, data: bytes | None, x: float, y: float, w: float, h: float, problem: str) -> float:
    """Draw a picture fitted in the box (w, h) at (x, y), or the box with what is wrong; return its height."""
    shown = image_bytes(data) if data else None
    if shown is None:
        pdf.set_draw_color(150, 150, 150)
        pdf.set_fill_color(240, 240, 240)
        pdf.rect(x, y, w, h, style="DF")
        pdf.set_xy(x, y + h / 2 - 3)
        pdf.set_font(FONT, "", 10)
        pdf.set_text_color(160, 0, 0)
        pdf.cell(w, 6, problem or MISSING, align="C")
        pdf.set_text_color(0, 0, 0)
        return h
    jpeg, aspect = shown
    iw, ih = (w, w / aspect) if w / aspect <= h else (h * aspect, h)
    pdf.image(io.BytesIO(jpeg), x=x, y=y, w=iw, h=ih)  # left, above its left-aligned caption
    return h


def _caption(pdf: _Pack, x: float, y: float, w: float, lines: list[str]) -> float:
    pdf.set_font(FONT, "", 7.5)
    pdf.set_xy(x, y)
    for line in lines:
        pdf.set_x(x)
        pdf.multi_cell(w, 3.6, clean(line), align="L", wrapmode=WrapMode.CHAR, markdown=False,
                       new_x="LEFT", new_y="NEXT")
    return pdf.get_y() - y


def _grid(pdf: _Pack, items: list[tuple[bytes | None, str, list[str]]], per_row: int, box_h: float) -> None:
    """Pictures in rows of ``per_row``, each with caption lines under it; breaks pages between rows."""
    gap = 4.0
    w = (WIDTH - gap * (per_row - 1)) / per_row
    for start in range(0, len(items), per_row):
        row = items[start:start + per_row]
        need = box_h + 4 + 3.6 * max(len(c) + 1 for _, _, c in row) + 4
        if pdf.get_y() + need > pdf.h - pdf.b_margin:
            pdf.add_page()
        y = pdf.get_y()
        bottom = y
        for k, (data, problem, caption) in enumerate(row):
            x = pdf.l_margin + k * (w + gap)
            _picture(pdf, data, x, y, w, box_h, problem)
            bottom = max(bottom, y + box_h + 1 + _caption(pdf, x, y + box_h + 1, w, caption))
        pdf.set_xy(pdf.l_margin, bottom + 3)


def _facts(ev: Evidence) -> list[tuple[str, str]]:
    a = ev.alert
    (x, y), (lon, lat) = ev.centroid_xy, ev.centroid_lonlat
    epsg = ev.crs.to_epsg()
    project = " ".join(v for v in (ev.project.get("project_id", str(a["project_id"])), ev.project.get("name", ""))
                       if v) or "不在项目红线内"
    parcel = str(a["parcel_id"]) or "不在宗地内"
    if ev.parcel:
        extra = [v for v in (ev.parcel.get("owner_type"), ev.parcel.get("land_use")) if v]
        if ev.parcel.get("status"):
            extra.append(f"征收状态 {label('status', ev.parcel['status'])}")
        parcel += f"（{'，'.join(extra)}）" if extra else ""
    verdict = label("alert_status", str(a["verdict"])) if str(a["verdict"]) else "未核查"
    rows = [
        ("案件编号", str(a["alert_id"])),
        ("变化类型", label("kind", str(a["kind"]))),
        ("核查结论", f"{verdict}（当前状态：{label('alert_status', str(a['status']))}）"),
        ("所属项目", project),
        ("宗地", parcel),
        ("所属区县", str(a["district"]) or ev.project.get("district", "")),
        ("面积", f"{float(a['area_m2']):,.1f} m²（{float(a['area_mu']):.2f} 亩）"),
        ("中心坐标", f"E {x:,.2f} m，N {y:,.2f} m"),
        ("中心经纬度", f"东经 {_dms(lon)}，北纬 {_dms(lat)}"),
        ("坐标系", f"CGCS2000；平面 {'EPSG:' + str(epsg) if epsg else ''}"
                   f"（{ev.crs.name.removeprefix('CGCS2000 / ')}），经纬度 EPSG:4490"),
        ("冻结日期", str(a["freeze_date"])[:10] or "无"),
        ("冻结日后新增", ev.freeze_statement),
        *ev.surveys,
    ]
    if str(a.get("note") or ""):
        rows.append(("备注", str(a["note"])))
    return rows


def _dms(deg: float) -> str:
    d = int(abs(deg))
    m = int((abs(deg) - d) * 60)
    s = (abs(deg) - d - m / 60) * 3600
    return f"{deg:.6f}°（{d}°{m:02d}′{s:05.2f}″）"


def render_pdf(ev: Evidence) -> bytes:
    """The evidence pack of one alert as PDF bytes."""
    case = str(ev.alert["alert_id"])
    pdf = _Pack(case, ev.made.isoformat())
    pdf.add_page()
    pdf.set_font(FONT, "", 20)
    with _bold(pdf, 0.45):
        pdf.cell(0, 12, TITLE, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 10.5)
    pdf.cell(WIDTH / 2, 7, f"案件编号：{case}")
    pdf.cell(WIDTH / 2, 7, f"制作日期：{ev.made.isoformat()}", align="R", new_x="LMARGIN", new_y="NEXT")
    _section(pdf, "一、基本情况")
    _table(pdf, _facts(ev), (28, WIDTH - 28))
    _section(pdf, "二、位置图")
    shown = image_bytes(ev.map_png, pixels=1400)  # JPEG: a PNG of imagery is megabytes
    if shown:
        room = pdf.h - pdf.b_margin - pdf.get_y() - 6  # the caption below
        if room < 70:  # a long note: the map goes whole on the next page
            pdf.add_page()
            room = pdf.h - pdf.b_margin - pdf.get_y() - 6
        h = min(WIDTH * MAP_ASPECT, room)
        pdf.image(io.BytesIO(shown[0]), x=pdf.l_margin + (WIDTH - h / MAP_ASPECT) / 2, w=h / MAP_ASPECT, h=h)
    pdf.set_font(FONT, "", 7.5)
    pdf.set_text_color(*GREY)
    pdf.multi_cell(WIDTH, 3.8, f"底图：{ev.basemap}。黄框：预警图斑；红线：项目红线；蓝色虚线：宗地；"
                   "左上小图：项目红线全图及图斑位置。", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)

    pdf.add_page()
    _section(pdf, "三、影像比对（前期 / 后期）")
    per_row = max(len(ev.chips), 2)
    _grid(pdf, [(c.data, c.problem, [c.caption]) for c in ev.chips], per_row,
          min(42.0, (WIDTH - 4 * (per_row - 1)) / per_row))
    _section(pdf, "四、现场照片")
    if ev.photos:
        _grid(pdf, [(p.data, p.problem, lines) for p, lines in ev.photos], 3, 40.0)
    else:
        pdf.cell(0, 6, "无现场照片", new_x="LMARGIN", new_y="NEXT")
    _section(pdf, "五、核查记录")
    if ev.history:
        _table(pdf, [("时间（北京时间）", "记录人", "事项"), *ev.history], (34, 30, WIDTH - 64), heading=True)
    else:
        pdf.cell(0, 6, "无核查记录", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font(FONT, "", 10.5)
    pdf.cell(0, 8, "制作单位：________________    制作人：__________    审核人：__________",
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 8)
    pdf.set_text_color(*GREY)
    pdf.multi_cell(WIDTH, 4, f"本材料由预警库 {ev.source} 的记录于 {ev.made.isoformat()} 生成；"
                   "照片与影像按其原始文件嵌入，照片哈希（SHA-256）见其文件名。",
                   new_x="LMARGIN", new_y="NEXT", markdown=False)
    pdf.set_text_color(0, 0, 0)
    return bytes(pdf.output())


