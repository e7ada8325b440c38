"""The products served live: the clearance map, the figures tables and the latest bulletin files.

The same builders as ``gis map`` and ``gis report`` (:mod:`gis.products`),
fed with the current store's alerts instead of writing files. Clearance
figures come from the layers, which change rarely: they are computed once
per worker and again when a layer file changes.

The figures page shows its cells as the bulletin and the workbooks do, all
through the bulletin page's formatter :func:`gis.products.cells.format_cell`:
rates as percentages with one decimal (81.0%), mu with two decimals and
thousands separators, counts as whole numbers (rounded half up), yes/no as
是/否, red/black list as 红榜/黑榜, dates as YYYY-MM-DD.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import numpy as np
import pandas as pd

from gis.clearance.pipeline import clearance
from gis.labels import table
from gis.products.bulletin import bulletin_tables
from gis.products.cells import shown_frame
from gis.products.webmap import clearance_map_html
from gis.serve.queries import waiting_threshold

log = logging.getLogger(__name__)

#: Bulletin tables shown on the figures page, in order.
FIGURE_TABLES = ("headline", "projects", "districts", "red_list", "black_list", "waiting")
DOWNLOAD_PATTERNS = ("bulletin_*.html", "figures_*.xlsx")


class Cell(NamedTuple):
    """One cell of a served table: its text, and whether it is a number (aligned right)."""

    text: str
    num: bool


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def shown_table(df: pd.DataFrame, lang: str = "zh") -> dict[str, list]:
    """A figures table for the page: ``columns`` (the workbooks' headers) and ``rows`` of
    :class:`Cell`. The headline's ``value`` column mixes rates, areas and counts: each of its
    cells is shown by the figure it belongs to."""
    headers = table("header", lang)
    texts = shown_frame(df, lang).itertuples(index=False, name=None)
    rows = [[Cell(text, _is_number(v)) for text, v in zip(shown, values, strict=True)]
            for shown, values in zip(texts, df.itertuples(index=False, name=None), strict=True)]
    return {"columns": [headers.get(str(c), str(c)) for c in df.columns], "rows": rows}


def chip_url(alert_id: str, which: str) -> str:
    """The served URL of an alert's chip (``before`` or ``after``): the API route that checks who asks."""
    return f"/api/alerts/{quote(str(alert_id), safe='')}/chips/{which}"


class LiveProducts:
    """Map and figures of one workspace, from its layers and the store's current alerts."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self._lock = threading.Lock()
        self._clearance = None
        self._stamp: tuple | None = None

    def _layers_stamp(self) -> tuple:
        paths = [p for p in (self.ws.redlines, self.ws.parcels, self.ws.previous_parcels, self.ws.inventory) if p]
        return tuple((str(p), p.stat().st_mtime_ns if p.exists() else 0) for p in paths)

    def clearance(self):
        with self._lock:
            stamp = self._layers_stamp()
            if self._clearance is None or stamp != self._stamp:
                ws = self.ws
                epoch = max(ws.epochs, key=lambda e: e.date) if ws.epochs else None
                self._clearance = clearance(
                    ws.redlines, ws.parcels, previous=ws.previous_parcels, inventory=ws.inventory,
                    as_of=epoch.date if epoch else dt.date.today(), working_crs=ws.working_crs or None,
                    min_redline_m2=ws.min_redline_m2, id_from_layer=ws.id_from_layer)
                self._stamp = stamp
            return self._clearance

    def map_html(self, alerts, lang: str) -> str:
        """The clearance map with the store's alerts; popup chips link the permission-checked chip route."""
        c = self.clearance()
        return clearance_map_html(c, alerts=alerts, lang=lang, as_of=c.as_of, chip_url=chip_url)

    def figures(self, alerts, lang: str) -> dict[str, pd.DataFrame]:
        c = self.clearance()
        tables = bulletin_tables(c, alerts=alerts, as_of=c.as_of, lang=lang,
                                 waiting_days=waiting_threshold(self.ws))
        return {k: tables[k] for k in FIGURE_TABLES if k in tables}

    def out_dir(self) -> Path:
        return Path(self.ws.out or self.ws.root / "out")

    def downloads(self) -> list[Path]:
        """The newest bulletin (HTML) and figures workbook (xlsx) in the workspace's out folder."""
        found = []
        for pattern in DOWNLOAD_PATTERNS:
            files = sorted(self.out_dir().glob(pattern)) if self.out_dir().is_dir() else []
            if files:
                found.append(files[-1])
        return found

    def download(self, name: str) -> Path | None:
        """One of :meth:`downloads` by file name (nothing else in the folder is served)."""
        for p in self.downloads():
            if p.name == name:
                return p
        return None
