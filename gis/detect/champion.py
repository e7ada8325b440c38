"""Which verdict model runs: the model registry and the challenger/champion rule.

Every model trained from a workspace's verdicts is kept, with what it learnt
from and how it scored, in the store folder: ``models/<version>.joblib`` and
``models/registry.json`` (written atomically; the current model is named there,
so ``gis model use VERSION`` rolls back in one write). Files beside the store,
not a table in it: a model is tens of kilobytes of trees, is read by every
detection worker as a file, and a registry that can be copied with the store
folder (and rolled back by hand) is what a county's IT person can check.

The rule (:func:`challenge`): a challenger trained on every verdict is promoted
only if it beats the current model on verdicts the current model did not see
(those recorded since it was trained): the challenger is scored there by
cross-validation grouped by epoch (each epoch's rows predicted by a model of
the other epochs), the current model directly. Promoted when it keeps at least
as many real changes (illegal, legal, demolished) and fewer false alarms. With
no current model the detector runs unsupervised, which keeps every candidate:
the first model must then keep every real change among them and drop at least
one false alarm. Only the detector's own candidates count (a patrol-reported
miss is a positive to learn from, not a decision the model made).

``[model]`` in ``gis.toml`` (:func:`model_settings`): ``retrain = true`` lets
the weekly run train and challenge after its commit once ``min_new_verdicts``
(20) new verdicts have arrived since the current model.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gis.atomic import atomic_path
from gis.detect import classifier as C
from gis.detect.training import pair_object_rows
from gis.detect.verdicts import PROPOSER, VerdictData, fit_verdicts, verdict_data
from gis.errors import GisError, ModelError, WorkspaceError
from gis.workspace import tomllib

log = logging.getLogger(__name__)

__all__ = ["Registry", "Decision", "challenge", "retrain", "train_workspace", "with_pairs", "cross_val_probability", "compare",
           "model_settings", "false_alarm_rates", "weekly_model", "model_line", "MODEL_DEFAULTS"]

MODEL_DEFAULTS: dict[str, Any] = {"retrain": False, "min_new_verdicts": 20}
#: cross-validation folds at most (one per epoch when fewer)
FOLDS = 5
_VERSION = re.compile(r"^v\d+$")


def model_settings(ws) -> dict[str, Any]:
    """``[model]`` of the workspace's gis.toml, checked, with :data:`MODEL_DEFAULTS` filled in."""
    cfg = tomllib.loads(ws.toml.read_text(encoding="utf-8")).get("model", {})
    out = dict(MODEL_DEFAULTS)
    for k, v in cfg.items():
        ok = (k == "retrain" and isinstance(v, bool)) or \
            (k == "min_new_verdicts" and isinstance(v, int) and not isinstance(v, bool) and v >= 1)
        if not ok:
            raise WorkspaceError(f"model.{k} = {v!r} is not understood", path=ws.toml,
                                 hint="use retrain = true | false and min_new_verdicts = a whole number >= 1")
        out[k] = v
    return out


class Registry:
    """The models of one workspace (``store folder/models``) and which one runs."""

    def __init__(self, store_dir: str | Path):
        self.dir = Path(store_dir) / "models"
        self.path = self.dir / "registry.json"

    def read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"current": "", "models": []}
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"the model registry cannot be read ({exc})", path=self.path,
                             hint="restore it from a backup, or move it away to start with no model") from None

    def _write(self, reg: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            Path(tmp).write_text(json.dumps(reg, ensure_ascii=False, indent=1), encoding="utf-8")

    def models(self) -> list[dict[str, Any]]:
        return self.read()["models"]

    @property
    def current(self) -> str:
        return self.read()["current"]

    def entry(self, version: str) -> dict[str, Any]:
        for m in self.models():
            if m["version"] == version:
                return m
        known = ", ".join(m["version"] for m in self.models()) or "none yet"
        raise ModelError(f"no model {version!r} in the registry", path=self.path,
                         hint=f"list them with `gis model list` (known: {known}); `none` runs unsupervised")

    def model_path(self, version: str) -> Path:
        return self.dir / f"{version}.joblib"

    def load(self, version: str | None = None) -> dict | None:
        """The model ``version`` (default: the current one), None when none runs."""
        version = self.current if version is None else version
        if not version:
            return None
        self.entry(version)
        return C.load_model(self.model_path(version))

    def add(self, model: dict, info: dict[str, Any], *, promote: bool, epoch: str = "") -> str:
        """Keep ``model`` with ``info`` (training summary, scores); make it current when ``promote``."""
        reg = self.read()
        n = max([int(m["version"][1:]) for m in reg["models"]] or [0]) + 1
        version = f"v{n}"
        C.save_model(model, self.model_path(version))
        entry = {"version": version, "created": dt.datetime.now().isoformat(timespec="seconds"),
                 "epoch": epoch, "promoted": bool(promote), "since_epoch": epoch if promote else "", **info}
        reg["models"].append(entry)
        if promote:
            reg["current"] = version
        self._write(reg)
        return version

    def use(self, version: str, *, epoch: str = "") -> None:
        """Make ``version`` current (``none``: unsupervised detection), e.g. to roll back."""
        reg = self.read()
        if version in ("", "none"):
            reg["current"] = ""
        else:
            if not _VERSION.match(version):
                raise ModelError(f"{version!r} is not a model version", hint="versions read v1, v2, ...")
            self.entry(version)
            if not self.model_path(version).exists():
                raise ModelError(f"the file of model {version} is missing", path=self.model_path(version),
                                 hint="restore it, or use another version")
            reg["current"] = version
            for m in reg["models"]:
                if m["version"] == version:
                    m["since_epoch"] = epoch or m.get("since_epoch", "")
        self._write(reg)


@dataclass
class Decision:
    """The outcome of one challenge: the scores on the verdicts the current model did not see."""

    promote: bool
    reason: str
    current: str = ""
    scores: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    trained_on: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cross_val_probability(data: VerdictData, *, labels: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Out-of-fold probability of each row, folds grouped by epoch (``data.groups``);
    three folds over rows when the verdicts come from one epoch only. ``labels``:
    train on these instead of the verdicts (a deliberately bad set, in tests)."""
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    y = data.y if labels is None else np.asarray(labels, np.uint8)
    groups = np.unique(data.groups)
    if len(groups) >= 2:
        splits = GroupKFold(n_splits=min(FOLDS, len(groups))).split(data.X, y, data.groups)
    else:
        splits = StratifiedKFold(n_splits=max(2, min(3, int(np.bincount(y, minlength=2).min()))), shuffle=True,
                                 random_state=seed).split(data.X, y)
    p = np.ones(len(y))
    for train, test in splits:
        if len(np.unique(y[train])) < 2:
            continue  # nothing to learn from: keep them all, as the unsupervised detector would
        m = C.fit(data.X[train], y[train], mode="objects", nir=data.nir, seed=seed,
                  sample_weight=data.weight[train])
        p[test] = m["classifier"].predict_proba(data.X[test])[:, 1]
    return p


def _score(y: np.ndarray, kept: np.ndarray) -> dict[str, int]:
    return {"real": int(y.sum()), "real_kept": int((kept & (y == 1)).sum()),
            "false": int((y == 0).sum()), "false_kept": int((kept & (y == 0)).sum())}


def compare(y: np.ndarray, challenger_p: np.ndarray, current_p: np.ndarray | None, *,
            keep: float, current_keep: float = 0.5) -> tuple[bool, dict[str, Any]]:
    """The rule, on rows the current model did not see: (promote, scores). ``current_p``
    None: the unsupervised detector, which keeps every candidate."""
    ch = _score(y, challenger_p >= keep)
    cur = _score(y, np.ones(len(y), bool) if current_p is None else current_p >= current_keep)
    promote = ch["real_kept"] >= cur["real_kept"] and ch["false_kept"] < cur["false_kept"]
    return promote, {"challenger": ch, "current": cur}


def challenge(data: VerdictData, current: dict | None, *, seed: int = 0,
              labels: np.ndarray | None = None) -> tuple[dict, Decision]:
    """Train a challenger on ``data`` and judge it against ``current`` (a model dict or None)."""
    model = fit_verdicts(data, seed=seed, labels=labels)
    seen = set(current.get("keys", [])) if current else set()
    new = np.array([k not in seen for k in data.keys]) & (data.source == "detector")
    if not new.any():
        return model, Decision(False, "no verdict on the detector's candidates that the current model did not see",
                               trained_on=data.summary)
    p = cross_val_probability(data, labels=labels, seed=seed)[new]
    cur_p = None
    if current is not None:
        cur_p = current["classifier"].predict_proba(data.X[new])[:, 1]
    promote, scores = compare(data.y[new], p, cur_p, keep=model["keep"],
                              current_keep=float(current.get("keep", 0.5)) if current else 0.5)
    scores["rows"] = int(new.sum())
    ch, cu = scores["challenger"], scores["current"]
    why = (f"on {int(new.sum())} verdicts the current model did not see, the challenger keeps "
           f"{ch['real_kept']} of {ch['real']} real changes and {ch['false_kept']} of {ch['false']} false alarms; "
           f"the current model {cu['real_kept']} and {cu['false_kept']}")
    return model, Decision(promote, why, scores=scores, trained_on=data.summary)


@dataclass
class RetrainResult:
    trained: bool
    decision: Decision | None = None
    new_verdicts: int = 0
    why: str = ""


def retrain(ws, store=None, *, epoch: str = "", min_new: int | None = None, force: bool = False,
            seed: int = 0, register: bool = True) -> RetrainResult:
    """Train a challenger from the store's verdicts when enough are new (or ``force``),
    keep it in the registry, promote it by the rule. The weekly run and ``gis model
    train --workspace`` both call this."""
    store = store or ws.open_store()
    reg = Registry(ws.store_dir)
    current_version = reg.current
    current = reg.load() if current_version else None
    data = verdict_data(ws, store, register=register)
    seen = set(current.get("keys", [])) if current else set()
    fresh = {k.split("@")[0] for k in data.keys if k not in seen}
    need = MODEL_DEFAULTS["min_new_verdicts"] if min_new is None else min_new
    if not force and len(fresh) < need:
        return RetrainResult(False, new_verdicts=len(fresh),
                             why=f"{len(fresh)} new verdicts since the current model, {need} needed")
    model, decision = challenge(data, current, seed=seed)
    decision.current = current_version
    decision.version = reg.add(model, {"trained_on": decision.trained_on, "scores": decision.scores,
                                       "decision": decision.reason, "against": current_version},
                               promote=decision.promote, epoch=epoch)
    log.info("model %s %s: %s", decision.version, "promoted" if decision.promote else "kept aside", decision.reason)
    return RetrainResult(True, decision, new_verdicts=len(fresh))


def with_pairs(data: VerdictData, pairs, *, register: bool = True) -> VerdictData:
    """``data`` plus object rows from labelled pairs (:func:`gis.detect.training.pair_object_rows`):
    a fold of their own in cross-validation, never counted as verdicts the rule judges on."""
    X, y = pair_object_rows(pairs, proposer=PROPOSER, register=register)
    n = len(y)
    out = VerdictData(np.concatenate([data.X, X]), np.concatenate([data.y, y]),
                      np.concatenate([data.weight, np.ones(n)]), np.concatenate([data.groups, ["pairs"] * n]),
                      np.concatenate([data.keys, [f"pairs#{i}" for i in range(n)]]),
                      np.concatenate([data.source, ["pairs"] * n]), data.nir, data.lab_ref, dict(data.summary))
    out.summary["pair_rows"] = int(n)
    return out


def train_workspace(ws, *, pairs=None, use: bool = False, register: bool = True, out=None,
                    seed: int = 0) -> RetrainResult:
    """``gis model train --workspace``: a challenger from every verdict (and labelled
    ``pairs``), kept in the registry, promoted by the rule (or made current when ``use``);
    also written to ``out`` when given."""
    store = ws.open_store()
    reg = Registry(ws.store_dir)
    current = reg.load() if reg.current else None
    data = verdict_data(ws, store, register=register)
    if pairs is not None:
        data = with_pairs(data, pairs, register=register)
    model, decision = challenge(data, current, seed=seed)
    decision.current = reg.current
    epoch = ws.latest_epoch.date.isoformat() if ws.latest_epoch else ""
    decision.version = reg.add(model, {"trained_on": decision.trained_on, "scores": decision.scores,
                                       "decision": decision.reason, "against": reg.current},
                               promote=decision.promote or use, epoch=epoch)
    if out is not None:
        C.save_model(model, out)
    return RetrainResult(True, decision, new_verdicts=int(decision.scores.get("rows", 0)))


def false_alarm_rates(ws, alerts) -> dict[str, Any]:
    """Share of false alarms among the verdicts on the alerts each model found (by the
    epoch it started running at): the current model's and the one before it."""
    reg = Registry(ws.store_dir)
    runs = sorted(((m.get("since_epoch") or "", m["version"]) for m in reg.models() if m.get("since_epoch")))
    current = reg.current

    def rate(lo: str, hi: str) -> tuple[float | None, int]:
        a = alerts[(alerts["first_seen"] >= lo) & (alerts["first_seen"] < hi) & (alerts["seen_count"] > 0)]
        v = a["verdict"].fillna("")
        v = v[v != ""]
        return (float((v == "false_alarm").mean()) if len(v) else None), int(len(v))

    starts = [s for s, ver in runs if ver == current]
    start = starts[-1] if starts else ""
    before = [s for s, _ in runs if s < start]
    now_rate, n_now = rate(start, "9999") if current else rate("", "9999")
    prev_rate, n_prev = rate(before[-1] if before else "", start) if start else (None, 0)
    return {"version": current or "unsupervised", "since": start, "false_alarm_rate": now_rate,
            "verdicts": n_now, "previous_false_alarm_rate": prev_rate, "previous_verdicts": n_prev}


def weekly_model(ws, store, epoch: str) -> dict[str, Any]:
    """After a weekly commit: with ``[model] retrain = true``, train a challenger when enough
    verdicts are new and promote it by the rule; and which model ran, with its false-alarm
    rate (:func:`false_alarm_rates`). A failed retraining is logged and reported, never
    raised: the week is committed already."""
    out: dict[str, Any] = {}
    settings = model_settings(ws)
    if settings["retrain"]:
        try:
            r = retrain(ws, store, epoch=epoch, min_new=settings["min_new_verdicts"])
            out["retrain"] = ({"trained": True, "version": r.decision.version, "promoted": r.decision.promote,
                               "reason": r.decision.reason} if r.trained else {"trained": False, "reason": r.why})
        except GisError as exc:
            log.warning("the verdict model was not retrained: %s", exc)
            out["retrain"] = {"trained": False, "reason": f"{type(exc).__name__}: {exc}"}
    out.update(false_alarm_rates(ws, store.alerts()))
    return out


def model_line(m: dict[str, Any]) -> str:
    """One line for people: which model ran, how its false-alarm rate moved, the retraining."""
    def pct(v):
        return "-" if v is None else f"{100 * v:.0f} %"

    line = (f"model: {m['version']}" + (f" (since {m['since']})" if m.get("since") else "")
            + f", false alarms {pct(m.get('false_alarm_rate'))} of {m.get('verdicts', 0)} verdicts")
    if m.get("previous_false_alarm_rate") is not None:
        line += f" (before it: {pct(m['previous_false_alarm_rate'])})"
    r = m.get("retrain")
    if r:
        line += ("; retrained: " + (f"{r['version']} {'promoted' if r['promoted'] else 'kept aside'}"
                                    if r.get("trained") else "no") + f" ({r['reason']})")
    return line
