"""A monitoring workspace: one folder with a ``gis.toml`` describing it.

The toml names the layers, the imagery epochs by survey date, per-project
freeze dates, the alert store, thresholds and the working CRS. Paths in it
are relative to the workspace folder, so a workspace can be copied or moved
as a whole. :func:`init_workspace` writes a commented file;
:func:`load_workspace` reads and validates it before any work starts. A
:class:`Workspace` loads what its commands need itself: its clearance
figures (:meth:`Workspace.clearance`), its alert store, and both together
as the maps and the bulletin show them (:meth:`Workspace.snapshot`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from gis.atomic import write_text_atomic
from gis.errors import WorkspaceError
from gis.schema import RANK_FIGURES

TOML_NAME = "gis.toml"
#: Where a workspace records its store's commits, so a vanished store is noticed.
STATE_NAME = ".gis/state.json"
#: Committed stores kept in backups/ beside the store (gis.toml: store_backups).
DEFAULT_STORE_BACKUPS = 4
#: The working CRS of a workspace whose layers are not there yet: CGCS2000 / 3-degree GK CM 114E.
DEFAULT_WORKING_CRS = "EPSG:4547"

#: Defaults for [thresholds]; the comments in the written file explain each.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "overlap_ratio": 0.3,
    "growth": 0.2,
    "min_area_m2": 20.0,
    "waiting_days": 3,
    "chip_margin_m": 30.0,
    "min_coverage": 0.5,
}


@dataclass(frozen=True)
class Epoch:
    """One aerial survey: its date, orthophoto and optional DSM."""

    date: dt.date
    ortho: Path
    dsm: Path | None = None


@dataclass(frozen=True)
class BulletinSettings:
    """gis.toml ``[bulletin]``: the issuing office, the 期号 of the year's first bulletin (the
    store's weekly runs count on from it) and the red/black list rule (the figure districts are
    ranked by, each list's size or share, and whether an overdue project keeps a district off
    the red list; see :func:`gis.clearance.figures.rank_districts`)."""

    office: str = ""
    first_number: int = 1
    rank_by: str = "completion_rate"
    list_size: int = 3
    list_share: float | None = None
    overdue_off_red: bool = True


@dataclass(frozen=True)
class Workspace:
    root: Path
    redlines: Path
    parcels: Path
    previous_parcels: Path | None
    inventory: Path | None
    epochs: list[Epoch]
    store: Path
    working_crs: str
    thresholds: dict[str, float]
    lang: str = "zh"
    freeze_dates: dict[str, dt.date] = field(default_factory=dict)
    out: Path | None = None
    store_backups: int = DEFAULT_STORE_BACKUPS
    #: A PostGIS store's URL (``store = "postgresql://..."`` or env GIS_STORE); "" for a GeoPackage.
    store_url: str = ""
    #: [layers] min_redline_m2 / id_from_layer: how red lines are read (see gis.clearance.layers).
    min_redline_m2: float = 1.0
    id_from_layer: bool = False
    bulletin: BulletinSettings = field(default_factory=BulletinSettings)
    #: [start_dates]: project id -> start date (开工日期), over the red lines' start_date column.
    start_dates: dict[str, dt.date] = field(default_factory=dict)

    @property
    def toml(self) -> Path:
        return self.root / TOML_NAME

    @property
    def store_dir(self) -> Path:
        return self.store.parent

    @property
    def state_path(self) -> Path:
        """The workspace's record of its store's commits (see gis.alerts.store)."""
        return self.root / STATE_NAME

    @property
    def latest_epoch(self) -> Epoch | None:
        """The newest imagery epoch, None when the workspace has none yet."""
        return self.epochs[-1] if self.epochs else None

    def clearance(self, as_of: dt.date | None = None):
        """The clearance figures of the workspace's layers, read as its gis.toml says.

        ``as_of`` (the day overdue projects are counted at) defaults to the
        latest imagery date, else today. A :class:`gis.clearance.pipeline.Clearance`.
        """
        # heavy (geopandas, the overlay): only commands that need it pay for it
        from gis.clearance.pipeline import clearance

        epoch = self.latest_epoch
        return clearance(self.redlines, self.parcels, previous=self.previous_parcels, inventory=self.inventory,
                         as_of=as_of or (epoch.date if epoch else dt.date.today()),
                         working_crs=self.working_crs or None, min_redline_m2=self.min_redline_m2,
                         id_from_layer=self.id_from_layer)

    def snapshot(self, as_of: dt.date | None = None) -> Snapshot:
        """What the workspace's maps and bulletin show as of ``as_of`` (default: the latest imagery date)."""
        c = self.clearance(as_of)
        store = self.open_store(crs=c.crs)
        here = store.present()
        return Snapshot(clearance=c, alerts=store.alerts() if here else None, epoch=self.latest_epoch, as_of=c.as_of,
                        store_dir=self.store_dir, lang=self.lang, runs=store.runs() if here else None)

    def open_store(self, crs: Any = None):
        """The workspace's alert store (GeoPackage or PostGIS), with its record and backups."""
        from gis.alerts.store import open_store  # heavy (geopandas): only commands that need it

        return open_store(self.store_url or self.store, crs=crs or self.working_crs, record=self.state_path,
                          backups=self.store_backups, store_dir=self.store_dir)

    def epoch(self, date: dt.date | str | None = None) -> Epoch:
        """The epoch of ``date`` (ISO string or date), or the latest one."""
        if not self.epochs:
            raise WorkspaceError("the workspace has no imagery epochs", path=self.toml,
                                 hint="add an [[epochs]] entry with date and ortho")
        if date is None:
            return self.epochs[-1]
        want = _as_date(date, "epoch", self.toml)
        for e in self.epochs:
            if e.date == want:
                return e
        raise WorkspaceError(f"no epoch dated {want.isoformat()}", path=self.toml,
                             hint="use one of " + ", ".join(e.date.isoformat() for e in self.epochs))

    def previous_epoch(self, epoch: Epoch) -> Epoch | None:
        earlier = [e for e in self.epochs if e.date < epoch.date]
        return earlier[-1] if earlier else None


@dataclass(frozen=True)
class Snapshot:
    """What the maps and the bulletin of a workspace show, as of one day (:meth:`Workspace.snapshot`)."""

    clearance: Any  # gis.clearance.pipeline.Clearance
    alerts: Any  # GeoDataFrame of the store's alerts; None before the first weekly run
    epoch: Epoch | None  # the latest imagery epoch (its orthophoto is the map's background)
    as_of: dt.date
    store_dir: Path  # alert chips and field photos are under it
    lang: str
    runs: Any = None  # the store's run log (the bulletin's 期号 counts its weekly runs); None without a store


def _as_date(value: Any, what: str, path: Path) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise WorkspaceError(f"{what}: {value!r} is not a date", path=path,
                             hint="write dates as YYYY-MM-DD") from None


def _rel(path: str | os.PathLike | None, root: Path) -> str:
    if path is None or str(path) == "":
        return ""
    # paths given to init are relative to the current folder, like any path argument
    return Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix()


def _q(value: str) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def layers_working_crs(layers: Iterable[str | os.PathLike | None], explicit: str | None = None) -> str:
    """The working CRS for a workspace over these layer files (red lines first), as gis.toml writes it.

    The rule of the clearance (:func:`gis.clearance.layers.common_working_crs`):
    the layers' own projected CRS when it keeps areas true, else the CGCS2000
    Gauss-Kruger zone of their centre. An ``explicit`` CRS is checked against
    the layers' extent. With no layer file there yet: ``explicit``, else
    :data:`DEFAULT_WORKING_CRS`.
    """
    present = [Path(p) for p in layers if p is not None and str(p) != "" and Path(p).exists()]
    if not present:
        return explicit or DEFAULT_WORKING_CRS
    # heavy (geopandas, pyogrio): only gis init and the demo pay for it
    from gis.clearance.layers import common_working_crs

    crs = common_working_crs(present, working_crs=explicit)
    auth = crs.to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else crs.to_wkt()


def init_workspace(
    directory: str | os.PathLike,
    *,
    redlines: str | os.PathLike | None = None,
    parcels: str | os.PathLike | None = None,
    previous_parcels: str | os.PathLike | None = None,
    inventory: str | os.PathLike | None = None,
    epochs: Iterable[tuple] = (),
    freeze_dates: Mapping[str, Any] | None = None,
    working_crs: str | None = None,
    store: str = "store.gpkg",
    out: str = "out",
    thresholds: Mapping[str, float] | None = None,
    lang: str = "zh",
    overwrite: bool = False,
) -> Path:
    """Write a commented ``gis.toml`` in ``directory`` and return its path.

    ``epochs`` are ``(date, ortho)`` or ``(date, ortho, dsm)`` tuples. Absolute
    paths are stored relative to the workspace folder. ``working_crs`` defaults
    to the one the clearance chooses for the layers (:func:`layers_working_crs`).
    """
    root = Path(directory)
    target = root / TOML_NAME
    if target.exists() and not overwrite:
        raise WorkspaceError("a workspace already exists here", path=target,
                             hint="edit it, or pass --force to write a new one")
    working_crs = layers_working_crs([redlines, parcels, inventory], working_crs)
    root.mkdir(parents=True, exist_ok=True)
    th = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    lines = [
        "# gis workspace: land clearance and illegal-construction monitoring.",
        "# Paths are relative to this folder, so the folder can be copied or moved.",
        "",
        "# Projected CRS in which all areas and overlaps are computed (CGCS2000 Gauss-Kruger);",
        "# Unless given (--working-crs), `gis init` chooses it from the layers as the clearance does:",
        "# their own projected CRS, else the Gauss-Kruger zone of their centre.",
        f"working_crs = {_q(working_crs)}",
        "# Language of labels people read: zh or en.",
        f"lang = {_q(lang)}",
        "# Alert store (GeoPackage). Chips and field photos live in its folder.",
        f"store = {_q(store)}",
        "# Copies of the last committed stores kept in backups/ beside it (`gis store restore`).",
        f"store_backups = {DEFAULT_STORE_BACKUPS}",
        "# Folder for maps, bulletins and figure tables written by `gis weekly`.",
        f"out = {_q(out)}",
        "",
        "[layers]",
        "# Project red lines (项目红线); a freeze_date (冻结日期) column sets each project's freeze date.",
        f"redlines = {_q(_rel(redlines, root) or 'layers/redlines.gpkg')}",
        "# Cadastral parcels (宗地) with their clearance status.",
        f"parcels = {_q(_rel(parcels, root) or 'layers/parcels.gpkg')}",
        "# Parcels as of the previous bulletin (for the progress ratio); empty when none.",
        f"previous_parcels = {_q(_rel(previous_parcels, root))}",
        "# Structure inventory (房屋摸底); empty when none.",
        f"inventory = {_q(_rel(inventory, root))}",
        "",
        "# Imagery epochs, one [[epochs]] block per survey date (航拍). dsm is optional.",
    ]
    epoch_list = sorted((tuple(e) for e in epochs), key=lambda e: str(e[0]))
    for e in epoch_list:
        date = _as_date(e[0], "epoch", target)
        lines += ["[[epochs]]", f"date = {date.isoformat()}", f"ortho = {_q(_rel(e[1], root))}"]
        if len(e) > 2 and e[2]:
            lines.append(f"dsm = {_q(_rel(e[2], root))}")
        lines.append("")
    if not epoch_list:
        lines += ["# [[epochs]]", "# date = 2026-05-01", '# ortho = "imagery/2026-05-01.tif"',
                  '# dsm = "imagery/2026-05-01_dsm.tif"', ""]
    lines += [
        "# Freeze dates (冻结日) that override the red-line layer's freeze_date column.",
        "# Structures built or crops planted after it are not compensated.",
        "[freeze_dates]",
    ]
    for pid, d in sorted((freeze_dates or {}).items()):
        lines.append(f"{_q(pid)} = {_as_date(d, 'freeze date', target).isoformat()}")
    if not freeze_dates:
        lines.append('# "P-001" = 2026-04-01')
    lines += [
        "",
        "# Start dates (开工日期) over the red lines' start_date column: progress against time (序时进度).",
        "[start_dates]",
        '# "P-001" = 2026-03-01',
        "",
        "[bulletin]",
        "# Issuing office printed on the weekly bulletin (周通报).",
        'office = ""',
        "# 期号 of the first bulletin of each year; the store's weekly runs count on from it.",
        "first_number = 1",
        "# Red/black list (红黑榜): rank_by completion_rate, clean_land_rate, progress_ratio or schedule_gap",
        "# (序时进度); list_size districts per list (or list_share = 0.2); overdue keeps off the red list.",
        'rank_by = "completion_rate"',
        "list_size = 3",
        "overdue_off_red = true",
        "",
        "[thresholds]",
        "# A change overlapping an alert by at least this share of the smaller one is the same alert.",
        f"overlap_ratio = {th['overlap_ratio']}",
        "# An alert grows when its area exceeds the area at verdict (or first sighting) by this share.",
        f"growth = {th['growth']}",
        "# Changes smaller than this (m2) are not alerts.",
        f"min_area_m2 = {th['min_area_m2']}",
        "# Alerts waiting longer than this (days) for a verdict are listed in the summary.",
        f"waiting_days = {th['waiting_days']}",
        "# Imagery margin around an alert in its before/after chips (m).",
        f"chip_margin_m = {th['chip_margin_m']}",
        "# A weekly run refuses an epoch whose imagery has data on less than this share of the red lines.",
        f"min_coverage = {th['min_coverage']}",
        "",
    ]
    write_text_atomic(target, "\n".join(lines))
    return target


def load_workspace(directory: str | os.PathLike) -> Workspace:
    """Read and validate ``DIR/gis.toml`` (or a toml path given directly)."""
    p = Path(directory)
    toml_path = p if p.suffix == ".toml" else p / TOML_NAME
    root = toml_path.parent
    if not toml_path.exists():
        raise WorkspaceError("no gis.toml in the workspace folder", path=toml_path,
                             hint=f"create one with `gis init {root}`")
    try:
        cfg = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise WorkspaceError(f"gis.toml is not valid TOML ({exc})", path=toml_path,
                             hint="fix the line named above") from None

    missing: list[str] = []

    def path_of(value: Any, what: str, required: bool) -> Path | None:
        if value is None or str(value).strip() == "":
            if required:
                missing.append(f"{what} (not set)")
            return None
        full = (root / str(value)).resolve() if not Path(str(value)).is_absolute() else Path(value)
        if not full.exists():
            missing.append(f"{what} = {value}")
        return full

    layers = cfg.get("layers", {})
    redlines = path_of(layers.get("redlines"), "layers.redlines", True)
    parcels = path_of(layers.get("parcels"), "layers.parcels", True)
    previous = path_of(layers.get("previous_parcels"), "layers.previous_parcels", False)
    inventory = path_of(layers.get("inventory"), "layers.inventory", False)
    min_redline_m2 = layers.get("min_redline_m2", 1.0)
    if isinstance(min_redline_m2, bool) or not isinstance(min_redline_m2, (int, float)) or min_redline_m2 < 0:
        raise WorkspaceError(f"layers.min_redline_m2 = {min_redline_m2!r} is not understood", path=toml_path,
                             hint="give the smallest red-line area in square metres, e.g. 1")
    id_from_layer = layers.get("id_from_layer", False)
    if not isinstance(id_from_layer, bool):
        raise WorkspaceError(f"layers.id_from_layer = {id_from_layer!r} is not understood", path=toml_path,
                             hint="write true or false")

    epochs = []
    for i, e in enumerate(cfg.get("epochs", [])):
        if "date" not in e or "ortho" not in e:
            raise WorkspaceError(f"epoch #{i + 1} needs both date and ortho", path=toml_path,
                                 hint="write date = YYYY-MM-DD and ortho = \"path.tif\"")
        date = _as_date(e["date"], f"epoch #{i + 1}", toml_path)
        ortho = path_of(e["ortho"], f"epochs[{date}].ortho", True)
        dsm = path_of(e.get("dsm"), f"epochs[{date}].dsm", False)
        epochs.append(Epoch(date, ortho, dsm))
    dates = [e.date for e in epochs]
    if len(set(dates)) != len(dates):
        dup = sorted({d.isoformat() for d in dates if dates.count(d) > 1})
        raise WorkspaceError("two epochs share a survey date", path=toml_path, ids=dup,
                             hint="keep one [[epochs]] block per date")
    if missing:
        raise WorkspaceError("paths in gis.toml do not exist", path=toml_path, ids=missing,
                             hint="fix these paths (relative to the workspace folder) and run again")

    thresholds = dict(DEFAULT_THRESHOLDS)
    for k, v in cfg.get("thresholds", {}).items():
        if k not in DEFAULT_THRESHOLDS or not isinstance(v, (int, float)) or v < 0:
            raise WorkspaceError(f"thresholds.{k} = {v!r} is not understood", path=toml_path,
                                 hint="use non-negative numbers for: " + ", ".join(DEFAULT_THRESHOLDS))
        thresholds[k] = float(v)
    freeze = {str(k): _as_date(v, f"freeze_dates.{k}", toml_path)
              for k, v in cfg.get("freeze_dates", {}).items()}
    lang = str(cfg.get("lang", "zh"))
    if lang not in ("zh", "en"):
        raise WorkspaceError(f"lang = {lang!r}", path=toml_path, hint='use "zh" or "en"')
    # GIS_STORE (a path or a postgresql:// URL) wins over gis.toml's store
    store_value = os.environ.get("GIS_STORE") or str(cfg.get("store", "store.gpkg"))
    store_url = store_value if store_value.split(":", 1)[0].lower().startswith("postgres") else ""
    # a PostGIS store keeps its chips and photo copies in the workspace folder
    store = root / ("store.gpkg" if store_url else store_value)
    backups = cfg.get("store_backups", DEFAULT_STORE_BACKUPS)
    if isinstance(backups, bool) or not isinstance(backups, int) or backups < 0:
        raise WorkspaceError(f"store_backups = {backups!r} is not understood", path=toml_path,
                             hint="use a whole number of backups to keep (0: none)")
    return Workspace(
        root=root.resolve(),
        redlines=redlines,
        parcels=parcels,
        previous_parcels=previous,
        inventory=inventory,
        epochs=sorted(epochs, key=lambda e: e.date),
        store=store.resolve(),
        working_crs=str(cfg.get("working_crs", "EPSG:4547")),
        thresholds=thresholds,
        lang=lang,
        freeze_dates=freeze,
        out=(root / str(cfg.get("out", "out"))).resolve(),
        store_backups=backups,
        store_url=store_url,
        min_redline_m2=float(min_redline_m2),
        id_from_layer=id_from_layer,
        bulletin=_bulletin_settings(cfg.get("bulletin", {}), toml_path),
        start_dates={str(k): _as_date(v, f"start_dates.{k}", toml_path) for k, v in cfg.get("start_dates", {}).items()},
    )


def _bulletin_settings(cfg: Mapping[str, Any], path: Path) -> BulletinSettings:
    """gis.toml ``[bulletin]``, checked: a wrong key or value names itself and the fix."""
    number = (int, float)
    checks = {"office": lambda v: isinstance(v, str), "rank_by": lambda v: v in RANK_FIGURES,
              "first_number": lambda v: isinstance(v, int) and v >= 1,
              "list_size": lambda v: isinstance(v, int) and v >= 0,
              "list_share": lambda v: isinstance(v, number) and 0 < v <= 0.5,
              "overdue_off_red": lambda v: isinstance(v, bool)}
    for k, v in cfg.items():
        if k not in checks or (isinstance(v, bool) and k != "overdue_off_red") or not checks[k](v):
            raise WorkspaceError(f"bulletin.{k} = {v!r} is not understood", path=path,
                                 hint="[bulletin] takes office (text), first_number (1 or more), rank_by ("
                                 + " | ".join(RANK_FIGURES) + "), list_size (whole number), "
                                 "list_share (over 0, at most 0.5) and overdue_off_red (true or false)")
    return BulletinSettings(**{k: float(v) if k == "list_share" else v for k, v in cfg.items()})
