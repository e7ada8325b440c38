"""Where window tasks run: in this process, in a pool of worker processes, or on a
Dask cluster.

A scheduler has one method, ``map(tasks)``: it runs
:func:`gis.detect.window.run_window` over the tasks and yields their results in
task order (the output never depends on which process ran what, nor on the
order tasks finish). Its work starts when ``map`` is called, so the caller can
run other tasks meanwhile, and ``close()`` releases it. :class:`InProcess` runs
them here, one after the other; :class:`WorkerPool` in ``workers`` processes
started in the background (:func:`start_pool` chooses); :class:`DaskScheduler`
on a Dask distributed cluster, at an address or started here
(``local:N``, :func:`connect`). A task is plain picklable data: the images'
paths or URLs, never an open dataset, so any machine that reaches them can run it.
:func:`scheduler_for` gives the scheduler a caller asked for, and closes it
after only if it started it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.machinery
import logging
import multiprocessing
import os
import sys
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Protocol

import cv2

from gis.detect.window import WindowResult, WindowTask, run_window
from gis.errors import InvalidValueError, SchedulerError
from gis.imagery.reading import gdal_env

log = logging.getLogger(__name__)

__all__ = ["Scheduler", "InProcess", "WorkerPool", "DaskScheduler", "start_pool", "connect", "scheduler_for",
           "parse_address", "run_windows"]

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


#: URL schemes of a Dask scheduler's address
SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
#: seconds to wait for a remote scheduler to answer, then for its first worker
CONNECT_TIMEOUT = 30.0
#: glibc's malloc settings for Dask workers: one arena (one task thread), and a
#: window's arrays (a few MB) kept on the heap instead of mapped and unmapped afresh
#: for each window (see DaskScheduler._start)
MALLOC_ENV = {"MALLOC_ARENA_MAX": 1, "MALLOC_MMAP_THRESHOLD_": 1 << 26, "MALLOC_TRIM_THRESHOLD_": 1 << 27}


def parse_address(address: str) -> tuple[str, int]:
    """``("local", N)`` for ``local:N`` (``local``: one worker per core), else
    ``(address, 0)`` with ``tcp://`` added to a bare ``host:port``."""
    a = str(address).strip()
    if a == "local" or a.startswith("local:"):
        n = a[6:] or str(os.cpu_count() or 1)
        if not n.isdigit() or int(n) < 1:
            raise InvalidValueError(
                f"--scheduler {address!r}: local:N needs a whole number N >= 1 of worker processes",
                hint="give e.g. local:4, or a Dask scheduler's address such as tcp://10.0.0.5:8786")
        return "local", int(n)
    scheme, sep, rest = a.partition("://")
    if not sep:
        scheme, rest = "tcp", a
    host, _, port = rest.rpartition(":")
    if scheme not in SCHEMES or not host or not port.isdigit():
        raise InvalidValueError(
            f"--scheduler {address!r} is neither local:N nor a Dask scheduler's address",
            hint="give local:N (N worker processes on this machine) or host:port / tcp://host:port "
                 "of a running `dask scheduler`")
    return f"{scheme}://{rest}", 0


class DaskScheduler:
    """Window tasks on a Dask distributed cluster: the tasks of ``map`` go in batches
    (up to 8 tasks: fewer round trips), at most a few per worker ahead of the
    results read, and come back in task order whatever the order they finish. A
    worker that dies is replaced by the cluster, which runs its tasks again: a
    task is a pure function of its data, so the result is the same.

    Made by :func:`connect`, which starts the connection (or the local cluster) in
    the background: ``map`` waits for it. ``workers``: the cluster's worker threads.
    """

    #: batches in flight per worker thread
    AHEAD = 8

    def __init__(self, address: str):
        self.address = address
        self.workers = 1
        self.client = None
        self.cluster = None
        self._error: BaseException | None = None
        self._ready = threading.Thread(target=self._start, daemon=True)
        self._ready.start()

    def _start(self) -> None:
        # imported here: ~0.5 s that a run without --scheduler (and every pool
        # worker, which imports this module) does not pay
        import dask
        from distributed import Client, LocalCluster

        where, n = parse_address(self.address)
        try:
            if where == "local":
                # a window's arrays (a few MB each) were mapped and unmapped afresh in a
                # Dask worker, page by page (Dask sets MALLOC_TRIM_THRESHOLD_, which turns
                # off glibc's adaptive thresholds): the whole 20,000² pair on local:1 cost
                # the worker 2 million page faults and 7 s of system time; with
                # MALLOC_ENV, 36,000 and 1.3 s
                with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in MALLOC_ENV.items()}):
                    self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                dashboard_address=None)
                self.client = Client(self.cluster)
            else:
                self.client = Client(where, timeout=CONNECT_TIMEOUT)
                self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
            self.workers = max(1, sum(self.client.nthreads().values()))
            self.client.run(_worker_init)  # workers import the window task now, not at the first one
        except (OSError, TimeoutError) as exc:
            self._error = SchedulerError(
                f"cannot use the Dask cluster at {self.address} ({exc})",
                hint="check that `dask scheduler` runs there with at least one `dask worker`, that this "
                     "machine reaches its port, and that gis is installed on the workers")
        except BaseException as exc:  # noqa: BLE001 - raised again in map()
            self._error = exc

    def _wait(self) -> None:
        self._ready.join()
        if self._error is not None:
            raise self._error

    def map(self, tasks: list[WindowTask]) -> Iterator[WindowResult]:
        """Submitted now (the first batches), the rest as results are read."""
        self._wait()
        if not tasks:
            return iter(())
        chunk = max(1, min(8, len(tasks) // (self.workers * 4)))
        # the detector (a trained model can weigh megabytes) goes to the cluster once, as
        # a task (not scattered data: a task's result is computed again if the worker
        # holding it dies)
        detector = tasks[0].detector
        shared = all(t.detector is detector for t in tasks)
        det = self.client.submit(_same, detector, pure=False) if shared else None
        if shared:
            tasks = [dataclasses.replace(t, detector=None) for t in tasks]
        batches = (tasks[i:i + chunk] for i in range(0, len(tasks), chunk))
        pending: deque = deque()
        for _ in range(self.AHEAD * self.workers):
            if not self._submit(batches, det, pending):
                break
        return self._results(batches, det, pending)

    def _submit(self, batches, det, pending: deque) -> bool:
        batch = next(batches, None)
        if batch is None:
            return False
        pending.append(self.client.submit(run_windows, batch, det, pure=False))
        return True

    def _results(self, batches, det, pending: deque) -> Iterator[WindowResult]:
        from distributed.scheduler import KilledWorker

        while pending:
            future = pending.popleft()
            self._submit(batches, det, pending)
            try:
                results = future.result()
            except KilledWorker as exc:
                raise SchedulerError(
                    f"a window task of the Dask cluster at {self.address} was running on each worker that died "
                    f"({exc})", hint="the workers may lack memory (give each at least 2 GB) or read imagery they "
                                     "cannot reach; see the workers' logs") from None
            future.release()
            yield from results

    def close(self) -> None:
        self._ready.join()
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def connect(address: str) -> DaskScheduler:
    """A :class:`DaskScheduler` on the cluster at ``address`` (``tcp://host:8786``,
    ``host:8786``), or on a cluster of N worker processes of one thread each started
    here (``local:N``). The address is checked now; the connection runs in the background."""
    parse_address(address)
    return DaskScheduler(address)


@contextlib.contextmanager
def scheduler_for(scheduler=None, workers: int = 1) -> Iterator[Scheduler]:
    """The scheduler a caller asked for: ``scheduler`` itself if it is one (left
    open: its owner closes it), a Dask cluster's address (:func:`connect`), or
    ``workers`` processes (:func:`start_pool`); the last two are closed after."""
    if scheduler is not None and not isinstance(scheduler, str):
        yield scheduler
        return
    own = connect(scheduler) if scheduler else start_pool(workers)
    try:
        yield own
    finally:
        own.close()


def run_windows(tasks: list[WindowTask], detector=None) -> list[WindowResult]:
    """A batch of tasks, as a Dask worker runs them (its process set up on first use,
    as a replacement for a worker that died is); ``detector``: the tasks' own, sent once."""
    if _WORKER_ENV is None:
        _worker_init()
    if getattr(_THREAD, "env", None) is None:
        # GDAL settings are per thread, and a Dask worker runs tasks in threads of
        # its own: entered once per thread, not once per window (see gdal_env)
        _THREAD.env = gdal_env()
        _THREAD.env.__enter__()
    if detector is not None:
        tasks = [dataclasses.replace(t, detector=detector) for t in tasks]
    return [run_window(t) for t in tasks]


def _noop() -> None:
    return None


def _same(value):
    return value


_WORKER_ENV = None
_THREAD = threading.local()  # a Dask worker thread's GDAL settings (run_windows)


def _worker_init() -> None:
    """One thread per worker process: the processes are the parallelism, and
    OpenCV's or GDAL's own thread pools in each would only fight over the cores.
    The GDAL settings are entered once, for the worker's life."""
    global _WORKER_ENV

    if _WORKER_ENV is not None:  # a Dask worker told twice
        return
    cv2.setNumThreads(1)
    _WORKER_ENV = gdal_env()
    _WORKER_ENV.__enter__()
