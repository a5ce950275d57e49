"""How training is watched: the loop calls a Callback; reporters (the live table, plain lines,
JSON lines) and tests implement it."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotation only: loop imports this module
    from .loop import TrainResult


class Callback:
    """What a reporter may implement; every method is optional."""

    def on_train_begin(self, info: dict) -> None: ...

    def on_epoch_end(self, log: dict) -> None: ...

    def on_progress(self, progress: dict) -> None:
        """Within an epoch, about twice a second: epoch, rows_done, rows, epoch_seconds."""

    def on_train_end(self, result: "TrainResult") -> None: ...

    def on_read(self, progress: dict) -> None:
        """Before training, after each chunk of a streamed table's first pass: file, rows read,
        fraction of the table read (None when it cannot be known)."""


class Many:
    """Several watchers as one: each call (`on_epoch_end(log)` of a training Callback, a sweep
    display's `on_trial(row, best)`, `close()`) goes to every watcher that has the method, so
    one class serves the training loop and the sweep driver alike. None watchers are left out."""

    def __init__(self, *watchers):
        self.watchers = [w for w in watchers if w is not None]

    def __getattr__(self, method: str):
        if method.startswith("_"):  # copy, pickle and friends must not see a catch-all
            raise AttributeError(method)

        def each(*args):
            for w in self.watchers:
                if hasattr(w, method):
                    getattr(w, method)(*args)
        return each
