"""Everything a report shows, read from a run folder alone."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data.targets import MULTI
from ..errors import NnctlError
from ..runs.folder import DAMAGED, NOT_A_RUN_HINT, RunFolder


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
    blocks: str | None = None  # e.g. "4 → 16 [batch norm, relu, dropout 0.2] → 3 [softmax]", from model.npz
    trainable: list = field(default_factory=list)  # blocks.Trainable per diagnostics.csv `layer`; empty: unknown
    importance: list = field(default_factory=list)  # importance.csv's rows (report.importance); empty: none
    targets: list = field(default_factory=list)  # several targets: one RunData per target (`_target_runs`)

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
    if not files.has(files.HISTORY):
        raise NnctlError(f"not a run folder: it has no {files.HISTORY}", str(path), NOT_A_RUN_HINT)
    history = [{k: None if v != v else v for k, v in row.items()} for row in files.read_history()]
    run = RunData(path, metrics, files.read_config(), history)
    diagnostics = files.read_rows(files.DIAGNOSTICS)
    if diagnostics is not None:
        run.diagnostics = _check_diagnostics(diagnostics, files.file(files.DIAGNOSTICS))
    else:
        run.notes.append(f"This run has no {files.DIAGNOSTICS} (it was trained by an older nnctl): "
                         "backprop health is not shown. Train it again to see it.")
    for part in ("validation", "test"):
        name = files.VALIDATION if part == "validation" else files.TEST
        if metrics.get("task") == MULTI:
            continue  # each target's columns are read into its own RunData below
        found = files.read_predictions(name)
        if found is not None:
            run.classes, rows = found
            setattr(run, part, _check_predictions(rows, run.task, run.classes, files.file(name)))
    _read_layers(run, path)
    if metrics.get("task") == MULTI:
        run.targets = _target_runs(run, files)
    run.importance = files.read_importance() or []
    if not files.has(files.VALIDATION):
        run.notes.append(f"This run has no {files.VALIDATION} (no validation part, or an older nnctl): "
                         "the confusion matrix, ROC/PR curves and residuals are not shown.")
    return run


def _target_runs(run: RunData, files: RunFolder) -> list[RunData]:
    """A run of several targets as one RunData per target, read as a run of that target alone:
    its task and classes (model.npz), its scores (metrics.json's `<target>.<metric>`), and its
    columns of validation.csv and test.csv as `target`, `prediction` (and `p_<class>` of two
    classes)."""
    from ..runs.model import load_model

    views, runs = load_model(run.path).targets, []
    for view in views:
        name, own = view.name, f"{view.name}."
        metrics = {"task": view.task, "status": run.metrics.get("status")}
        for key in ("members", "importance"):  # several targets: {target: its own}
            each = run.metrics.get(key)
            if isinstance(each, dict) and isinstance(each.get(name), dict):
                metrics[key] = each[name]
        for part in ("train", "validation", "test"):
            scores = run.metrics.get(part)
            if isinstance(scores, dict):
                metrics[part] = {k[len(own):]: v for k, v in scores.items() if k.startswith(own)}
                metrics[part]["rows"] = scores.get("rows")
        classes = [str(c) for c in view.classes] if view.task == "classification" else []
        target = RunData(run.path, metrics, run.config, [], classes=classes,
                         importance=[r for r in files.read_importance() or [] if r.get("target") == name])
        for part in ("validation", "test"):
            file = files.VALIDATION if part == "validation" else files.TEST
            rows = files.read_rows(file)
            if rows is None:
                continue
            wanted = {name: "target", f"{name}_prediction": "prediction", "row": "row",
                      **({f"p_{name}_{c}": f"p_{c}" for c in classes} if len(classes) == 2 else {})}
            if rows and not set(wanted) - {"row"} <= set(rows[0]):
                raise NnctlError(f"{file} has no columns {name} and {name}_prediction", str(files.file(file)), DAMAGED)
            mapped = [{wanted[k]: v for k, v in row.items() if k in wanted} for row in rows]
            setattr(target, part, _check_predictions(mapped, view.task, classes, files.file(file)))
        runs.append(target)
    return runs


def _read_layers(run: RunData, path: Path) -> None:
    """The blocks and trainable layers from model.npz; a run without a readable one (failed
    before saving, damaged) still gets its page, saying what is left out."""
    from ..runs.model import load_model
    from .blocks import blocks, trainable

    try:
        model = load_model(path)
    except NnctlError as e:
        run.notes.append(f"model.npz could not be read ({e.message}): the model's blocks and the kind of each "
                         "layer in backprop health are not shown.")
        return
    layers = model.network.layers
    run.blocks = blocks(layers, model.network.n_inputs, model.meta.get("output", model.network.output_head))
    run.trainable = trainable(layers)


def _check_predictions(rows: list[dict], task: str, classes: list, path: Path) -> list[dict]:
    """validation.csv or test.csv as `nnctl train` writes them: a true and a predicted label
    among the `p_<class>` columns' classes, probabilities as numbers (classification), or two
    numbers (regression); an NnctlError naming the file and line otherwise."""
    classes = set(classes)
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values() or "target" not in row or "prediction" not in row:
            raise NnctlError(f"{path.name} line {line} does not have its header's cells", str(path), DAMAGED)
        for column, value in row.items():
            wanted = classes if task == "classification" and column in ("target", "prediction") else None
            if wanted is not None and value not in wanted:
                raise NnctlError(f"{path.name} line {line}: {column} '{value[:40]}' is not one of the classes "
                                 f"({', '.join(sorted(classes)[:10])})", str(path), DAMAGED)
            if wanted is None and _number(value) is None:
                raise NnctlError(f"{path.name} line {line}: {column} is '{value[:40]}', not a number",
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
