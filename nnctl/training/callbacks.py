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


class Many(Callback):
    """Several callbacks watching one loop."""

    def __init__(self, *callbacks):
        self.callbacks = [c for c in callbacks if c is not None]

    def on_train_begin(self, info):
        for c in self.callbacks:
            c.on_train_begin(info)

    def on_epoch_end(self, log):
        for c in self.callbacks:
            c.on_epoch_end(log)

    def on_progress(self, progress):
        for c in self.callbacks:
            c.on_progress(progress)

    def on_train_end(self, result):
        for c in self.callbacks:
            c.on_train_end(result)

    def close(self):
        for c in self.callbacks:
            if hasattr(c, "close"):
                c.close()
