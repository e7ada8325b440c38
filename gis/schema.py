"""Every code of the domain: layer schemas, clearance and alert statuses, alert kinds, units.

The single place that knows what the layers look like (README.md, "Layers
(input schemas)") and which codes the data carries: clearance statuses and the
aliases real files use for them, alert statuses and kinds, and the sets the
rules work on (open alerts, alerts waiting for a verdict, settled alerts).
Identifiers are English; the Chinese header of each column is an accepted
alias, and so are the status names people write (their labels, from
:mod:`gis.labels`, which holds every word shown for these codes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gis.labels import STATUS as STATUS_LABELS

#: 1 mu (亩) = 10000/15 m2.
M2_PER_MU = 10000.0 / 15.0


def m2_to_mu(area_m2):
    """Square metres to mu; works on scalars and numpy / pandas arrays."""
    return area_m2 / M2_PER_MU


# --- clearance status (one way, in order) ------------------------------------

#: Clearance statuses in lifecycle order.
STATUSES: tuple[str, ...] = (
    "not_started",
    "surveyed",
    "signed",
    "compensated",
    "demolished",
    "delivered",
)
STATUS_RANK: dict[str, int] = {s: i for i, s in enumerate(STATUSES)}

#: Values accepted in a status column, mapped to the canonical status: the codes,
#: their Chinese and English labels, and the other names files use.
STATUS_ALIASES: dict[str, str] = {
    **{s: s for s in STATUSES},
    **{word.lower(): s for lang in ("zh", "en") for s, word in STATUS_LABELS[lang].items()},
    "清表": "demolished",
    "已清表": "demolished",
    "净地": "delivered",
    "已交付": "delivered",
}

#: Land counts as acquired (完成征收) from this status on.
ACQUIRED_FROM = STATUS_RANK["compensated"]
#: Counts to clear (houses, graves...) are done from this status on.
CLEARED_FROM = STATUS_RANK["demolished"]
DELIVERED = STATUS_RANK["delivered"]


# --- alerts ------------------------------------------------------------------

#: Alert statuses, in lifecycle order: new -> dispatched (to a patrol team) ->
#: illegal / legal (permit exists) / false_alarm -> (illegal) demolished -> closed.
ALERT_STATUSES: tuple[str, ...] = (
    "new", "dispatched", "illegal", "legal", "false_alarm", "demolished", "closed")
#: Alerts that still need action: matched by next week's changes, sent to patrols,
#: drawn solid on the map, counted as open in the bulletin.
OPEN_ALERT_STATUSES: tuple[str, ...] = ("new", "dispatched", "illegal")
#: Alerts still without a patrol's verdict: listed when they wait too long.
WAITING_FOR_VERDICT: tuple[str, ...] = ("new", "dispatched")
#: Verdicts a patrol records.
VERDICT_STATUSES: tuple[str, ...] = ("illegal", "legal", "false_alarm")
#: Settled alerts: a change over one is suppressed unless it grew or is of another kind.
SETTLED_ALERT_STATUSES: tuple[str, ...] = tuple(s for s in ALERT_STATUSES if s not in OPEN_ALERT_STATUSES)
#: What an alert says changed.
ALERT_KINDS: tuple[str, ...] = ("new_structure", "new_crops", "demolished", "other")
#: Why a patrol calls an alert a false alarm (a fixed list; words in gis.labels.REASON).
FALSE_ALARM_REASONS: tuple[str, ...] = (
    "seasonal_crops", "temporary_shed", "image_artefact", "existing_structure", "permit_exists")

#: Counts still to clear, as in the bulletin.
COUNT_COLUMNS: tuple[str, ...] = (
    "houses",
    "households",
    "graves",
    "special_crops",
    "attachments",
)


#: Figures districts may be ranked by for the red/black list (gis.toml
#: ``[bulletin] rank_by``); higher is better. schedule_gap is progress against time.
RANK_FIGURES: tuple[str, ...] = ("completion_rate", "clean_land_rate", "progress_ratio", "schedule_gap")


# --- layer schemas ------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    zh: str
    kind: str = "str"  # str | int | float | date | bool
    required: bool = False
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class LayerSchema:
    kind: str  # redlines | parcels | inventory
    label_zh: str
    id_column: str
    columns: tuple[Column, ...]
    status_column: str | None = None
    extra_required: tuple[str, ...] = field(default=())

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def aliases(self) -> dict[str, str]:
        """Every accepted header (lower-cased English, Chinese) -> column name.

        Includes each header cut to the 10 bytes a Shapefile (DBF) keeps, in
        GBK and in UTF-8 (``特殊青苗户数`` -> ``特殊青苗户`` / ``特殊青``;
        ``special_crops`` -> ``special_cr``), unless the cut stands for two
        columns.
        """
        out: dict[str, str] = {}
        for c in self.columns:
            for alias in (c.name, c.zh, *c.aliases):
                out[alias.strip().lower()] = c.name
        cuts: dict[str, set[str]] = {}
        for c in self.columns:
            for alias in (c.name, c.zh, *c.aliases):
                for cut in shapefile_truncations(alias):
                    cuts.setdefault(cut, set()).add(c.name)
        for cut, names in cuts.items():
            if len(names) == 1 and cut not in out:
                out[cut] = names.pop()
        return out


#: A DBF field name holds at most this many bytes; longer headers are cut.
DBF_NAME_BYTES = 10


def shapefile_truncations(header: str) -> set[str]:
    """``header`` as a Shapefile stores it when longer than 10 bytes, in GBK and UTF-8.

    A cut through a multi-byte character drops that character's bytes.
    """
    out = set()
    for enc in ("gbk", "utf-8"):
        raw = header.encode(enc, errors="ignore")
        if len(raw) > DBF_NAME_BYTES:
            cut = raw[:DBF_NAME_BYTES].decode(enc, errors="ignore").strip().lower()
            if cut:
                out.add(cut)
    return out


REDLINES = LayerSchema(
    kind="redlines",
    label_zh="项目红线",
    id_column="project_id",
    columns=(
        Column("project_id", "项目编号", required=True, aliases=("项目代码",)),
        Column("name", "项目名称"),
        Column("district", "所属区县", required=True, aliases=("区县", "所属镇办")),
        Column("project_type", "项目类型"),
        Column("leader", "包联领导"),
        Column("unit", "责任单位", aliases=("牵头单位", "包保单位")),
        Column("deadline", "完成时限", "date", aliases=("节点",)),
        Column("funded", "资金保障", "bool"),
        Column("freeze_date", "冻结日期", "date", aliases=("冻结日",)),
        # optional: the day work started, for progress against time (序时进度)
        Column("start_date", "开工日期", "date", aliases=("启动日期", "开始日期")),
    ),
)

PARCELS = LayerSchema(
    kind="parcels",
    label_zh="宗地",
    id_column="parcel_id",
    status_column="status",
    columns=(
        Column("parcel_id", "宗地编号", required=True, aliases=("地块编号",)),
        Column("district", "所属区县", required=True, aliases=("区县", "所属镇办")),
        Column("owner_type", "权属"),
        Column("land_use", "地类"),
        Column("status", "状态", required=True, aliases=("征收状态",)),
        Column("status_date", "状态日期", "date"),
        Column("houses", "房屋栋数", "int"),
        Column("households", "户数", "int"),
        Column("graves", "坟山穴数", "int"),
        Column("special_crops", "特殊青苗户数", "int"),
        Column("attachments", "附着物户数", "int"),
    ),
)

INVENTORY = LayerSchema(
    kind="inventory",
    label_zh="房屋摸底",
    id_column="structure_id",
    columns=(
        Column("structure_id", "房屋编号", required=True),
        Column("parcel_id", "宗地编号"),
        Column("survey_date", "摸底日期", "date"),
        Column("floors", "层数", "int"),
    ),
)

SCHEMAS: dict[str, LayerSchema] = {s.kind: s for s in (REDLINES, PARCELS, INVENTORY)}
