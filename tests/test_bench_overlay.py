"""The overlay benchmark runs and both variants agree (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "scripts" / "bench_overlay.py"


def test_bench_overlay_small():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--parcels", "2500", "--redlines", "12"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "areas agree (relative 1e-9): yes" in proc.stdout
    assert "speed-up" in proc.stdout


def test_bench_overlay_build_makes_its_folder(tmp_path):
    folder = tmp_path / "not" / "yet"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--build", str(folder), "--parcels", "100",
                           "--redlines", "3"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (folder / "parcels.parquet").is_file() and (folder / "redlines.parquet").is_file()
