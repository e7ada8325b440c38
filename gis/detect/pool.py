"""Where window tasks run: in this process, or in a pool of worker processes.

A scheduler has one method, ``map(tasks)``: it runs
:func:`gis.detect.window.run_window` over the tasks and yields their results in
task order (the output never depends on which process ran what). Its work
starts when ``map`` is called, so the caller can run other tasks meanwhile,
and ``close()`` releases it. :class:`InProcess` runs them here, one after the
other; :class:`WorkerPool` in ``workers`` processes started in the background
(:func:`start_pool` chooses). Another scheduler (a Dask cluster) would provide
the same two methods: a task is plain picklable data.
"""

from __future__ import annotations

import importlib.machinery
import logging
import multiprocessing
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Protocol

import cv2

from gis.detect.window import WindowResult, WindowTask, run_window
from gis.imagery.reading import gdal_env

log = logging.getLogger(__name__)

__all__ = ["Scheduler", "InProcess", "WorkerPool", "start_pool"]

#: the module worker processes start with imported: this one (its initializer) and
#: gis.detect.window, what a window task needs
WORKER_MODULE = "gis.detect.pool"


class Scheduler(Protocol):
    workers: int

    def map(self, tasks: list[WindowTask]) -> Iterator[WindowResult]:
        """The tasks' results, in task order; the work starts now."""

    def close(self) -> None:
        """Stop, after the tasks started (their results unread are dropped)."""


class InProcess:
    """Run the tasks in this process, one after the other, as their results are read."""

    workers = 1

    def map(self, tasks: list[WindowTask]) -> Iterator[WindowResult]:
        return (run_window(t) for t in tasks)

    def close(self) -> None:
        return None


class WorkerPool:
    """A process pool started in the background: forkserver, not fork (forking a process
    whose GDAL/OpenCV thread pools hold locks can deadlock the children, seen in tests);
    spawn would re-import everything in every worker."""

    def __init__(self, workers: int):
        self.workers = workers
        ctx = multiprocessing.get_context("forkserver" if sys.platform.startswith("linux") else "spawn")
        if ctx.get_start_method() == "forkserver":
            ctx.set_forkserver_preload([WORKER_MODULE])  # workers start with it imported
        # a worker needs nothing from the caller's script, but multiprocessing re-runs a
        # script's imports in every worker unless __main__ has a module spec (the `gis`
        # CLI: ~1.4 s of imports per worker); "__main__" as its name skips that step
        self._main = sys.modules.get("__main__")
        self._hidden = self._main is not None and getattr(self._main, "__spec__", None) is None
        if self._hidden:
            self._main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
        self.ex = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, mp_context=ctx)
        # the first submit starts the processes and waits for them: do it in a thread
        self._warm = threading.Thread(target=self._start, daemon=True)
        self._warm.start()

    def _start(self) -> None:
        try:
            for f in [self.ex.submit(_noop) for _ in range(self.workers)]:
                f.result()
        except Exception as exc:  # noqa: BLE001 - a broken pool shows again in map()
            log.debug("worker pool did not start: %s", exc)

    def map(self, tasks: list[WindowTask]) -> Iterator[WindowResult]:
        """Submitted now, in chunks of up to 8 tasks (fewer round trips), at least
        four chunks per worker."""
        self._warm.join()
        chunk = max(1, min(8, len(tasks) // (self.workers * 4)))
        return self.ex.map(run_window, tasks, chunksize=chunk)

    def close(self) -> None:
        self._warm.join()
        self.ex.shutdown(wait=True, cancel_futures=True)
        if self._hidden:
            self._main.__spec__ = None


def start_pool(workers: int = 1) -> Scheduler:
    """:class:`WorkerPool` of ``workers`` processes (starting in the background), or
    :class:`InProcess` for one."""
    return WorkerPool(workers) if workers and workers > 1 else InProcess()


def _noop() -> None:
    return None


_WORKER_ENV = None


def _worker_init() -> None:
    """One thread per worker process: the processes are the parallelism, and
    OpenCV's or GDAL's own thread pools in each would only fight over the cores.
    The GDAL settings are entered once, for the worker's life."""
    global _WORKER_ENV

    cv2.setNumThreads(1)
    _WORKER_ENV = gdal_env()
    _WORKER_ENV.__enter__()
