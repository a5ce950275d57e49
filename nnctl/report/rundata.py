"""Everything a report shows, read from a run folder alone."""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NnctlError
from ..runs.folder import DAMAGED, parse_history, read_metrics


@dataclass
class RunData:
    path: Path
    metrics: dict
    config: str  # the resolved config, as written
    history: list[dict]
    diagnostics: list[dict] = field(default_factory=list)  # empty: a run from before diagnostics
    validation: list[dict] = field(default_factory=list)  # the validation part's predictions
    notes: list[str] = field(default_factory=list)  # what is missing, said on the page

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def task(self) -> str:
        return self.metrics.get("task", "classification")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _number(text):
    if text in ("", None):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def read_run(folder) -> RunData:
    """A run folder written by `nnctl train`; an NnctlError when it is not one."""
    path = Path(folder)
    if not path.is_dir():
        raise NnctlError("not a run folder" if path.exists() else "run folder not found", str(path),
                         "pass run folders written by `nnctl train` (`nnctl runs` lists them)")
    metrics = read_metrics(path)
    if not (path / "history.csv").exists():
        raise NnctlError("not a run folder: it has no history.csv", str(path),
                         "pass run folders written by `nnctl train` (`nnctl runs` lists them)")
    with open(path / "history.csv", newline="") as fh:
        history = [{k: None if v != v else v for k, v in row.items()}
                   for row in parse_history(csv.DictReader(fh), path / "history.csv")]
    config = (path / "config.yaml").read_text() if (path / "config.yaml").exists() else ""
    run = RunData(path, metrics, config, history)
    if (path / "diagnostics.csv").exists():
        run.diagnostics = _check_diagnostics(_rows(path / "diagnostics.csv"), path / "diagnostics.csv")
    else:
        run.notes.append("This run has no diagnostics.csv (it was trained by an older nnctl): "
                         "backprop health is not shown. Train it again to see it.")
    if (path / "validation.csv").exists():
        run.validation = _check_validation(_rows(path / "validation.csv"), run.task, path / "validation.csv")
    else:
        run.notes.append("This run has no validation.csv (no validation part, or an older nnctl): "
                         "the confusion matrix, ROC/PR curves and residuals are not shown.")
    return run


def _check_validation(rows: list[dict], task: str, path: Path) -> list[dict]:
    """validation.csv as `nnctl train` writes it: a true and a predicted label among the
    `p_<class>` columns' classes and probabilities as numbers (classification), or two numbers
    (regression); an NnctlError naming the file and line otherwise."""
    classes = {k[2:] for k in (rows[0] if rows else {}) if k and k.startswith("p_")}
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values() or "target" not in row or "prediction" not in row:
            raise NnctlError(f"validation.csv line {line} does not have its header's cells", str(path), DAMAGED)
        for column, value in row.items():
            wanted = classes if task == "classification" and column in ("target", "prediction") else None
            if wanted is not None and value not in wanted:
                raise NnctlError(f"validation.csv line {line}: {column} '{value[:40]}' is not one of the classes "
                                 f"({', '.join(sorted(classes)[:10])})", str(path), DAMAGED)
            if wanted is None and _number(value) is None:
                raise NnctlError(f"validation.csv line {line}: {column} is '{value[:40]}', not a number",
                                 str(path), DAMAGED)
    return rows


def _check_diagnostics(rows: list[dict], path: Path) -> list[dict]:
    """diagnostics.csv's rows as numbers (None for an empty cell), each with a whole `epoch` and
    `layer`; an NnctlError naming the file and line otherwise."""
    checked = []
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            raise NnctlError(f"diagnostics.csv line {line} does not have its header's cells", str(path), DAMAGED)
        numbers = {k: _number(v) for k, v in row.items()}
        for column, value in row.items():
            whole = column in ("epoch", "layer")
            number = numbers[column]
            if (value != "" or whole) and (number is None or whole and not (number.is_integer() and 0 <= number < 1e9)):
                raise NnctlError(f"diagnostics.csv line {line}: {column} is '{value[:40]}', not "
                                 f"{'a whole number' if whole else 'a number'}", str(path), DAMAGED)
        checked.append(numbers)
    return checked
