"""How a sweep is shown: a table of trials redrawn on a terminal, plain lines in CI, JSON lines
with --json (one object per finished trial)."""
from __future__ import annotations

import sys

from ..jsonfmt import dumps
from .fmt import format_duration, format_number


def _params(row: dict) -> str:
    from ..sweep.space import flow

    # a drawn learning rate such as 0.0012345678901 reads as 0.001235: four significant digits
    return ", ".join(f"{k.split('.')[-1]}={f'{v:.4g}' if isinstance(v, float) else flow(v)}"
                     for k, v in row["params"].items())


def _cells(row: dict, best: dict | None) -> list[str]:
    return [str(row["trial"]), row["state"], _params(row), format_number(row["value"]) if row["value"] is not None
            else "—", format_number(best["value"]) if best else "—", str(row["epochs"]), format_duration(row["seconds"])]


COLUMNS = ["trial", "state", "parameters", "value", "best so far", "epochs", "time"]


class SweepLines:
    """One plain line per finished trial (CI logs), on stderr."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr

    def on_start(self, info):
        self.stream.write(f"sweep of {info['total']} trials on {info['workers']} workers, "
                          f"{info['metric']['goal']} {info['metric']['name']} ({info['done']} done before)\n")
        self.stream.write("  ".join(COLUMNS) + "\n")

    def on_trial(self, row, best):
        self.stream.write("  ".join(_cells(row, best)) + (f"  {row['error']}" if row.get("error") else "") + "\n")
        self.stream.flush()


class SweepJson:
    """One JSON object per finished trial on stdout: trial, state, params, value."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def on_start(self, info):
        pass

    def on_trial(self, row, best):
        self.stream.write(dumps({k: row[k] for k in ("trial", "state", "params", "value")}) + "\n")
        self.stream.flush()


class SweepTable:
    """A rich table of the trials so far, redrawn in place."""

    def __init__(self, console):
        self.console, self.rows, self.best, self.live, self.info = console, [], None, None, {}

    def render(self):
        from rich.table import Table

        table = Table(title=f"sweep: {len(self.rows)} of {self.info.get('total', '?')} trials · best "
                            f"{format_number(self.best['value']) if self.best else '—'}", title_justify="left")
        for col in COLUMNS:
            table.add_column(col, justify="left" if col in ("state", "parameters") else "right")
        for row in self.rows[-25:]:
            table.add_row(*_cells(row, self.best), style="bold" if self.best and row is self.best else None)
        return table

    def on_start(self, info):
        from rich.live import Live

        self.info = info
        self.live = Live(console=self.console, get_renderable=self.render, refresh_per_second=4, transient=False)
        self.live.start()

    def on_trial(self, row, best):
        self.rows.append(row)
        self.best = best

    def close(self):
        if self.live is not None:
            self.live.refresh()
            self.live.stop()
            self.live = None

