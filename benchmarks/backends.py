"""Where runs execute: a local process pool (default) or a Ray cluster.

A backend takes jobs (``Job.to_dict()``), runs ``benchmarks.jobs.execute_job`` on each and
hands back ``(job, row)`` pairs as runs finish. Rows are written by the driver only, so the
results file has a single writer whatever the backend.

- ``LocalBackend``: ``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` context
  (safe with torch), one worker per CPU by default, one torch thread per worker. Workers
  exit when the driver dies (a watchdog thread checks the parent pid), so a killed sweep
  leaves no orphan writing into run directories. If a worker process dies (segfault,
  out-of-memory kill), the pool is rebuilt and the runs it held are retried up to
  ``retries`` times, then recorded as failed.
- ``RayBackend``: each run is a Ray task (``num_cpus=1``, ``max_retries=retries``: Ray
  retries it if its worker process dies). ``ray`` is an optional extra
  (``pip install 'maxrl-bench[ray]'``), imported only when this backend is chosen.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from benchmarks.jobs import execute_job, failed_row, limit_threads

BACKENDS = ("local", "ray")


def default_workers() -> int:
    """CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


class Backend(ABC):
    """Runs jobs and reports them as they finish.

    Attributes:
        slots: How many runs the driver keeps in flight.
    """

    slots: int

    @abstractmethod
    def submit(self, job: dict[str, Any]) -> None:
        """Start one job."""

    @abstractmethod
    def wait(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Block until at least one job finishes; return ``(job, row)`` pairs."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """Jobs submitted and not yet returned by ``wait``."""

    @abstractmethod
    def close(self, cancel: bool = False) -> None:
        """Release workers; ``cancel`` drops what is still running."""

    def describe(self) -> str:
        """One-line description for logs."""
        return f"{type(self).__name__}({self.slots} slots)"


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker(threads: int, parent: int) -> None:
    limit_threads(threads)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


class LocalBackend(Backend):
    """A process pool on this machine.

    Args:
        results_dir: The suite's output directory (passed to every job).
        workers: Processes; None uses every CPU this process may use.
        threads: Torch threads per worker.
        retries: Times a run is retried when its worker process dies.
    """

    def __init__(
        self,
        results_dir: str,
        workers: int | None = None,
        threads: int = 1,
        retries: int = 1,
        imports: Sequence[str] = (),
    ) -> None:
        self.results_dir = str(results_dir)
        self.imports = tuple(imports)
        self.slots = int(workers or default_workers())
        if self.slots < 1:
            raise ValueError(f"workers={workers!r} must be >= 1")
        self.threads = threads
        self.retries = retries
        self._futures: dict[cf.Future[dict[str, Any]], tuple[dict[str, Any], int]] = {}
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self.slots,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.threads, os.getpid()),
        )

    def _submit(self, job: dict[str, Any], attempt: int) -> None:
        future = self._pool.submit(execute_job, job, self.results_dir, self.threads, self.imports)
        self._futures[future] = (job, attempt)

    def submit(self, job: dict[str, Any]) -> None:
        """Queue a job on the pool."""
        self._submit(job, 0)

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not yet returned."""
        return len(self._futures)

    def wait(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Return finished jobs; rebuild the pool and retry runs if a worker died."""
        if not self._futures:
            return []
        done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
        finished = []
        broken: list[tuple[dict[str, Any], int]] = []
        last_error = "worker process died"
        for future in done:
            job, attempt = self._futures.pop(future)
            try:
                finished.append((job, future.result()))
            except BrokenProcessPool as err:
                broken.append((job, attempt))
                last_error = f"worker process died: {err}"
            except Exception as err:  # noqa: BLE001 - e.g. a row that failed to pickle
                finished.append(
                    (job, failed_row(job, self.results_dir, f"{type(err).__name__}: {err}"))
                )
        if broken:
            # Every run still in the dead pool is lost with it: retry them on a new pool.
            for future, (job, attempt) in list(self._futures.items()):
                broken.append((job, attempt))
                self._futures.pop(future)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            for job, attempt in broken:
                if attempt < self.retries:
                    self._submit(job, attempt + 1)
                else:
                    finished.append((job, failed_row(job, self.results_dir, last_error)))
        return finished

    def close(self, cancel: bool = False) -> None:
        """Shut the pool down (workers of cancelled runs are terminated)."""
        if cancel:
            processes = list(getattr(self._pool, "_processes", {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                if process.is_alive():
                    process.terminate()
        else:
            self._pool.shutdown(wait=True)
        self._futures.clear()


class RayBackend(Backend):
    """Each run a Ray task with retries.

    Args:
        results_dir: The suite's output directory; must be reachable by every Ray node
            (a shared file system) when the cluster spans machines.
        address: Cluster address (``auto``, ``ray://host:10001``...); None starts or joins
            a local instance. An already initialized Ray session is reused.
        workers: CPUs of a local instance started here (None: all).
        threads: Torch threads per task.
        retries: Ray ``max_retries`` of each task (worker process deaths).
        imports: The suite's plugin modules, imported by each task first.
    """

    def __init__(
        self,
        results_dir: str,
        address: str | None = None,
        workers: int | None = None,
        threads: int = 1,
        retries: int = 2,
        imports: Sequence[str] = (),
    ) -> None:
        ray = import_ray()
        self.ray = ray
        self.results_dir = str(results_dir)
        self.imports = tuple(imports)
        self.threads = threads
        #: Whether this backend started Ray itself (then it also shuts it down).
        self.owns_ray = not ray.is_initialized()
        if self.owns_ray:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is not None:
                kwargs["address"] = address
            elif workers is not None:
                kwargs["num_cpus"] = int(workers)
            ray.init(**kwargs)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = max(1, cpus // max(1, threads))
        self._remote = ray.remote(num_cpus=threads, max_retries=retries)(execute_job)
        self._refs: dict[Any, dict[str, Any]] = {}

    def submit(self, job: dict[str, Any]) -> None:
        """Start a Ray task for the job."""
        ref = self._remote.remote(job, self.results_dir, self.threads, self.imports)
        self._refs[ref] = job

    @property
    def in_flight(self) -> int:
        """Tasks submitted and not yet returned."""
        return len(self._refs)

    def wait(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Return finished tasks; a task that failed after its retries becomes a failed row."""
        if not self._refs:
            return []
        ready, _ = self.ray.wait(list(self._refs), num_returns=1)
        finished = []
        for ref in ready:
            job = self._refs.pop(ref)
            try:
                finished.append((job, self.ray.get(ref)))
            except Exception as err:  # noqa: BLE001 - RayTaskError, WorkerCrashedError...
                finished.append(
                    (job, failed_row(job, self.results_dir, f"{type(err).__name__}: {err}"))
                )
        return finished

    def close(self, cancel: bool = False) -> None:
        """Cancel outstanding tasks when asked; shut Ray down if this backend started it.

        A Ray session this process joined (an ``--address`` cluster, or one already
        initialized) is left running. A driver killed with ``kill -9`` cannot run this:
        ``ray stop`` then removes the local Ray processes it left behind.
        """
        if cancel:
            for ref in self._refs:
                self.ray.cancel(ref, force=True)
        self._refs.clear()
        if self.owns_ray and self.ray.is_initialized():
            self.ray.shutdown()

    def describe(self) -> str:
        """One-line description for logs."""
        return f"RayBackend({self.slots} slots)"


def import_ray() -> Any:
    """Import ray or explain how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError(
            "--backend ray needs the optional dependency ray: pip install 'maxrl-bench[ray]'"
        ) from None
    return ray


def make_backend(
    name: str,
    results_dir: str,
    *,
    workers: int | None = None,
    address: str | None = None,
    threads: int = 1,
    imports: Sequence[str] = (),
) -> Backend:
    """Build a backend by name (``local`` or ``ray``)."""
    if name == "local":
        if address is not None:
            raise ValueError("--address is only used with --backend ray")
        return LocalBackend(results_dir, workers=workers, threads=threads, imports=imports)
    if name == "ray":
        return RayBackend(
            results_dir, address=address, workers=workers, threads=threads, imports=imports
        )
    raise ValueError(f"backend={name!r} is not supported; allowed: {', '.join(BACKENDS)}")
