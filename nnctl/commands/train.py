"""`nnctl train`: the resolved config -> dataset -> network -> training -> a run folder; and
`nnctl train --resume RUN`: the same, continuing a run from its checkpoint.

    cfg = load_config("configs/iris.yaml", ["training.iterations=50"])
    run = train_config(cfg, runs_dir="runs").run                       # -> Path of the run folder
    more = resume_run(run, ["training.iterations=100"], runs_dir="runs").run
    quiet = RunOptions("runs", "iris", plot=False, callback=my_callback)
    train_config(cfg, options=quiet)

Every decision about resuming (which config, which name, whether the data and the overrides
allow it) is made here; the CLI only parses its arguments and prints.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import naming_errors
from ..config import dump_config, load_config, resolve
from ..config.typed import Config
from ..config.validate import written_paths as paths_as_written
from ..config.yamlfile import parse_override, set_override
from ..data import load_dataset
from ..errors import NnctlError, NothingTrained
from ..runs.folder import RunFolder, atomic_run_folder, check_name, claim_for_resume, ensure_writable
from ..runs.model import Model, build_meta, save_model
from ..training import Callback, TrainResult, train
from ..training.build import architecture, build_network, check_batches
from ..training.calibration import calibrate, calibrate_targets, check_calibration, reliability
from ..training.conformal import add_conformal, add_target_conformal, check_conformal
from ..training.checkpoint import Checkpoint, Checkpointer, data_digest, load_checkpoint
from ..training.multiscore import own_metric
from ..training.scoring import dataset_heads, metric_name
from .explain import IMPORTANCE_NEEDS_PART, run_importance
from .plot import try_plot_run
from .predict import labelled_outputs, score_outputs

PREDICTION_ROWS = 20_000  # validation.csv of a streamed run: its first rows, enough for a report's charts
NOTHING = "interrupted before the first epoch completed: nothing was trained, no run was saved"
# what `--resume` may change: how long to train and how it is shown; anything else would make
# the continued run a different one than the run it continues
RESUMABLE = (("training", "iterations"), ("training", "log_every"), ("training", "display_rows"),
             ("training", "early_stopping", "patience"))


@dataclass(frozen=True)
class RunOptions:
    """How a run is carried out and where it is saved, apart from what it trains (the config).

    `name`: the run's name, the folder's `<name>-<timestamp>` (None: "run", or for a resumed run
    the name it had); `folder`: the folder's exact name inside `runs_dir` instead (a sweep's
    `trials/007`); `plot`: draw loss.png; `cache`: use the dataset cache; `callback`: watches
    the loop (training.Callback); `should_stop()`: polled after every batch (Ctrl-C sets it)."""

    runs_dir: Path | str = "runs"
    name: str | None = None
    folder: str | None = None
    plot: bool = True
    cache: bool = True
    callback: Callback | None = None
    should_stop: Callable[[], bool] | None = None


def run_options(options: RunOptions | None = None, **fields) -> RunOptions:
    """`options` (default RunOptions()) with the fields given by keyword; a field given as None
    keeps its value, so `train_config(cfg, "runs", plot=False)` and `options=` mix."""
    return replace(options or RunOptions(), **{k: v for k, v in fields.items() if v is not None})


def train_config(cfg: Config, runs_dir=None, name: str | None = None, *, options: RunOptions | None = None,
                 resume: Checkpoint | None = None, fold=None, dataset=None, written_paths: dict | None = None,
                 metrics: dict | None = None, **fields) -> TrainResult:
    """Train the resolved config and save a run folder; returns the TrainResult, whose `run`
    is the folder's path. How it runs: `options` (RunOptions), or its fields by keyword
    (`runs_dir`, `name`, `plot=False`, ...). An interrupt (`should_stop()`) before the first epoch
    completes saves nothing and raises NothingTrained. What it trains, besides `cfg`: `resume`,
    the Checkpoint to continue from (see `resume_run`); `fold` (i, K) validates on fold i of K
    (see `load_dataset`); `dataset`, when the caller has prepared it already (a sweep on Ray);
    `written_paths`: the config's paths as the user wrote them (`config.written_paths`), kept
    in metrics.json for the report (a resume carries its run's along); `metrics`: more history
    columns to log, {name: the key that asks for them} (see `train`)."""
    options = run_options(options, runs_dir=runs_dir, name=name, **fields)
    if resume is not None and written_paths is None:
        written_paths = resume.meta.get("paths_as_written")
    name = check_name("run" if options.name is None else options.name)
    runs_dir = ensure_writable(options.runs_dir)
    if dataset is None:
        reads = options.callback.on_read if options.callback is not None else None
        dataset = load_dataset(cfg, cache=options.cache, fold=fold, progress=reads)
    if cfg.report.importance and not cfg.data.test_path and not len(dataset.parts["validation"]):
        dataset.notes.append(("warning", IMPORTANCE_NEEDS_PART))
    network = build_network(cfg, dataset, fresh=resume is not None)
    check_batches(cfg, network, dataset)
    check_calibration(cfg, dataset)
    check_conformal(cfg.training.conformal, dataset.task, network.members, dataset.target_scaler,
                    getattr(dataset, "targets", None))
    digest = _checked_digest(cfg, dataset, resume)
    if options.should_stop is not None and options.should_stop():
        raise NothingTrained(NOTHING)
    started = time.time()
    created = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started))
    with claim_for_resume(resume.path if resume is not None else None), \
            atomic_run_folder(runs_dir, name, options.folder, started) as run:
        tmp = run["tmp"]
        files = RunFolder(tmp)
        files.write_config(dump_config(cfg))  # first: a killed run still says what it was
        checkpointer = None
        if cfg.training.checkpoint_every is not None:
            checkpointer = Checkpointer(tmp, cfg.training.checkpoint_every,
                                        {"config": cfg, "name": name, "data_digest": digest, "created": created,
                                         "paths_as_written": written_paths or {},
                                         "resumed_from": str(resume.path) if resume is not None else None})
        result = train(network, dataset, cfg.training, seed=cfg.seed, callback=options.callback,
                       should_stop=options.should_stop, resume=resume, checkpointer=checkpointer, metrics=metrics)
        if resume is None and result.status == "interrupted" and result.epochs == 0:
            raise NothingTrained(NOTHING)
        extra = {"created": created}
        if fold is not None:
            extra["fold"] = {"index": fold[0], "folds": fold[1]}
        if resume is not None:
            extra["resumed_from"] = str(resume.path)
        if written_paths:
            extra["paths_as_written"] = written_paths
        write_results(files, cfg, network, dataset, result, extra)
    result.run = run["final"]
    if options.plot:  # an extra, drawn once the run is complete: a kill while drawing strands nothing
        try_plot_run(result.run, result.history, name)
    return result


def _checked_digest(cfg: Config, dataset, resume: Checkpoint | None) -> str | None:
    """The data's digest, when checkpoints need it; resuming on other data than the
    checkpoint's is refused."""
    if cfg.training.checkpoint_every is None and resume is None:
        return None
    digest = data_digest(dataset)
    if resume is not None and digest != resume.data_digest:
        raise NnctlError("the data changed since that run trained on it: resuming needs the same data",
                         cfg.data.path, "restore the file, or start a new run (model.init_from) on the new data")
    return digest


# a streamed run's steps after training (calibration, conformal scores, importance) read this many
# validation rows: plenty for one temperature or a quantile, and bounded in memory
HELD_OUT_ROWS = 100_000


def write_results(files: RunFolder, cfg: Config, network, dataset, result: TrainResult, extra: dict) -> None:
    """model.npz, history.csv, diagnostics.csv, validation.csv, test.csv and metrics.json (the
    scores, what model.npz holds, and `extra`)."""
    meta = build_meta(network, dataset, cfg)
    held_out = _held_out(dataset, cfg.seed)
    # first, before anything is scored from the saved model: all of it uses the temperature
    if dataset.targets is not None:  # a temperature per classification target, in its meta entry
        calibration = calibrate_targets(network, meta, held_out, cfg)
    else:
        calibration = calibrate(network, held_out, cfg)
    if calibration is not None and dataset.targets is None:
        meta["calibration"] = {"temperature": calibration["temperature"]}
    model = Model(network, meta, files.file(files.MODEL))
    # after anything that changes the model's outputs (a fitted temperature): the scores are of them
    kept_scores = (add_conformal(model, held_out, cfg.training.conformal) if dataset.targets is None
                   else add_target_conformal(model, held_out, cfg.training.conformal))
    with naming_errors(files.file(files.MODEL)):
        save_model(files.file(files.MODEL), network, model.meta, kept_scores)
    files.write_history(result.history)
    files.write_diagnostics(result.diagnostics)
    if len(dataset.parts["validation"]):
        # a streamed validation part may be any size: validation.csv keeps its first rows
        files.write_predictions(files.VALIDATION, model, *dataset.preview(PREDICTION_ROWS))
    test = None
    if cfg.data.test_path and dataset.targets is not None:
        from .targets import multi_evaluate

        result.metrics["test"] = multi_evaluate(model, cfg.data.test_path, given_as="data.test_path")
    elif cfg.data.test_path:  # scored once, with the final model, as `nnctl evaluate` would
        truth, outputs = labelled_outputs(model, cfg.data.test_path, given_as="data.test_path")
        result.metrics["test"] = score_outputs(model, truth, outputs)
        files.write_outputs(files.TEST, model, truth, outputs, np.arange(len(truth)))  # every row, in order
        test = (truth, outputs)
    metrics = {**result.metrics, "task": dataset.task, "architecture": architecture(network.sizes),
               "metric": metric_name(dataset.task) if dataset.targets is None else
               # several targets: the first target's own, as the live table's metric column
               "{0.name}.{1}".format(dataset_heads(dataset)[0], own_metric(dataset_heads(dataset)[0])),
               "created": extra["created"],
               # whose weights model.npz holds: early stopping may have put back its best epoch's
               "saved_epoch": result.best_epoch if result.restored_best else result.epochs,
               "saved_because": f"best {result.best_by}" if result.restored_best else "last"}
    if cfg.report.importance:
        _write_importance(files, model, held_out, cfg, metrics)
    # the members alone and their disagreement; several targets: each target's, keyed by it
    if network.members is not None and len(held_out.X_val):
        from .members import member_scores

        if dataset.targets is None:
            metrics["members"] = member_scores(model, held_out.X_val, held_out.y_val)
        else:
            y = np.asarray(held_out.y_val).reshape(len(held_out.X_val), -1)
            metrics["members"] = {v.name: member_scores(v, held_out.X_val, y[:, j])
                                  for j, v in enumerate(model.targets)}
    if dataset.classes is not None and len(dataset.classes) == 2:  # what roc_auc and the like refer to
        metrics["positive_class"] = dataset.classes[1]
    if dataset.targets is not None:
        metrics["targets"] = list(dataset.target)
        if calibration is not None:
            metrics["calibration"] = calibration  # {target: its temperature and losses}
    elif dataset.task == "regression":
        _add_target_units(metrics, model, dataset, cfg)
    else:
        _add_calibration(metrics, calibration, model, held_out, test)
    files.write_metrics({**metrics, **extra})  # `created` keeps its place


class _HeldOut:
    """A dataset as the steps after training read it: its `held_out` validation rows as arrays
    (`X_val`, `y_val`), everything else from the dataset itself."""

    def __init__(self, dataset, rows: int, seed: int):
        self._dataset = dataset
        self.X_val, self.y_val = dataset.held_out(rows, seed)

    def __getattr__(self, name):
        return getattr(self._dataset, name)


def _held_out(dataset, seed: int):
    """What temperature calibration, the conformal scores, the reliability bins and importance
    are computed on: the validation part in memory, or for a streamed run (whose validation part
    may not fit in memory) HELD_OUT_ROWS of its rows drawn at random from the seed: the first
    rows of a file sorted by date or by class would not stand for the rest."""
    return _HeldOut(dataset, HELD_OUT_ROWS, seed)


def _add_calibration(metrics: dict, calibration: dict | None, model, dataset, test) -> None:
    """`calibration` (the temperature, when fitted) and `reliability`: the saved model's
    confidence bins, Brier score and ECE on the test part, or else the validation part."""
    if calibration is not None:
        metrics["calibration"] = calibration
    if test is not None:
        metrics["reliability"] = reliability("test", *test)
    elif len(dataset.X_val):
        metrics["reliability"] = reliability("validation", dataset.y_val, model.proba_from_inputs(dataset.X_val))


def _write_importance(files: RunFolder, model, dataset, cfg: Config, metrics: dict) -> None:
    """importance.csv, and how it was measured as metrics.json's `importance` (report.importance)."""
    result = run_importance(model, dataset, cfg.data.test_path, cfg.seed)
    if result is not None and "targets" in result:  # several targets: each one's, keyed by it
        files.write_importance([{"target": name, **c} for name, own in result["targets"].items()
                                for c in own["columns"]])
        shared = {k: v for k, v in result.items() if k != "targets"}
        metrics["importance"] = {name: {**shared, **{k: v for k, v in own.items() if k != "columns"}}
                                 for name, own in result["targets"].items()}
    elif result is not None:
        files.write_importance(result["columns"])
        metrics["importance"] = {k: v for k, v in result.items() if k != "columns"}


def _add_target_units(metrics: dict, model, dataset, cfg: Config) -> None:
    """A regression's train and validation errors in the target's own units (mse, rmse, mae), as
    `evaluate` gives the test part's, and `target_units`: what the loss is and the target's
    scale, so a report can show the loss curves in those units too. The parts' `loss` stays on
    the scale training saw (standardized when data.scale_target), as sweeps and early stopping
    compare it."""
    import numpy as np

    from ..data.scaling import from_training, is_linear
    from ..nn.losses import loss_for

    scaler = dataset.target_scaler
    for part in ("train", "validation"):
        if len(dataset.parts[part]) and part in metrics:
            errors = []
            for X, y in dataset.chunks(part):
                truth = from_training(np.asarray(y, dtype=np.float64).reshape(len(y), -1), scaler)
                errors.append(_error_sums(truth.reshape(-1), model.values_from_inputs(X).reshape(-1)))
            n, squared, absolute = np.sum(errors, axis=0)
            metrics[part].update({"mse": squared / n, "rmse": float(np.sqrt(squared / n)), "mae": absolute / n})
    scale = float(np.asarray(scaler["scale"]).reshape(-1)[0]) if scaler else 1.0
    # a log1p or quantile target's loss has no single factor to the target's units
    loss = loss_for("regression", None, cfg.training.loss) if is_linear(scaler) else f"on a {scaler['kind']} target"
    metrics["target_units"] = {"target": cfg.data.target, "scale": scale, "loss": loss}


def _error_sums(truth, predicted) -> tuple[float, float, float]:
    """(rows, Σ error², Σ |error|) in float64: a part's mse and mae summed over its chunks."""
    import numpy as np

    error = truth - np.asarray(predicted, dtype=np.float64)
    with np.errstate(over="ignore"):  # a target near 1e308: its mse is inf, saved as null
        return float(len(error)), float(np.sum(error ** 2)), float(np.sum(np.abs(error)))


@dataclass(frozen=True)
class TrainPlan:
    """What `nnctl train` is about to run: the resolved config, the run's name unless one is
    given, the Checkpoint it continues (None for a new run), and the config's paths as the user
    wrote them (a resumed run carries its own along)."""

    cfg: Config
    name: str
    resume: Checkpoint | None = None
    written_paths: dict | None = None


def plan_training(config=None, resume=None, overrides=()) -> TrainPlan:
    """A new run of the `config` file, or, given `resume` (a run folder or its checkpoint.npz),
    the continuation of that run; `overrides` are `--set` texts."""
    if resume is not None:
        checkpoint = load_checkpoint(resume)
        return TrainPlan(resume_config(checkpoint, overrides), checkpoint.name, checkpoint)
    return TrainPlan(load_config(config, list(overrides)), Path(config).stem,
                     written_paths=paths_as_written(config, list(overrides)))


def run_plan(plan: TrainPlan, options: RunOptions) -> TrainResult:
    """Train `plan` under `options` (its name unless `options` gives one)."""
    name = plan.name if options.name is None else options.name
    return train_config(plan.cfg, options=run_options(options, name=name), resume=plan.resume,
                        written_paths=plan.written_paths)


def resume_config(checkpoint: Checkpoint, overrides) -> Config:
    """The checkpoint's config with `--set` overrides of the keys that may change; any other
    difference is an NnctlError naming the key."""
    where = str(checkpoint.path)
    saved = checkpoint.config
    raw, set_paths = copy.deepcopy(saved), []
    for text in overrides:
        keys, value = parse_override(text)
        set_override(raw, keys, value)
        set_paths.append(keys)
    cfg = resolve(raw, base_dir=Path.cwd(), source=where, set_paths=set_paths)
    # a key added since that run (data.exclude, say) is filled with its default on both sides
    saved = resolve(copy.deepcopy(saved), base_dir=Path.cwd(), source=where)
    for keys in _differences(saved.to_dict(), cfg.to_dict()):
        if keys not in RESUMABLE and keys[0] != "tracking":  # where a copy is logged changes no training
            allowed = ", ".join(".".join(k) for k in RESUMABLE)
            raise NnctlError(f"{'.'.join(keys)} cannot change when resuming", f"--set {'.'.join(keys)}",
                             f"only {allowed} may; to change the data, architecture or optimizer, "
                             "start a new run from this one's weights with model.init_from")
    completed, iterations = checkpoint.completed, cfg.training.iterations
    if iterations <= completed:
        raise NnctlError(f"that run has already trained {completed} epochs (training.iterations is {iterations})",
                         where, f"--set training.iterations=N with N above {completed} to train on")
    waited = checkpoint.waited
    patience = getattr(cfg.training.early_stopping, "patience", 0)
    if checkpoint.status == "early_stopped" and waited >= patience:
        raise NnctlError(f"that run stopped early at epoch {completed}: {waited} epochs without improvement "
                         f"used up its patience ({patience})", where,
                         f"--set training.early_stopping.patience=N with N above {waited} to train on")
    return cfg


def _differences(a, b, keys: tuple = ()) -> list[tuple]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for k in dict.fromkeys(list(a) + list(b)):
            found += _differences(a.get(k), b.get(k), keys + (k,))
        return found
    return [] if a == b else [keys]


def resume_run(run, overrides=(), runs_dir=None, name: str | None = None, *, options: RunOptions | None = None,
               **fields) -> TrainResult:
    """Continue `run` (a run folder, complete or killed) from its checkpoint in a new run folder;
    `run` itself is only read. Options as for `train_config`; returns the TrainResult like it."""
    options = run_options(options, runs_dir=runs_dir, name=name, **fields)
    return run_plan(plan_training(resume=run, overrides=overrides), options)
