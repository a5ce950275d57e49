"""Where jobs run: `LocalRunner` (processes on this machine, one BLAS thread each, so N workers
use N cores without oversubscription) or `RayRunner` (Ray tasks on a cluster's nodes, the
prepared data shipped through Ray's object store, each run folder sent back to the driver).
Both: `submit(job)` -> handle, `wait(handles)` -> [(handle, result)] for the jobs now done."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import NnctlError

BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
RAY_HINT = "install the ray extra: pip install 'nnctl[ray]' (or pip install 'ray[default]')"


def _one_blas_thread():
    for var in BLAS_THREADS:
        os.environ[var] = "1"


def _worker_start(parent: int):
    """A local worker lives no longer than the driver that started it, however the driver dies
    (an orphan would finish its trial and write into a folder nobody owns any more), and leaves
    Ctrl-C to the driver, which stops its workers itself."""
    import signal

    from ..resources import die_with_parent

    _one_blas_thread()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent, signal.SIGKILL)


class LocalRunner:
    def __init__(self, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        self._saved = {var: os.environ.get(var) for var in BLAS_THREADS}
        _one_blas_thread()  # read by each worker's BLAS when it starts ("spawn": a fresh interpreter)
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_worker_start, initargs=(os.getpid(),))

    def submit(self, job: dict):
        from .jobs import run_job

        return self.pool.submit(run_job, job)

    def wait(self, handles) -> list:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(list(handles), return_when=FIRST_COMPLETED)
        return [(h, h.result()) for h in done]

    def close(self, cancel: bool = False):
        """Waits for the running jobs; with `cancel`, stops them: their workers are ended and
        waited for, so none writes into the folder afterwards."""
        workers = list((self.pool._processes or {}).values()) if cancel else []
        self.pool.shutdown(wait=not cancel, cancel_futures=cancel)
        for process in workers:
            process.terminate()
        for process in workers:
            process.join(5)
            if process.is_alive():  # pragma: no cover - SIGTERM is not ignored by the workers
                process.kill()
                process.join()
        for var, value in self._saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _ray_job(job: dict, dataset, datasets):
    """On a cluster node: train into a temporary folder, then send its files back."""
    import ray

    from .jobs import run_job

    node = ray.get_runtime_context().get_node_id()[:8]
    scratch = tempfile.mkdtemp(prefix="nnctl-trial-")
    try:
        result = run_job({**job, "runs_dir": scratch, "node": node, "dataset": dataset, "datasets": datasets})
        root = Path(scratch)
        result["files"] = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class RayRunner:
    """Trials as Ray tasks (one CPU each). A task whose worker or node dies is retried by Ray;
    one that still fails is recorded as failed with Ray's error, never dropped."""

    RETRIES = 2

    def __init__(self, address: str, log_dir: Path):
        try:
            import ray
        except ImportError:
            raise NnctlError("running trials on Ray needs ray, which is not installed", "--ray", RAY_HINT)
        import logging

        # Ray's C++ core logs warnings straight to the terminal; the sweep's table is the output
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
        self.ray = ray
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                     include_dashboard=False) if not ray.is_initialized() else None
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise NnctlError(f"cannot connect to the Ray cluster: {exc}", f"--ray {address}",
                             "start one with `ray start --head`, or give its address (auto: RAY_ADDRESS)")
        self.task = ray.remote(num_cpus=1, max_retries=self.RETRIES)(_ray_job)
        self.refs: dict = {}  # data key -> object ref: each prepared dataset is shipped once

    def put(self, key, value):
        if key not in self.refs:
            self.refs[key] = self.ray.put(value)
        return self.refs[key]

    def submit(self, job: dict):
        dataset, datasets = job.pop("dataset_ref", None), job.pop("datasets_ref", None)
        return self.task.remote(job, dataset, datasets)

    def wait(self, handles) -> list:
        done, _ = self.ray.wait(list(handles), num_returns=1)
        out = []
        for ref in done:
            try:
                out.append((ref, self.ray.get(ref)))
            except Exception as exc:  # a task that failed after Ray's retries: say why
                out.append((ref, {"state": "failed", "value": None, "epochs": 0, "seconds": 0.0, "node": "?",
                                  "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}))
        return out

    def close(self, cancel: bool = False):
        self.ray.shutdown()
