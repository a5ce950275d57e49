"""Hostile and real-world input: one clean error (exit 2, culprit named, no traceback) and no
half-written run — or a complete, loadable one."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from nnctl.runs.model import load_model

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS, DATASETS


def train(config, runs, *sets):
    args = [a for s in sets for a in ("--set", s)]
    return cli("train", config, "--runs-dir", runs, "--quiet", *args)


def assert_no_run(runs):
    assert not runs.exists() or [p for p in runs.iterdir()] == [], list(runs.iterdir())


def config_for(write_config, data, target="y", extra=""):
    return write_config(f"data:\n  path: {data}\n  target: {target}\n{extra}"
                        "training:\n  iterations: 3\n  batch_size: 4\n")


# --- configs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, fragments", [
    ("data:\n  path: x.csv\n  target: [oops\n", ["invalid YAML", "line"]),
    ("", ["config file is empty"]),
    ("- data\n- model\n", ["mapping"]),
    ("data: 5\n", ["data must be a mapping"]),
    ("data:\n  path: d.csv\n  target: y\n  tagret: z\n", ["did you mean 'target'"]),
    ("data:\n  path: d.csv\n  target: y\nmodel:\n  layers: [0]\n", ["model.layers"]),
    ("data:\n  path: d.csv\n  target: y\n  validation_split: -0.1\n",
     ["data.validation_split must be >= 0", "write data.validation_split as a number >= 0 and < 1"]),
    ("data:\n  path: d.csv\n  target: y\ntraining:\n  learning_rate: fast\n",
     ["training.learning_rate must be a number", "write training.learning_rate as a number > 0, e.g. the default"]),
    ("data:\n  path: d.csv\n  target: y\ntraining:\n  iterations: thirty\n",
     ["training.iterations must be an integer", "as a whole number >= 1"]),
    ("data:\n  path: d.csv\n  target: y\nmodel:\n  layers: [4, 4]\n  activation: [relu, tanh, relu]\n", ["3 activations for 2"]),
    ("!!python/object/apply:os.system ['touch /tmp/nnctl-pwned']\n", ["not allowed"]),
    ("data:\n  path: !!python/name:os.system\n  target: y\n", ["not allowed"]),
])
def test_bad_configs(write_config, tmp_path, text, fragments):
    result = cli("train", write_config(text), "--runs-dir", tmp_path / "runs")
    assert_clean_error(result, *fragments)
    assert_no_run(tmp_path / "runs")
    assert not os.path.exists("/tmp/nnctl-pwned")


def test_config_that_is_not_text(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    assert_clean_error(cli("validate", path), str(path))


# --- real-world CSVs ---------------------------------------------------------------------------
GOOD_ROWS = "".join(f"{i},{(i * 7) % 5},{i % 2}\n" for i in range(20))


@pytest.mark.parametrize("content, extra", [
    (("\ufeffa,b,y\n" + GOOD_ROWS).encode("utf-8"), ""),  # byte-order mark
    (("a;b;y\n" + GOOD_ROWS.replace(",", ";")).encode(), ""),  # sniffed semicolons
    (("a\tb\ty\n" + GOOD_ROWS.replace(",", "\t")).encode(), ""),  # sniffed tabs
    (("a|b|y\n" + GOOD_ROWS.replace(",", "|")).encode(), "  delimiter: pipe\n"),
    (('"a","b","y"\n' + "".join(f'"{i}","{i % 3}","{i % 2}"\n' for i in range(20))).encode(), ""),  # quoted
    (("a, b, y\n" + GOOD_ROWS.replace(",", ", ")).encode(), ""),  # spaces after commas
    (("caf\xe9,b,y\n" + GOOD_ROWS).encode("latin-1"), ""),  # Latin-1 header
])
def test_real_world_csvs_train(write_config, tmp_path, content, extra):
    data = tmp_path / "d.csv"
    data.write_bytes(content)
    target = "y"
    result = train(config_for(write_config, data, target, extra), tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    assert load_model(result.stdout.strip()).network.sizes[0] == 2


@pytest.mark.parametrize("content, fragments", [
    (b"", ["data file is empty"]),
    (b"a,b,y\n", ["header but no data rows"]),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), ["not a text CSV"]),
    (b"a,a,y\n1,2,0\n3,4,1\n", ["'a' more than once"]),
    (b"a,,y\n1,2,0\n3,4,1\n", ["column 2 of the header has no name"]),
    (b"a,b,y\n1,2,0\n3,4,1,9,9\n5,6,0\n", ["cannot parse the CSV", "line 3"]),
    (b"a,b,y\n1,2,0\n,4,1\n5,,0\n6,7,1\n", ["missing values in column 'a' (first in data row 2, 1 row in all); also in 'b' (1)", "data.missing"]),
    (b"a,b,y\n1,2,0\n1e300,4,1\n5,6,0\n6,7,1\n", ["column 'a' has values too large for float32", "float64"]),
    (b"a,b,y\n1,2,0\nx,4,1\n5,6,0\n6,7,1\n", ["column 'a' is not numeric (e.g. 'x')", "data.categorical"]),
    (b"a,b,y\n1,2,0\n3,4,0\n", ["single class"]),
])
def test_bad_csvs(write_config, tmp_path, content, fragments):
    data = tmp_path / "d.csv"
    data.write_bytes(content)
    result = train(config_for(write_config, data), tmp_path / "runs")
    assert_clean_error(result, *fragments)
    assert str(data) in result.stderr
    assert_no_run(tmp_path / "runs")


def test_data_path_is_a_folder_or_missing(write_config, tmp_path):
    assert_clean_error(train(config_for(write_config, tmp_path), tmp_path / "runs"), "folder")
    assert_clean_error(train(config_for(write_config, tmp_path / "no.csv"), tmp_path / "runs"), "not found")


# --- categorical features --------------------------------------------------------------------
CATEGORICAL = "size,color,y\n" + "".join(
    f"{i},{['red', 'green', 'blue'][i % 3]},{int(i % 3 == 0)}\n" for i in range(30))


def test_categorical_one_hot_round_trip(write_config, write_csv, tmp_path):
    data = write_csv(CATEGORICAL)
    result = train(config_for(write_config, data, extra="  categorical: [color]\n"), tmp_path / "runs",
                   "training.iterations=200", "training.optimizer=adam", "training.learning_rate=0.05")
    run = result.stdout.strip()
    with np.load(f"{run}/model.npz", allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
    assert meta["categories"] == {"color": ["blue", "green", "red"]}
    assert meta["inputs"] == ["size", "color=blue", "color=green", "color=red"]
    assert meta["classes"] == [0, 1]
    new = write_csv("color,size\nred,3\nblue,4\n", "new.csv")
    out = cli("predict", run, new)
    assert out.exit_code == 0 and out.stdout.splitlines() == ["prediction", "1", "0"]
    unseen = write_csv("color,size\npurple,3\n", "unseen.csv")
    assert_clean_error(cli("predict", run, unseen), "category 'purple'", "--unknown-category ignore")


def test_unknown_category_ignore_gives_an_all_zero_row(write_config, write_csv, tmp_path):
    data = write_csv(CATEGORICAL)
    cfg = config_for(write_config, data, extra="  categorical: auto\n  unknown_category: ignore\n")
    run = train(cfg, tmp_path / "runs").stdout.strip()
    model = load_model(run)
    import pandas as pd

    X = model.inputs(pd.DataFrame({"size": [3], "color": ["purple"]}))
    assert X[0, 1:].tolist() == [0, 0, 0]
    assert cli("predict", run, write_csv("color,size\npurple,3\n", "u.csv")).exit_code == 0


# --- model files -------------------------------------------------------------------------------
def _arrays(iris_run):
    with np.load(f"{iris_run}/model.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _layers_with(arrays, i, layer):
    layers = json.loads(str(arrays["meta"]))["layers"]
    layers[i] = layer
    return layers


def _meta_with(arrays, **changes):
    meta = json.loads(str(arrays["meta"]))
    meta.update(changes)
    return np.array(json.dumps(meta))


@pytest.mark.parametrize("make, fragment", [
    (lambda a, p: p.write_bytes(p.read_bytes()[:200]), "corrupt"),
    (lambda a, p: p.write_bytes(os.urandom(300)), "corrupt"),
    (lambda a, p: p.write_text("not a model"), "corrupt"),
    (lambda a, p: np.savez(p, **{**a, "layers.2.W": np.array([{"evil": 1}], dtype=object)}), "pickled"),
    (lambda a, p: np.savez(p, **{k: v for k, v in a.items() if k != "layers.2.b"}), "lacks the array layers.2.b"),
    (lambda a, p: np.savez(p, **{k: v for k, v in a.items() if k != "meta"}), "no `meta`"),
    (lambda a, p: np.savez(p, **{**a, "layers.2.W": np.zeros((5, 16), dtype=np.float32)}), "do not chain"),
    (lambda a, p: np.savez(p, **{**a, "meta": _meta_with(a, format_version=99)}), "newer than this nnctl"),
    (lambda a, p: np.savez(p, **{**a, "meta": _meta_with(a, format="keras")}), "not an nnctl model"),
    (lambda a, p: np.savez(p, **{**a, "meta": np.array("{not json")}), "not a JSON object"),
    (lambda a, p: np.savez(p, **{**a, "meta": _meta_with(a, layers=_layers_with(a, 1, {"type": "activation",
                                                                                     "name": "swish"}))}), "swish"),
    (lambda a, p: np.savez(p, **{**a, "meta": _meta_with(a, layers=_layers_with(a, 1, {"type": "attention"}))}),
     "type 'attention'"),
    (lambda a, p: np.savez(p, **{**a, "meta": _meta_with(a, layers="dense")}), "`layers` must be a non-empty list"),
])
def test_bad_model_files(iris_run, tmp_path, make, fragment):
    path = tmp_path / "model.npz"
    path.write_bytes(open(f"{iris_run}/model.npz", "rb").read())
    make(_arrays(iris_run), path)
    result = cli("predict", path, DATASETS / "iris.csv")
    assert_clean_error(result, fragment, str(path))


def test_init_from_a_corrupt_model_is_a_config_error(iris_run, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    assert_clean_error(train(CONFIGS / "iris.yaml", tmp_path / "runs", f"model.init_from={bad}"), "corrupt")
    assert_no_run(tmp_path / "runs")


# --- training faults ---------------------------------------------------------------------------
def test_unwritable_runs_folder_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli("train", CONFIGS / "iris.yaml", "--runs-dir", blocker / "runs")
    assert_clean_error(result, "cannot write to the runs folder", "--runs-dir")
    assert "epoch" not in result.stderr


def _start_training(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "nnctl", "train", str(CONFIGS / "diabetes.yaml"), "--runs-dir", str(tmp_path),
         "--set", "training.iterations=1000000", "--set", "training.early_stopping=null"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
    assert proc.stderr.readline().strip().startswith("epoch")  # the header: training has begun
    proc.stderr.readline()  # the first epoch
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_interrupt_saves_a_complete_run_marked_interrupted(tmp_path, sig):
    proc = _start_training(tmp_path)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    run = out.strip().splitlines()[-1]
    metrics = json.loads(open(f"{run}/metrics.json").read())
    assert metrics["status"] == "interrupted"
    last_logged = int(open(f"{run}/history.csv").read().strip().splitlines()[-1].split(",")[0])
    assert metrics["epochs"] >= last_logged and f"{metrics['epochs']} epochs in" in err
    assert load_model(run).network.sizes == [10, 32, 16, 1]
    assert "Traceback" not in err and "interrupted" in err


def test_second_interrupt_aborts_and_leaves_no_run(tmp_path):
    proc = _start_training(tmp_path)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err
    # the first interrupt may have finished saving before the second arrived; if so it is complete
    for folder in tmp_path.iterdir():
        assert not folder.name.startswith("."), folder
        load_model(folder)


def test_memory_that_would_not_fit_is_an_error(tmp_path):
    result = cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path / "runs",
                 "--set", "model.layers=[200000, 200000, 200000]")
    assert_clean_error(result, "needs about", "is available", "model.layers")
    assert_no_run(tmp_path / "runs")


def test_features_are_held_once_as_contiguous_arrays(iris_config):
    from nnctl.config import load_config
    from nnctl.data import load_dataset

    ds = load_dataset(load_config(iris_config("training:\n  dtype: float64\n")))
    for a in (ds.X_train, ds.X_val):
        assert a.flags.c_contiguous and a.flags.owndata and a.dtype == np.float64


def test_a_full_disk_while_saving_is_a_clean_error_and_leaves_no_run(tmp_path, monkeypatch):
    import errno

    import nnctl.commands.train

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "runs" / "model.npz"))

    monkeypatch.setattr(nnctl.commands.train, "save_model", full)
    # without a checkpoint there is nothing to resume (with one, the run is kept: test_run_folder_safety.py)
    result = cli("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path / "runs", "--set", "training.iterations=2",
                 "--set", "training.checkpoint_every=null")
    assert_clean_error(result, "No space left on device", "free disk space")
    assert_no_run(tmp_path / "runs")


def test_an_unreadable_data_file_is_a_clean_error(write_config, tmp_path, monkeypatch):
    import builtins

    data = tmp_path / "d.csv"
    data.write_text("a,y\n1,0\n2,1\n")
    real_open = builtins.open

    def deny(path, *args, **kwargs):
        if str(path) == str(data):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    assert_clean_error(cli("validate", config_for(write_config, data)), "Permission denied", str(data))
