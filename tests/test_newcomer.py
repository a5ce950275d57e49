"""What new users tripped over, by subject, each through the command line."""
import bz2
import csv
import gzip
import io
import json
import lzma
import os
import re
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pandas as pd
import pytest

from .cli_helpers import assert_clean_error, blocked_opening_a_fifo, cli, subprocess_cli, train_run, wait_until
from .conftest import CONFIGS, DATASETS, ROOT

IRIS = DATASETS / "iris.csv"


def rows_of(text):
    return list(csv.DictReader(io.StringIO(text)))


def strict_json(text):
    def no_constants(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=no_constants)


@pytest.fixture
def table(tmp_path):
    """A Titanic-like table: an ID, a name, a category, numbers, a 0/1 target."""
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({
        "PassengerId": np.arange(1, n + 1),
        "Name": [f"Person {i}" for i in range(n)],
        "Port": rng.choice(["S", "C", "Q"], n),
        "Age": rng.normal(30, 10, n).round(1),
        "Fare": rng.gamma(2, 10, n).round(2),
        "Survived": rng.integers(0, 2, n),
    })
    path = tmp_path / "titanic.csv"
    frame.to_csv(path, index=False)
    return path, frame


def config_for(tmp_path, data, target, extra="", name="config.yaml"):
    path = tmp_path / name
    path.write_text(f"data:\n  path: {data}\n  target: {target}\n{extra}")
    return path




# === Starting from a saved model (model.init_from) ===================================================


def test_init_from_reorders_inputs_by_name(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 5))
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    frame["y"] = X @ np.arange(1, 6) + rng.normal(scale=0.1, size=200)
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    source = train_run(config_for(tmp_path, data, "y", "training:\n  iterations: 30\n"), tmp_path / "runs")
    reordered = config_for(tmp_path, data, "y", "  features: [f4, f3, f2, f1, f0]\n", name="rev.yaml")
    # one epoch at a learning rate too small to move anything: the warm start alone decides
    warm = train_run(reordered, tmp_path / "runs", f"model.init_from={source}", "training.iterations=1",
                     "training.learning_rate=1e-12")
    a = rows_of(cli("predict", source, data).stdout)
    b = rows_of(cli("predict", warm, data).stdout)
    np.testing.assert_allclose([float(r["prediction"]) for r in b], [float(r["prediction"]) for r in a], rtol=1e-5)


def test_init_from_with_other_columns_names_them(tmp_path, iris_run):
    config = config_for(tmp_path, IRIS, "species", "  features: [sepal_length, sepal_width, petal_length]\n")
    result = cli("train", config, "--runs-dir", tmp_path / "runs", "--set", f"model.init_from={iris_run}")
    assert_clean_error(result, "model.init_from was trained on other inputs", "only in the model: petal_width")


@pytest.mark.parametrize("order", [[1, 0], [2, 0, 1]])
def test_init_from_reorders_classes_by_name(tmp_path, order):
    """A saved model whose classes come in another order (and whose output units are permuted to
    match, or for one sigmoid unit negated) warm-starts to exactly the original network."""
    from nnctl.config import load_config
    from nnctl.data import load_dataset
    from nnctl.runs.model import load_model
    from nnctl.training.build import build_network

    if len(order) == 2:
        config, sets = CONFIGS / "breast_cancer.yaml", ["training.iterations=3"]
    else:
        config, sets = CONFIGS / "iris.yaml", ["training.iterations=3"]
    run = train_run(config, tmp_path / "runs", *sets)
    with np.load(f"{run}/model.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    last = len(meta["layers"]) - 1  # the output's dense layer
    W, b = arrays[f"layers.{last}.W"], arrays[f"layers.{last}.b"]
    if len(order) == 2:
        arrays[f"layers.{last}.W"], arrays[f"layers.{last}.b"] = -W, -b
    else:
        arrays[f"layers.{last}.W"], arrays[f"layers.{last}.b"] = W[:, order], b[order]
    meta["classes"] = [meta["classes"][i] for i in order]
    if "positive_class" in meta:  # two classes: the sigmoid's class is now the other one
        meta["positive_class"] = meta["classes"][1]
    arrays["meta"] = np.array(json.dumps(meta))
    shuffled = tmp_path / "shuffled.npz"
    np.savez(shuffled, **arrays)
    cfg = load_config(config, [f"model.init_from={shuffled}"])
    warm = build_network(cfg, load_dataset(cfg))
    np.testing.assert_array_equal(warm.flat_params, load_model(run).network.flat_params)




# === Reading tables: categories, streams, pandas' CSVs, compression, decimal commas, odd columns =====


def test_a_rare_category_does_not_make_validity_depend_on_the_seed(tmp_path, table):
    path, frame = table
    frame.loc[7, "Port"] = "X"  # one row: it lands in training or validation by the seed's luck
    frame.to_csv(path, index=False)
    config = config_for(tmp_path, path, "Survived", "  features: [Port, Age, Fare]\n  categorical: [Port]\n")
    for seed in range(8):
        result = cli("validate", config, "--set", f"seed={seed}")
        assert result.exit_code == 0, (seed, result.stderr)


def test_an_unknown_category_at_predict_time_names_the_row(tmp_path, table):
    path, frame = table
    config = config_for(tmp_path, path, "Survived", "  features: [Port, Age]\n  categorical: [Port]\n")
    run = train_run(config, tmp_path / "runs", "training.iterations=2")
    frame.loc[4, "Port"] = "Z"
    new = tmp_path / "new.csv"
    frame.to_csv(new, index=False)
    assert_clean_error(cli("predict", run, new), "category 'Z' that training never saw (data row 5)")


def test_predict_reads_stdin_dev_stdin_and_process_substitution(iris_run):
    expected = cli("predict", iris_run, IRIS).stdout
    assert len(rows_of(expected)) == 150
    piped = subprocess_cli("predict", iris_run, "-", input=IRIS.read_text())
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == expected
    with open(IRIS) as fh:
        dev = subprocess_cli("predict", iris_run, "/dev/stdin", stdin=fh)
    assert dev.stdout == expected, dev.stderr
    substituted = subprocess.run(["bash", "-c", f'"{sys.executable}" -m nnctl predict "{iris_run}" <(cat "{IRIS}")'],
                                 capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    assert substituted.stdout == expected, substituted.stderr


def test_evaluate_reads_stdin(iris_run):
    direct = json.loads(cli("evaluate", iris_run, IRIS, "--json").stdout)
    piped = subprocess_cli("evaluate", iris_run, "-", "--json", input=IRIS.read_text())
    assert json.loads(piped.stdout) == direct


def test_an_unnamed_index_column_is_ignored_with_a_note(tmp_path, iris_run):
    data = tmp_path / "indexed.csv"
    pd.read_csv(IRIS).to_csv(data)  # an unnamed index column first
    result = cli("train", config_for(tmp_path, data, "species"), "--runs-dir", tmp_path / "runs",
                 "--set", "training.iterations=2")
    assert result.exit_code == 0, result.stderr
    assert "note: the first column has no name" in result.stderr
    assert "4 → 16 → 16 → 3" in cli("runs", tmp_path / "runs").stdout
    assert len(rows_of(cli("predict", iris_run, data).stdout)) == 150


def test_an_unnamed_column_that_would_be_used_is_an_error(tmp_path):
    data = tmp_path / "gap.csv"
    data.write_text("a,,b,y\n1,2,3,0\n4,5,6,1\n")
    assert_clean_error(cli("validate", config_for(tmp_path, data, "y")), "column 2 of the header has no name")


@pytest.mark.parametrize("suffix, pack", [
    (".csv.gz", gzip.compress), (".csv.bz2", bz2.compress), (".csv.xz", lzma.compress),
    (".csv.zip", None),
])
def test_compressed_csvs_are_read(tmp_path, iris_run, suffix, pack):
    data = tmp_path / f"iris{suffix}"
    if pack is None:
        with zipfile.ZipFile(data, "w") as archive:
            archive.write(IRIS, "iris.csv")
    else:
        data.write_bytes(pack(IRIS.read_bytes()))
    assert cli("predict", iris_run, data).stdout == cli("predict", iris_run, IRIS).stdout
    result = cli("validate", config_for(tmp_path, data, "species"))
    assert result.exit_code == 0 and "150 read" in result.stderr


@pytest.mark.parametrize("content, fragment", [
    (b"PK\x03\x04", "an Excel .xlsx workbook"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "an Excel .xls workbook"),
    (b"PAR1" + b"\x00" * 100, "cannot read the Parquet file"),
])
def test_other_formats_are_named(tmp_path, content, fragment):
    data = tmp_path / "table.bin"
    if content == b"PK\x03\x04":
        with zipfile.ZipFile(data, "w") as archive:
            archive.writestr("xl/workbook.xml", "<workbook/>")
            archive.writestr("[Content_Types].xml", "<Types/>")
    else:
        data.write_bytes(content)
    assert_clean_error(cli("validate", config_for(tmp_path, data, "y")), fragment)


def test_decimal_commas(tmp_path):
    frame = pd.read_csv(IRIS)
    data = tmp_path / "european.csv"
    frame.to_csv(data, sep=";", decimal=",", index=False)
    config = config_for(tmp_path, data, "species")
    assert_clean_error(cli("validate", config), "written with a decimal comma", 'set data.decimal: ","')
    run = train_run(config, tmp_path / "runs", "data.decimal=','", "training.iterations=20")
    predicted = rows_of(cli("predict", run, data).stdout)  # the model remembers the decimal mark
    assert len(predicted) == 150 and {r["prediction"] for r in predicted} <= {"setosa", "versicolor", "virginica"}


def test_id_and_free_text_columns_are_warned_about(tmp_path, table):
    path, _ = table
    config = config_for(tmp_path, path, "Survived", "  categorical: auto\n")
    result = cli("validate", config)
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, result.stderr
    assert "column 'PassengerId' has a different whole number in every row (an ID?)" in warnings[0]
    assert "column 'Name' has a different value in every row (an ID or free text?)" in warnings[1]
    assert "data.exclude: [PassengerId]" in warnings[0] and "data.exclude: [Name]" in warnings[1]
    # the bundled examples trip none of them
    for config in ("iris", "diabetes", "breast_cancer", "xor"):
        assert "warning" not in cli("validate", CONFIGS / f"{config}.yaml").stderr




# === Interrupts and run folders: Ctrl-C before training, names, permissions ==========================


def test_interrupt_before_the_first_epoch_leaves_no_run(tmp_path):
    """The data comes through a FIFO: loading blocks until it is written, so the interrupt
    surely arrives before any epoch."""
    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)
    config = config_for(tmp_path, fifo, "species")
    runs = tmp_path / "runs"
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nnctl", "train", str(config), "--runs-dir", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_until(lambda: blocked_opening_a_fifo(proc.pid) or proc.poll() is not None,
                   "nnctl to import, read the config and block opening the FIFO")
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        with open(fifo, "w") as fh:
            fh.write(IRIS.read_text())
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "nothing was trained, no run was saved" in err and "Traceback" not in err
    assert out == ""
    assert [p.name for p in runs.iterdir() if not p.name.startswith(".")] == []


def test_an_api_interrupt_before_training_raises_nothing_trained(tmp_path):
    from nnctl.commands.train import train_config
    from nnctl.config import load_config
    from nnctl.errors import NothingTrained

    with pytest.raises(NothingTrained):
        train_config(load_config(CONFIGS / "iris.yaml"), tmp_path, "iris", should_stop=lambda: True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["a/b", "../x", "..", ""])
def test_a_run_name_is_one_folder_name(tmp_path, name):
    result = cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--name", name)
    assert_clean_error(result, "a run name must be one folder name")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask, folder, file", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_run_folders_follow_the_umask(tmp_path, umask, folder, file):
    result = subprocess_cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--quiet",
                            "--set", "training.iterations=2", preexec_fn=lambda: os.umask(umask))
    assert result.returncode == 0, result.stderr
    run = result.stdout.strip().splitlines()[-1]
    assert os.stat(run).st_mode & 0o777 == folder
    for name in ("model.npz", "config.yaml", "history.csv", "metrics.json"):
        assert os.stat(f"{run}/{name}").st_mode & 0o777 == file, name


def test_predict_output_file_follows_the_umask(tmp_path, iris_run):
    out = tmp_path / "p.csv"
    result = subprocess_cli("predict", iris_run, IRIS, "--output", out, preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 0, result.stderr
    assert os.stat(out).st_mode & 0o777 == 0o644




# === What nnctl prints: strict JSON, the closing line, plain values, the table, progress, `nnctl runs` ===


def test_evaluate_json_is_strict_when_a_metric_is_not_finite(tmp_path):
    run = train_run(CONFIGS / "diabetes.yaml", tmp_path / "runs", "training.iterations=2")
    with np.load(f"{run}/model.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    last = max(k for k in arrays if k.endswith(".W"))
    arrays[last] = arrays[last] * np.float32(1e38)  # the outputs overflow to ±inf
    np.savez(f"{run}/model.npz", **arrays)
    result = cli("evaluate", run, DATASETS / "diabetes.csv", "--json")
    assert result.exit_code == 0, result.stderr
    report = strict_json(result.stdout)
    assert report["mse"] is None and report["rmse"] is None and report["rows"] == 442


def test_every_json_output_parses_strictly(tmp_path, iris_run):
    result = cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--json", "--set", "training.iterations=3")
    for line in result.stdout.strip().splitlines():
        strict_json(line)
    run = strict_json(result.stdout.strip().splitlines()[-1])["run"]
    strict_json((tmp_path / os.path.basename(run) / "metrics.json").read_text())
    for args in (["runs", tmp_path, "--json"], ["gradcheck", CONFIGS / "xor.yaml", "--json"],
                 ["trace", CONFIGS / "xor.yaml", "--json"], ["evaluate", iris_run, IRIS, "--json"]):
        strict_json(cli(*args).stdout)


def test_the_closing_line_says_which_epoch_was_saved(tmp_path):
    plain = cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path).stderr.splitlines()[-2]
    assert plain.startswith("completed · saved model: last epoch 150, val loss ")
    stopped = cli("train", CONFIGS / "breast_cancer.yaml", "--runs-dir", tmp_path).stderr.splitlines()[-2]
    metrics = json.loads(cli("runs", tmp_path, "--json").stdout)[0]
    assert stopped.startswith(f"early stopped · saved model: best epoch {metrics['best_epoch']} (restored), val loss ")
    assert f"{metrics['epochs']} epochs in" in stopped


def test_messages_show_plain_values_not_numpy_reprs(tmp_path):
    data = tmp_path / "one.csv"
    data.write_text("x,y\n1,0\n2,0\n3,0\n")
    result = cli("validate", config_for(tmp_path, data, "y", "model:\n  task: classification\n"))
    assert_clean_error(result, "has a single class (0)")
    assert "np." not in result.stderr


def test_an_early_stopped_runs_last_epoch_is_in_the_table(tmp_path):
    result = cli("train", CONFIGS / "breast_cancer.yaml", "--runs-dir", tmp_path, "--set", "training.display_rows=3")
    epochs = json.loads(cli("runs", tmp_path, "--json").stdout)[0]["epochs"]
    table = [line.split()[0] for line in result.stderr.splitlines() if line.strip() and line.split()[0].isdigit()]
    assert table[-1] == str(epochs) and len(table) <= 6


def test_runs_piped_is_tab_separated_with_whole_names(tmp_path):
    name = "a-rather-long-run-name-that-a-narrow-table-would-cut-short"
    train_run(CONFIGS / "xor.yaml", tmp_path, "training.iterations=2")
    cli("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path, "--name", name, "--set", "training.iterations=2")
    lines = subprocess_cli("runs", tmp_path).stdout.splitlines()
    assert lines[0].split("\t") == ["run", "created", "task", "architecture", "epochs", "status", "val metric", "kind"]
    assert lines[1].split("\t")[0].startswith(name) and "…" not in "".join(lines)
    assert all(len(line.split("\t")) == 8 for line in lines)


def test_runs_of_a_missing_folder_is_an_error(tmp_path):
    assert_clean_error(cli("runs", tmp_path / "missing"), "no such folder")


def test_the_loop_reports_progress_within_an_epoch(monkeypatch):
    import nnctl.training.loop as loop
    from nnctl.config import load_config
    from nnctl.data import load_dataset
    from nnctl.training import Callback, train
    from nnctl.training.build import build_network

    monkeypatch.setattr(loop, "PROGRESS_SECONDS", 0.0)  # every batch

    class Record(Callback):
        def __init__(self):
            self.seen = []

        def on_progress(self, progress):
            self.seen.append((progress["epoch"], progress["rows_done"], progress["rows"]))

    cfg = load_config(CONFIGS / "iris.yaml", ["training.iterations=2", "training.batch_size=50"])
    dataset = load_dataset(cfg)
    record = Record()
    train(build_network(cfg, dataset), dataset, cfg.training, callback=record)
    assert record.seen == [(1, 50, 120), (1, 100, 120), (1, 120, 120), (2, 50, 120), (2, 100, 120), (2, 120, 120)]


def test_the_live_view_shows_progress_after_two_seconds_of_an_epoch():
    from rich.console import Console

    from nnctl.ui.progress import LiveTable

    console = Console(file=io.StringIO(), width=120, no_color=True)
    live = LiveTable(console)
    live.table.begin({"epochs": 10, "validation": False, "metric": None})
    live.on_progress({"epoch": 1, "rows_done": 1000, "rows": 300_000, "epoch_seconds": 0.5})
    console.print(live.render())
    assert "rows/s" not in console.file.getvalue()
    live.on_progress({"epoch": 1, "rows_done": 120_000, "rows": 300_000, "epoch_seconds": 2.5})
    console.print(live.render())
    assert "epoch 1 of 10: 120,000 of 300,000 rows (40%), 48,000 rows/s" in console.file.getvalue()




# === Configs and usage: nnctl init, did you mean, block style, usage lines ===========================


@pytest.mark.new_defaults
def test_init_writes_the_real_defaults_and_a_relative_path(tmp_path):
    from nnctl.config import load_config, resolve

    path = tmp_path / "starter.yaml"
    result = cli("init", path)
    assert result.exit_code == 0, result.stderr
    assert "  path: iris.csv" in path.read_text()
    assert (tmp_path / "iris.csv").read_bytes() == (ROOT / "nnctl" / "examples" / "iris.csv").read_bytes()
    written = load_config(path)
    from nnctl.config.recipe import recipe_values

    recipe = recipe_values()
    recipe["data"].update({"path": "iris.csv", "target": "species"})
    assert written == resolve(recipe, base_dir=tmp_path)  # the tabular recipe, every other key its default
    # it trains from any working directory
    trained = subprocess_cli("train", path.name, "--runs-dir", "runs", "--quiet", "--set", "training.iterations=2",
                             cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr


@pytest.mark.parametrize("sets, fragment", [
    (["model.activation=Relu"], "(did you mean 'relu'?)"),
    (["learning_rate=0.1"], "learning_rate belongs under training: write it as training.learning_rate"),
    (["training.validation_split=0.1"], "belongs under data: write it as data.validation_split"),
    (["training.optimizer=ADAM"], "(did you mean 'adam'?)"),
])
def test_did_you_mean_ignores_case_and_knows_other_sections(sets, fragment):
    args = ["validate", CONFIGS / "iris.yaml"]
    for s in sets:
        args += ["--set", s]
    assert_clean_error(cli(*args), fragment)


def test_unknown_metric_names_suggest_the_full_name(iris_run):
    assert_clean_error(cli("evaluate", iris_run, IRIS, "--fail-under", "acc=0.9"), "(did you mean 'accuracy'?)")


def test_the_resolved_config_is_always_block_style(tmp_path):
    out = cli("validate", CONFIGS / "iris.yaml", "--set", "data.categorical=auto").stdout
    # an empty mapping (data.embedding: {}) has no block form; every other mapping is in block style
    assert "data:\n  path: " in out and not re.search(r"\{[^}]", out)
    assert "  layers: [16, 16]\n" in out
    run = train_run(CONFIGS / "iris.yaml", tmp_path, "data.categorical=auto", "training.iterations=2")
    assert not re.search(r"\{[^}]", open(f"{run}/config.yaml").read())


@pytest.mark.parametrize("command, usage", [
    ("train", "nnctl train [OPTIONS] CONFIG"),
    ("predict", "nnctl predict [OPTIONS] MODEL DATA.csv"),
    ("evaluate", "nnctl evaluate [OPTIONS] MODEL DATA.csv"),
    ("plot", "nnctl plot [OPTIONS] RUN..."),
    ("init", "nnctl init [OPTIONS] [PATH]"),
    ("runs", "nnctl runs [OPTIONS] [DIR]"),
])
def test_usage_lines_read_like_the_readme(command, usage):
    text = cli(command, "--help").stdout
    assert text.splitlines()[0] == f"Usage: {usage}"
    assert "<path>" not in text and "list[" not in text and "{" not in text.splitlines()[0]




# === Advice in errors: predict's hints, regression targets, divergence ===============================


def test_predict_hints_speak_of_the_model_and_the_csv(tmp_path, iris_run):
    missing = cli("predict", iris_run, tmp_path / "nope.csv")
    assert_clean_error(missing, "data file not found", "check the DATA argument")
    assert "config" not in missing.stderr
    frame = pd.read_csv(IRIS)
    frame["sepal_width"] = frame["sepal_width"].astype(str)
    frame.loc[3, "sepal_width"] = "wide"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    result = cli("predict", iris_run, bad)
    assert_clean_error(result, "column 'sepal_width' is not numeric (e.g. 'wide')", "the model takes it as a number")
    assert "data.categorical" not in result.stderr


def test_proba_on_a_regression_model_is_an_error(tmp_path):
    run = train_run(CONFIGS / "diabetes.yaml", tmp_path, "training.iterations=2")
    assert_clean_error(cli("predict", run, DATASETS / "diabetes.csv", "--proba"), "this model is a regression")


def test_a_fractional_target_with_few_values_says_it_is_a_regression(tmp_path):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=40), "y": rng.choice([0.0, 0.5, 1.0], 40)})
    data = tmp_path / "grades.csv"
    frame.to_csv(data, index=False)
    result = cli("validate", config_for(tmp_path, data, "y"))
    assert result.exit_code == 0
    assert "note: task regression (model.task: auto): target 'y' has numbers that are not all whole (3 distinct " \
           "values); set model.task: classification to treat them as classes" in result.stderr


def test_divergence_advice_leaves_out_what_is_already_set(tmp_path):
    scaled = cli("train", CONFIGS / "diabetes.yaml", "--runs-dir", tmp_path, "--set", "training.learning_rate=1e12",
                 "--set", "training.optimizer=sgd")
    assert_clean_error(scaled, "training diverged", "lower training.learning_rate")
    assert "data.scale" not in scaled.stderr
    unscaled = cli("train", CONFIGS / "diabetes.yaml", "--runs-dir", tmp_path, "--set", "training.learning_rate=1e12",
                   "--set", "training.optimizer=sgd", "--set", "data.scale=none")
    assert_clean_error(unscaled, "or scale the inputs (data.scale: standard)")
