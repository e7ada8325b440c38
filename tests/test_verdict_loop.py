"""The weekly run learns from the county's own verdicts (issue 21): training data from the
store over three epochs, the challenger/champion rule, rollback, patrol-reported misses,
and the warning of a model made for other imagery."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin
from shapely.geometry import box

from alertsdata import CRS, DATES, FakeDetect, changes, make_workspace
from gis.cli import main as cli
from gis.detect import detect_changes
from gis.detect.champion import Registry, challenge, compare, cross_val_probability, model_settings, retrain
from gis.detect.verdicts import PATROL, verdict_data, verdict_examples
from gis.errors import ModelLookWarning, WorkspaceError
from gis.alerts.lifecycle import set_alert
from gis.weekly import format_summary, run_weekly
from gis.workspace import load_workspace

RES = 4.0
ROOF, FIELD_CHANGE = (172, 170, 176), (70, 140, 50)
N = 8  # real changes and false alarms a week


def _spots(bounds, n: int) -> list:
    """``n`` squares of 24 m, 200 m apart, inside the county."""
    x0, y0, x1, y1 = bounds
    xs, ys = np.meshgrid(np.arange(x0 + 200, x1 - 200, 200), np.arange(y0 + 200, y1 - 200, 200))
    pts = list(zip(xs.ravel(), ys.ravel()))[:n]
    return [box(x, y, x + 24, y + 24) for x, y in pts]


def _paint(path, bounds, squares, *, seed: int, look=(1.0, 1.0, 1.0)) -> None:
    """Fields of earthy colours (the same every epoch), light noise, and squares painted on."""
    x0, y0, x1, y1 = bounds
    w, h = int((x1 - x0) / RES), int((y1 - y0) / RES)
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 4, (h // 25 + 1, w // 25 + 1))
    palette = np.array([(150, 122, 92), (138, 130, 96), (160, 140, 110), (120, 112, 80)], np.float32)
    img = palette[np.kron(cells, np.ones((25, 25), int))[:h, :w]].transpose(2, 0, 1).copy()
    img += np.random.default_rng(seed).normal(0, 3, img.shape)
    tf = from_origin(x0, y1, RES, RES)
    for geom, colour in squares:
        c0, r0 = ~tf * (geom.bounds[0], geom.bounds[3])
        c1, r1 = ~tf * (geom.bounds[2], geom.bounds[1])
        img[:, int(r0):int(r1), int(c0):int(c1)] = np.array(colour, np.float32)[:, None, None]
        if colour == ROOF:  # a roof casts a shadow
            img[:, int(r1):int(r1) + 2, int(c0):int(c1)] *= 0.45
    img = img * np.array(look, np.float32)[:, None, None]
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8", crs=CRS,
                       transform=tf) as dst:
        dst.write(np.clip(img, 0, 255).astype("uint8"))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A demo-county workspace over three epochs: week 1 brings N new roofs (illegal) and
    N greening fields (false alarms: seasonal crops); week 2 as many elsewhere, and the
    week-1 roofs are seen again; a roof built in week 2 is missed by the detector."""
    root = make_workspace(tmp_path_factory.mktemp("verdicts") / "ws")
    ws = load_workspace(root)
    with rasterio.open(ws.epochs[0].ortho) as src:
        bounds = tuple(src.bounds)
    spots = _spots(bounds, 4 * N + 1)
    real1, false1, real2, false2 = (spots[k * N:(k + 1) * N] for k in range(4))
    missed = spots[-1]
    paint = {0: [], 1: [(g, ROOF) for g in real1] + [(g, FIELD_CHANGE) for g in false1]}
    paint[2] = paint[1] + [(g, ROOF) for g in real2 + [missed]] + [(g, FIELD_CHANGE) for g in false2]
    for k, e in enumerate(ws.epochs):
        _paint(e.ortho, bounds, paint[k], seed=k + 1)
    week1 = changes(*[("new_structure", g) for g in real1 + false1])
    week2 = changes(*[("new_structure", g) for g in real1 + real2 + false2])
    detect = FakeDetect({DATES[1].isoformat(): week1, DATES[2].isoformat(): week2})
    run_weekly(root, DATES[1], detect=detect, maps=False)
    _judge(ws, real1, false1)
    run_weekly(root, DATES[2], detect=detect, maps=False)
    _judge(ws, real2, false2)
    return root, {"missed": missed, "bounds": bounds}


def _judge(ws, real, false) -> None:
    store = ws.open_store()
    alerts = store.alerts()
    for geoms, verdict in ((real, "illegal"), (false, "false_alarm")):
        for g in geoms:
            hit = alerts[alerts.intersects(g.buffer(-1))]
            aid = hit["alert_id"].iloc[0]
            if hit["status"].iloc[0] != "new":
                continue
            set_alert(store, aid, status="dispatched", by="巡查队")
            set_alert(store, aid, status=verdict, by="巡查队")
            if verdict == "false_alarm":
                with store.transaction(by="巡查队") as tx:
                    tx.event(aid, "set", "reason", "", "seasonal_crops")


@pytest.fixture
def ws_copy(base, tmp_path):
    root, facts = base
    shutil.copytree(root, tmp_path / "ws")
    return tmp_path / "ws", facts


def test_training_data_from_the_store_over_three_epochs(ws_copy):
    root, _ = ws_copy
    ws = load_workspace(root)
    ex = verdict_examples(ws)
    d0, d1, d2 = (d.isoformat() for d in DATES)
    # week-1 alerts: the pair they were first seen in, and seen again against week 2
    assert len(ex[(ex["before"] == d0) & (ex["after"] == d1)]) == 2 * N
    assert len(ex[(ex["before"] == d0) & (ex["after"] == d2)]) == N
    assert len(ex[(ex["before"] == d1) & (ex["after"] == d2)]) == 2 * N
    fa = ex[ex["verdict"] == "false_alarm"]
    assert (fa["label"] == 0).all() and (fa["reason"] == "seasonal_crops").all()
    assert (ex.loc[ex["verdict"] == "illegal", "label"] == 1).all()
    data = verdict_data(ws)
    assert data.X.shape[0] == 5 * N and set(data.groups) == {d1, d2}
    assert data.summary["real"] == 2 * N and data.summary["false"] == 2 * N
    # trained with [model] retrain in gis.toml: the weekly hook and the registry
    r = retrain(ws, force=True, epoch=d2)
    assert r.trained and r.decision.promote, r.decision.reason
    reg = Registry(ws.store_dir)
    assert reg.current == r.decision.version == "v1"
    assert reg.entry("v1")["trained_on"]["alerts"] == 4 * N
    p = reg.load()["classifier"].predict_proba(data.X)[:, 1]
    assert (p[data.y == 1] >= 0.5).mean() > 0.9 and (p[data.y == 0] < 0.5).mean() > 0.9


def test_a_worse_challenger_is_not_promoted(ws_copy):
    root, _ = ws_copy
    ws = load_workspace(root)
    data = verdict_data(ws)
    _, good = challenge(data, None)
    assert good.promote, good.reason
    # a deliberately bad verdict set: every verdict flipped
    _, bad = challenge(data, None, labels=1 - data.y)
    assert not bad.promote
    assert bad.scores["challenger"]["real_kept"] < bad.scores["current"]["real_kept"]
    # the rule itself: as many real changes kept is not enough without fewer false alarms
    y = np.array([1, 1, 0, 0])
    assert not compare(y, np.array([0.9, 0.9, 0.9, 0.9]), None, keep=0.5)[0]
    assert compare(y, np.array([0.9, 0.9, 0.1, 0.9]), None, keep=0.5)[0]
    assert not compare(y, np.array([0.9, 0.1, 0.1, 0.1]), None, keep=0.5)[0]
    # out-of-fold: each epoch's rows are predicted by a model of the other epoch
    p = cross_val_probability(data)
    assert p.shape == data.y.shape and ((p >= 0.5) == data.y).mean() > 0.8
    # and a champion that already saw every verdict is not challenged again
    reg = Registry(ws.store_dir)
    model, decision = challenge(data, None)
    reg.add(model, {}, promote=True)
    again = retrain(ws, min_new=1)
    assert not again.trained and "0 new verdicts" in again.why


def test_rollback_with_model_use(ws_copy):
    root, _ = ws_copy
    run = CliRunner().invoke
    r = run(cli, ["model", "train", "--workspace", str(root)])
    assert r.exit_code == 0, r.output
    assert "model v1" in r.output and "now current" in r.output
    r = run(cli, ["model", "train", "--workspace", str(root), "--use"])
    assert r.exit_code == 0, r.output
    reg = Registry(load_workspace(root).store_dir)
    assert reg.current == "v2"
    r = run(cli, ["model", "use", "v1", "--workspace", str(root)])
    assert r.exit_code == 0, r.output
    assert reg.current == "v1"
    listing = run(cli, ["model", "list", "--workspace", str(root)]).output
    assert "* v1" in listing and "  v2" in listing and "current: v1" in listing
    bad = run(cli, ["model", "use", "v9", "--workspace", str(root)])
    assert bad.exit_code == 2 and "no model 'v9'" in bad.output
    assert run(cli, ["model", "use", "none", "--workspace", str(root)]).exit_code == 0
    assert reg.current == ""


def test_a_patrol_reported_miss_becomes_a_positive(ws_copy):
    root, facts = ws_copy
    g = facts["missed"]
    r = CliRunner().invoke(cli, ["alerts", "add", "--workspace", str(root), "--wkt", g.wkt, "--by", "张三",
                                 "--note", "院内新建砖房", "--date", DATES[2].isoformat()])
    assert r.exit_code == 0, r.output
    aid = r.output.split(":")[0]
    assert aid.startswith(f"P{DATES[2]:%Y%m%d}-")
    ws = load_workspace(root)
    a = ws.open_store().alert(aid)
    assert a["status"] == a["verdict"] == "illegal" and a["seen_count"] == 0
    ex = verdict_examples(ws)
    row = ex[ex["alert_id"] == aid]
    assert len(row) == 1 and row["source"].iloc[0] == PATROL and row["label"].iloc[0] == 1
    assert row["after"].iloc[0] == DATES[2].isoformat() and row["before"].iloc[0] == DATES[1].isoformat()
    data = verdict_data(ws)
    assert data.summary["patrol_reported"] == 1 and (data.source == PATROL).sum() == 1
    assert ws.open_store().verify()["ok"]
    # a point and a radius, in WGS 84; a place off the imagery is refused
    r = CliRunner().invoke(cli, ["alerts", "add", "--workspace", str(root), "--lon", "0", "--lat", "0",
                                 "--by", "张三"])
    assert r.exit_code == 2 and "outside the orthophoto" in r.output


def test_weekly_retrains_and_names_the_model(ws_copy):
    root, _ = ws_copy
    toml = root / "gis.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + "\n[model]\nretrain = true\nmin_new_verdicts = 5\n",
                    encoding="utf-8")
    ws = load_workspace(root)
    assert model_settings(ws) == {"retrain": True, "min_new_verdicts": 5}
    s = run_weekly(root, DATES[2], detect=FakeDetect(), maps=False)
    assert s.model["retrain"]["trained"] and s.model["retrain"]["version"] == "v1"
    assert "model: " in format_summary(s) and "retrained: v1" in format_summary(s)
    toml.write_text(toml.read_text(encoding="utf-8").replace("min_new_verdicts = 5", "min_new_verdicts = 0"),
                    encoding="utf-8")
    with pytest.raises(WorkspaceError, match="model.min_new_verdicts"):
        model_settings(load_workspace(root))


def test_a_model_from_other_imagery_warns(ws_copy, tmp_path):
    root, facts = ws_copy
    ws = load_workspace(root)
    r = retrain(ws, force=True)
    model = Registry(ws.store_dir).model_path(r.decision.version)
    bounds = facts["bounds"]
    zone = box(bounds[0] + 150, bounds[1] + 150, bounds[0] + 700, bounds[1] + 700)
    import geopandas as gpd

    within = gpd.GeoDataFrame({"project_id": ["X"]}, geometry=[zone], crs=CRS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelLookWarning)  # its own imagery: no warning
        detect_changes(ws.epochs[1].ortho, ws.epochs[2].ortho, model=model, within=within)
    # another county's flights: darker and bluer
    for k in (1, 2):
        _paint(tmp_path / f"other_{k}.tif", bounds, [], seed=k, look=(0.6, 0.7, 1.0))
    with pytest.warns(ModelLookWarning, match="Lab units"):
        detect_changes(tmp_path / "other_1.tif", tmp_path / "other_2.tif", model=model, within=within)
