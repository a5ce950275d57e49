"""A few validation rows carrying most of the validation loss: one price typed ten times too high
can make validation loss climb for dozens of epochs and validation R² fall from 0.98 to 0.89,
which reads as overfitting when it is one row. The report names such rows (their data row, from
validation.csv's `row`) instead of suggesting early stopping.

The rule: each row's share of the validation loss the saved model has on validation.csv (squared
error for a regression trained on mse or another squared loss, absolute error on mae; minus the
log of the true class's probability for two classes). When at most FEW_ROWS rows, and at most
FEW_FRACTION of the rows, carry at least FEW_SHARE of it, the report says so, naming them and the
next heaviest rows that carry at least HEAVY_SHARE each.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

FEW_ROWS = 5  # at most this many rows...
FEW_FRACTION = 0.01  # ...and at most this share of the rows...
FEW_SHARE = 0.5  # ...carrying at least this share of the validation loss
HEAVY_SHARE = 0.1  # once found, the next heaviest rows are named too while each carries this much
LOG_FLOOR = 1e-15  # probabilities are clipped here for the log loss, as nnctl's metrics clip them


@dataclass
class Concentration:
    rows: list  # [(name, share, target, prediction)], the heaviest first
    share: float  # of the validation loss, together
    total: int  # rows in validation.csv
    metric: str  # "R²" or "log loss"
    with_them: float
    without_them: float


def row_losses(task: str, rows: list[dict], classes: list, loss: str | None = None) -> list[float] | None:
    """Each validation.csv row's loss, or None when the file does not give it (several classes:
    the report keeps only two classes' probabilities)."""
    if task == "regression":
        errors = [float(r["prediction"]) - float(r["target"]) for r in rows]
        return [abs(e) for e in errors] if loss == "mae" else [e * e for e in errors]
    if len(classes) != 2:
        return None
    return [-math.log(min(max(float(r[f"p_{r['target']}"]), LOG_FLOOR), 1.0)) for r in rows]


def concentrated(task: str, rows: list[dict], classes: list, loss: str | None = None) -> Concentration | None:
    """The few rows that carry most of the validation loss (see the module docstring), or None."""
    losses = row_losses(task, rows, classes, loss) if rows else None
    if not losses:
        return None
    total = sum(losses)
    if not (total > 0 and math.isfinite(total)):
        return None
    order = sorted(range(len(losses)), key=lambda i: -losses[i])
    most = min(FEW_ROWS, int(FEW_FRACTION * len(losses)))
    carried, heavy = 0.0, []
    for i in order[:most]:
        if carried >= FEW_SHARE * total and losses[i] < HEAVY_SHARE * total:
            break
        carried += losses[i]
        heavy.append(i)
    if carried < FEW_SHARE * total:
        return None
    named = [(_name(rows[i], i), losses[i] / total, rows[i]["target"], rows[i]["prediction"]) for i in heavy]
    taken = set(heavy)
    others = [i for i in range(len(rows)) if i not in taken]
    if task == "regression":
        return Concentration(named, carried / total, len(rows), "R²", _r2(rows, range(len(rows))), _r2(rows, others))
    return Concentration(named, carried / total, len(rows), "log loss", total / len(rows),
                         (total - carried) / max(len(others), 1))


def _name(row: dict, i: int) -> str:
    """The data row (validation.csv's `row`), or the file's line for a run from before it."""
    return f"data row {int(row['row']):,}" if row.get("row") else f"validation.csv line {i + 2:,}"


def _r2(rows: list[dict], keep) -> float:
    keep = list(keep)
    truth = [float(rows[i]["target"]) for i in keep]
    if len(truth) < 2:
        return float("nan")
    mean = sum(truth) / len(truth)
    total = sum((t - mean) ** 2 for t in truth)
    residual = sum((float(rows[i]["prediction"]) - float(rows[i]["target"])) ** 2 for i in keep)
    return 1 - residual / total if total > 0 else float("nan")


def sentence(c: Concentration, target: str = "target") -> str:
    """What the report says about them."""
    one = len(c.rows) == 1
    listed = "; ".join(f"{name} ({target} {_short(t)}, predicted {_short(p)}: {share:.0%} of the loss)"
                       for name, share, t, p in c.rows)
    better = "higher" if c.metric == "R²" else "lower"
    return (f"{'One row' if one else f'{len(c.rows)} rows'} of {c.total:,} carr{'ies' if one else 'y'} {c.share:.0%} "
            f"of the validation loss: {listed}. Without {'it' if one else 'them'}, validation {c.metric} would be "
            f"{c.without_them:.4g} ({better} than {c.with_them:.4g}). Check {'that row' if one else 'these rows'} in "
            "the data (a typo, a value in other units) before reading the validation curve as overfitting: a rise "
            f"of the validation loss can come from {'it' if one else 'them'} alone.")


def _short(text) -> str:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return str(text)
    return f"{value:,.6g}" if abs(value) < 1e15 else f"{value:.4g}"
