"""A finished run folder copied into an MLflow run: params, metric histories, final metrics,
tags, artifacts and the pyfunc model. The live run (`live.py`) ends with this, and `nnctl
track` is this for folders trained without tracking (or while the server was down)."""
from __future__ import annotations

import math
import time
from pathlib import Path

import yaml

from .. import __version__
from ..runs.folder import RunFolder
from .client import flat_params

# what the run folder's files are in MLflow: artifacts at the run's root, when they exist
ARTIFACTS = (RunFolder.MODEL, RunFolder.CONFIG, RunFolder.HISTORY, RunFolder.DIAGNOSTICS, RunFolder.METRICS,
             RunFolder.REPORT, RunFolder.ONNX)
PYFUNC_PATH = "model"  # mlflow.pyfunc.load_model("runs:/<run id>/model")
# nnctl's run status -> MLflow's run status
STATUS = {"completed": "FINISHED", "early_stopped": "FINISHED", "complete": "FINISHED",
          "interrupted": "KILLED", "pruned": "KILLED", "failed": "FAILED"}
# MLflow's limits per log_batch request
BATCH_METRICS, BATCH_PARAMS, BATCH_TAGS = 1000, 100, 100
PARENT = "mlflow.parentRunId"  # how MLflow nests a run under another
FOLDER_TAG = "nnctl.run_folder"  # the run folder an MLflow run is a copy of (see `owned`)


def now_ms() -> int:
    return int(time.time() * 1000)


def run_tags(folder: Path, metrics: dict, user_tags: dict | None = None) -> dict[str, str]:
    tags = {"nnctl.version": __version__, FOLDER_TAG: str(Path(folder).resolve()),
            "nnctl.status": str(metrics.get("status", ""))}
    if metrics.get("resumed_from"):
        tags["nnctl.resumed_from"] = str(metrics["resumed_from"])
    return {**(user_tags or {}), **tags}


def final_metrics(metrics: dict) -> dict[str, float]:
    """metrics.json's scores as `final_<part>_<name>`: final_val_accuracy, final_test_loss, ...;
    several targets' `<target>.<metric>` as `final_val_<target>_<metric>`, history's naming."""
    out, several = {}, bool(metrics.get("targets"))
    for part, prefix in (("train", "final_train_"), ("validation", "final_val_"), ("test", "final_test_")):
        for name, value in (metrics.get(part) or {}).items():
            if _number(value) and name != "rows":
                if several and "." in name:  # a target's name may hold dots; a metric's never does
                    target, _, metric = name.rpartition(".")
                    name = f"{target}_{metric}"
                out[prefix + name] = float(value)
    for name in ("epochs", "best_epoch", "seconds"):
        if _number(metrics.get(name)):
            out[f"final_{name}"] = float(metrics[name])
    return out


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def history_metrics(history: list[dict], after: dict | None = None) -> list:
    """history.csv's cells as MLflow Metrics with step = epoch (empty cells left out), skipping
    the steps `after` ({name: last step}) says the run has already."""
    from mlflow.entities import Metric

    after, stamp, out = after or {}, now_ms(), []
    for row in history:
        epoch = int(row["epoch"])
        for name, value in row.items():
            if name != "epoch" and _number(value) and epoch > after.get(name, -1):
                out.append(Metric(name, float(value), stamp, epoch))
    return out


def send_metrics(client, run_id: str, metrics: list) -> None:
    for i in range(0, len(metrics), BATCH_METRICS):
        client.log_batch(run_id, metrics=metrics[i:i + BATCH_METRICS], synchronous=True)


def send_params(client, run_id: str, params: dict[str, str], have: dict | None = None) -> None:
    """Params the run lacks; one it holds with another value (a resumed run's training.iterations)
    becomes the tag `nnctl.resumed.<key>`, since MLflow params never change."""
    from mlflow.entities import Param

    have = have or {}
    new = [Param(k, v) for k, v in params.items() if k not in have]
    changed = {f"nnctl.resumed.{k}": v for k, v in params.items() if k in have and have[k] != v}
    for i in range(0, len(new), BATCH_PARAMS):
        client.log_batch(run_id, params=new[i:i + BATCH_PARAMS], synchronous=True)
    send_tags(client, run_id, changed)


def send_tags(client, run_id: str, tags: dict[str, str]) -> None:
    from mlflow.entities import RunTag

    items = [RunTag(k, str(v)) for k, v in tags.items()]
    for i in range(0, len(items), BATCH_TAGS):
        client.log_batch(run_id, tags=items[i:i + BATCH_TAGS], synchronous=True)


def owned(client, run_id, folder) -> tuple[bool, str | None]:
    """(whether MLflow run `run_id` may be written into for `folder`, and when not, whose it is).
    It must still be there (not deleted) and be this folder's: its tag nnctl.run_folder names
    this folder, or, for a run nnctl opened but never finished (the tag is sent first thing at
    the end), it has no such tag but nnctl's own nnctl.status. A tracking.json copied from
    another folder, or edited, so never writes into someone else's run."""
    if not run_id:
        return False, None
    try:
        run = client.get_run(run_id)
    except Exception:  # not found, or the server cannot say: a new run is made
        return False, None
    if run.info.lifecycle_stage != "active":
        return False, None
    tags = run.data.tags
    if FOLDER_TAG in tags:
        mine = tags[FOLDER_TAG] == str(Path(folder).resolve())
        return mine, None if mine else f"the run folder {tags[FOLDER_TAG]}"
    if "nnctl.status" in tags:
        return True, None
    return False, "a run nnctl did not make"


def logged_steps(client, run_id: str) -> dict[str, int]:
    """{metric: the last step it has}: what a continued run (resume, `nnctl track` after a
    server failure) must not send twice."""
    run = client.get_run(run_id)
    return {name: max((m.step for m in client.get_metric_history(run_id, name)), default=-1)
            for name in run.data.metrics}


def log_folder(client, run_id: str, folder, user_tags: dict | None = None, continued: bool = False,
               streamed: dict | None = None) -> None:
    """Copy the finished run `folder` into MLflow run `run_id`. `continued`: the run already
    holds data (a resumed run, or a run the server dropped halfway), so only what it lacks is
    sent; `streamed`: {metric: last step} the live sender has sent already."""
    files = RunFolder(folder)
    metrics = files.read_metrics()
    have_params, after = {}, dict(streamed or {})
    if continued:
        have_params = client.get_run(run_id).data.params
        after = {**logged_steps(client, run_id), **after}
    # the tags first: they bind the run to this folder (see `owned`) even if the server fails halfway
    send_tags(client, run_id, run_tags(folder, metrics, user_tags))
    config = yaml.safe_load(files.read_config()) or {}
    send_params(client, run_id, flat_params(config), have_params)
    send_metrics(client, run_id, history_metrics(files.read_history(), after))
    stamp = now_ms()
    from mlflow.entities import Metric

    send_metrics(client, run_id, [Metric(k, v, stamp, int(metrics.get("epochs") or 0))
                                  for k, v in final_metrics(metrics).items()])
    for name in ARTIFACTS:
        if files.has(name):
            client.log_artifact(run_id, str(files.file(name)))
    log_pyfunc(client, run_id, files.file(RunFolder.MODEL))


def log_pyfunc(client, run_id: str, model_npz: Path) -> None:
    """The model as an MLflow pyfunc at `model/`, predicting through nnctl's own code."""
    import tempfile

    import mlflow.pyfunc

    from .pyfunc import MODEL_ARTIFACT, NnctlModel, signature, silenced

    with tempfile.TemporaryDirectory(prefix="nnctl-pyfunc-") as tmp, silenced():
        path = Path(tmp) / PYFUNC_PATH
        mlflow.pyfunc.save_model(str(path), python_model=NnctlModel(), artifacts={MODEL_ARTIFACT: str(model_npz)},
                                 pip_requirements=[f"nnctl=={__version__}"], signature=signature())
        client.log_artifacts(run_id, str(path), PYFUNC_PATH)


def close_run(client, run_id: str, nnctl_status: str) -> None:
    client.set_terminated(run_id, STATUS.get(nnctl_status, "FINISHED"))
