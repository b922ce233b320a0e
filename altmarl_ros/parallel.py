"""Run independent jobs serially, in local processes, or on a Ray cluster; results come back in job order.

Why: a sweep's (k, seed) jobs are pure functions of their arguments (every draw flows
from the job's seed, and the G-LEARN kernels do not depend on thread counts), so where
and in which order they run cannot change a digit. The caller gets each result in the
driver as it completes (`on_done`) and writes the files itself, so a parallel sweep
writes what a serial one writes. Ray is optional (`pip install ray`); it is imported
only when asked for.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from altmarl_ros.marl.errors import AltmarlError

log = logging.getLogger(__name__)

LOCAL_RAY = "local"


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def check_workers(workers: int) -> int:
    if not isinstance(workers, int) or workers < 1:
        raise AltmarlError(f"--jobs must be an integer >= 1 (processes running jobs at once), got {workers!r}")
    return workers


def _init_worker(threads: int) -> None:
    """A worker's compiled kernels use its share of the cores (same digits for any count)."""
    from altmarl_ros.marl import count_kernels

    if count_kernels.COMPILED:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def run_jobs(function: Callable[..., Any], jobs: Sequence[tuple], *, workers: int = 1, ray_address: str | None = None,
             on_done: Callable[[int, Any], None] | None = None, progress: bool = False,
             desc: str = "jobs") -> list[Any]:
    """function(*job) for every job; `on_done(index, result)` in this process as each one completes.

    workers == 1 and no ray_address: in this process, in order. Otherwise `workers` local
    processes (spawned, so nothing of this process's state is shared), or the Ray cluster
    at `ray_address` (`local`: start one on this machine with `workers` CPUs). The first
    job to fail stops the rest and is raised here.
    """
    from tqdm import tqdm

    check_workers(workers)
    results: list[Any] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress)

    def finish(index: int, result: Any) -> None:
        results[index] = result
        if on_done is not None:
            on_done(index, result)
        bar.update(1)

    try:
        if ray_address is not None:
            _run_on_ray(function, jobs, workers, ray_address, finish)
        elif workers == 1 or len(jobs) <= 1:
            for index, job in enumerate(jobs):
                finish(index, function(*job))
        else:
            _run_in_processes(function, jobs, workers, finish)
    finally:
        bar.close()
    return results


def _run_in_processes(function: Callable[..., Any], jobs: Sequence[tuple], workers: int,
                      finish: Callable[[int, Any], None]) -> None:
    workers = min(workers, len(jobs))
    threads = max(1, available_cores() // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool:
        pending = {pool.submit(function, *job): index for index, job in enumerate(jobs)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=pending.get):
                    index = pending.pop(future)
                    finish(index, future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise


RAY_CONNECT_TIMEOUT_S = 5.0


def check_ray_address(address: str) -> None:
    """Fail fast on an unreachable HOST:PORT (or ray://HOST:PORT): Ray itself retries for minutes."""
    if address in (LOCAL_RAY, "auto"):
        return
    target = address.split("://", 1)[1] if "://" in address else address
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise AltmarlError(f"--ray {address}: expected HOST:PORT, ray://HOST:PORT, auto or local")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise AltmarlError(f"--ray {address}: nothing answers at {host}:{port} within {RAY_CONNECT_TIMEOUT_S:g} s "
                           f"({exc.strerror or exc}); start the cluster (ray start --head) or use --ray local") from exc


def _ray_job(function: Callable[..., Any], threads: int, job: tuple) -> Any:
    _init_worker(threads)
    return function(*job)


def _run_on_ray(function: Callable[..., Any], jobs: Sequence[tuple], workers: int, address: str,
                finish: Callable[[int, Any], None]) -> None:
    try:
        import ray
    except ImportError as exc:
        raise AltmarlError("--ray needs Ray: pip install ray (an optional extra: pip install altmarl_ros[cluster])"
                           ) from exc
    started = not ray.is_initialized()
    if started:
        check_ray_address(address)
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address == LOCAL_RAY:
            options["num_cpus"] = workers
        else:
            options["address"] = address
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise AltmarlError(f"--ray {address}: could not connect to a Ray cluster ({exc}); give the address of a "
                               "running cluster (ray start --head prints it), or `local` to start one here") from exc
    try:
        remote = ray.remote(num_cpus=1)(_ray_job)
        futures = [remote.remote(function, 1, job) for job in jobs]
        index_of = {future: index for index, future in enumerate(futures)}
        pending = list(futures)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            finish(index_of[done[0]], ray.get(done[0]))
    finally:
        if started:
            ray.shutdown()
