"""A parent MLflow run with nested children, each child logged from its finished run folder:
a sweep's trials, cv's folds, `train --seeds`' seeds. The caller adds a child as each one
finishes and closes the parent with the summary.

    parent = ParentRun(target, "sweep")
    parent.open("iris-sweep-20260101-120000", folder)          # the group's folder
    parent.add_child("trial 0", run_folder, {"nnctl.trial": "0", "nnctl.state": "complete"})
    warning = parent.close("completed", {"best_val_loss": 0.05}, [folder / "summary.json"])

Children are logged by the process that runs the group (the sweep's driver), from the run
folders its workers wrote: workers need no connection to the server, and a trial's files are
complete before they are copied. Once the server fails nothing more is sent and `close`
returns the one warning.
"""
from __future__ import annotations

import queue
import threading
from pathlib import Path

from .. import __version__
from ..runs.folder import RunFolder
from .client import Target, client_for, experiment_id
from .live import not_logged
from .upload import PARENT, close_run, is_active, log_folder, now_ms, send_metrics, send_params, send_tags


class ParentRun:
    """A group of runs in MLflow (see the module's docstring); `kind`: sweep | cv | seeds."""

    def __init__(self, target: Target, kind: str):
        self.target, self.kind = target, kind
        self.client = client_for(target.uri)
        self.run_id = self.experiment_id = self.folder = None
        self.failure: BaseException | None = None
        self.queue: queue.Queue | None = None
        self.thread: threading.Thread | None = None

    def add_child_later(self, *args, **kwargs) -> None:
        """`add_child` on a background thread, in order: copying a trial in (its model saved as
        a pyfunc, its files sent) must not hold up the driver handing out the next trial."""
        if self.thread is None:
            self.queue = queue.Queue()
            self.thread = threading.Thread(target=self._children, name="nnctl-mlflow-children", daemon=True)
            self.thread.start()
        self.queue.put((args, kwargs))

    def _children(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            self.add_child(*item[0], **item[1])

    def wait(self) -> None:
        """Every child queued by `add_child_later` logged (or given up on)."""
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None

    def open(self, name: str, folder, params: dict | None = None) -> None:
        """Create the parent run, named `name` (unless tracking.run_name says), for the group
        folder `folder`; `params`: what every child shares (a sweep's settings)."""
        self.folder = Path(folder)
        previous = RunFolder(self.folder).read_tracking() or {}
        try:
            if previous.get("uri") == self.target.uri and is_active(self.client, previous.get("run_id")):
                # a resumed sweep goes on in the parent it had
                self.run_id, self.experiment_id = previous["run_id"], previous.get("experiment_id")
                self.client.update_run(self.run_id, status="RUNNING")
                return
            self.experiment_id = experiment_id(self.client, self.target.experiment)
            tags = {**self.target.tags, "nnctl.version": __version__, "nnctl.kind": self.kind,
                    "nnctl.run_folder": str(self.folder.resolve()), "nnctl.status": "running"}
            run = self.client.create_run(self.experiment_id, run_name=self.target.run_name or name, tags=tags)
            self.run_id = run.info.run_id
            if params:
                send_params(self.client, self.run_id, params)
        except Exception as exc:
            self.failure = exc

    def add_child(self, name: str, folder=None, tags: dict | None = None, params: dict | None = None,
                  state: str = "complete", metrics: dict | None = None) -> None:
        """A nested run: the run folder `folder` copied in, or without one (a trial that failed
        before training) only `params` and `tags`; closed with `state`'s MLflow status."""
        if self.failure is not None or self.run_id is None:
            return
        try:
            run = self.client.create_run(self.experiment_id, run_name=name,
                                         tags={**self.target.tags, PARENT: self.run_id, **(tags or {})})
            child = run.info.run_id
            if folder is not None and RunFolder(folder).has(RunFolder.METRICS):
                log_folder(self.client, child, folder, {**self.target.tags, **(tags or {})})
                RunFolder(folder).write_tracking(self._record(child))
            if params:
                send_params(self.client, child, params, self.client.get_run(child).data.params)
            _send_values(self.client, child, metrics)
            close_run(self.client, child, state)
        except Exception as exc:
            self.failure = exc

    def close(self, status: str, metrics: dict | None = None, artifacts=(), tags: dict | None = None) -> str | None:
        """Log the group's summary (`metrics`, `artifacts`: the group's own files) and close the
        parent; returns None, or the warning saying what was not logged."""
        self.wait()
        if self.failure is None and self.run_id is not None:
            try:
                _send_values(self.client, self.run_id, metrics)
                send_tags(self.client, self.run_id, {**(tags or {}), "nnctl.status": status})
                for path in artifacts:
                    if Path(path).exists():
                        self.client.log_artifact(self.run_id, str(path))
                close_run(self.client, self.run_id, status)
            except Exception as exc:
                self.failure = exc
        if self.folder is not None and self.folder.exists() and self.run_id is not None:
            RunFolder(self.folder).write_tracking(self._record(self.run_id))
        if self.failure is None:
            return None
        return not_logged(f"the {self.kind} {self.folder.name if self.folder else ''}".rstrip(),
                          self.folder, self.target, self.failure)

    def _record(self, run_id: str) -> dict:
        return {"uri": self.target.uri, "experiment_id": self.experiment_id, "run_id": run_id,
                "logged": self.failure is None, "at": now_ms()}


def _send_values(client, run_id: str, metrics: dict | None) -> None:
    """Single values (a summary, a trial's score) as metrics at step 0; None ones left out."""
    from mlflow.entities import Metric

    stamp = now_ms()
    send_metrics(client, run_id, [Metric(k, float(v), stamp, 0) for k, v in (metrics or {}).items() if v is not None])

