"""The QGIS form of the patrol GeoPackage: dropdowns QField shows for the fields a patrol sets.

:func:`write_form` stores a QGIS style in the GeoPackage's standard ``layer_styles``
table (the one QGIS itself writes, read by QGIS and QField when the layer is
opened). Its QML gives ``status`` and the false-alarm ``reason`` a ValueMap
widget (a dropdown): the Chinese words of :mod:`gis.labels` are shown, the codes
of :mod:`gis.schema` are stored, so an import reads codes whatever the patrol
tapped. Only the statuses a patrol may set are offered (:data:`PATROL_STATUSES`).
The other fields are read only in the form, and every field is titled in Chinese.

The QML is built with :mod:`xml.etree.ElementTree`, which escapes every label.
"""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from gis.alerts.lifecycle import TRANSITIONS
from gis.labels import ALERT_STATUS, OFFICE, REASON, TEXT
from gis.schema import ALERT_STATUSES, FALSE_ALARM_REASONS, OPEN_ALERT_STATUSES

#: Statuses offered in the patrol form: those of the alerts a patrol receives (a new
#: alert is dispatched by the export) and those it may turn them into.
PATROL_STATUSES: tuple[str, ...] = tuple(
    s for s in ALERT_STATUSES
    if s != "new" and (s in OPEN_ALERT_STATUSES or any(s in TRANSITIONS[o] for o in OPEN_ALERT_STATUSES)))
#: Fields a patrol fills in; the form shows every other field read only.
FORM_EDITABLE: tuple[str, ...] = ("status", "reason", "note", "photo", "updated_by")
#: Name of the style in ``layer_styles``.
STYLE_NAME = "gis patrol form"
#: The label of an empty reason in the dropdown.
NO_REASON = {"zh": "（无）", "en": "(none)"}

LAYER_STYLES_SQL = (
    "CREATE TABLE IF NOT EXISTS layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "f_table_catalog TEXT(256), f_table_schema TEXT(256), f_table_name TEXT(256), "
    "f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT, "
    "useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30), "
    "update_time DATETIME DEFAULT CURRENT_TIMESTAMP)")


def value_maps(lang: str = "zh") -> dict[str, dict[str, str]]:
    """Field -> {shown word: stored code} of the form's dropdowns."""
    return {
        "status": {ALERT_STATUS[lang][s]: s for s in PATROL_STATUSES},
        "reason": {NO_REASON[lang]: "", **{REASON[lang][r]: r for r in FALSE_ALARM_REASONS}},
    }


def _titles(lang: str) -> dict[str, str]:
    words = {**TEXT[lang], **OFFICE[lang]}
    titles = {"status": OFFICE[lang]["status"], "reason": OFFICE[lang]["reason"], "note": OFFICE[lang]["note"],
              "photo": OFFICE[lang]["photos"], "updated_by": OFFICE[lang]["by"], "kind": OFFICE[lang]["kind"],
              "area_mu": OFFICE[lang]["area_mu"], "first_seen": OFFICE[lang]["first_seen"],
              "district": OFFICE[lang]["district"], "project_id": OFFICE[lang]["project"],
              "chip_before": OFFICE[lang]["before"], "chip_after": OFFICE[lang]["after"]}
    if "parcel_id" in words:
        titles["parcel_id"] = words["parcel_id"]
    return titles


def _option(parent: ET.Element, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, "Option", attrs)


def form_qml(fields: Iterable[str], lang: str = "zh") -> str:
    """The QML of the patrol form for a layer with ``fields`` (in their order)."""
    fields = list(fields)
    root = ET.Element("qgis", {"version": "3.28.0", "styleCategories": "Fields|Forms"})
    conf = ET.SubElement(root, "fieldConfiguration")
    maps = value_maps(lang)
    for name in fields:
        fe = ET.SubElement(conf, "field", {"name": name, "configurationFlags": "None"})
        widget = ET.SubElement(fe, "editWidget", {"type": "ValueMap" if name in maps else "TextEdit"})
        top = _option(ET.SubElement(widget, "config"), type="Map")
        if name in maps:
            entries = _option(top, name="map", type="List")
            for word, code in maps[name].items():
                _option(_option(entries, type="Map"), name=word, value=code, type="QString")
        else:
            _option(top, name="IsMultiline", value="true" if name == "note" else "false", type="bool")
            _option(top, name="UseHtml", value="false", type="bool")
    titles = _titles(lang)
    aliases = ET.SubElement(root, "aliases")
    for i, name in enumerate(fields):
        ET.SubElement(aliases, "alias", {"field": name, "index": str(i), "name": titles.get(name, "")})
    editable = ET.SubElement(root, "editable")
    for name in fields:
        ET.SubElement(editable, "field", {"name": name, "editable": "1" if name in FORM_EDITABLE else "0"})
    ET.SubElement(root, "editform", {"tolerant": "1"})
    ET.SubElement(root, "editorlayout").text = "generatedlayout"
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(root, encoding="unicode")


def parse_value_maps(qml: str) -> dict[str, dict[str, str]]:
    """Field -> {shown word: stored code} of the ValueMap widgets in ``qml`` (for checks)."""
    root = ET.fromstring(qml.split("\n", 1)[1] if qml.startswith("<!DOCTYPE") else qml)
    out: dict[str, dict[str, str]] = {}
    for fe in root.iter("field"):
        widget = fe.find("editWidget")
        if widget is not None and widget.get("type") == "ValueMap":
            out[fe.get("name", "")] = {o.get("name", ""): o.get("value", "")
                                      for o in widget.iterfind("config/Option/Option/Option/Option")}
    return out


def write_form(con: sqlite3.Connection, table: str, fields: Iterable[str], *, lang: str = "zh") -> None:
    """Store the patrol form of ``table`` as its default style in ``layer_styles``."""
    geom = con.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (table,)).fetchone()
    con.execute(LAYER_STYLES_SQL)
    con.execute("UPDATE layer_styles SET useAsDefault = 0 WHERE f_table_name = ?", (table,))
    con.execute("INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, "
                "styleName, styleQML, styleSLD, useAsDefault, description, owner, ui) "
                "VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '', '')",
                (table, geom[0] if geom else "", STYLE_NAME, form_qml(fields, lang),
                 "patrol form: status and false-alarm reason dropdowns"))
