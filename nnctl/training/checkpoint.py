"""`checkpoint.npz`: everything needed to continue training exactly where it stopped.

Arrays: the model's, named as in model.npz (`layers.<i>.<name>`: each layer's params and state),
`opt_<name><i>` (the optimizer's moments or velocities over the flat parameters), `best.params`
and `best.layers.<i>.<name>` (early stopping's best weights and layer state, if kept) and `order`
(the running epoch's row permutation, when it stopped mid-epoch). `meta` is one JSON object: the resolved
config, the completed epochs and batches, the shuffle generator's state, the optimizer's step
count, early stopping's state, the history so far, the seconds trained and a digest of the data.

Written atomically (a temporary file, fsync, rename), so a checkpoint on disk is always whole;
read with `allow_pickle=False` only, and anything malformed is an NnctlError naming the file.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..atomic import atomic_file
from ..errors import NnctlError
from ..npzfile import meta_array, nonfinite, read_meta, read_npz
from ..runs.folder import RunFolder
from .checkpoint_check import checkpoint_limit, checkpoint_meta_problem

FORMAT = "nnctl-checkpoint"
FORMAT_VERSION = 2  # 1: the network's flat `params` (before layers were objects); not read
FILENAME = RunFolder.CHECKPOINT
AUTO_SECONDS = 30.0  # `checkpoint_every: auto` writes about this often...
MAX_COST_SHARE = 0.02  # ...and never so often that writing takes more than this share of training


def data_digest(dataset) -> str:
    """A fingerprint of the prepared data, so resuming on changed data is refused (what goes
    into it: the dataset's `fingerprint`)."""
    h = hashlib.blake2b(digest_size=16)
    for piece in dataset.fingerprint():
        h.update(piece)
    return h.hexdigest()


def save_checkpoint(path, arrays: dict, meta: dict) -> None:
    """Write `arrays` and `meta` to `path` atomically and durably."""
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "nnctl_version": __version__, **meta}
    with atomic_file(path, "wb", durable=True) as fh:
        # meta as UTF-8 bytes: a unicode array would take four bytes a character
        np.savez(fh, meta=meta_array(meta, text=False), **arrays)


def checkpoint_path(run) -> Path:
    """A run folder (complete, or an incomplete one `nnctl runs` lists) or the file itself."""
    path = Path(run)
    if path.is_dir():
        path = path / FILENAME
        if not path.exists():
            raise NnctlError("no checkpoint.npz in this folder: nothing to resume", str(path.parent),
                             "runs keep one when training.checkpoint_every is not null; "
                             "a run killed before its first checkpoint can only be trained again")
    elif not path.exists():
        raise NnctlError("run not found", str(path), "pass a run folder, as `nnctl runs` lists them")
    return path


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as read back: its arrays (named as above), its `meta`, and `path`, what it was
    loaded from as the user gave it (a run folder or the file), which errors and a resumed run's
    metrics.json (`resumed_from`) name."""

    arrays: dict
    meta: dict
    path: Path

    @property
    def config(self) -> dict:
        """The resolved config the run trained under."""
        return self.meta["config"]

    @property
    def name(self) -> str:
        """The run's name (a resumed run keeps it unless given another)."""
        return self.meta["name"]

    @property
    def completed(self) -> int:
        """Epochs trained so far."""
        return self.meta["completed"]

    @property
    def data_digest(self) -> str:
        """The `data_digest` of the data it trained on."""
        return self.meta["data_digest"]

    @property
    def status(self) -> str | None:
        """running | completed | early_stopped | interrupted, as the loop last wrote it."""
        return self.meta.get("status")

    @property
    def waited(self) -> int:
        """Epochs early stopping had waited without improvement (0 without early stopping)."""
        return (self.meta.get("stopper") or {}).get("waited", 0)


def load_checkpoint(run) -> Checkpoint:
    """A run's checkpoint; a truncated, corrupt, pickled or newer one is an NnctlError."""
    path = checkpoint_path(run)
    where = str(path)
    arrays = read_npz(path, "checkpoint", "corrupt or truncated", "resume from another run, or train again",
                      limit=checkpoint_limit)
    # format 1 (the network's flat `params`, before layers were objects) is not resumed
    meta = read_meta(arrays, "checkpoint", where, FORMAT, FORMAT_VERSION, oldest=2,
                     older_hint="the run's model.npz still works: start a new run from it with model.init_from, "
                                "or finish the run with the nnctl that started it")
    arrays.pop("meta")
    for key in ("config", "completed", "rng", "optimizer_t", "history", "seconds", "data_digest", "name"):
        if key not in meta:
            raise NnctlError(f"checkpoint meta lacks `{key}`", where)
    if not any(name.startswith("layers.") for name in arrays):
        raise NnctlError("checkpoint lacks the model's arrays (layers.<i>.<name>)", where)
    problem = checkpoint_meta_problem(meta) or nonfinite(arrays)
    if problem:
        raise NnctlError(f"checkpoint is damaged: {problem}", where, "resume from another run, or train again")
    return Checkpoint(arrays, meta, Path(run))


class Checkpointer:
    """Decides when the loop writes a checkpoint into a run folder, and writes it.

    `every`: epochs between checkpoints, or "auto": every AUTO_SECONDS of training, stretched
    so that writing never takes more than MAX_COST_SHARE of the time."""

    def __init__(self, folder, every, meta: dict):
        self.path = Path(folder) / FILENAME
        self.every = every
        self.meta = meta  # config, name, data digest, resumed_from: the same in every checkpoint
        self.interval = AUTO_SECONDS
        self.last = time.perf_counter()
        self.written = 0

    def due(self, epoch: int) -> bool:
        if self.every == "auto":
            return time.perf_counter() - self.last >= self.interval
        return epoch % self.every == 0

    def write(self, state: dict, status: str) -> None:
        start = time.perf_counter()
        arrays, meta = state
        save_checkpoint(self.path, arrays, {**self.meta, **meta, "status": status})
        self.last = time.perf_counter()
        self.interval = max(AUTO_SECONDS, (self.last - start) / MAX_COST_SHARE)
        self.written += 1
