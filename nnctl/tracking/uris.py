"""What a tracking URI says beyond the address: credentials, which are used but never stored
or printed, and a local store's place on disk (`file:`, `sqlite:`, a bare path), which must
not lie among run folders and whose artifacts belong beside it.

    Target.of("http://me:secret@host:5000", "iris").uri   # "http://host:5000"; the secret in
                                                          # MLFLOW_TRACKING_USERNAME/PASSWORD
    check_store("file:runs", "--track", ["runs"])         # NnctlError: among the run folders
    artifact_location("sqlite:///db/mlflow.db")           # "file:///.../db/mlflow-artifacts"
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import NnctlError
from ..runs.folder import RunFolder

# MLflow's own variables for a server's credentials (read at each request)
USERNAME, PASSWORD, TOKEN = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"
CREDENTIALS_HINT = (f"export {USERNAME}=... {PASSWORD}=... (or {TOKEN}=...) and give the URI without them, "
                    "e.g. http://host:5000")
# `user:password@` in any URL of a message: an exception's text may quote the address it used
USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def has_credentials(uri: str) -> bool:
    return "@" in urlsplit(uri).netloc


def public(uri: str) -> str:
    """`uri` without its user-info: what nnctl stores (tracking.json, config.yaml) and prints."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def scrub(text: str) -> str:
    """`text` with the user-info of every URL in it removed."""
    return USERINFO.sub("", text)


def connection(uri: str) -> tuple[str, str]:
    """(the URI nnctl keeps and shows, the URI MLflow connects with). A server's `user:password@`
    moves into MLflow's own variables for this process (over ones already set: the URI was given
    for this command), so MLflow never sees it in a URL and cannot quote it; other user-info (a
    database URI's password, a user without one) stays in the URI that connects, in memory only."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri, uri
    user, colon, password = parts.netloc.rpartition("@")[0].partition(":")
    if parts.scheme in ("http", "https") and colon and user and password:
        os.environ[USERNAME], os.environ[PASSWORD] = unquote(user), unquote(password)
        return public(uri), public(uri)
    return public(uri), uri


def credentials_warning(uri: str | None, flag: str) -> str | None:
    """The one warning for credentials given on the command line (`--track`, `--uri`): they
    work for this command, and nothing keeps them."""
    if not uri or not has_credentials(uri):
        return None
    return (f"the credentials in {flag}'s URI are used for this command only and are not stored (the run keeps "
            f"{public(uri)}); a command line is visible to other users and kept in shell history: {CREDENTIALS_HINT}")


def refuse_stored_credentials(uri: str, where: str) -> None:
    """A config's tracking.uri is copied into every run folder (config.yaml, the checkpoint) and
    uploaded as an artifact: credentials there would be too."""
    if has_credentials(uri):
        raise NnctlError(f"tracking.uri {public(uri)} holds credentials (user-info before '@'); the config is "
                         "copied into every run folder and uploaded to MLflow", where, CREDENTIALS_HINT)


# --- a store on this machine ---------------------------------------------------------------------
LOCAL = ("", "file", "sqlite")
# files that make a folder one of nnctl's: a run (complete or not), a sweep, a cv or a seeds folder
MARKERS = (RunFolder.METRICS, RunFolder.MODEL, RunFolder.CHECKPOINT, "sweep.yaml", "folds.csv", "seeds.csv")


def local_store(uri: str) -> Path | None:
    """Where a `file:` store (or a bare path, which MLflow takes for one) or a `sqlite:`
    database lies; None for a server, an in-memory database or another scheme."""
    parts = urlsplit(uri)
    if parts.scheme not in LOCAL or (parts.scheme and parts.netloc not in ("", "localhost")):
        return None
    path = parts.path
    if parts.scheme == "sqlite":  # sqlite:///rel.db is relative, sqlite:////abs.db absolute (SQLAlchemy's rule)
        path = path[1:] if path.startswith("/") else path
        if path in ("", ":memory:"):
            return None
    return Path(unquote(path)).expanduser().absolute() if path else None


def artifact_location(uri: str) -> str | None:
    """Where a new experiment's artifacts go: beside a `sqlite:` database (`mlflow.db` ->
    `mlflow-artifacts/`), not in `./mlruns` of whatever folder the command ran in; None: the
    store's own choice (a file store keeps them inside it, a server where it is set up to)."""
    db = local_store(uri) if urlsplit(uri).scheme == "sqlite" else None
    return None if db is None else db.with_name(f"{db.stem}-artifacts").as_uri()


def check_store(uri: str, where: str, runs_dirs=()) -> None:
    """A local store (the folder of a `file:` store, the folder a `sqlite:` database and its
    artifacts are in) inside a runs folder, or inside a run, sweep or cv folder, is an NnctlError:
    MLflow would put its experiments among the run folders, and every listing would trip on them.
    `runs_dirs`: the runs folders this command writes into or reads from."""
    store = local_store(uri)
    if store is None:
        return
    place = store.parent if urlsplit(uri).scheme == "sqlite" else store
    place = Path(os.path.realpath(place))
    inside = next((d for d in (place, *place.parents) if _nnctl_folder(d)), None)
    if inside is None:
        inside = next((d for d in map(Path, map(os.path.realpath, runs_dirs)) if d == place or d in place.parents),
                      None)
    if inside is None:
        inside = next((d for d in (place, place.parent) if _holds_nnctl_folders(d)), None)
    if inside is not None:
        raise NnctlError(f"the MLflow store {public(uri)} is inside {inside}, among nnctl's run folders: MLflow "
                         "would put its experiments there", where,
                         "keep the store outside the runs folder, e.g. --track sqlite:///mlflow.db in the project "
                         "folder, or a tracking server")


def _nnctl_folder(path: Path) -> bool:
    return any((path / name).is_file() for name in MARKERS)


def _holds_nnctl_folders(path: Path) -> bool:
    try:
        return any(child.is_dir() and _nnctl_folder(child) for child in path.iterdir())
    except OSError:  # not there yet, or not readable: nothing of nnctl's in it to mix with
        return False
