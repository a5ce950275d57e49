"""The report's "What the model relies on" section: importance.csv as a bar chart with ± std."""
from __future__ import annotations

import math
from html import escape

from ..ui.fmt import format_number

from .rundata import RunData
from .svg import bar_chart

MOST_BARS = 30  # the chart shows at most this many columns, the most important
WHISKER_STDS = 2


def _num(v) -> str:
    return "—" if not math.isfinite(v) else escape(format_number(v))


def importance_section(run: RunData) -> str:
    """The section, or '' when the run has no importance.csv (report.importance was off)."""
    if not run.importance:
        return ""
    how = run.metrics.get("importance") or {}
    metric, part = how.get("metric", "the metric"), how.get("part", "held-out")
    shown = run.importance[:MOST_BARS]
    said = (f"Permutation importance on the {escape(str(part))} part: how much {escape(str(metric))} drops when one "
            f"column's values are shuffled, over {escape(str(how.get('repeats', '?')))} shuffles (the whisker is ± "
            "two std of them). A whisker that crosses 0 means the model does not measurably rely on that column.")
    if len(shown) < len(run.importance):
        said += f" The {MOST_BARS} most important of {len(run.importance)} columns."
    # ± 2 std, the rule docs/explain.md gives for "not measurably relied on"; ± 1 std would call
    # a column relied on that the shuffles' luck alone explains about one time in three
    chart = bar_chart([c["column"] for c in shown], [c["importance"] for c in shown],
                      [WHISKER_STDS * c["std"] for c in shown], "permutation importance", f"drop in {metric}")
    rows = "".join(f"<tr><td>{escape(c['column'])}</td><td>{_num(c['importance'])}</td><td>{_num(c['std'])}</td></tr>"
                   for c in shown)
    table = f"<table><thead><tr><th>column</th><th>importance</th><th>std</th></tr></thead><tbody>{rows}</tbody></table>"
    return f'<h2>What the model relies on</h2><p class=muted>{said}</p><div class="grid2 top">{chart}<div>{table}</div></div>'
