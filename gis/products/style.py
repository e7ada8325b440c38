"""Colours shared by the web map, the static map and the bulletin.

One palette so that a parcel that is signed has the same orange in the
browser, on paper and in the bulletin chart. The codes coloured here come from
:mod:`gis.schema`; the words shown beside them from :mod:`gis.labels`.
"""

from __future__ import annotations

#: Clearance status -> fill colour, from grey (nothing done) to dark green (净地).
STATUS_COLOURS: dict[str, str] = {
    "not_started": "#c8c8c8",
    "surveyed": "#ffe08a",
    "signed": "#fdae61",
    "compensated": "#74add1",
    "demolished": "#a6d96a",
    "delivered": "#1a9850",
}
REDLINE_COLOUR = "#e31a1c"

#: Alert kind -> fill colour (chosen away from the status palette and the red lines).
KIND_COLOURS: dict[str, str] = {
    "new_structure": "#e7298a",
    "new_crops": "#00b7c7",
    "demolished": "#6a3d9a",
    "other": "#8c510a",
}
#: Alert status -> outline colour. Open alerts are drawn solid; settled ones faded and dashed.
ALERT_STATUS_COLOURS: dict[str, str] = {
    "new": "#ffff00",
    "dispatched": "#ff8c00",
    "illegal": "#b30000",
    "legal": "#4d4d4d",
    "false_alarm": "#9e9e9e",
    "demolished": "#4d4d4d",
    "closed": "#4d4d4d",
}
#: The bars of the bulletin's progress chart.
COMPLETION_COLOUR = "#74add1"
CLEAN_LAND_COLOUR = "#1a9850"

