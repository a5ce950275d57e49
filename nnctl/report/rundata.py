"""Everything a report shows, read from a run folder alone."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NnctlError


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
    try:
        metrics = json.loads((path / "metrics.json").read_text())
        history = [{k: _number(v) for k, v in row.items()} for row in _rows(path / "history.csv")]
    except FileNotFoundError as exc:
        raise NnctlError(f"not a run folder: it has no {Path(exc.filename).name}", str(path),
                         "pass run folders written by `nnctl train` (`nnctl runs` lists them)")
    except ValueError:
        raise NnctlError("metrics.json is not valid JSON", str(path / "metrics.json"))
    config = (path / "config.yaml").read_text() if (path / "config.yaml").exists() else ""
    run = RunData(path, metrics, config, history)
    if (path / "diagnostics.csv").exists():
        run.diagnostics = [{k: _number(v) for k, v in row.items()} for row in _rows(path / "diagnostics.csv")]
    else:
        run.notes.append("This run has no diagnostics.csv (it was trained by an older nnctl): "
                         "backprop health is not shown. Train it again to see it.")
    if (path / "validation.csv").exists():
        run.validation = _rows(path / "validation.csv")
    else:
        run.notes.append("This run has no validation.csv (no validation part, or an older nnctl): "
                         "the confusion matrix, ROC/PR curves and residuals are not shown.")
    return run
