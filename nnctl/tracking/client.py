"""MLflow's own client, set up for nnctl: the extra checked before any training, the URI
resolved (`env` = $MLFLOW_TRACKING_URI), and short timeouts, so a dead or slow server costs
seconds and never a run."""
from __future__ import annotations

import os
import re
from urllib.parse import urlsplit
from dataclasses import dataclass, field

from ..errors import NnctlError
from .uris import artifact_location, check_store, connection, refuse_stored_credentials, scrub

ENV = "env"  # tracking.uri / --track: take the URI from MLFLOW_TRACKING_URI
INSTALL = 'pip install "nnctl[mlflow]"'

# MLflow retries a failed request for minutes by default (7 retries, backoff, 120 s timeout):
# a copy of the run is not worth that wait. A user's own settings win.
CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # stdout is the run's path, for scripts
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # stderr is nnctl's progress and its one warning
}
# how long the end of a run waits for the background sender before giving up on the server
SENDER_WAIT_SECONDS = 15.0


def require_mlflow(where: str = "tracking.uri") -> None:
    """The extra is installed, or an NnctlError saying how to install it. Imports MLflow (which
    tracking needs next anyway), so a broken install shows here, before any training."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise NnctlError("tracking runs in MLflow needs the mlflow package, which is not installed", where,
                         f"{INSTALL}, or leave tracking off")


def resolve_uri(uri: str | None, where: str = "tracking.uri") -> str | None:
    """The URI to log to: `uri` itself, or with `env` the MLFLOW_TRACKING_URI variable; None = off."""
    if uri is None:
        return None
    if uri == ENV:
        found = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
        if not found:
            raise NnctlError("tracking is on without a URI (env), but MLFLOW_TRACKING_URI is not set", where,
                             "export MLFLOW_TRACKING_URI=http://host:5000, or give the URI itself")
        return found
    return uri


def client_for(uri: str, where: str = "tracking.uri"):
    """An MlflowClient for `uri`, with nnctl's timeouts; imports MLflow (seconds, once). A URI
    MLflow refuses (an unknown scheme) is an NnctlError; the server is not asked anything yet."""
    for name, value in CLIENT_ENV.items():
        os.environ.setdefault(name, value)
    if urlsplit(uri).scheme in ("", "file"):  # MLflow 3 keeps its file store only on request; nnctl's docs promise it
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    _quiet_mlflow()  # after the import, which sets its own levels

    try:
        client = MlflowClient(tracking_uri=uri)
        client._tracking_client.store  # made lazily by MLflow: an unknown scheme shows only here
    except MlflowException as exc:
        raise NnctlError(f"MLflow cannot use this tracking URI: {reason(exc)}", where,
                         "use http://host:port, file:/path/to/mlruns or sqlite:///path/to/mlflow.db")
    return client


def _quiet_mlflow() -> None:
    """MLflow's own log lines (and its warnings) would break the one-line warning policy: the
    outcome is reported by nnctl."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)


def experiment_id(client, name: str, uri: str) -> str:
    """The id of experiment `name` in the store at `uri`, created when missing (another process
    may create it first); one nnctl creates in a `sqlite:` store keeps its artifacts beside the
    database (see uris.artifact_location)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(uri))
    except Exception:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def reason(exc: BaseException) -> str:
    """One short line for what went wrong with the server: the socket's own words when MLflow
    wraps them in its request chain ("[Errno 111] Connection refused", "read timed out")."""
    text = scrub(" ".join(str(exc).split())) or type(exc).__name__
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", text) or re.search(r"[Rr]ead timed out", text)
    if found:
        return found.group(0).strip()
    return text if len(text) <= 160 else text[:157] + "..."


# sub-mappings whose keys are fixed, flattened as sections are; other mappings (a schedule's
# own keys, class weights per label) are one value each
NESTED = {("training", "early_stopping")}


def flat_params(mapping: dict, path: tuple = ()) -> dict[str, str]:
    """The resolved config as MLflow params: {"training.learning_rate": "0.01", ...}. The
    `tracking` section is left out: where a copy goes says nothing about the run."""
    flat = {}
    for key, value in mapping.items():
        here = path + (key,)
        if here == ("tracking",):
            continue
        if isinstance(value, dict) and (len(here) == 1 or here in NESTED):
            flat.update(flat_params(value, here))
        else:
            flat[".".join(here)] = _text(value)
    return flat


def _text(value) -> str:
    import json

    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=False)
    return str(value)


@dataclass(frozen=True)
class Target:
    """Where a run is logged: the resolved URI without credentials (stored and shown), the
    experiment, the run's name (None: the run folder's), the user's tags, and the URI MLflow
    connects with (`connect`: kept in memory only; see uris.connection)."""

    uri: str
    experiment: str
    run_name: str | None = None
    tags: dict = field(default_factory=dict)
    connect: str = field(default="", repr=False, compare=False)

    @classmethod
    def of(cls, uri: str, experiment: str, run_name: str | None = None, tags: dict | None = None) -> "Target":
        shown, connect = connection(uri)
        return cls(shown, experiment, run_name, dict(tags or {}), connect)

    @property
    def address(self) -> str:
        """The URI to connect with."""
        return self.connect or self.uri


def target_for(tracking, default_experiment: str, uri: str | None = None, where: str = "tracking.uri",
               runs_dirs=()) -> Target | None:
    """The Target of a config's `tracking` section (a TrackingConfig, or None), with `uri` (from
    --track) over the config's; None when tracking is off. Checked before any training: a
    missing extra, an unset MLFLOW_TRACKING_URI, credentials in the config's URI and a local
    store inside `runs_dirs` (or any run folder) are each an NnctlError."""
    given = uri if uri is not None else getattr(tracking, "uri", None)
    where = "--track" if uri is not None else where
    if uri is None and given not in (None, ENV):
        refuse_stored_credentials(given, where)
    resolved = resolve_uri(given, where)
    if resolved is None:
        return None
    check_store(resolved, where, runs_dirs)
    require_mlflow(where)
    return Target.of(resolved, getattr(tracking, "experiment", None) or default_experiment,
                     getattr(tracking, "run_name", None), getattr(tracking, "tags", None))
