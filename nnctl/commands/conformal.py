"""Conformal intervals and sets from a saved model: `predict --interval L` / `--sets L`,
`evaluate --interval L` / `--sets L` and `export --interval L` all start from `half_width`, the
quantile of the scores training kept (see `nn/conformal.py` for the method).

    model = load_model(run)
    q = half_width(model, 0.9, "--interval")       # the interval is prediction ± q
    sets = prediction_sets(model.predict_proba(df), half_width(model, 0.9, "--sets") + SET_TOLERANCE)
"""
from __future__ import annotations

import math

from ..data.scaling import is_linear, link, unlink
from ..errors import NnctlError
from ..nn.conformal import NORMALIZED_SCORE, conformal_quantile, quantile_rank

SEPARATOR = "|"  # between the labels of a prediction set in predict's CSV
# a set takes a class whose score is within this of q: the calibration row whose score is q
# itself must stay in its set when another runtime (the exported ONNX graph) computes its
# float32 probability a few units in the last place apart
SET_TOLERANCE = 1e-6
# each option's task: --interval is for numbers, --sets for classes
OPTION_TASK = {"--interval": "regression", "--sets": "classification"}


def half_width(model, level: float, option: str) -> float:
    """The conformal quantile q at `level` for a loaded model: an interval's half-width
    (`--interval`, regression) or the largest score a set's class may have (`--sets`,
    classification); +inf when the validation part is too small for that level. `option`
    names the flag in error messages."""
    check_level(level, option)
    wanted = OPTION_TASK[option]
    if model.task != wanted:
        other = "--sets" if option == "--interval" else "--interval"
        kind = "a regression (it predicts numbers)" if model.task == "regression" else "a classification"
        raise NnctlError(f"{option} is for {wanted} models, but this model is {kind}", option,
                         f"use {other} {level:g} instead")
    if model.conformal_scores is None:
        # format 1 files, and format 2 ones written before conformal scores were kept, hold none
        # either, whatever their validation part was
        raise NnctlError(f"{option} needs the validation part's scores, which this model does not hold: it was "
                         "trained without a validation part, or by an older nnctl", str(model.path),
                         "train again with data.validation_split above 0 (e.g. --set data.validation_split=0.2) "
                         "or a data.validation_path")
    return conformal_quantile(model.conformal_scores, level)


def check_level(level: float, option: str) -> None:
    if not 0.0 < level < 1.0:
        raise NnctlError(f"{option} is a coverage level strictly between 0 and 1, got {level}", option,
                         f"e.g. {option} 0.9 for 90% coverage")


def too_few_note(model, level: float, option: str) -> str | None:
    """A line for stderr when the validation part is too small for `level`: the intervals are
    then infinite (the sets every class), which is right but rarely what was meant."""
    n = len(model.conformal_scores)
    if quantile_rank(n, level) <= n:
        return None
    what = "every interval is infinite" if option == "--interval" else "every set holds every class"
    return (f"note: {option} {level:g} needs at least {_rows_needed(level)} validation rows and this model had {n}: "
            f"{what}")


def _rows_needed(level: float) -> int:
    """The smallest n with ⌈(n + 1) · L⌉ ≤ n, i.e. n ≥ L / (1 − L)."""
    n = max(1, math.ceil(level / (1.0 - level) - 1e-9))
    return n if quantile_rank(n, level) <= n else n + 1


def set_labels(model) -> list[str]:
    """Each class as written in a prediction set; a label holding the separator would make the
    column ambiguous, so it is refused."""
    labels = [str(c) for c in model.classes]
    for label in labels:
        if SEPARATOR in label:
            raise NnctlError(f"class '{label}' contains '{SEPARATOR}', which separates the labels of a "
                             "prediction set", "--sets", "relabel that class in the data and train again, "
                             "or use the Python API (nnctl.nn.conformal.prediction_sets)")
    return labels


def spread_floor_of(model) -> float | None:
    """f of a model whose interval scores are normalized by its members' spread
    (training.conformal: normalized), else None."""
    entry = model.meta.get("conformal") or {}
    return entry.get("floor") if entry.get("kind") == NORMALIZED_SCORE else None


class ConformalColumns:
    """What `predict --interval` / `--sets` add to each chunk of predictions: `names`, the
    columns, and `add(frame, outputs, spread)`, which writes them from the chunk's values (rows,)
    or probabilities (rows, classes), and for normalized scores (`floor` set) the members' spread
    of each row's value (rows,): the interval is then ŷ ∓ q·(σ + floor)."""

    def __init__(self, option: str | None = None, q: float | None = None, labels=None, level: float | None = None,
                 floor: float | None = None, target=None):
        self.option, self.q, self.labels, self.level, self.floor = option, q, labels, level, floor
        self.target = target  # the regression's target scaler: intervals are made in its link's space
        self.names = {"--interval": ("lower", "upper"), "--sets": ("prediction_set",), None: ()}[option]

    @property
    def needs_spread(self) -> bool:
        return self.option == "--interval" and self.floor is not None

    def half_width(self, spread=None):
        """q, or q·(σ + floor) per row for normalized scores."""
        return self.q if not self.needs_spread else self.q * (spread + self.floor)

    def add(self, frame, outputs, spread=None) -> None:
        import numpy as np

        from ..nn.conformal import intervals, prediction_sets

        if self.option == "--interval":
            frame["lower"], frame["upper"] = self.bounds(outputs, spread)
        elif self.option == "--sets":
            # few distinct sets occur among many rows: join each distinct one once
            patterns, inverse = np.unique(prediction_sets(outputs, self.q), axis=0, return_inverse=True)
            labels = np.asarray(self.labels, dtype=object)
            texts = np.array([SEPARATOR.join(labels[row]) for row in patterns], dtype=object)
            frame["prediction_set"] = texts[inverse.reshape(-1)]


    def bounds(self, values, spread=None):
        """(lower, upper) around predicted values (rows,): ŷ ∓ q (q·(σ + floor) for normalized
        scores), or for a log1p or quantile target g⁻¹(g(ŷ) ∓ q), which covers y exactly when
        g(y) is within q of g(ŷ)."""
        from ..nn.conformal import intervals

        if is_linear(self.target):
            return intervals(values, self.half_width(spread))
        lower, upper = intervals(link(values, self.target), self.q)
        return unlink(lower, self.target), unlink(upper, self.target)

    def coverage(self, y, outputs, spread=None) -> dict:
        """`evaluate`'s keys on a labelled table: `level`, the empirical `coverage`, and
        `mean_width` (regression: y and values (rows,), and the spread (rows,) for normalized
        scores) or `mean_set_size` (classification: class indices (rows,) and probabilities
        (rows, classes)); {} without an option."""
        from ..nn.conformal import interval_coverage, set_coverage

        if self.option == "--interval" and self.target and not is_linear(self.target):
            import numpy as np

            lower, upper = self.bounds(np.asarray(outputs, np.float64))
            y = np.asarray(y, np.float64)
            covered, width = float(np.mean((lower <= y) & (y <= upper))), float(np.mean(upper - lower))
            return {"level": self.level, "coverage": covered, "mean_width": width}
        if self.option == "--interval":
            covered, width = interval_coverage(y, outputs, self.half_width(spread))
            return {"level": self.level, "coverage": covered, "mean_width": width}
        if self.option == "--sets":
            covered, size = set_coverage(y, outputs, self.q)
            return {"level": self.level, "coverage": covered, "mean_set_size": size}
        return {}


def conformal_columns(model, interval: float | None = None, sets: float | None = None) -> ConformalColumns:
    """The columns `--interval` / `--sets` add (none when neither is given); a wrong task, a
    level outside (0, 1) or a model trained without a validation part is an NnctlError."""
    columns = ConformalColumns()
    for option, level in (("--interval", interval), ("--sets", sets)):
        if level is not None:  # both given: one of them is for the other task, and refused
            q = half_width(model, level, option)
            labels = None
            if option == "--sets":
                q, labels = q + SET_TOLERANCE, set_labels(model)
            columns = ConformalColumns(option, q, labels, level, spread_floor_of(model) if option == "--interval" else None,
                                       model.meta.get("target_scaler"))
    return columns
