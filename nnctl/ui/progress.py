"""Reporters: how a training run is shown. Each is a trainer Callback.

- `LiveTable`: a rich table redrawn in place on a terminal (a few times a second at most, built
  only when redrawn, so fast epochs cost nothing), with a loss trend line and an ETA.
- `PlainLines`: the same rows as plain text lines, for logs and CI (no escape codes).
- `JsonLines`: one JSON object per epoch on stdout, then a summary (the CLI writes it).
Rows are thinned to about `display_rows` evenly spaced epochs plus the last.
"""
from __future__ import annotations

import math
import sys

from ..jsonfmt import dumps
from ..training.callbacks import Callback
from .fmt import format_duration, format_number, sparkline

PROGRESS_AFTER = 2.0  # seconds into an epoch before the live view shows progress within it
READ_LINE_EVERY = 10.0  # seconds between plain lines while a streamed table's first pass reads


def note_lines(notes) -> list[str]:
    """('warning', text) -> 'warning: text'."""
    return [f"{kind}: {text}" for kind, text in notes]


def thin_every(epochs: int, display_rows: int) -> int:
    return max(1, math.ceil(epochs / max(display_rows, 1)))


class _Rows:
    """Shared bookkeeping: which epochs are shown, the columns, ETA."""

    def __init__(self, display_rows: int):
        self.display_rows = display_rows
        self.rows: list[dict] = []
        self.losses: list[float] = []
        self.epochs = 0
        self.metric = None
        self.watch: list[str] = []  # more validation columns: what early stopping watches
        self.every = 1
        self.next_due = 0
        self.last = None

    def begin(self, info: dict) -> None:
        self.epochs = info["epochs"]
        self.metric = info["metric"] if info["validation"] else None
        self.watch = list(info.get("watch", ())) if info["validation"] else []
        self.every = thin_every(self.epochs, self.display_rows)

    def add(self, log: dict) -> bool:
        """Record an epoch; True when it is one of the shown rows."""
        self.last = log
        self.losses.append(log["train_loss"])
        shown = log["epoch"] >= self.next_due or log["epoch"] == self.epochs
        if shown:
            self.rows.append(log)
            self.next_due = (log["epoch"] // self.every + 1) * self.every
        return shown

    def finish(self) -> dict | None:
        """The last logged epoch when thinning left it out (an early stop, an interrupt): the
        table always ends with it, whatever the status."""
        if self.last is not None and (not self.rows or self.rows[-1] is not self.last):
            self.rows.append(self.last)
            return self.last
        return None

    def columns(self) -> list[str]:
        cols = ["epoch", "train_loss"]
        if self.metric:
            cols += ["val_loss", self.metric]
        return cols + self.watch + ["learning_rate", "elapsed", "eta"]

    def cells(self, log: dict) -> list[str]:
        done = log["epoch"]
        eta = log["seconds"] / done * (self.epochs - done) if done else float("nan")
        values = [str(done), format_number(log["train_loss"])]
        if self.metric:
            values += [format_number(log.get("val_loss")), format_number(log.get(self.metric))]
        values += [format_number(log.get(name)) for name in self.watch]
        return values + [f"{log['learning_rate']:.3g}", format_duration(log["seconds"]), format_duration(eta)]


class Reads:
    """A streamed table's first pass as it goes: when it started, the latest progress, and
    whether a line is due (`due(every)`)."""

    def __init__(self):
        self.started = self.last_shown = None
        self.latest = None

    def add(self, progress: dict) -> None:
        import time

        now = time.monotonic()
        if self.started is None:
            self.started = self.last_shown = now
        self.latest = {**progress, "seconds": now - self.started}

    def due(self, every: float) -> bool:
        import time

        if self.latest is None or time.monotonic() - self.last_shown < every:
            return False
        self.last_shown = time.monotonic()
        return True

    def done_line(self) -> str | None:
        """'read 1,600,000 rows of table.csv in 12 s' once the pass has ended, or None."""
        if self.latest is None:
            return None
        latest, self.latest = self.latest, None
        return f"read {latest['rows']:,} rows of {latest['file']} in {format_duration(latest['seconds'])}"


def reading_text(progress: dict) -> str:
    """'reading table.csv: 1,200,000 rows (30%), 210,000 rows/s, about 13 s left'"""
    rows, seconds, fraction = progress["rows"], progress["seconds"], progress.get("fraction")
    text = f"reading {progress['file']}: {rows:,} rows"
    if fraction:
        text += f" ({100 * fraction:.0f}%)"
    if seconds > 0:
        text += f", {rows / seconds:,.0f} rows/s"
        if fraction and fraction < 1:
            text += f", about {format_duration(seconds * (1 - fraction) / fraction)} left"
    return text


class TaskNote(Callback):
    """What --quiet still shows on `stream`: which task model.task auto chose and why, where the
    choice is a guess (a wrong one trains a wrong model without any other sign)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr

    def on_train_begin(self, info):
        from ..data.columns import is_task_note

        for line in note_lines(n for n in info.get("notes", ()) if is_task_note(n)):
            self.stream.write(line + "\n")


class PlainLines(Callback):
    """Rows as aligned plain-text lines on `stream` (stderr by default); a streamed table's
    first pass as a line every READ_LINE_EVERY seconds."""

    def __init__(self, stream=None, display_rows: int = 30):
        self.stream = stream or sys.stderr
        self.table = _Rows(display_rows)
        self.widths: list[int] = []
        self.reads = Reads()

    def on_read(self, progress):
        self.reads.add(progress)
        if self.reads.due(READ_LINE_EVERY):
            self.stream.write(reading_text(self.reads.latest) + "\n")
            self.stream.flush()

    def _line(self, cells) -> None:
        self.stream.write("  ".join(c.rjust(w) for c, w in zip(cells, self.widths)).rstrip() + "\n")
        self.stream.flush()

    def on_train_begin(self, info):
        done = self.reads.done_line()
        if done:
            self.stream.write(done + "\n")
        for line in note_lines(info.get("notes", ())):
            self.stream.write(line + "\n")
        self.table.begin(info)
        cols = self.table.columns()
        self.widths = [max(len(c), 10) for c in cols]
        self.widths[0] = max(len(str(info["epochs"])), 5)
        self._line(cols)

    def on_epoch_end(self, log):
        if self.table.add(log):
            self._line(self.table.cells(log))

    def on_train_end(self, result):
        last = self.table.finish()
        if last is not None:
            self._line(self.table.cells(last))


class LiveTable(Callback):
    """A rich table redrawn in place; the renderable is built only when rich refreshes."""

    def __init__(self, console, display_rows: int = 30, title: str = "training"):
        self.console = console
        self.table = _Rows(display_rows)
        self.title = title
        self.live = None
        self.progress = None  # the latest progress within the running epoch
        self.reads, self.status = Reads(), None  # a streamed table's first pass: a line redrawn in place

    def render(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title=self.title, title_justify="left", box=None, header_style="bold", pad_edge=False)
        for col in self.table.columns():
            table.add_column(col.replace("_", " "), justify="right")
        rows = self.table.rows[-(self.table.display_rows + 1):]
        if self.table.last is not None and (not rows or rows[-1] is not self.table.last):
            rows = rows + [self.table.last]
        for i, log in enumerate(rows):
            style = "dim" if log is self.table.last and log not in self.table.rows else None
            table.add_row(*self.table.cells(log), style=style)
        trend = Text(f"loss trend  {sparkline(self.table.losses)}", style="cyan")
        parts = [table, trend]
        if self.progress is not None and self.progress["epoch_seconds"] >= PROGRESS_AFTER:
            parts.append(Text(progress_text(self.progress, self.table.epochs), style="dim"))
        return Group(*parts)

    def on_progress(self, progress):
        self.progress = progress

    def on_read(self, progress):
        self.reads.add(progress)
        if self.status is None:
            self.status = self.console.status(reading_text(self.reads.latest))
            self.status.start()
        elif self.reads.due(0.25):
            self.status.update(reading_text(self.reads.latest))

    def on_train_begin(self, info):
        from rich.live import Live

        self._reading_done()
        for line in note_lines(info.get("notes", ())):
            self.console.print(line, markup=False, highlight=False)
        self.table.begin(info)
        self.live = Live(console=self.console, get_renderable=self.render, refresh_per_second=4,
                         transient=False, redirect_stdout=False, redirect_stderr=False)
        self.live.start()

    def on_epoch_end(self, log):
        self.progress = None
        self.table.add(log)

    def on_train_end(self, result):
        self.progress = None
        self.table.finish()
        self.close()

    def _reading_done(self, finished: bool = True):
        """The reading line taken down; once the pass has finished, how long it took."""
        if self.status is not None:
            self.status.stop()
            self.status = None
        done = self.reads.done_line()
        if done and finished:
            self.console.print(done, markup=False, highlight=False)

    def close(self):
        self._reading_done(finished=False)  # the pass failed or was interrupted: the error says why
        if self.live is not None:
            self.live.refresh()
            self.live.stop()
            self.live = None


class JsonLines(Callback):
    """One JSON object per logged epoch on `stream` (stdout), flushed so pipes see it at once."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def on_epoch_end(self, log):
        self.stream.write(dumps(log) + "\n")
        self.stream.flush()


def progress_text(progress: dict, epochs: int) -> str:
    """'epoch 3 of 10: 120,000 of 300,000 rows (40%), 45,000 rows/s'"""
    done, rows, seconds = progress["rows_done"], progress["rows"], progress["epoch_seconds"]
    rate = done / seconds if seconds > 0 else float("nan")
    return (f"epoch {progress['epoch']} of {epochs}: {done:,} of {rows:,} rows ({100 * done / rows:.0f}%), "
            f"{rate:,.0f} rows/s")


def summary_line(result, run) -> str:
    """The closing lines: status, which weights were saved and their metrics, the best epoch
    when it is another one, time and the run folder."""
    m = result.metrics
    parts = [result.status.replace("_", " ")]
    part = "validation" if "validation" in m else "train"
    short = "val" if part == "validation" else "train"
    if result.restored_best:
        saved = f"saved model: best epoch {result.best_epoch} (restored)"
    else:
        saved = f"saved model: last epoch {result.epochs}"
    if part in m:
        name = next(k for k in m[part] if k not in ("loss", "rows"))
        saved += f", {short} loss {format_number(m[part]['loss'])}, {name} {format_number(m[part][name])}"
        watched = result.best_by[len("val_"):]  # what early stopping chose the epoch by, when another
        if part == "validation" and result.best_by.startswith("val_") and watched not in ("loss", name) \
                and watched in m[part]:
            saved += f", {watched} {format_number(m[part][watched])}"
    parts.append(saved)
    if result.best_epoch and not result.restored_best and result.best_epoch != result.epochs:
        parts.append(f"best {result.best_by.replace('_', ' ')} at epoch {result.best_epoch} (not saved)")
    if "test" in m:
        test = m["test"]
        name = "accuracy" if test["task"] == "classification" else "r2"
        if "targets" in test:  # several targets: the first one's own metric (price.r2)
            name = next(f"{test['targets'][0]}.{m}" for m in ("r2", "accuracy") if f"{test['targets'][0]}.{m}" in test)
        parts.append(f"test {name} {format_number(test[name])} ({test['rows']} rows)")
    parts.append(f"{result.epochs} epochs in {format_duration(result.seconds)}")
    return " · ".join(parts) + f"\nrun saved to {run}"


def stderr_is_live() -> bool:
    """A live, coloured display only on a real terminal without NO_COLOR (https://no-color.org)."""
    import os

    return sys.stderr.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
