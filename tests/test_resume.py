"""Resume and checkpoints: continuing a run gives bit for bit what training straight gives."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nnctl.commands.train import resume_run, train_config
from nnctl.config import load_config

from .cli_helpers import assert_clean_error, cli, subprocess_cli
from .conftest import CONFIGS, DATASETS


def arrays(run) -> dict:
    with np.load(Path(run) / "model.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k != "meta"}


def assert_same_weights(a, b):
    x, y = arrays(a), arrays(b)
    assert sorted(x) == sorted(y)
    for k in x:
        assert x[k].tobytes() == y[k].tobytes(), k


def metrics(run) -> dict:
    return json.loads((Path(run) / "metrics.json").read_text())


def iris_config(tmp_path, optimizer, extra=""):
    path = tmp_path / "iris.yaml"
    path.write_text(f"""seed: 3
data:
  path: {DATASETS / 'iris.csv'}
  target: species
model:
  layers: [8]
training:
  optimizer: {optimizer}
  learning_rate: 0.02
  batch_size: 16
  schedule: {{name: step, step_size: 10, gamma: 0.5}}
  early_stopping: {{patience: 8, min_delta: 0.001}}
  log_every: 1
{extra}""")
    return path


def folder_digest(run) -> str:
    h = hashlib.sha256()
    for f in sorted(Path(run).iterdir()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"])
def test_resuming_equals_training_straight(tmp_path, optimizer):
    config = iris_config(tmp_path, optimizer)
    straight = train_config(load_config(config, ["training.iterations=40"]), tmp_path / "a", "iris", plot=False)
    first = train_config(load_config(config, ["training.iterations=15"]), tmp_path / "b", "iris", plot=False)
    before = folder_digest(first.run)
    resumed = resume_run(first.run, ["training.iterations=40"], tmp_path / "b", plot=False)
    assert_same_weights(straight.run, resumed.run)
    for key in ("status", "epochs", "best_epoch", "train", "validation"):
        assert metrics(straight.run)[key] == metrics(resumed.run)[key], key
    assert (straight.run / "history.csv").read_text().split("\n")[0] == (resumed.run / "history.csv").read_text().split("\n")[0]
    drop_seconds = lambda run: [line.rsplit(",", 1)[0] for line in (run / "history.csv").read_text().splitlines()]
    assert drop_seconds(straight.run) == drop_seconds(resumed.run)
    assert metrics(resumed.run)["resumed_from"] == str(first.run)
    assert folder_digest(first.run) == before  # RUN is only read


def test_an_interrupt_mid_epoch_resumes_exactly(tmp_path):
    config = iris_config(tmp_path, "adam")
    straight = train_config(load_config(config, ["training.iterations=30"]), tmp_path / "a", "iris", plot=False)
    calls = {"n": 0}

    def stop_after_37_batches():  # 8 batches an epoch: epoch 5, after its 5th batch
        calls["n"] += 1
        return calls["n"] >= 37

    cut = train_config(load_config(config, ["training.iterations=30"]), tmp_path / "b", "iris", plot=False,
                       should_stop=stop_after_37_batches)
    assert cut.status == "interrupted" and cut.epochs == 4
    resumed = resume_run(cut.run, (), tmp_path / "b", plot=False)
    assert_same_weights(straight.run, resumed.run)
    assert metrics(resumed.run)["epochs"] == metrics(straight.run)["epochs"]


def test_a_checkpoint_cut_mid_epoch_before_epochs_were_windows_resumes_exactly(tmp_path):
    # an in-memory run's checkpoint of the last round: `order` and `batches_done`, no shard order
    # nor window position (loop.position reads it as one window's)
    config = iris_config(tmp_path, "adam")
    straight = train_config(load_config(config, ["training.iterations=12"]), tmp_path / "a", "iris", plot=False)
    calls = {"n": 0}

    def stop_after_29_batches():
        calls["n"] += 1
        return calls["n"] >= 29

    cut = train_config(load_config(config, ["training.iterations=12"]), tmp_path / "b", "iris", plot=False,
                       should_stop=stop_after_29_batches)
    path = cut.run / "checkpoint.npz"
    with np.load(path, allow_pickle=False) as npz:
        saved = {k: npz[k] for k in npz.files}
    meta = json.loads(saved["meta"].tobytes())
    b = meta["batches_done"]
    assert meta["stream"] == {"window": 0, "batch": b, "rows_done": 16 * b} and saved["shard_order"].tolist() == [0]
    assert 0 < b < 8 and saved["order"].shape == (120,)
    del meta["stream"], saved["shard_order"]
    saved["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **saved)
    resumed = resume_run(cut.run, (), tmp_path / "b", plot=False)
    assert_same_weights(straight.run, resumed.run)


def test_a_completed_run_trains_on_and_an_early_stopped_one_needs_more_patience(tmp_path):
    run = cli("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path, "--quiet").stdout.strip()
    assert_clean_error(cli("train", "--resume", run, "--runs-dir", tmp_path), "already trained 300 epochs",
                       "training.iterations")
    more = cli("train", "--resume", run, "--runs-dir", tmp_path, "--quiet", "--set", "training.iterations=320")
    assert more.exit_code == 0, more.stderr
    assert metrics(more.stdout.strip())["epochs"] == 320
    stopped = cli("train", CONFIGS / "breast_cancer.yaml", "--runs-dir", tmp_path / "bc", "--quiet").stdout.strip()
    assert metrics(stopped)["status"] == "early_stopped"
    assert_clean_error(cli("train", "--resume", stopped, "--runs-dir", tmp_path / "bc"), "stopped early",
                       "training.early_stopping.patience")
    again = cli("train", "--resume", stopped, "--runs-dir", tmp_path / "bc", "--quiet",
                "--set", "training.early_stopping.patience=40")
    assert again.exit_code == 0, again.stderr


@pytest.mark.parametrize("sets, key", [
    (["training.learning_rate=0.5"], "training.learning_rate"),
    (["model.layers=[4,4]"], "model.layers"),
    (["training.optimizer=sgd"], "training.optimizer"),
    (["data.validation_split=0.3"], "data.validation_split"),
])
def test_resume_refuses_to_change_what_would_make_another_run(tmp_path, iris_run, sets, key):
    args = ["train", "--resume", iris_run, "--runs-dir", tmp_path, "--set", "training.iterations=500"]
    for s in sets:
        args += ["--set", s]
    assert_clean_error(cli(*args), f"{key} cannot change when resuming", "model.init_from")
    assert list(tmp_path.iterdir()) == []


def test_a_config_and_resume_together_is_an_error(tmp_path, iris_run):
    assert_clean_error(cli("train", CONFIGS / "iris.yaml", "--resume", iris_run, "--runs-dir", tmp_path),
                       "give a CONFIG to train, or --resume RUN")


def test_checkpoints_can_be_turned_off(tmp_path):
    run = cli("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path, "--quiet",
              "--set", "training.checkpoint_every=null").stdout.strip()
    assert not (Path(run) / "checkpoint.npz").exists()
    assert_clean_error(cli("train", "--resume", run, "--runs-dir", tmp_path), "no checkpoint.npz in this folder")


# --- bad checkpoints ------------------------------------------------------------------------------
def _checkpoint_copy(iris_run, tmp_path) -> Path:
    folder = tmp_path / "copy"
    folder.mkdir()
    for f in Path(iris_run).iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    return folder


def _rewrite(path: Path, change):
    with np.load(path, allow_pickle=False) as npz:
        saved = {k: npz[k] for k in npz.files}
    meta = json.loads(saved["meta"].tobytes().decode())
    change(saved, meta)
    saved["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **saved)


@pytest.mark.parametrize("damage, fragment", [
    ("truncate", "checkpoint is corrupt or truncated"),
    ("garbage", "checkpoint is corrupt or truncated"),
    ("pickle", "pickled objects"),
    ("newer", "newer than this nnctl reads"),
    ("params", "checkpoint does not match its config"),
    ("optimizer", "checkpoint does not match its config"),
    ("no optimizer", "checkpoint does not match its config: ms0 is missing"),
    ("not nnctl", "not an nnctl checkpoint"),
])
def test_bad_checkpoints_are_one_clear_error(tmp_path, iris_run, damage, fragment):
    folder = _checkpoint_copy(iris_run, tmp_path)
    path = folder / "checkpoint.npz"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(2000))
    elif damage == "pickle":
        np.savez(path, meta=np.array([{"format": "nnctl-checkpoint"}], dtype=object), **{"layers.0.W": np.zeros(3)})
    elif damage == "newer":
        _rewrite(path, lambda a, m: m.update(format_version=99))
    elif damage == "params":
        _rewrite(path, lambda a, m: a.update({"layers.0.W": a["layers.0.W"][:-1]}))
    elif damage == "optimizer":
        _rewrite(path, lambda a, m: a.update({k: v[:3] for k, v in a.items() if k.startswith("opt_")}))
    elif damage == "no optimizer":
        _rewrite(path, lambda a, m: [a.pop(k) for k in [k for k in a if k.startswith("opt_")]])
    elif damage == "not nnctl":
        _rewrite(path, lambda a, m: m.update(format="something-else"))
    result = cli("train", "--resume", folder, "--runs-dir", tmp_path / "runs", "--set", "training.iterations=500")
    assert_clean_error(result, fragment)
    assert not (tmp_path / "runs").exists() or [p for p in (tmp_path / "runs").iterdir()
                                                 if not p.name.startswith(".tmp")] == []


# --- a real process, killed -------------------------------------------------------------------------
@pytest.fixture
def slow_config(tmp_path):
    """Epochs of a few tens of milliseconds, checkpointed after every one."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2000, 12))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    data = tmp_path / "slow.csv"
    np.savetxt(data, np.column_stack([X, y]), delimiter=",", fmt="%.6f",
               header=",".join([f"x{i}" for i in range(12)] + ["y"]), comments="")
    config = tmp_path / "slow.yaml"
    config.write_text(f"""seed: 7
data:
  path: {data}
  target: y
model:
  layers: [32, 16]
training:
  optimizer: momentum
  learning_rate: 0.01
  batch_size: 32
  iterations: 30
  checkpoint_every: 1
""")
    return config


def _start(config, runs, *extra):
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "nnctl", "train", str(config), "--runs-dir", str(runs), "--quiet",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_checkpoints(runs: Path, count: int, proc, timeout: float = 60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for folder in runs.glob(".tmp-*"):
            path = folder / "checkpoint.npz"
            if path.exists():
                with np.load(path, allow_pickle=False) as npz:
                    if json.loads(npz["meta"].tobytes().decode())["completed"] >= count:
                        return folder
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_same_weights(tmp_path, slow_config):
    runs = tmp_path / "runs"
    proc = _start(slow_config, runs)
    try:
        folder = _wait_for_checkpoints(runs, 3, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    listed = json.loads(cli("runs", runs, "--json", "--incomplete").stdout)
    assert len(listed) == 1 and listed[0]["status"] == "incomplete" and listed[0]["path"] == str(folder)
    assert listed[0]["epochs"] >= 3
    assert json.loads(cli("runs", runs, "--json").stdout) == listed  # nothing complete yet
    resumed = subprocess_cli("train", "--resume", folder, "--runs-dir", runs, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess_cli("train", slow_config, "--runs-dir", tmp_path / "straight", "--quiet")
    assert straight.returncode == 0, straight.stderr
    assert_same_weights(straight.stdout.strip(), resumed.stdout.strip())
    assert metrics(resumed.stdout.strip())["resumed_from"] == str(folder)
    # the killed run is safe to delete once resumed (or instead)
    import shutil

    shutil.rmtree(folder)
    assert json.loads(cli("runs", runs, "--json", "--incomplete").stdout) == []


@pytest.mark.slow
def test_a_run_interrupted_by_a_signal_resumes_to_the_same_weights(tmp_path, slow_config):
    runs = tmp_path / "runs"
    proc = _start(slow_config, runs)
    try:
        _wait_for_checkpoints(runs, 2, proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    cut = out.strip()
    assert metrics(cut)["status"] == "interrupted"
    resumed = subprocess_cli("train", "--resume", cut, "--runs-dir", runs, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess_cli("train", slow_config, "--runs-dir", tmp_path / "straight", "--quiet")
    assert_same_weights(straight.stdout.strip(), resumed.stdout.strip())


def test_a_running_run_is_not_listed_as_incomplete(tmp_path, slow_config):
    runs = tmp_path / "runs"
    proc = _start(slow_config, runs)
    try:
        _wait_for_checkpoints(runs, 1, proc)
        assert json.loads(cli("runs", runs, "--json", "--incomplete").stdout) == []
    finally:
        proc.kill()
        proc.wait()
    assert len(json.loads(cli("runs", runs, "--json", "--incomplete").stdout)) == 1


def test_resuming_on_changed_data_is_refused(tmp_path):
    data = tmp_path / "iris.csv"
    data.write_text((DATASETS / "iris.csv").read_text())
    config = tmp_path / "iris.yaml"
    config.write_text(f"data:\n  path: {data}\n  target: species\ntraining:\n  iterations: 5\n")
    run = cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet").stdout.strip()
    lines = data.read_text().splitlines()
    lines[5] = lines[5].replace("3.6", "3.7", 1) if "3.6" in lines[5] else "9.9" + lines[5][3:]
    data.write_text("\n".join(lines) + "\n")  # one value of one row
    result = cli("train", "--resume", run, "--runs-dir", tmp_path / "runs", "--set", "training.iterations=10")
    assert_clean_error(result, "the data changed since that run trained on it")
