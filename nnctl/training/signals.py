"""Ctrl-C and SIGTERM during training: the first asks the loop to stop after the current batch
(the run is saved, marked `interrupted`); the second aborts at once (no run folder is left)."""
from __future__ import annotations

import signal


class Interrupts:
    """Context manager and `should_stop()` callable for the trainer."""

    def __init__(self):
        self.count = 0
        self._previous = {}

    def __call__(self) -> bool:
        return self.count > 0

    def _handle(self, signum, frame):
        # nothing is printed here: a write would garble a live table mid-redraw, and the stop
        # comes after the current batch anyway; the closing summary says "interrupted"
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. inside a test runner's worker)
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
