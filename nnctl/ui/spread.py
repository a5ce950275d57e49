"""How `nnctl train --seeds N` shows its spread: a plain table of each metric's mean ± std, min
and max over the seeds, and which run is kept."""
from __future__ import annotations

from pathlib import Path

from .fmt import format_duration, format_number


def seed_line(seed: int, result: dict) -> str:
    """One line as each seed's run finishes."""
    return f"seed {seed}: {result['state']} in {format_duration(result['seconds'])}"


def spread_table(summary: dict) -> str:
    """Every metric of the summary (see sweep.seeds.write_summary) as aligned plain text."""
    seeds, main = summary["seeds"], summary["metric"]
    rows = [["metric", "mean ± std", "min", "max"]]
    for key, stats in summary.items():
        if isinstance(stats, dict) and "mean" in stats:
            rows.append([key, f"{format_number(stats['mean'])} ± "
                         f"{format_number(stats['std'])}", format_number(stats["min"]), format_number(stats["max"])])
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"{len(seeds)} seeds ({seeds[0]}–{seeds[-1]}), population std (ddof=0)"]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
              for r in rows]
    kept = summary["representative"]
    lines.append(f"kept: {Path(kept['run']).name}, the median by {main} ({format_number(kept[main])})")
    if "note" in summary:
        lines.append(f"note: {summary['note']}")
    return "\n".join(lines)
