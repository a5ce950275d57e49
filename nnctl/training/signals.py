"""Ctrl-C and SIGTERM during training: the first asks the loop to stop after the current batch
(the run is saved, marked `interrupted`); the second aborts at once (no run folder is left)."""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager


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


@contextmanager
def signals_held():
    """Hold Ctrl-C and SIGTERM while something must end whole (a file written, runs closed): a
    signal that comes meanwhile is noted, and acted on as the block ends (the handler that was
    there runs: Python's Ctrl-C handler or nnctl's SIGTERM one raise KeyboardInterrupt). Python
    runs signal handlers in the main thread only, so they are swapped there; elsewhere this holds
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            handler = previous[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), caught[0])
