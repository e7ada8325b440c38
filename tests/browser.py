"""Headless Chromium, driven over the DevTools protocol through a pipe.

Used by the tests and ``scripts/bench_map.py`` to open the maps and the
bulletin as a person would: with the network off, timing the load, clicking,
reading the page and taking screenshots.

Why a pipe and no driver package: ``--remote-debugging-pipe`` makes Chromium
read protocol messages (JSON, NUL-terminated) on file descriptor 3 and write
on 4. That needs no port, no websocket library and no browser download, only
Debian's ``chromium`` (installed by ``make system``), so it works the same on a
fresh machine and offline.

Network policy: every request whose URL is not ``file:``, ``data:``,
``blob:`` or ``about:`` (or does not start with one of the ``allow`` prefixes,
e.g. the test's own ``http://127.0.0.1:PORT/`` server) is blocked and recorded
in ``external_requests``;
failed loads go to ``failed_requests``, JavaScript dialogs (``alert``...) to
``dialogs`` (and are dismissed), uncaught exceptions to ``exceptions``.

For the served phone app: ``mobile=True`` emulates a touch phone of the given
size, :meth:`Browser.set_offline` cuts the page *and* its service workers off
the network (DevTools' offline emulation applies per target),
:meth:`Browser.set_geolocation` fixes the position ``navigator.geolocation``
reports, :meth:`Browser.set_files` puts files into an ``<input type=file>`` as
if picked, and :meth:`Browser.wait_for` polls an expression.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from gis.errors import GisError

log = logging.getLogger(__name__)

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome-error:")


class BrowserError(GisError, RuntimeError):
    """Chromium is missing, died, or a page did not become ready in time."""


def find_chromium() -> str:
    """Path of a Chromium binary (``GIS_CHROMIUM`` overrides the search)."""
    env = os.environ.get("GIS_CHROMIUM")
    if env:
        return env
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError(
        "no Chromium found on PATH",
        hint="install it with `make system` (Debian package chromium) or set GIS_CHROMIUM",
    )


class Browser:
    """One headless Chromium with one page; use as a context manager.

    >>> with Browser() as b:                                   # doctest: +SKIP
    ...     seconds = b.open("maps/clearance.html", ready="window.gisReady === true")
    ...     b.screenshot("shot.png")
    """

    def __init__(self, *, width: int = 1280, height: int = 860, timeout: float = 60.0,
                 executable: str | None = None, mobile: bool = False, scale: float = 1,
                 allow: tuple[str, ...] = ()) -> None:
        self.width, self.height, self.timeout = width, height, timeout
        self.mobile, self.scale, self.allow = mobile, scale, tuple(allow)
        self.offline = False
        self.executable = executable or find_chromium()
        self.external_requests: list[str] = []
        self.failed_requests: list[dict] = []
        self.dialogs: list[str] = []
        self.exceptions: list[str] = []
        self.console_errors: list[str] = []
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._cond = threading.Condition()
        self._session: str | None = None
        self._proc: subprocess.Popen | None = None
        self._alive = False

    # --- process and protocol plumbing ------------------------------------

    def __enter__(self) -> "Browser":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self._profile = tempfile.mkdtemp(prefix="gis-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # The child's ends move above fd 9 (close-on-exec) so that the shell's
        # "3<&R 4>&W" cannot clobber one with the other. A shell does the renaming
        # rather than a preexec_fn, which is unsafe when the caller has threads. bash,
        # not sh: dash cannot name file descriptors above 9.
        r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
        w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (to_child_r, from_child_w):
            os.close(fd)
        flags = [
            "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--mute-audio", "--hide-scrollbars", "--allow-file-access-from-files",
            f"--user-data-dir={self._profile}", f"--window-size={self.width},{self.height}",
            "--remote-debugging-pipe", "about:blank",
        ]
        script = f'exec "$0" "$@" 3<&{r} 4>&{w} {r}<&- {w}>&-'
        try:
            self._proc = subprocess.Popen([shutil.which("bash") or "/bin/bash", "-c", script,
                                           self.executable, *flags],
                                          pass_fds=(r, w), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            os.close(r)
            os.close(w)
        self._alive = True
        threading.Thread(target=self._reader, daemon=True).start()
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, session=False)
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": self.scale,
                   "mobile": self.mobile})
        if self.mobile:
            self.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
        # Everything that is not a local file or inline data goes through Fetch and is refused.
        self.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]})

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            self.send("Browser.close", session=False, timeout=5)
        except BrowserError:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._alive = False
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)
        self._proc = None

    def _reader(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._alive = False
                    self._cond.notify_all()
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self._event(msg)

    def _event(self, msg: dict) -> None:
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Fetch.requestPaused":
            url = p["request"]["url"]
            if url.startswith(LOCAL_SCHEMES) or (self.allow and url.startswith(self.allow)):
                self._post("Fetch.continueRequest", {"requestId": p["requestId"]})
            else:
                self.external_requests.append(url)
                self._post("Fetch.failRequest", {"requestId": p["requestId"],
                                                  "errorReason": "InternetDisconnected"})
        elif method == "Network.loadingFailed":
            self.failed_requests.append({"error": p.get("errorText"), "id": p.get("requestId")})
        elif method == "Page.javascriptDialogOpening":
            self.dialogs.append(p.get("message", ""))
            self._post("Page.handleJavaScriptDialog", {"accept": True})
        elif method == "Runtime.exceptionThrown":
            details = p.get("exceptionDetails", {})
            self.exceptions.append(details.get("exception", {}).get("description")
                                   or details.get("text", ""))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            self.console_errors.append(p["entry"].get("text", ""))

    def _post(self, method: str, params: dict | None = None, session: bool | str = True) -> int:
        with self._cond:
            self._next_id += 1
            mid = self._next_id
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if isinstance(session, str):
            msg["sessionId"] = session
        elif session and self._session:
            msg["sessionId"] = self._session
        data = json.dumps(msg).encode() + b"\0"
        try:
            while data:  # large messages may need several writes
                data = data[os.write(self._to_child, data):]
        except OSError as exc:
            raise BrowserError(f"Chromium pipe closed while sending {method}") from exc
        return mid

    def send(self, method: str, params: dict | None = None, *, session: bool | str = True,
             timeout: float | None = None) -> dict:
        """Send one protocol command and wait for its result.

        ``session``: True for the page, False for the browser, or a session id
        (a worker attached by :meth:`set_offline`)."""
        mid = self._post(method, params, session)
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while mid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or not self._alive:
                    raise BrowserError(f"no answer from Chromium to {method}",
                                       hint="check that chromium starts: chromium --headless --version")
                self._cond.wait(min(left, 0.5))
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise BrowserError(f"{method} failed: {reply['error'].get('message')}")
        return reply.get("result", {})

    # --- what tests and benchmarks use --------------------------------------

    def evaluate(self, expression: str, *, timeout: float | None = None) -> Any:
        """Value of a JavaScript expression (promises are awaited)."""
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise BrowserError(f"JavaScript error: {d.get('exception', {}).get('description') or d.get('text')}")
        return res.get("result", {}).get("value")

    def open(self, target: str | Path, *, ready: str | None = None, timeout: float | None = None) -> float:
        """Navigate to a file (or URL) and wait until ``ready`` is true.

        Returns the seconds from navigation until the page was ready (the
        ``load`` event when ``ready`` is None).
        """
        url = target if isinstance(target, str) and ":" in target[:10] else Path(target).resolve().as_uri()
        check = ready or "document.readyState === 'complete'"
        start = time.monotonic()
        self.send("Page.navigate", {"url": url})
        deadline = start + (timeout or self.timeout)
        while True:
            try:
                if self.evaluate(f"!!({check})", timeout=max(1.0, deadline - time.monotonic())):
                    return time.monotonic() - start
            except BrowserError:
                if time.monotonic() > deadline or not self._alive:
                    raise
            if time.monotonic() > deadline:
                raise BrowserError(f"page {url} not ready after {timeout or self.timeout:.0f} s",
                                   hint=f"waited for: {check}; exceptions: {self.exceptions[:3]}")
            time.sleep(0.02)

    def click(self, x: float, y: float) -> None:
        """A left click at page coordinates (CSS pixels)."""
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                                    "clickCount": 1 if kind != "mouseMoved" else 0})

    def screenshot(self, path: str | Path, *, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": min(size[1], 12000), "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", params)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    # --- the served phone app: network, position, files -------------------------

    def wait_for(self, expression: str, *, timeout: float | None = None, what: str = "") -> Any:
        """Poll ``expression`` until it is truthy in JavaScript."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(f"!!({expression})")
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"{what or expression} not true after {timeout or self.timeout:.0f} s",
                                   hint=f"exceptions: {self.exceptions[:3]}; console: {self.console_errors[:3]}")
            time.sleep(0.1)

    def _worker_sessions(self) -> list[str]:
        """Session ids of the page's service workers (attached once, flat)."""
        known = getattr(self, "_workers", {})
        self._workers = known
        for info in self.send("Target.getTargets", session=False).get("targetInfos", []):
            if info.get("type") in ("service_worker", "worker", "shared_worker") \
                    and info["targetId"] not in known:
                attached = self.send("Target.attachToTarget",
                                     {"targetId": info["targetId"], "flatten": True}, session=False)
                known[info["targetId"]] = attached["sessionId"]
                try:
                    self.send("Network.enable", session=attached["sessionId"])
                except BrowserError:
                    pass
        return list(known.values())

    def set_offline(self, offline: bool = True) -> None:
        """Cut (or restore) the network of the page and of its service workers.

        The page also receives the ``offline`` / ``online`` events a phone
        would fire. Requests already answered from caches keep working."""
        conditions = {"offline": offline, "latency": 0, "downloadThroughput": -1,
                      "uploadThroughput": -1}
        self.send("Network.emulateNetworkConditions", conditions)
        for sid in self._worker_sessions():
            try:
                self.send("Network.emulateNetworkConditions", conditions, session=sid)
            except BrowserError:  # a worker that has stopped
                pass
        self.offline = offline

    def set_cache_disabled(self, disabled: bool = True) -> None:
        """Bypass the HTTP cache (not Cache Storage nor the service worker)."""
        self.send("Network.setCacheDisabled", {"cacheDisabled": disabled})

    def set_geolocation(self, lat: float, lon: float, accuracy: float = 5.0, *,
                        origin: str | None = None) -> None:
        """Let ``origin`` (every origin when None) read this position from navigator.geolocation."""
        params: dict[str, Any] = {"permissions": ["geolocation"]}
        if origin:
            params["origin"] = origin
        self.send("Browser.grantPermissions", params, session=False)
        self.send("Emulation.setGeolocationOverride",
                  {"latitude": lat, "longitude": lon, "accuracy": accuracy})

    def set_files(self, selector: str, paths: list[str | Path]) -> None:
        """Pick ``paths`` in the ``<input type=file>`` matched by ``selector``
        (fires its input and change events as a person's choice would)."""
        res = self.send("Runtime.evaluate", {"expression": f"document.querySelector({json.dumps(selector)})"})
        obj = res.get("result", {}).get("objectId")
        if not obj:
            raise BrowserError(f"no element matches {selector!r}")
        self.send("DOM.setFileInputFiles", {"files": [str(Path(p).resolve()) for p in paths],
                                            "objectId": obj})
