"""The clearance figures as an Excel workbook (``gis overlay --xlsx``).

Three sheets: projects (项目进度), districts ranked with their red and black
lists (区县排名), and what the figures are (说明: the date they are counted
at and the working CRS). Each sheet has the writer's title row (with the date
the figures are counted at) and a note row (units, how counts are rounded). Every cell goes through the one safe writer of
:mod:`gis.products.excel`, so this workbook looks like the bulletin's and
text from data is never a formula.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from gis.clearance.figures import district_table, project_table
from gis.labels import table
from gis.products.excel import Sheet, write_workbook

__all__ = ["write_figures_xlsx"]


def write_figures_xlsx(clearance, out: str | os.PathLike, *, lang: str = "zh") -> Path:
    """The figure tables of a :class:`gis.clearance.pipeline.Clearance`, headers in ``lang``."""
    headers, sheets = table("header", lang), table("sheet", lang)
    proj = project_table(clearance.projects).copy()
    dist = district_table(clearance.districts).copy()
    dist["list"] = dist["list"].map(table("list", lang)).fillna(dist["list"])
    for df in (proj, dist):
        if "deadline" in df:
            df["deadline"] = pd.to_datetime(df["deadline"]).dt.date
    words = table("text", lang)  # the items of the about sheet (说明)
    meta = pd.DataFrame({"item": [words["counted_on"], words["crs"]],
                         "value": [clearance.as_of.isoformat(), clearance.crs.to_string()]})
    when = f"{words['counted_on']} {clearance.as_of.isoformat()}"
    notes = [words["units_note"], words["rounding_note"]]
    return write_workbook(out, [
        Sheet(sheets["projects"], proj, headers, title=f"{sheets['projects']}  {when}", notes=notes),
        Sheet(sheets["districts"], dist, headers, title=f"{sheets['districts']}  {when}", notes=notes),
        Sheet(sheets["about"], meta, {"item": headers["item"], "value": headers["value"]},
              title=f"{sheets['about']}  {when}")], lang=lang)
