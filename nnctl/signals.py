"""Ctrl-C and SIGTERM during training: the first asks the loop to stop after the current batch
(the run is saved, marked `interrupted`); the second aborts at once (no run folder is left)."""
from __future__ import annotations

import signal
import sys


class Interrupts:
    """Context manager and `should_stop()` callable for the trainer."""

    def __init__(self):
        self.count = 0
        self._previous = {}

    def __call__(self) -> bool:
        return self.count > 0

    def _handle(self, signum, frame):
        self.count += 1
        if self.count == 1:
            sys.stderr.write("\nstopping after this batch and saving the run (interrupt again to abort)\n")
            sys.stderr.flush()
        else:
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
