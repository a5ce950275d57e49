"""Is a `checkpoint.npz` whole and sound? Its arrays' headers are judged before their data is
read, and its meta's values by kind, so a damaged or hand-edited checkpoint is one error naming
the file and the key, never a crash deep inside the resumed loop."""
from __future__ import annotations

import math

import numpy as np

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def checkpoint_limit(name: str, header) -> str | None:
    """A read_npz limit: the arrays `Loop.state` writes, each of the kind it writes."""
    if name == "meta":
        ok = len(header.shape) == 1 and header.dtype == np.uint8
        return None if ok else f"`meta` is {header.dtype} {header.shape}, not JSON bytes"
    if name in ("order", "shard_order"):  # shard_order: the order of the training part's shards (data.source)
        # an ensemble's members each have their own order: (K, rows)
        ok = len(header.shape) in ((1, 2) if name == "order" else (1,)) and header.dtype.kind in "iu"
        return None if ok else f"`{name}` is {header.dtype} {header.shape}, not a permutation"
    model = name[5:] if name.startswith("best.") else name  # early stopping's copy of the model
    if model == "params" or model.startswith("layers.") or name.startswith("opt_"):
        if header.dtype not in FLOATS:
            return f"`{name}` is {header.dtype}, where nnctl trains in float32 or float64"
        if (model == "params" or name.startswith("opt_")) and len(header.shape) != 1:
            return f"`{name}` has the wrong shape {header.shape}: a checkpoint keeps it flat (1-D)"
        if len(header.shape) > 3:  # (K, fan_in, units) in an ensemble
            return f"`{name}` has the wrong shape {header.shape}"
        return None
    return f"it holds an array `{name}` that nnctl does not write"


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def checkpoint_meta_problem(meta: dict) -> str | None:
    """What is wrong with the kinds of value in a checkpoint's meta, or None."""
    if not isinstance(meta["config"], dict) or not isinstance(meta["config"].get("training"), dict):
        return "`config` is not a resolved config"
    for key in ("completed", "optimizer_t"):
        if not _count(meta[key]):
            return f"`{key}` is {meta[key]!r}, not a count (a whole number, 0 or more)"
    for key in ("batches_done", "clipped_steps", "steps"):
        if key in meta and not _count(meta[key]):
            return f"`{key}` is {meta[key]!r}, not a count (a whole number, 0 or more)"
    for key in ("seconds", "partial_loss"):
        if key in meta and not _number(meta[key]):
            return f"`{key}` is {meta[key]!r}, not a finite number"
    for key in ("history", "diagnostics"):
        if key in meta and (not isinstance(meta[key], list) or not all(isinstance(r, dict) for r in meta[key])):
            return f"`{key}` is not a list of logged epochs"
    for key in ("data_digest", "name"):
        if not isinstance(meta[key], str):
            return f"`{key}` is {meta[key]!r}, not a text"
    try:
        np.random.PCG64().state = meta["rng"]  # as the loop will restore it
    except (TypeError, ValueError, KeyError, OverflowError):
        return "`rng` is not the state of the shuffle generator"
    if "dropout_rng" in meta:
        states = meta["dropout_rng"]  # an ensemble's: one state per member
        try:
            for state in states if isinstance(states, list) and states else [states]:
                np.random.PCG64().state = state
        except (TypeError, ValueError, KeyError, OverflowError):
            return "`dropout_rng` is not the state of the dropout generator"
    if "member_rngs" in meta:
        try:
            for state in meta["member_rngs"]:
                np.random.PCG64().state = state
        except (TypeError, ValueError, KeyError, OverflowError):
            return "`member_rngs` are not the states of the members' shuffle generators"
    if meta["config"]["training"].get("early_stopping") or meta.get("stopper") is not None:
        stopper = meta.get("stopper")
        # an ensemble's members each stop on their own (training.ensemble): one state per member
        members = stopper.get("members") if isinstance(stopper, dict) and "members" in stopper else [stopper]
        if not isinstance(members, list) or not members or not all(_stopper_ok(s) for s in members):
            return "`stopper` lacks early stopping's `best`, `best_epoch` and `waited`"
    return None


def _stopper_ok(stopper) -> bool:
    return isinstance(stopper, dict) and {"best", "best_epoch", "waited"} <= set(stopper) \
        and (stopper["best"] is None or _number(stopper["best"])) \
        and (stopper.get("best_epoch") is None or _count(stopper["best_epoch"])) \
        and _count(stopper.get("waited"))
