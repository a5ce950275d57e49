"""One training run logged to MLflow as it trains: the MLflow run opened before training, a
training Callback that only appends each logged epoch to a buffer, and a background thread
that sends the buffer in batches (`log_batch`). The training thread never waits on the
server; at the end the finished run folder is copied in (`upload.log_folder`). Any failure of
the server stops the sending and becomes one warning: the run folder is complete either way.

    live = LiveRun(target)                       # before training: imports MLflow
    options = RunOptions(callback=Many(shown, live))
    result = run_plan(plan, options)
    warning = live.finish(result.run, result.status)   # None, or what was not logged
"""
from __future__ import annotations

import threading
from pathlib import Path

from .. import __version__
from ..runs.folder import RunFolder
from ..training.callbacks import Callback
from ..training.signals import signals_held
from .client import SENDER_WAIT_SECONDS, Target, client_for, experiment_id, reason
from .upload import close_run, history_metrics, log_folder, now_ms, owned, send_metrics

SEND_SECONDS = 2.0  # how often buffered epochs go to the server


def not_logged(what: str, folder, target: Target, exc: BaseException) -> str:
    """The one warning line (without `warning: `) for a run, sweep or cv the server did not take;
    it says how to log it later only while its folder is there (a cv that failed is removed)."""
    said = f"MLflow at {target.uri} failed ({reason(exc)}): {what} was not logged, or only in part"
    if folder is None or not Path(folder).exists():
        return said
    return f"{said}; the folder is complete: log it later with: nnctl track {folder} --uri {target.uri}"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) while a run or a group was copied in: its MLflow runs are closed
    (KILLED), never left RUNNING; `warning` says what was not logged and how to log it later."""

    def __init__(self, warning: str | None):
        super().__init__(warning or "")
        self.warning = warning


class LiveRun(Callback):
    """A training Callback logging to MLflow in the background. `resumed_from`: the run folder a
    `--resume` continues; its tracking.json's MLflow run is continued when it is on the same
    server, still there and that folder's (see upload.owned), else the new run is linked to it
    by the tag `nnctl.resumed_from`."""

    def __init__(self, target: Target, resumed_from=None, send_seconds: float = SEND_SECONDS):
        self.target, self.send_seconds = target, send_seconds
        self.resumed_from = resumed_from
        self.previous = RunFolder(resumed_from).read_tracking() if resumed_from is not None else None
        self.client = client_for(target.address)  # here, not in the sender: importing MLflow holds the GIL for seconds
        self.pending: list[dict] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.run_id = self.experiment_id = None
        self.continued, self.failure = False, None
        self.streamed: dict[str, int] = {}
        # opened here, before training: the run's first requests are Python-heavy, and made on the
        # sender's thread they would compete with the first epochs for the interpreter
        try:
            self._open()
        except Exception as exc:  # the server's failure, reported once by finish()
            self.failure = exc
        self.thread = threading.Thread(target=self._send, name="nnctl-mlflow", daemon=True)
        if self.failure is None:
            self.thread.start()

    # --- the training thread: append and return -------------------------------------------------
    def on_epoch_end(self, log: dict) -> None:
        if self.failure is None:
            with self.lock:
                self.pending.append(dict(log))

    # --- the sender thread ----------------------------------------------------------------------
    def _send(self) -> None:
        try:
            while not self.stop.wait(self.send_seconds):
                self._flush()
            self._flush()
        except Exception as exc:  # the server's failure, reported once by finish()
            self.failure = exc

    def _open(self) -> None:
        client, prev = self.client, self.previous or {}
        if prev.get("uri") == self.target.uri and owned(client, prev.get("run_id"), self.resumed_from)[0]:
            self.run_id, self.experiment_id, self.continued = prev["run_id"], prev.get("experiment_id"), True
            client.update_run(self.run_id, status="RUNNING")
            return
        self.experiment_id = experiment_id(client, self.target.experiment, self.target.uri)
        tags = {**self.target.tags, "nnctl.version": __version__, "nnctl.status": "running"}
        if prev.get("run_id"):
            tags["nnctl.resumed_from_run_id"] = prev["run_id"]
        run = client.create_run(self.experiment_id, run_name=self.target.run_name, tags=tags)
        self.run_id = run.info.run_id

    def _flush(self) -> None:
        with self.lock:
            rows, self.pending = self.pending, []
        metrics = history_metrics(rows, self.streamed)
        if metrics:
            send_metrics(self.client, self.run_id, metrics)
            for m in metrics:
                self.streamed[m.key] = max(self.streamed.get(m.key, -1), m.step)

    # --- the end ----------------------------------------------------------------------------------
    def _stop_sender(self) -> None:
        self.stop.set()
        if not self.thread.is_alive():
            return
        self.thread.join(SENDER_WAIT_SECONDS)
        if self.thread.is_alive() and self.failure is None:
            self.failure = TimeoutError(f"no answer in {SENDER_WAIT_SECONDS:g} s")

    def finish(self, folder, status: str) -> str | None:
        """Copy the finished run `folder` in and close the MLflow run; record where in the
        folder's tracking.json. Returns None, or the warning saying what was not logged."""
        folder = Path(folder)
        try:
            self._stop_sender()
            if self.failure is None:
                try:
                    if self.target.run_name is None and not self.continued:
                        self.client.update_run(self.run_id, name=folder.name)
                    log_folder(self.client, self.run_id, folder, self.target.tags, continued=self.continued,
                               streamed=self.streamed)
                    close_run(self.client, self.run_id, status)
                except Exception as exc:
                    self.failure = exc
        except KeyboardInterrupt:  # Ctrl-C while it was copied in: the MLflow run ends KILLED, not RUNNING
            self.failure = KeyboardInterrupt()
            try:
                with signals_held():
                    self._record(folder)
                    close_run(self.client, self.run_id, "interrupted")
            except Exception:  # KeyboardInterrupt too: stopping already; the server may be the trouble
                pass
            raise Interrupted(f"interrupted: run {folder.name} was logged in MLflow only in part (its run is closed "
                              f"as KILLED); the folder is complete: log the rest with: nnctl track {folder} --uri "
                              f"{self.target.uri}") from None
        self._record(folder)
        return None if self.failure is None else not_logged(f"run {folder.name}", folder, self.target, self.failure)

    def _record(self, folder: Path) -> None:
        if self.run_id is not None:
            RunFolder(folder).write_tracking({"uri": self.target.uri, "experiment_id": self.experiment_id,
                                              "run_id": self.run_id, "logged": self.failure is None,
                                              "at": now_ms()})

    def abandon(self) -> None:
        """Training failed or was stopped before a run folder was saved: the MLflow run, if
        one was opened, is closed as failed (a last try; the server may be the trouble)."""
        self._stop_sender()
        if self.run_id is not None and self.failure is None:
            try:
                close_run(self.client, self.run_id, "failed")
            except Exception:
                pass  # nothing to save: no run folder was written


def live_run(plan, uri: str | None = None, runs_dir=None):
    """(the plan with --track's `uri` in its config, without credentials, so the run folder's
    config.yaml and a later --resume keep it; the LiveRun, or None when tracking is off). Checks
    the extra, the URI and where a local store lies (not in `runs_dir`), and imports MLflow,
    before any training."""
    import dataclasses

    from .client import ENV, target_for

    where = "--track" if uri is not None else "tracking.uri"
    target = target_for(plan.cfg.tracking, plan.name, uri, where, [runs_dir] if runs_dir is not None else [])
    if uri is not None:
        cfg = plan.cfg
        kept = ENV if uri == ENV else target.uri
        plan = dataclasses.replace(plan, cfg=dataclasses.replace(cfg, tracking=dataclasses.replace(cfg.tracking, uri=kept)))
    if target is None:
        return plan, None
    return plan, LiveRun(target, plan.resume.path if plan.resume is not None else None)
