"""Builders for the `gis serve` tests: a workspace with alerts in three districts, users, and a
real `gis serve` process on a free localhost port.

``serve_workspace(root)`` runs one weekly cycle with stated changes inside
projects P01, P02 and P04: two alerts fall in 东城区, one in 临港区. One user
per role (passwords in :data:`USERS`); patrol ``p_dc`` covers 东城区, ``p_lg``
临港区. ``ServerProcess`` starts
``.venv/bin/gis serve`` on it, waits for ``/healthz`` and stops it at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in
from gis.serve import accounts
from gis.serve.storage import open_engine
from gis.weekly import run_weekly
from gis.workspace import load_workspace
from storedata import use_store

#: name -> (role, districts, password)
USERS = {
    "admin1": ("admin", (), "admin-password-1"),
    "office1": ("office", (), "office-password-1"),
    "leader1": ("leader", (), "leader-password-1"),
    "p_dc": ("patrol", ("东城区",), "patrol-password-dc"),
    "p_lg": ("patrol", ("临港区",), "patrol-password-lg"),
}
HOSTILE = ('<script>alert(1)</script>', '"><img src=x onerror=alert(2)>')


def serve_workspace(root: Path, store_url: str = "store.gpkg") -> Path:
    """A workspace with three alerts (two in 东城区, one in 临港区) and one user per role;
    its store is ``store_url`` (a GeoPackage file name or a PostGIS URL)."""
    root = use_store(make_workspace(root), store_url)
    run_weekly(root, DATES[1], detect=FakeDetect({DATES[1].isoformat(): changes(
        ("new_structure", spot_in(root, "P01")), ("new_crops", spot_in(root, "P02")),
        ("new_structure", spot_in(root, "P04")))}), maps=False)
    ws = load_workspace(root)
    engine = open_engine(ws)
    for name, (role, districts, password) in USERS.items():
        accounts.add_user(engine, name, password, role=role, districts=districts, by="test")
    return root


def alert_ids_by_district(root: Path) -> dict[str, list[str]]:
    a = load_workspace(root).open_store().alerts()
    return {d: sorted(g["alert_id"]) for d, g in a.groupby("district")}


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gis_executable() -> str:
    here = Path(sys.executable).parent / "gis"
    return str(here) if here.exists() else shutil.which("gis") or "gis"


class ServerProcess:
    """`gis serve --workspace ROOT` as a real process on 127.0.0.1:<free port>."""

    def __init__(self, root: Path, *, env: dict | None = None, log: Path | None = None,
                 extra_args: list[str] | None = None) -> None:
        self.root = Path(root)
        self.extra_args = list(extra_args or [])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log or self.root / "serve.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "ServerProcess":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([gis_executable(), "serve", "--workspace", str(self.root),
                                      "--port", str(self.port), *self.extra_args], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gis serve exited ({self.proc.returncode}): {self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gis serve did not answer in {timeout:.0f} s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()

    def client(self, token: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)

    def login(self, name: str, device: str = "phone") -> str:
        r = httpx.post(self.url + "/api/login", json={"username": name, "password": USERS[name][2],
                                                      "device": device}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["token"]


def jpeg(seed: int = 0, *, size: int = 16, gps: tuple[float, float] | None = None) -> bytes:
    """A real JPEG (with EXIF GPS when ``gps`` = (lat, lon) is given)."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    im = Image.fromarray(pixels)
    buf = io.BytesIO()
    if gps is None:
        im.save(buf, format="JPEG")
    else:
        exif = Image.Exif()
        lat, lon = gps

        def dms(v):
            v = abs(v)
            d = int(v)
            m = int((v - d) * 60)
            return (float(d), float(m), round((v - d - m / 60) * 3600, 4))

        exif[0x8825] = {1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)}
        im.save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
