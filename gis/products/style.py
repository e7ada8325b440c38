"""Colours and labels shared by the web map, the static map and the bulletin.

One palette so that a parcel that is 已签约 (signed) has the same orange in
the browser, on paper and in the bulletin chart. Labels come in Chinese (the
default: what the planning office reads) and English.
"""

from __future__ import annotations

from gis.schema import STATUS_LABELS_EN, STATUS_LABELS_ZH, STATUSES

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

ALERT_KINDS: tuple[str, ...] = ("new_structure", "new_crops", "demolished", "other")
#: Alert kind -> fill colour (chosen away from the status palette and the red lines).
KIND_COLOURS: dict[str, str] = {
    "new_structure": "#e7298a",
    "new_crops": "#00b7c7",
    "demolished": "#6a3d9a",
    "other": "#8c510a",
}
ALERT_STATUSES: tuple[str, ...] = (
    "new", "dispatched", "illegal", "legal", "false_alarm", "demolished", "closed")
#: Alerts still needing action are drawn solid; settled ones faded and dashed.
OPEN_ALERT_STATUSES = frozenset({"new", "dispatched", "illegal"})
ALERT_STATUS_COLOURS: dict[str, str] = {
    "new": "#ffff00",
    "dispatched": "#ff8c00",
    "illegal": "#b30000",
    "legal": "#4d4d4d",
    "false_alarm": "#9e9e9e",
    "demolished": "#4d4d4d",
    "closed": "#4d4d4d",
}

LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "title": "征地拆迁清表进度图", "battle": "作战图", "as_of": "截至",
        "redlines": "项目红线", "parcels": "宗地(征收状态)", "alerts": "预警图斑",
        "ortho": "正射影像", "blank": "空白底图", "legend": "图例",
        "status_legend": "宗地征收状态", "kind_legend": "预警类型", "astatus_legend": "预警状态(边框)",
        "search": "宗地或项目编号", "search_btn": "查找", "not_found": "未找到",
        "parcel_id": "宗地编号", "status": "状态", "status_date": "状态日期", "district": "所属区县",
        "owner_type": "权属", "land_use": "地类", "area": "面积", "projects_of": "所属项目",
        "houses": "房屋(栋)", "households": "户数", "graves": "坟山(穴)",
        "special_crops": "特殊青苗(户)", "attachments": "附着物(户)",
        "project_id": "项目编号", "name": "项目名称", "project_type": "项目类型", "leader": "包联领导",
        "unit": "责任单位", "deadline": "完成时限", "freeze_date": "冻结日期",
        "total_mu": "红线内宗地面积", "acquired_mu": "已征收面积", "delivered_mu": "净地面积",
        "completion_rate": "征地完成率", "clean_land_rate": "净地率", "houses_left": "剩余房屋(栋)",
        "households_left": "剩余户数", "graves_left": "剩余坟山(穴)",
        "special_crops_left": "剩余特殊青苗(户)", "attachments_left": "剩余附着物(户)",
        "overdue": "逾期", "yes": "是", "no": "否",
        "alert_id": "预警编号", "kind": "类型", "first_seen": "首次发现", "last_seen": "最近发现",
        "post_freeze": "冻结日后新增", "verdict": "核查结论", "note": "备注", "confidence": "置信度",
        "before": "前期影像", "after": "后期影像", "parcel": "宗地", "mu": "亩", "m2": "m²",
        "alerts_open": "待处置预警", "alerts_total": "预警总数", "parcel_count": "宗地数",
        "figures": "项目指标", "north": "北", "date": "制图日期", "count_unit": "宗",
        "growing": "面积增长",
    },
    "en": {
        "title": "Land clearance status", "battle": "battle map", "as_of": "as of",
        "redlines": "Project red lines", "parcels": "Parcels (clearance status)", "alerts": "Alerts",
        "ortho": "Orthophoto", "blank": "Blank", "legend": "Legend",
        "status_legend": "Parcel clearance status", "kind_legend": "Alert kind",
        "astatus_legend": "Alert status (outline)",
        "search": "parcel or project id", "search_btn": "Find", "not_found": "not found",
        "parcel_id": "Parcel", "status": "Status", "status_date": "Status date", "district": "District",
        "owner_type": "Ownership", "land_use": "Land use", "area": "Area", "projects_of": "Projects",
        "houses": "Houses", "households": "Households", "graves": "Graves",
        "special_crops": "Special crops (hh)", "attachments": "Attachments (hh)",
        "project_id": "Project", "name": "Name", "project_type": "Type", "leader": "Lead official",
        "unit": "Responsible unit", "deadline": "Deadline", "freeze_date": "Freeze date",
        "total_mu": "Area in red line", "acquired_mu": "Acquired", "delivered_mu": "Clean land",
        "completion_rate": "Completion rate", "clean_land_rate": "Clean-land rate",
        "houses_left": "Houses left", "households_left": "Households left", "graves_left": "Graves left",
        "special_crops_left": "Special crops left", "attachments_left": "Attachments left",
        "overdue": "Overdue", "yes": "yes", "no": "no",
        "alert_id": "Alert", "kind": "Kind", "first_seen": "First seen", "last_seen": "Last seen",
        "post_freeze": "After freeze date", "verdict": "Verdict", "note": "Note", "confidence": "Confidence",
        "before": "Before", "after": "After", "parcel": "Parcel", "mu": "mu", "m2": "m²",
        "alerts_open": "Open alerts", "alerts_total": "Alerts", "parcel_count": "Parcels",
        "figures": "Project figures", "north": "N", "date": "Printed", "count_unit": "parcels",
        "growing": "Growing",
    },
}

KIND_LABELS: dict[str, dict[str, str]] = {
    "zh": {"new_structure": "新增建筑", "new_crops": "新增种植", "demolished": "拆除", "other": "其他变化"},
    "en": {"new_structure": "new structure", "new_crops": "new crops", "demolished": "demolished",
           "other": "other change"},
}
ALERT_STATUS_LABELS: dict[str, dict[str, str]] = {
    "zh": {"new": "新发现", "dispatched": "已派发", "illegal": "违法", "legal": "合法",
           "false_alarm": "误报", "demolished": "已拆除", "closed": "已办结", "": ""},
    "en": {s: s.replace("_", " ") for s in ALERT_STATUSES} | {"": ""},
}


def labels(lang: str) -> dict[str, str]:
    """The label table for ``lang`` ('zh' or 'en')."""
    if lang not in LABELS:
        from gis.errors import InputError

        raise InputError(f"unknown language {lang!r}", hint="use --lang zh or --lang en")
    return LABELS[lang]


def status_labels(lang: str) -> dict[str, str]:
    return dict(STATUS_LABELS_ZH if lang == "zh" else STATUS_LABELS_EN)


def status_order() -> tuple[str, ...]:
    return STATUSES
