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
from ..training.signals import signals_held
from .client import SENDER_WAIT_SECONDS, Target, client_for, experiment_id
from .live import Interrupted, not_logged
from .upload import (FOLDER_TAG, PARENT, STATUS, close_run, log_folder, now_ms, owned, send_metrics, send_params,
                     send_tags)


class ParentRun:
    """A group of runs in MLflow (see the module's docstring); `kind`: sweep | cv | seeds. Each
    child (by its name) is logged once: a parent that is continued (a resumed sweep, `nnctl
    track` after an interrupted upload) skips the children it holds in full and completes the
    one left halfway."""

    def __init__(self, target: Target, kind: str):
        self.target, self.kind = target, kind
        self.client = client_for(target.address)
        self.run_id = self.experiment_id = self.folder = None
        self.failure: BaseException | None = None
        self.queue: queue.Queue | None = None
        self.thread: threading.Thread | None = None
        self.children: dict[str, tuple[str, str]] = {}  # name -> (MLflow run id, its status)
        self.busy: str | None = None  # the child being logged, closed as KILLED if the upload is stopped
        self.stop = threading.Event()

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
            if item is None or self.stop.is_set():
                return
            self.add_child(*item[0], **item[1])

    def wait(self) -> None:
        """Every child queued by `add_child_later` logged (or given up on). An interrupt here
        leaves out the children not begun and lets the one being logged end (for at most
        SENDER_WAIT_SECONDS, holding further signals), then is raised again."""
        if self.thread is None:
            return
        self.queue.put(None)
        try:
            self.thread.join()
        except KeyboardInterrupt:
            self.stop.set()
            try:
                with signals_held():
                    self.thread.join(SENDER_WAIT_SECONDS)
            except KeyboardInterrupt:
                pass  # a second one: stopping already
            raise
        self.thread = None

    def open(self, name: str, folder, params: dict | None = None) -> None:
        """Create the parent run, named `name` (unless tracking.run_name says), for the group
        folder `folder`; `params`: what every child shares (a sweep's settings)."""
        self.folder = Path(folder)
        previous = RunFolder(self.folder).read_tracking() or {}
        try:
            if previous.get("uri") == self.target.uri and owned(self.client, previous.get("run_id"), self.folder)[0]:
                # a resumed sweep (or an upload that was stopped) goes on in the parent it had
                self.run_id, self.experiment_id = previous["run_id"], previous.get("experiment_id")
                self.client.update_run(self.run_id, status="RUNNING")
                self.children = self._logged_children()
                return
            self.experiment_id = experiment_id(self.client, self.target.experiment, self.target.uri)
            tags = {**self.target.tags, "nnctl.version": __version__, "nnctl.kind": self.kind,
                    FOLDER_TAG: str(self.folder.resolve()), "nnctl.status": "running"}
            run = self.client.create_run(self.experiment_id, run_name=self.target.run_name or name, tags=tags)
            self.run_id = run.info.run_id
            if params:
                send_params(self.client, self.run_id, params)
        except Exception as exc:
            self.failure = exc

    def _logged_children(self) -> dict[str, tuple[str, str]]:
        found, token = {}, None
        while True:
            page = self.client.search_runs([self.experiment_id], f"tags.`{PARENT}` = '{self.run_id}'",
                                           max_results=1000, page_token=token)
            found.update({r.info.run_name: (r.info.run_id, r.info.status) for r in page})
            token = page.token
            if not token:
                return found

    def add_child(self, name: str, folder=None, tags: dict | None = None, params: dict | None = None,
                  state: str = "complete", metrics: dict | None = None) -> None:
        """A nested run: the run folder `folder` copied in, or without one (a trial that failed
        before training) only `params` and `tags`; closed with `state`'s MLflow status. A child
        of that name already logged in full is left as it is; one left halfway is completed."""
        if self.failure is not None or self.run_id is None:
            return
        if folder is not None and not Path(folder).is_dir():
            return  # the group's folder was removed (a cv that failed or was stopped): nothing to copy
        status = STATUS.get(state, "FINISHED")
        have = self.children.get(name)
        if have is not None and have[1] == status:
            return
        child, copied = None, folder is not None and RunFolder(folder).has(RunFolder.METRICS)
        try:
            if have is not None and (not copied or owned(self.client, have[0], folder)[0]):
                child = have[0]
            else:
                have = None  # nnctl.status marks it nnctl's until log_folder tags it with its folder
                child = self.client.create_run(self.experiment_id, run_name=name, tags={
                    **self.target.tags, PARENT: self.run_id, **(tags or {}),
                    **({"nnctl.status": "running"} if copied else {})}).info.run_id
            self.children[name], self.busy = (child, "RUNNING"), child
            if copied:
                log_folder(self.client, child, folder, {**self.target.tags, **(tags or {})}, continued=have is not None)
            if params:
                send_params(self.client, child, params, self.client.get_run(child).data.params)
            _send_values(self.client, child, metrics)
            close_run(self.client, child, state)
            self.children[name], self.busy = (child, status), None
            if copied:
                RunFolder(folder).write_tracking(self._record(child))
        except Exception as exc:
            if folder is not None and not Path(folder).is_dir():  # removed while it was copied: not the server's doing
                self._end(child, "interrupted")
                return
            self.failure = exc

    def close(self, status: str, metrics: dict | None = None, artifacts=(), tags: dict | None = None) -> str | None:
        """Log the group's summary (`metrics`, `artifacts`: the group's own files) and close the
        parent; returns None, or the warning saying what was not logged. An interrupt while it
        logs closes what is open as KILLED and raises Interrupted, which carries the warning."""
        try:
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
        except KeyboardInterrupt:
            warning = None
            try:
                with signals_held():  # the runs closed whole, then the interrupt goes on
                    warning = self._stopped()
            except KeyboardInterrupt:
                pass
            raise Interrupted(warning) from None
        self._write_record()
        if self.failure is None:
            return None
        return not_logged(self._what(), self.folder, self.target, self.failure)

    def _stopped(self) -> str | None:
        """The upload was interrupted: the child being logged and the parent closed as KILLED,
        the group's tracking.json saying it is not logged in full."""
        self._end(self.busy, "interrupted")
        if self.failure is None:
            self._end(self.run_id, "interrupted", {"nnctl.status": "interrupted"})
        self.failure = self.failure or KeyboardInterrupt()
        self._write_record()
        if self.folder is None or not self.folder.exists():
            return None
        return (f"interrupted: {self._what()} was logged in MLflow only in part (its runs are closed as KILLED); "
                f"the folder is complete: log the rest with: nnctl track {self.folder} --uri {self.target.uri}")

    def _end(self, run_id: str | None, state: str, tags: dict | None = None) -> None:
        """A last try at closing `run_id` (the server may be the trouble)."""
        if run_id is None:
            return
        try:
            if tags:
                send_tags(self.client, run_id, tags)
            close_run(self.client, run_id, state)
        except Exception:
            pass  # said by the warning already, or the group's folder is gone

    def _write_record(self) -> None:
        if self.folder is not None and self.folder.exists() and self.run_id is not None:
            RunFolder(self.folder).write_tracking(self._record(self.run_id))

    def _what(self) -> str:
        return f"the {self.kind} {self.folder.name if self.folder else ''}".rstrip()

    def _record(self, run_id: str) -> dict:
        return {"uri": self.target.uri, "experiment_id": self.experiment_id, "run_id": run_id,
                "logged": self.failure is None, "at": now_ms()}


def _send_values(client, run_id: str, metrics: dict | None) -> None:
    """Single values (a summary, a trial's score) as metrics at step 0; None ones left out."""
    from mlflow.entities import Metric

    stamp = now_ms()
    send_metrics(client, run_id, [Metric(k, float(v), stamp, 0) for k, v in (metrics or {}).items() if v is not None])
