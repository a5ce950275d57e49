"""Run files damaged by hand, by a crash or by an attacker: each is one clean `error:` line naming
the damaged file (never a traceback, never "this is a bug"), and `nnctl runs` lists the other
runs and marks the damaged one."""
import csv
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS, DATASETS

IRIS = DATASETS / "iris.csv"


@pytest.fixture(scope="session")
def source_run(tmp_path_factory):
    """A small finished run with a checkpoint and early stopping's state, copied by each test."""
    runs = tmp_path_factory.mktemp("tamper-runs")
    result = cli("train", CONFIGS / "iris.yaml", "--runs-dir", runs, "--quiet", "--set", "training.iterations=12",
                 "--set", "training.checkpoint_every=4", "--set", "training.early_stopping={patience: 50}")
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip())


@pytest.fixture(scope="session")
def source_sweep(tmp_path_factory):
    pytest.importorskip("optuna")  # the sweep extra
    folder = tmp_path_factory.mktemp("tamper-sweep")
    sweep = folder / "s.yaml"
    sweep.write_text(f"config: {CONFIGS / 'iris.yaml'}\nmethod: random\ntrials: 2\nseed: 0\n"
                     "metric: {name: val_loss, goal: minimize}\n"
                     "parameters:\n  training.learning_rate: {distribution: log_uniform, min: 1.0e-3, max: 0.1}\n")
    result = cli("sweep", sweep, "--runs-dir", folder / "sweeps", "--set", "training.iterations=3", "--workers", "1",
                 "--quiet")
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def run(source_run, tmp_path):
    copy = tmp_path / "runs" / source_run.name
    shutil.copytree(source_run, copy)
    return copy


# --- tampering helpers -------------------------------------------------------------------------

def rewrite_npz(path: Path, change) -> None:
    """Load every array of `path`, let `change(arrays)` edit the dict, write it back."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    change(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def model_meta(change):
    def edit(arrays):
        meta = json.loads(str(arrays["meta"].item()))
        change(meta)
        arrays["meta"] = np.array(json.dumps(meta))
    return edit


def checkpoint_meta(change):
    def edit(arrays):
        meta = json.loads(arrays["meta"].tobytes().decode())
        change(meta)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return edit


def set_item(key, value):
    return lambda meta: meta.__setitem__(key, value)


def huge_header(path: Path, member: str) -> None:
    """`member` declares (4, 268435456) float32 (4 GiB) but holds a few bytes, as W0 did in issue 22."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (4, 268435456)})
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            if name == member:
                archive.writestr(f"{name}.npy", header.getvalue() + b"\0" * 4096)
                continue
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            archive.writestr(f"{name}.npy", buffer.getvalue())


def bomb(path: Path) -> None:
    """layers.0.W.npy (W0 in issue 22) declared and stored whole at 64 MiB of zeros, deflated to about 64 KB."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            if name == "layers.0.W":
                header = io.BytesIO()
                np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                              "shape": (4, 2 ** 22)})
                with archive.open("layers.0.W.npy", "w", force_zip64=True) as fh:
                    fh.write(header.getvalue())
                    chunk = b"\0" * 2 ** 24
                    for _ in range(2 ** 26 // len(chunk)):
                        fh.write(chunk)
                continue
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            archive.writestr(f"{name}.npy", buffer.getvalue())


def write_text(name, text):
    return lambda run: (run / name).write_text(text)


def edit_csv_cell(name, row, column, value):
    def edit(run):
        lines = (run / name).read_text().splitlines()
        cells = lines[row].split(",")
        cells[column] = value
        lines[row] = ",".join(cells)
        (run / name).write_text("\n".join(lines) + "\n")
    return edit


def on_model(change):
    return lambda run: rewrite_npz(run / "model.npz", change)


def on_checkpoint(change):
    return lambda run: rewrite_npz(run / "checkpoint.npz", change)


def weights(i, make):
    """Change the i-th dense layer's W (layers 0, 2, 4 of the small run: dense, activation, ...)."""
    return lambda arrays: arrays.__setitem__(f"layers.{2 * i}.W", make(arrays[f"layers.{2 * i}.W"]))


def with_value(value):
    def make(W):
        W = W.copy()
        W[1, 2] = value
        return W
    return make


PREDICT = ("predict", "{run}", IRIS)
EVALUATE = ("evaluate", "{run}", IRIS)
INIT_FROM = ("train", CONFIGS / "iris.yaml", "--runs-dir", "{tmp}/out", "--quiet", "--set", "training.iterations=2",
             "--set", "model.init_from={run}/model.npz")
RESUME = ("train", "--resume", "{run}", "--runs-dir", "{tmp}/out", "--quiet", "--set", "training.iterations=20")
REPORT = ("report", "{run}", "--output", "{tmp}/report.html")
PLOT = ("plot", "{run}", "--output", "{tmp}/loss.png")

# (id, tamper(run folder), commands, fragments every error names)
CASES = [
    ("model-layers-empty", on_model(model_meta(set_item("layers", []))), [PREDICT, EVALUATE, INIT_FROM],
     ["model.npz", "layers"]),
    ("model-layers-not-list", on_model(model_meta(set_item("layers", "dense"))), [PREDICT],
     ["model.npz", "layers"]),
    ("model-layer-units", on_model(model_meta(lambda m: m["layers"][0].__setitem__("units", 7))), [PREDICT],
     ["model.npz", "layer 0 (dense)", "7 units"]),
    ("model-output-number", on_model(model_meta(set_item("output", 3))), [PREDICT], ["model.npz", "output"]),
    ("model-activation-number", on_model(model_meta(lambda m: m["layers"][1].__setitem__("name", 1))), [PREDICT],
     ["model.npz", "activation"]),
    ("model-features-null", on_model(model_meta(set_item("features", None))), [PREDICT, INIT_FROM],
     ["model.npz", "features"]),
    ("model-inputs-null", on_model(model_meta(set_item("inputs", None))), [PREDICT, INIT_FROM],
     ["model.npz", "inputs"]),
    ("model-classes-number", on_model(model_meta(set_item("classes", 3))), [PREDICT, INIT_FROM],
     ["model.npz", "classes"]),
    ("model-scaler-empty", on_model(model_meta(set_item("scaler", {}))), [PREDICT], ["model.npz", "scaler"]),
    ("model-scaler-short", on_model(model_meta(set_item("scaler", {"kind": "standard", "offset": [0.0],
                                                                  "scale": [1.0]}))),
     [PREDICT], ["model.npz", "scaler"]),
    ("model-task-unknown", on_model(model_meta(set_item("task", "poetry"))), [PREDICT], ["model.npz", "task"]),
    ("model-classes-twice", on_model(model_meta(set_item("classes", ["setosa", "setosa", "virginica"]))), [PREDICT],
     ["model.npz", "classes"]),
    ("model-features-twice", on_model(model_meta(lambda m: m["features"].__setitem__(1, m["features"][0]))),
     [PREDICT], ["model.npz", "features"]),
    ("model-fill-text", on_model(model_meta(lambda m: m.__setitem__("fill", {m["features"][0]: "lots"}))),
     [PREDICT], ["model.npz", "fill"]),
    ("model-loss-list", on_model(model_meta(set_item("loss", ["mse"]))), [PREDICT], ["model.npz", "loss"]),
    ("model-decimal", on_model(model_meta(set_item("decimal", 5))), [PREDICT], ["model.npz", "decimal"]),
    ("model-meta-list", on_model(lambda a: a.__setitem__("meta", np.array("[1, 2]"))), [PREDICT], ["model.npz"]),
    ("model-float16", on_model(weights(0, lambda W: W.astype(np.float16))), [PREDICT, INIT_FROM],
     ["model.npz", "layers.0.W", "float16"]),
    ("model-int-weights", on_model(weights(1, lambda W: W.astype(np.int64))), [PREDICT], ["model.npz", "layers.2.W"]),
    ("model-nan", on_model(weights(1, with_value(np.nan))), [PREDICT, EVALUATE, INIT_FROM],
     ["model.npz", "layers.2.W", "NaN"]),
    ("model-inf", on_model(weights(0, with_value(np.inf))), [PREDICT, INIT_FROM], ["model.npz", "layers.0.W", "inf"]),
    ("model-nan-bias", on_model(lambda a: a.__setitem__("layers.4.b", np.full_like(a["layers.4.b"], np.nan))),
     [PREDICT], ["model.npz", "layers.4.b"]),
    ("model-extra-layer", on_model(lambda a: a.__setitem__("layers.2.W", a["layers.2.W"][:, :5])), [PREDICT],
     ["model.npz", "layer 2 (dense)"]),
    ("model-stray-array", on_model(lambda a: a.__setitem__("layers.9.W", a["layers.2.W"])), [PREDICT],
     ["model.npz", "layers.9.W"]),
    ("model-huge-header", lambda run: huge_header(run / "model.npz", "layers.0.W"), [PREDICT, INIT_FROM],
     ["model.npz", "`layers.0.W` declares (4, 268435456) float32 (4.0 GB) but holds 4.0 KB"]),
    ("model-deflate-bomb", lambda run: bomb(run / "model.npz"), [PREDICT],
     ["model.npz", "`layers.0.W` 64.0 MB", "64 times"]),
    ("checkpoint-optimizer-t", on_checkpoint(checkpoint_meta(set_item("optimizer_t", -1))), [RESUME],
     ["checkpoint.npz", "optimizer_t"]),
    ("checkpoint-stopper-empty", on_checkpoint(checkpoint_meta(set_item("stopper", {}))), [RESUME],
     ["checkpoint.npz", "stopper"]),
    ("checkpoint-stopper-partial", on_checkpoint(checkpoint_meta(set_item("stopper", {"best": 0.1}))), [RESUME],
     ["checkpoint.npz", "stopper"]),
    ("checkpoint-completed-text", on_checkpoint(checkpoint_meta(set_item("completed", "x"))), [RESUME],
     ["checkpoint.npz", "completed"]),
    ("checkpoint-rng", on_checkpoint(checkpoint_meta(set_item("rng", {"state": 3}))), [RESUME],
     ["checkpoint.npz", "rng"]),
    ("checkpoint-history", on_checkpoint(checkpoint_meta(set_item("history", 7))), [RESUME],
     ["checkpoint.npz", "history"]),
    ("checkpoint-seconds", on_checkpoint(checkpoint_meta(set_item("seconds", "soon"))), [RESUME],
     ["checkpoint.npz", "seconds"]),
    ("checkpoint-batches-done", on_checkpoint(checkpoint_meta(set_item("batches_done", -3))), [RESUME],
     ["checkpoint.npz", "batches_done"]),
    ("checkpoint-config", on_checkpoint(checkpoint_meta(set_item("config", [1]))), [RESUME],
     ["checkpoint.npz", "config"]),
    ("checkpoint-bias-2d", on_checkpoint(lambda a: a.__setitem__("layers.0.b", a["layers.0.b"].reshape(1, -1))),
     [RESUME], ["checkpoint.npz", "layers.0.b has the wrong shape"]),
    ("checkpoint-weights-nan", on_checkpoint(lambda a: a.__setitem__("layers.0.W", np.full_like(a["layers.0.W"], np.nan))),
     [RESUME], ["checkpoint.npz", "layers.0.W"]),
    ("checkpoint-optimizer-2d", on_checkpoint(lambda a: a.__setitem__("opt_ms0", a["opt_ms0"].reshape(1, -1))),
     [RESUME], ["checkpoint.npz", "opt_ms0", "wrong shape"]),
    ("checkpoint-huge-header", lambda run: huge_header(run / "checkpoint.npz", "layers.0.W"), [RESUME],
     ["checkpoint.npz"]),
    ("metrics-list", write_text("metrics.json", "[1, 2]"), [REPORT], ["metrics.json"]),
    ("metrics-not-json", write_text("metrics.json", "{"), [REPORT], ["metrics.json"]),
    ("metrics-validation-number", write_text("metrics.json", '{"task": "classification", "validation": 5}'),
     [REPORT], ["metrics.json"]),
    ("validation-unknown-class", edit_csv_cell("validation.csv", 3, 0, "tulip"), [REPORT],
     ["validation.csv", "tulip"]),
    ("validation-bad-prediction", edit_csv_cell("validation.csv", 3, 1, "x"), [REPORT], ["validation.csv", "line 4"]),
    ("history-huge-epoch", edit_csv_cell("history.csv", 2, 0, "1e308"), [REPORT, PLOT], ["history.csv", "epoch"]),
    ("history-epoch-text", edit_csv_cell("history.csv", 2, 0, "two"), [REPORT, PLOT], ["history.csv", "line 3"]),
    ("history-loss-text", edit_csv_cell("history.csv", 4, 1, "low"), [REPORT, PLOT], ["history.csv", "line 5"]),
    ("history-ragged", edit_csv_cell("history.csv", 4, 1, "1,2"), [REPORT, PLOT], ["history.csv", "line 5"]),
    ("diagnostics-layer-text", edit_csv_cell("diagnostics.csv", 2, 1, "first"), [REPORT],
     ["diagnostics.csv", "line 3"]),
]


@pytest.mark.parametrize("tamper, commands, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_tampered_file_is_one_clean_error(run, tmp_path, tamper, commands, fragments):
    tamper(run)
    for command in commands:
        result = cli(*[str(a).format(run=run, tmp=tmp_path) for a in command])
        assert_clean_error(result, *fragments)
        assert "bug" not in result.stderr
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("damage", ["[1, 2]", "{", '{"status": 5, "validation": 3, "metric": ["x"]}'])
def test_runs_lists_the_others_and_marks_the_damaged_one(source_run, tmp_path, damage):
    runs = tmp_path / "runs"
    for name in ("a-20260101-000000", "b-20260101-000001", "c-20260101-000002"):
        shutil.copytree(source_run, runs / name)
    (runs / "b-20260101-000001" / "metrics.json").write_text(damage)
    result = cli("runs", runs, "--json")
    assert result.exit_code == 0, result.stderr
    listed = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    assert set(listed) == {"a-20260101-000000", "b-20260101-000001", "c-20260101-000002"}
    assert listed["b-20260101-000001"]["status"] == "damaged"
    assert "metrics.json" in listed["b-20260101-000001"]["damaged"]
    assert listed["a-20260101-000000"]["status"] == "completed"
    assert listed["a-20260101-000000"]["epochs"] == 12
    table = cli("runs", runs)
    assert table.exit_code == 0, table.stderr
    assert "damaged: " in table.stderr and "metrics.json" in table.stderr
    rows = {line.split("\t")[0]: line.split("\t") for line in table.stdout.splitlines()[1:]}
    assert rows["b-20260101-000001"][5] == "damaged"
    assert rows["c-20260101-000002"][5] == "completed"


def test_runs_marks_an_incomplete_run_with_a_damaged_checkpoint(source_run, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(source_run, runs / ".tmp-iris-x")
    huge_header(runs / ".tmp-iris-x" / "checkpoint.npz", "meta")
    result = cli("runs", runs, "--json")
    assert result.exit_code == 0, result.stderr
    [entry] = json.loads(result.stdout)
    assert entry["status"] == "incomplete" and "checkpoint.npz" in entry["damaged"]


def test_a_torn_sweep_journal_is_one_clean_error_and_its_hint_works(source_sweep, tmp_path):
    sweep = tmp_path / source_sweep.name
    shutil.copytree(source_sweep, sweep)
    journal = sweep / "study.journal"
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-40])  # the last line cut short, as by a crash mid-write
    result = cli("sweep", "--resume", sweep, "--workers", "1", "--quiet")
    assert_clean_error(result, "study.journal", "cut short", "sed -i '$d'")
    assert journal.read_bytes() == whole[:-40]  # refused before Optuna appended to the torn line
    journal.write_bytes(whole[:whole.rstrip(b"\n").rindex(b"\n") + 1])  # what the hint's sed does
    result = cli("sweep", "--resume", sweep, "--workers", "1", "--quiet")
    assert result.exit_code == 0, result.stderr


def test_a_sweep_journal_damaged_inside_is_one_clean_error(source_sweep, tmp_path):
    sweep = tmp_path / source_sweep.name
    shutil.copytree(source_sweep, sweep)
    lines = (sweep / "study.journal").read_bytes().split(b"\n")
    lines[2] = lines[2][:30]
    (sweep / "study.journal").write_bytes(b"\n".join(lines))
    result = cli("sweep", "--resume", sweep, "--workers", "1", "--quiet")
    assert_clean_error(result, "study.journal", "line 3")


@pytest.mark.parametrize("name, tamper, fragments", [
    ("sweep.yaml", lambda text: "[1, 2]\n", ["sweep.yaml", "not a sweep as nnctl saves it"]),
    ("sweep.yaml", lambda text: "method: [\n", ["sweep.yaml"]),
    ("sweep.yaml", lambda text: text.replace("method: random", "method: guess"), ["sweep.yaml", "method"]),
    ("sweep.yaml", lambda text: text.replace("trials: 2", "trials: many"), ["sweep.yaml", "trials"]),
    ("trials.csv", lambda text: text + "garbage,,,\n", ["trials.csv", "line 4"]),
    ("trials.csv", lambda text: text.replace("\n0,", "\nzero,", 1), ["trials.csv", "line 2"]),
], ids=["sweep-list", "sweep-yaml-syntax", "sweep-method", "sweep-trials", "trials-garbage", "trials-number"])
def test_a_damaged_sweep_folder_is_one_clean_error(source_sweep, tmp_path, name, tamper, fragments):
    sweep = tmp_path / source_sweep.name
    shutil.copytree(source_sweep, sweep)
    (sweep / name).write_text(tamper((sweep / name).read_text()))
    result = cli("sweep", "--resume", sweep, "--workers", "1", "--quiet")
    assert_clean_error(result, *fragments)
    assert "bug" not in result.stderr


def _with_cell(text: str, row: int, column: str, value: str) -> str:
    rows = list(csv.DictReader(io.StringIO(text)))
    rows[row - 1][column] = value
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@pytest.mark.parametrize("name, tamper, fragments", [
    ("summary.json", lambda text: "{", ["summary.json", "not valid JSON"]),
    ("summary.json", lambda text: "[1, 2]", ["summary.json", "`metric` and `goal`"]),
    ("trials.csv", lambda text: _with_cell(text, 1, "value", "x"), ["trials.csv", "line 2", "not a number"]),
    ("trials.csv", lambda text: text + "1,complete\n", ["trials.csv", "line"]),
], ids=["summary-not-json", "summary-list", "trials-value", "trials-ragged"])
def test_plotting_a_damaged_sweep_is_one_clean_error(source_sweep, tmp_path, name, tamper, fragments):
    pytest.importorskip("matplotlib")
    sweep = tmp_path / source_sweep.name
    shutil.copytree(source_sweep, sweep)
    (sweep / name).write_text(tamper((sweep / name).read_text()))
    result = cli("plot", sweep, "--output", tmp_path / "sweep.png")
    assert_clean_error(result, *fragments)
    assert "bug" not in result.stderr and not (tmp_path / "sweep.png").exists()
