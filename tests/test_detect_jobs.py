"""Detection's jobs, one module each: detectors behind one interface, worker
processes that import only what a window needs, and progress reported as
``progress(done, total)`` everywhere (the library draws nothing)."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from detect_fixtures import scene  # noqa: F401
from test_detect_models import _tiny_onnx

from gis.cli import main
from gis.detect import detect_changes
from gis.detect.detectors import ObjectModel, OnnxModel, SegmentModel, Unsupervised, load_detector
from gis.errors import ModelError


def test_one_detector_per_kind_of_model(tmp_path):
    assert type(load_detector(None)) is Unsupervised
    assert type(load_detector({"mode": "segments"})) is SegmentModel
    assert type(load_detector({"mode": "objects"})) is ObjectModel
    onnx = load_detector(_tiny_onnx(tmp_path / "m.onnx"))
    assert isinstance(onnx, OnnxModel) and onnx.native_resolution
    own = Unsupervised()
    assert load_detector(own) is own
    assert all(d.full_features for d in (SegmentModel({}), ObjectModel({}))) and not Unsupervised().full_features
    with pytest.raises(ModelError, match="unknown classifier mode 'pixels'"):
        load_detector({"mode": "pixels"})
    with pytest.raises(ModelError, match="does not exist"):
        load_detector(tmp_path / "none.joblib")


class NoStructures(Unsupervised):
    """A detector of one's own: it never sees a new structure."""

    def structures(self, data, f, stats, res, nir):
        return np.zeros(data.valid.shape, bool), np.zeros(data.valid.shape, np.float32)


def test_a_detector_of_ones_own_is_asked_for_every_window(scene):
    plain = detect_changes(scene["before"], scene["after"], block=256)
    mine = detect_changes(scene["before"], scene["after"], block=256, model=NoStructures())
    assert (plain.kind == "new_structure").sum() >= 4
    # crops come from the same vegetation rule whatever finds the structures
    assert "new_structure" not in set(mine.kind) and (mine.kind == "new_crops").any()


def test_a_worker_imports_only_what_a_window_needs(scene):
    """A worker process starts with the pool's module imported and unpickles window
    tasks: neither needs the output's tables (geopandas, pandas), pyproj, joblib or
    the CLI's rich, each a cost paid again by every worker's start."""
    from gis.detect.objects import MIN_AREA
    from gis.detect.sampling import sample_windows
    from gis.detect.scene import estimate_stats
    from gis.detect.window import WindowTask
    from gis.imagery import close_datasets, open_pair, windows_within

    pair = open_pair(scene["before"], scene["after"])
    windows = windows_within(pair.grid, block=256)
    stats = estimate_stats(sample_windows(pair, windows, 2, 2), res=1.0)
    close_datasets()
    w, c = windows[0]
    task = WindowTask(pair, w, c, stats, dict(MIN_AREA), factor=2)
    code = ("import importlib, pickle, sys\n"
            "from gis.detect.pool import WORKER_MODULE\n"
            "importlib.import_module(WORKER_MODULE)\n"
            "task = pickle.loads(sys.stdin.buffer.read())\n"
            "from gis.detect.window import run_window\n"
            "r = run_window(task)\n"
            "heavy = ('geopandas', 'pandas', 'pyproj', 'joblib', 'sklearn', 'rich', 'gis.detect.run')\n"
            "print(len(r.records) > 0, sorted(m for m in heavy if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(task), capture_output=True, check=True)
    assert out.stdout.decode().split("\n")[0] == "True []"


def test_detection_reports_progress_and_never_draws_it(scene):
    seen = []
    detect_changes(scene["before"], scene["after"], block=256, progress=lambda done, total: seen.append((done, total)))
    assert len(seen) > 1 and seen == [(i, len(seen)) for i in range(1, len(seen) + 1)]
    with pytest.raises(TypeError, match=r"progress\(done, total\)"):
        detect_changes(scene["before"], scene["after"], progress=True)


def test_the_cli_draws_no_bar_off_a_terminal(scene, tmp_path):
    out = tmp_path / "c.gpkg"
    r = CliRunner().invoke(main, ["detect", "--before", str(scene["before"]), "--after", str(scene["after"]),
                                  "--out", str(out), "--progress"])
    assert r.exit_code == 0, r.output
    assert r.output.count("\n") == 1 and r.output.endswith(f"-> {out}\n"), repr(r.output)


def test_weekly_reports_its_steps_and_the_windows_alike(tmp_path):
    from alertsdata import DATES, FakeDetect, make_workspace

    from gis.weekly import STEPS, run_weekly

    ws = make_workspace(tmp_path / "ws")
    fake = FakeDetect()

    def detect(before, after, progress=None, **kw):
        for done in (1, 2, 3):
            progress(done, 3)
        return fake(before, after, **kw)

    steps, windows = [], []
    run_weekly(ws, DATES[1], detect=detect, maps=False, progress=lambda done, total: steps.append((done, total)),
               detect_progress=lambda done, total: windows.append((done, total)))
    assert steps == [(i, len(STEPS)) for i in range(1, len(STEPS) + 1)]
    assert fake.calls and windows == [(1, 3), (2, 3), (3, 3)] * len(fake.calls)
