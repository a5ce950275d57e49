"""Everything a report shows, read from a run folder alone."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NnctlError
from ..runs.folder import NOT_A_RUN_HINT, RunFolder


@dataclass
class RunData:
    path: Path
    metrics: dict
    config: str  # the resolved config, as written
    history: list[dict]
    diagnostics: list[dict] = field(default_factory=list)  # empty: a run from before diagnostics
    validation: list[dict] = field(default_factory=list)  # the validation part's predictions
    test: list[dict] = field(default_factory=list)  # the test part's (data.test_path), when there is one
    classes: list[str] = field(default_factory=list)  # the labels, from the predictions' p_<class> columns
    notes: list[str] = field(default_factory=list)  # what is missing, said on the page

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def task(self) -> str:
        return self.metrics.get("task", "classification")


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
        raise NnctlError("not a run folder" if path.exists() else "run folder not found", str(path), NOT_A_RUN_HINT)
    files = RunFolder(path)
    metrics = files.read_metrics()
    history = files.read_rows(files.HISTORY)
    if history is None:
        raise NnctlError(f"not a run folder: it has no {files.HISTORY}", str(path), NOT_A_RUN_HINT)
    run = RunData(path, metrics, files.read_config(), [{k: _number(v) for k, v in row.items()} for row in history])
    diagnostics = files.read_rows(files.DIAGNOSTICS)
    if diagnostics is not None:
        run.diagnostics = [{k: _number(v) for k, v in row.items()} for row in diagnostics]
    else:
        run.notes.append(f"This run has no {files.DIAGNOSTICS} (it was trained by an older nnctl): "
                         "backprop health is not shown. Train it again to see it.")
    for part in ("validation", "test"):
        found = files.read_predictions(files.VALIDATION if part == "validation" else files.TEST)
        if found is not None:
            run.classes, rows = found
            setattr(run, part, rows)
    if not files.has(files.VALIDATION):
        run.notes.append(f"This run has no {files.VALIDATION} (no validation part, or an older nnctl): "
                         "the confusion matrix, ROC/PR curves and residuals are not shown.")
    return run
