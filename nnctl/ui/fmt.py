"""The one way nnctl shows a number, a duration and a trend on screen."""
from __future__ import annotations

import math

SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 40) -> str:
    """A one-line trend of the values (log scale when all positive), newest on the right."""
    values = [v for v in values if math.isfinite(v)]
    if len(values) > width:  # sample evenly, keeping the last
        step = len(values) / width
        values = [values[min(len(values) - 1, int(round((i + 1) * step)) - 1)] for i in range(width)]
    if not values:
        return ""
    if all(v > 0 for v in values):
        values = [math.log(v) for v in values]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(SPARKS[min(len(SPARKS) - 1, int((v - low) / span * len(SPARKS)))] for v in values)


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def format_number(v) -> str:
    """A metric or loss for a table: 4 decimals in a readable range, else scientific; '' for None."""
    if v is None:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4f}" if 1e-3 <= abs(v) < 1e4 or v == 0 else f"{v:.3e}"
    return str(v)
