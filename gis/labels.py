"""Every word a person reads, in Chinese (the default) and English.

The codes these words stand for (clearance statuses, alert statuses, alert
kinds, column names) are defined in :mod:`gis.schema`; this module holds only
what is shown for them: status, kind and alert-status labels, map text,
table headers, bulletin headings and sheet names. Maps, the bulletin and the
workbooks take their words from here and nowhere else, so a closed alert is
已销号 on every page.

This module imports nothing from :mod:`gis` but its errors, so that
:mod:`gis.schema` can accept the Chinese status labels as aliases in layers.

Read a word with :func:`label` (``label("alert_status", "closed")`` ->
``已销号``) or a whole table with :func:`table` (``table("kind", "en")``).
"""

from __future__ import annotations

from typing import Any

from gis.errors import InputError

__all__ = ["LANGS", "label", "table", "yes_no", "check_lang", "waiting_heading",
           "STATUS", "ALERT_STATUS", "KIND", "REASON", "OFFICE", "LIST", "YES_NO", "TEXT", "HEADERS", "BULLETIN", "SHEETS",
           "BULLETIN_SHEETS"]

#: Languages every table has; Chinese first (what the planning office reads).
LANGS: tuple[str, ...] = ("zh", "en")

#: How true and false are written in tables and popups.
YES_NO: dict[str, tuple[str, str]] = {"zh": ("是", "否"), "en": ("yes", "no")}

#: Clearance status of a parcel (codes: :data:`gis.schema.STATUSES`).
STATUS: dict[str, dict[str, str]] = {
    "zh": {"not_started": "未启动", "surveyed": "已摸底", "signed": "已签约", "compensated": "已补偿",
           "demolished": "已拆除", "delivered": "净地交付"},
    "en": {"not_started": "not started", "surveyed": "surveyed", "signed": "signed",
           "compensated": "compensated", "demolished": "demolished", "delivered": "delivered (clean land)"},
}

#: Alert status (codes: :data:`gis.schema.ALERT_STATUSES`). 已销号 is what 两违
#: offices call a closed case.
ALERT_STATUS: dict[str, dict[str, str]] = {
    "zh": {"new": "新发现", "dispatched": "已派发", "illegal": "违法", "legal": "合法",
           "false_alarm": "误报", "demolished": "已拆除", "closed": "已销号"},
    "en": {"new": "new", "dispatched": "dispatched", "illegal": "illegal", "legal": "legal",
           "false_alarm": "false alarm", "demolished": "demolished", "closed": "closed"},
}

#: Alert kind (codes: :data:`gis.schema.ALERT_KINDS`).
KIND: dict[str, dict[str, str]] = {
    "zh": {"new_structure": "新增建筑", "new_crops": "新增种植", "demolished": "拆除", "other": "其他变化"},
    "en": {"new_structure": "new structure", "new_crops": "new crops", "demolished": "demolished",
           "other": "other change"},
}

#: Why a patrol calls an alert a false alarm (codes: :data:`gis.schema.FALSE_ALARM_REASONS`).
REASON: dict[str, dict[str, str]] = {
    "zh": {"seasonal_crops": "季节性作物", "temporary_shed": "临时棚舍", "image_artefact": "影像误差",
           "existing_structure": "原有建筑", "permit_exists": "已有审批手续"},
    "en": {"seasonal_crops": "seasonal crops", "temporary_shed": "temporary shed",
           "image_artefact": "image artefact", "existing_structure": "existing structure",
           "permit_exists": "permit exists"},
}

#: Words of the served office pages (gis serve).
OFFICE: dict[str, dict[str, str]] = {
    "zh": {"app": "征地拆迁与两违监测", "login": "登录", "logout": "退出", "username": "用户名",
           "password": "密码", "bad_login": "用户名或密码错误", "too_many": "登录失败次数过多，请稍后再试",
           "alerts": "预警列表", "teams": "巡查队工作量", "figures": "进度统计与通报", "map": "清表进度图",
           "filter": "筛选", "all": "全部", "district": "所属区县", "project": "项目", "kind": "类型",
           "status": "状态", "post_freeze": "冻结日后", "growing": "面积增长", "waiting_over": "等待超过(天)",
           "area_mu": "面积(亩)", "first_seen": "首次发现", "days_waiting": "等待天数", "note": "备注",
           "photos": "照片", "not_on_site": "非现场拍摄", "dispatch": "派发", "team": "巡查队",
           "change_status": "批量改状态", "apply": "执行", "history": "处理记录", "before": "前期影像",
           "after": "后期影像", "reason": "误报原因", "open": "待处理",
           **{s: ALERT_STATUS["zh"][s] for s in ("new", "dispatched", "illegal")},
           "overdue": "超期未核查", "settled": "已处置",  # legal, false alarm, demolished or closed (已销号 is one status)
           "members": "队员", "downloads": "通报下载", "no_rows": "无", "total": "共", "error": "出错了",
           "back": "返回", "yes": YES_NO["zh"][0], "no": YES_NO["zh"][1], "distance_m": "距离(米)", "by": "操作人", "at": "时间",
           "action": "操作", "old": "原值", "new_value": "新值", "read_only": "只读"},
    "en": {"app": "Clearance and illegal-construction monitoring", "login": "Log in", "logout": "Log out",
           "username": "User name", "password": "Password", "bad_login": "Wrong user name or password",
           "too_many": "Too many failed logins; try again in a minute", "alerts": "Alerts",
           "teams": "Team workload", "figures": "Figures and bulletin", "map": "Clearance map",
           "filter": "Filter", "all": "all", "district": "District", "project": "Project", "kind": "Kind",
           "status": "Status", "post_freeze": "After freeze date", "growing": "Growing",
           "waiting_over": "Waiting over (days)", "area_mu": "Area (mu)", "first_seen": "First seen",
           "days_waiting": "Days waiting", "note": "Note", "photos": "Photos", "not_on_site": "not on site",
           "dispatch": "Dispatch", "team": "Team", "change_status": "Change status", "apply": "Apply",
           "history": "History", "before": "Before", "after": "After", "reason": "False-alarm reason",
           "open": "Open", "new": "New", "dispatched": "Dispatched", "illegal": "Illegal",
           "overdue": "Overdue", "settled": "Settled", "members": "Members", "downloads": "Bulletin downloads",
           "no_rows": "none", "total": "total", "error": "Error", "back": "Back", "yes": "yes", "no": "no",
           "distance_m": "Distance (m)", "by": "By", "at": "At", "action": "Action", "old": "Old",
           "new_value": "New", "read_only": "read only"},
}

#: The red list and the black list of the district ranking (红黑榜).
LIST: dict[str, dict[str, str]] = {
    "zh": {"red": "红榜", "black": "黑榜"},
    "en": {"red": "Red list", "black": "Black list"},
}


def _text(lang: str, words: dict[str, str]) -> dict[str, str]:
    yes, no = YES_NO[lang]
    return {**words, "yes": yes, "no": no}


#: Map text (web map, printable map, battle-map panel) and the words for the
#: layers' columns shown there.
TEXT: dict[str, dict[str, str]] = {
    "zh": _text("zh", {
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
        "overdue": "逾期", "alert_id": "预警编号", "kind": "类型", "first_seen": "首次发现",
        "last_seen": "最近发现", "post_freeze": "冻结日后新增", "verdict": "核查结论", "note": "备注",
        "confidence": "置信度", "before": "前期影像", "after": "后期影像", "parcel": "宗地",
        "mu": "亩", "m2": "m²", "alerts_open": "待处置预警", "alerts_total": "预警总数",
        "parcel_count": "宗地数", "figures": "项目指标", "north": "北", "date": "制图日期",
        "count_unit": "宗", "growing": "面积增长", "counted_on": "统计日期", "crs": "坐标系",
        "inside_note": "宗数与面积只计红线内宗地(与周通报一致)", "area_inside": "红线内面积",
        "rounding_note": "剩余房屋、户数、坟山等按宗地在红线内的面积比例折算，显示时四舍五入取整",
        "units_note": "面积单位：亩；比率为百分数",
    }),
    "en": _text("en", {
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
        "overdue": "Overdue", "alert_id": "Alert", "kind": "Kind", "first_seen": "First seen",
        "last_seen": "Last seen", "post_freeze": "After freeze date", "verdict": "Verdict", "note": "Note",
        "confidence": "Confidence", "before": "Before", "after": "After", "parcel": "Parcel",
        "mu": "mu", "m2": "m²", "alerts_open": "Open alerts", "alerts_total": "Alerts",
        "parcel_count": "Parcels", "figures": "Project figures", "north": "N", "date": "Printed",
        "count_unit": "parcels", "growing": "Growing", "counted_on": "Counted on", "crs": "CRS",
        "inside_note": "Parcels and mu inside red lines only (as in the bulletin)",
        "area_inside": "Area inside red lines",
        "rounding_note": "Houses, households, graves etc. left are pro-rated by the share of each parcel "
                         "inside the red line and shown rounded half up to whole numbers",
        "units_note": "Areas in mu; rates as percentages",
    }),
}

#: Columns whose header in a table is the word the map uses for them.
_SAME_AS_MAP = ("project_id", "name", "district", "project_type", "leader", "unit", "deadline",
                "completion_rate", "clean_land_rate", "houses_left", "graves_left", "special_crops_left",
                "attachments_left", "alert_id", "kind", "status", "parcel_id", "first_seen", "last_seen",
                "post_freeze", "note")


def _headers(lang: str, words: dict[str, str]) -> dict[str, str]:
    t = TEXT[lang]

    def unit(word: str, u: str) -> str:
        return f"{word}({u})" if lang == "zh" else f"{word} ({u})"

    return {**{c: t[c] for c in _SAME_AS_MAP},
            **{c: unit(t[c], t["mu"]) for c in ("total_mu", "acquired_mu", "delivered_mu")},
            "area_mu": unit(t["area"], t["mu"]), "area_m2": unit(t["area"], t["m2"]),
            **words}


#: Column headers of the tables people read: the figures workbook, the bulletin
#: (HTML and workbook).
HEADERS: dict[str, dict[str, str]] = {
    "zh": _headers("zh", {
        "households_left": "剩余户数(户)", "overdue": "是否逾期", "progressed": "本期有进度",
        "projects": "项目个数", "projects_progressed": "有进度项目个数", "progress_ratio": "进度占比率",
        "overdue_projects": "逾期项目个数", "rank": "排名", "list": "红黑榜", "status_since": "状态起始日",
        "waiting_days": "等待天数", "total": "合计", "figure": "指标", "value": "数值", "item": "项目",
        "scope": "口径", "start_date": "开工日期", "time_elapsed": "时间进度", "schedule_gap": "完成率减时间进度",
        "behind_schedule": "是否滞后", "behind_projects": "滞后项目个数", "schedule_rank": "序时排名",
    }),
    "en": _headers("en", {
        "households_left": "Households left", "overdue": "Overdue", "progressed": "Progress this period",
        "projects": "Projects", "projects_progressed": "Projects with progress",
        "progress_ratio": "Progress ratio", "overdue_projects": "Overdue projects", "rank": "Rank",
        "list": "List", "status_since": "Status since", "waiting_days": "Days waiting", "total": "Total",
        "figure": "Figure", "value": "Value", "item": "Item",
        "scope": "Scope", "start_date": "Start date", "time_elapsed": "Time elapsed",
        "schedule_gap": "Completion minus time", "behind_schedule": "Behind schedule",
        "behind_projects": "Projects behind schedule", "schedule_rank": "Rank on schedule",
    }),
}


def _bulletin(lang: str, words: dict[str, str]) -> dict[str, str]:
    h, t = HEADERS[lang], TEXT[lang]
    figures = ("total_mu", "acquired_mu", "delivered_mu", "completion_rate", "clean_land_rate",
               "progress_ratio", "overdue_projects")
    return {**{k: h[k] for k in figures}, "alerts_open": t["alerts_open"], **LIST[lang], **words}


#: Headings of the weekly bulletin and the names of its headline figures.
#: ``waiting`` holds ``{days}``: fill it with :func:`waiting_heading`.
BULLETIN: dict[str, dict[str, str]] = {
    "zh": _bulletin("zh", {
        "title": "征地拆迁与两违监测周通报", "period": "统计周期", "made": "生成日期",
        "headline": "一、总体情况", "projects": "二、重点项目进度(累计)", "schedule": "序时进度(项目开工至完成时限)",
        "districts": "三、区县排名(累计)", "lists": "四、红黑榜", "new_alerts": "五、本周新增预警(按区县、类型)",
        "growing": "六、面积持续增长的预警(累计，待处置)", "waiting": "七、超过{days}天未核查的预警",
        "chart": "各项目征地完成率与净地率(累计)", "none": "无", "overdue_note": "逾期项目以红色标出。",
        "n_projects": "重点项目个数", "alerts_new": "本周新增预警", "alerts_post_freeze": "冻结日后新增预警(待处置)",
        "alerts_new_post_freeze": "本周冻结日后新增预警", "behind_projects": "滞后于序时进度的项目个数",
        "this_week": "本周", "cumulative": "累计", "number": "{year}年第{n}期", "office": "印发单位",
        "issued": "印发日期", "compared": "影像对比", "compared_dates": "{before} 与 {after} 航拍影像",
        "no_compare": "无(首期影像，作为基准)", "days": "{n}天", "summary": "本期要点",
        "schedule_districts": "区县序时进度排名",
        "schedule_note": "时间进度 = 开工日期至完成时限已过去的时间占比；征地完成率低于时间进度为滞后。",
        "schedule_none": "无：红线图层没有开工日期(start_date / 开工日期)，也未在 gis.toml [start_dates] 中填写。",
        "rule_count": "前{n}名", "rule_share": "前{pct}(每榜{n}个)", "rule_black_count": "后{n}名",
        "rule_black_share": "后{pct}(每榜{n}个)",
        "rule": "规则：各区县按{figure}排名，{top}列入红榜，{bottom}列入黑榜(区县较少时每榜至多一半)。",
        "rule_overdue": "有逾期项目的区县不列入红榜，名次不递补{which}。", "rule_excluded": "(本期：{names})",
        "sum_week": "本周({start}至{end})新增预警{new}处，其中冻结日后{post}处；{moved}个项目有征地进度，"
                    "进度占比率{ratio}。",
        "sum_total": "累计征地完成率{completion}、净地率{clean}，待处置预警{open}处。",
        "sum_behind": "逾期项目{overdue}个{overdue_names}，{behind_part}；黑榜：{black}。",
        "sum_behind_part": "滞后于序时进度的项目{behind}个{behind_names}",
        "sum_no_schedule": "无开工日期、未计序时进度",
        "sum_names": "({names})", "sep": "、",
    }),
    "en": _bulletin("en", {
        "title": "Weekly bulletin: land clearance and illegal construction", "period": "Period",
        "made": "Made", "headline": "1. Overview", "projects": "2. Key projects (cumulative)",
        "districts": "3. Districts (cumulative)", "lists": "4. Red and black lists",
        "new_alerts": "5. New alerts this week (district x kind)",
        "growing": "6. Growing alerts (cumulative, open)",
        "waiting": "7. Alerts waiting for a verdict over {days} days",
        "chart": "Completion and clean-land rate by project", "none": "none",
        "overdue_note": "Overdue projects in red.", "n_projects": "Key projects",
        "alerts_new": "New alerts this week", "alerts_post_freeze": "Open alerts after freeze date",
        "alerts_new_post_freeze": "New alerts after freeze date this week",
        "behind_projects": "Projects behind schedule", "this_week": "this week", "cumulative": "cumulative",
        "number": "{year} no. {n}", "office": "Issued by", "issued": "Issued", "compared": "Imagery compared",
        "compared_dates": "survey of {before} with survey of {after}", "no_compare": "none (first survey, baseline)",
        "days": "{n} days", "summary": "This week in brief", "schedule": "Progress against time (start to deadline)",
        "schedule_districts": "Districts ranked on progress against time",
        "schedule_note": "Time elapsed = share of the time from start date to deadline that has passed; "
                         "a project whose completion rate is below it is behind schedule.",
        "schedule_none": "none: the red lines have no start date (start_date), and gis.toml [start_dates] "
                         "names none.",
        "rule_count": "the top {n}", "rule_share": "the top {pct} ({n} each)", "rule_black_count": "the bottom {n}",
        "rule_black_share": "the bottom {pct} ({n} each)",
        "rule": "Rule: districts ranked by {figure}; {top} form the red list, {bottom} the black list "
                "(with few districts each list takes at most half).",
        "rule_overdue": "A district with an overdue project is left off the red list and its place stays "
                        "empty{which}.", "rule_excluded": " (this week: {names})",
        "sum_week": "This week ({start} to {end}): {new} new alerts, {post} of them after a freeze date; "
                    "{moved} projects moved, progress ratio {ratio}.",
        "sum_total": "Cumulative completion rate {completion}, clean-land rate {clean}, {open} alerts open.",
        "sum_behind": "{overdue} projects overdue{overdue_names}, {behind_part}; black list: {black}.",
        "sum_behind_part": "{behind} behind schedule{behind_names}",
        "sum_no_schedule": "progress against time not counted (no start dates)",
        "sum_names": " ({names})", "sep": ", ",
    }),
}

#: Sheet names of the workbooks (the figures workbook uses projects, districts and about).
SHEETS: dict[str, dict[str, str]] = {
    "zh": {"headline": "总体情况", "projects": "项目进度", "districts": "区县排名",
           "red_list": LIST["zh"]["red"], "black_list": LIST["zh"]["black"],
           "new_alerts": BULLETIN["zh"]["alerts_new"], "growing": "面积增长预警",
           "waiting": "超期未核查预警", "about": "说明", "schedule": "序时进度",
           "schedule_districts": "区县序时排名"},
    "en": {"headline": "overview", "projects": "projects", "districts": "districts",
           "red_list": LIST["en"]["red"], "black_list": LIST["en"]["black"], "new_alerts": "new alerts",
           "growing": "growing alerts", "waiting": "waiting for verdict", "about": "about",
           "schedule": "progress against time", "schedule_districts": "districts on schedule"},
}
#: The bulletin workbook's sheets, in order.
BULLETIN_SHEETS: tuple[str, ...] = ("headline", "projects", "schedule", "schedule_districts", "districts",
                                    "red_list", "black_list", "new_alerts", "growing", "waiting")

_TABLES: dict[str, dict[str, Any]] = {
    "status": STATUS, "alert_status": ALERT_STATUS, "kind": KIND, "list": LIST, "reason": REASON, "office": OFFICE,
    "text": TEXT, "header": HEADERS, "bulletin": BULLETIN, "sheet": SHEETS,
}


def check_lang(lang: str) -> str:
    """``lang`` if it is one of :data:`LANGS`; else an :class:`InputError` saying which are."""
    if lang not in LANGS:
        raise InputError(f"unknown language {lang!r}", hint="use --lang zh or --lang en")
    return lang


def table(name: str, lang: str = "zh") -> dict[str, str]:
    """The whole table ``name`` (status, alert_status, kind, list, text, header, bulletin,
    sheet) in ``lang``, as a new dict."""
    if name not in _TABLES:
        raise KeyError(f"no label table {name!r}; the tables are {', '.join(_TABLES)}")
    return dict(_TABLES[name][check_lang(lang)])


def label(name: str, code: Any, lang: str = "zh") -> str:
    """The word for ``code`` in the table ``name``; a value that is not a code there
    (a status a file spelt its own way, an empty verdict) is shown as it is."""
    words = _TABLES[name][check_lang(lang)] if name in _TABLES else table(name, lang)
    return words.get(code, "" if code is None else str(code))


def yes_no(value: Any, lang: str = "zh") -> str:
    """是 / 否 (yes / no) for a truth value; '' for a missing one."""
    try:
        if value is None or value != value:  # None, NaN
            return ""
        truth = bool(value)
    except TypeError:  # pd.NA has no truth value
        return ""
    return YES_NO[check_lang(lang)][0 if truth else 1]


def waiting_heading(days: int, lang: str = "zh") -> str:
    """The bulletin's heading over the alerts waiting more than ``days`` days for a verdict."""
    return BULLETIN[check_lang(lang)]["waiting"].format(days=days)
