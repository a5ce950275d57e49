"""MLflow tracking against a real `mlflow server` on a loopback port (SQLite store, local
artifacts), checked through MlflowClient; and the file store without a server."""
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS, DATASETS, hide_package

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install \"nnctl[mlflow]\")")
MLFLOW = Path(sys.executable).with_name("mlflow")
pytestmark = pytest.mark.slow  # a real mlflow server, and MLflow's imports


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`mlflow server` as a subprocess in its own process group, stopped by that group's id."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.process = folder, free_port(), None
        self.uri = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{self.folder}/mlflow.db",
             "--artifacts-destination", str(self.folder / "artifacts"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=open(self.folder / "server.log", "ab"), start_new_session=True)
        deadline = time.monotonic() + 240  # a loaded machine starts it slowly
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
            assert self.process.poll() is None, (self.folder / "server.log").read_text()[-2000:]
        raise AssertionError("mlflow server did not answer /health in 240 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture(autouse=True)
def patient_client(monkeypatch):
    """nnctl gives a server 10 s per request and the end of a run 15 s (a copy is not worth a
    longer wait); a loaded test machine can take longer than that, which then read as a dead
    server ("Max retries exceeded"). Here the client waits on the answer itself."""
    from nnctl.tracking import groups, live

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "600")
    monkeypatch.setattr(live, "SENDER_WAIT_SECONDS", 600.0)
    monkeypatch.setattr(groups, "SENDER_WAIT_SECONDS", 600.0)
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):  # set by a URI with credentials
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("mlflow-server"))
    try:
        running.start()
        yield running
    finally:
        running.kill()


def client(uri):
    return mlflow.MlflowClient(uri)


def history_of(run) -> dict:
    with open(run / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {name: [(int(r["epoch"]), float(r[name])) for r in rows if r[name] != ""]
            for name in rows[0] if name != "epoch"}


def run_id_of(run) -> str:
    import json

    return json.loads((run / "tracking.json").read_text())["run_id"]


def assert_histories_equal(mlflow_client, run_id, run):
    for name, points in history_of(run).items():
        logged = sorted((m.step, m.value) for m in mlflow_client.get_metric_history(run_id, name))
        assert [s for s, _ in logged] == [s for s, _ in points], name
        assert [v for _, v in logged] == pytest.approx([v for _, v in points], rel=1e-6), name


def train(config, runs, *args):
    result = cli("train", config, "--runs-dir", runs, "--quiet", *args)
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1]), result


def test_a_run_logs_params_histories_finals_tags_artifacts_and_a_pyfunc(server, tmp_path):
    run, result = train(CONFIGS / "iris.yaml", tmp_path / "runs", "--track", server.uri, "--report",
                        "--set", "training.iterations=30", "--set", "tracking.experiment=iris-test",
                        "--set", "tracking.tags={team: vision}")
    assert "warning" not in result.stderr
    c = client(server.uri)
    logged = c.get_run(run_id_of(run))
    assert logged.info.status == "FINISHED" and logged.info.run_name == run.name
    assert c.get_experiment(logged.info.experiment_id).name == "iris-test"
    params = logged.data.params
    assert params["training.learning_rate"] == "0.01" and params["training.iterations"] == "30"
    assert params["model.layers"] == "[16, 16]" and params["data.target"] == "species"
    assert not any(k.startswith("tracking.") for k in params)
    assert_histories_equal(c, logged.info.run_id, run)
    import json

    final = json.loads((run / "metrics.json").read_text())
    assert logged.data.metrics["final_val_accuracy"] == pytest.approx(final["validation"]["accuracy"])
    assert logged.data.metrics["final_train_loss"] == pytest.approx(final["train"]["loss"])
    tags = logged.data.tags
    assert tags["nnctl.run_folder"] == str(run.resolve()) and tags["nnctl.status"] == "completed"
    assert tags["nnctl.version"] and tags["team"] == "vision" and "nnctl.resumed_from" not in tags
    artifacts = {a.path for a in c.list_artifacts(logged.info.run_id)}
    assert {"model.npz", "config.yaml", "history.csv", "diagnostics.csv", "report.html", "model"} <= artifacts

    mlflow.set_tracking_uri(server.uri)
    import pandas as pd

    model = mlflow.pyfunc.load_model(f"runs:/{logged.info.run_id}/model")
    got = model.predict(pd.read_csv(DATASETS / "iris.csv"))
    predicted = cli("predict", run, DATASETS / "iris.csv")
    assert predicted.exit_code == 0, predicted.stderr
    expected = [line for line in predicted.stdout.strip().splitlines()[1:]]
    assert list(got["prediction"]) == expected


def test_a_sweep_is_a_parent_with_its_trials_nested_failed_ones_too(server, tmp_path, write_config):
    write_config(f"data:\n  path: {DATASETS / 'iris.csv'}\n  target: species\ntraining:\n  iterations: 8\n",
                 "base.yaml")
    sweep = write_config("config: base.yaml\nmethod: grid\nmetric: {name: val_loss, goal: minimize}\n"
                         "parameters:\n  training.learning_rate: {values: [0.05, 0.1, -1.0]}\n", "tiny.yaml")
    result = cli("sweep", sweep, "--runs-dir", tmp_path / "runs", "--workers", "1", "--quiet", "--track", server.uri)
    assert result.exit_code == 0, result.stderr
    folder = Path(result.stdout.strip().splitlines()[-1])
    c = client(server.uri)
    parent = c.get_run(run_id_of(folder))
    assert parent.info.status == "FINISHED" and parent.data.tags["nnctl.kind"] == "sweep"
    assert parent.data.metrics["trials_complete"] == 2 and parent.data.metrics["trials_failed"] == 1
    assert {"summary.json", "trials.csv", "sweep.yaml"} <= {a.path for a in c.list_artifacts(parent.info.run_id)}
    children = c.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_trial = {r.data.tags["nnctl.trial"]: r for r in children}
    assert sorted(by_trial) == ["0", "1", "2"]
    by_state = {}
    for t, r in by_trial.items():  # a grid sampler tries the values in an order of its own
        by_state.setdefault((r.data.tags["nnctl.state"], r.info.status), []).append(t)
    assert sorted(by_state) == [("complete", "FINISHED"), ("failed", "FAILED")]
    assert len(by_state[("complete", "FINISHED")]) == 2
    failed = by_trial[by_state[("failed", "FAILED")][0]]
    assert failed.data.params["training.learning_rate"] == "-1.0" and "nnctl.error" in failed.data.tags
    done = by_state[("complete", "FINISHED")][0]
    assert_histories_equal(c, by_trial[done].info.run_id, folder / "trials" / f"{int(done):03d}")


def test_cv_is_a_parent_with_its_folds_nested(server, tmp_path, iris_config):
    config = iris_config("training:\n  iterations: 6\n")
    result = cli("cv", config, "--folds", "2", "--workers", "1", "--runs-dir", tmp_path / "runs", "--quiet",
                 "--track", server.uri)
    assert result.exit_code == 0, result.stderr
    folder = Path(result.stdout.strip().splitlines()[-1])
    c = client(server.uri)
    parent = c.get_run(run_id_of(folder))
    import json

    summary = json.loads((folder / "summary.json").read_text())
    assert parent.data.metrics["val_loss_mean"] == pytest.approx(summary["val_loss"]["mean"])
    children = c.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(r.data.tags["nnctl.fold"] for r in children) == ["0", "1"]
    assert all(r.info.status == "FINISHED" and "model.npz" in {a.path for a in c.list_artifacts(r.info.run_id)}
               for r in children)


def test_a_file_store_needs_no_server_and_resume_continues_the_same_run(tmp_path, iris_config):
    store = f"file:{tmp_path / 'mlruns'}"
    config = iris_config(f"training:\n  iterations: 12\n  checkpoint_every: 4\ntracking:\n  uri: {store}\n")
    first, _ = train(config, tmp_path / "runs")
    again = _resume(first, tmp_path / "runs")
    assert run_id_of(again) == run_id_of(first)
    c = client(store)
    logged = c.get_run(run_id_of(again))
    assert logged.data.tags["nnctl.resumed_from"] == str(first) and logged.data.params["training.iterations"] == "12"
    assert logged.data.tags["nnctl.resumed.training.iterations"] == "20"
    assert_histories_equal(c, logged.info.run_id, again)


def _resume(run, runs):
    result = cli("train", "--resume", run, "--runs-dir", runs, "--quiet", "--set", "training.iterations=20")
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def test_tracking_on_without_a_uri_takes_mlflow_tracking_uri(tmp_path, iris_config, monkeypatch):
    config = iris_config("training:\n  iterations: 3\n")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert_clean_error(cli("train", config, "--runs-dir", tmp_path / "runs", "--track", "env"),
                       "MLFLOW_TRACKING_URI", "--track")
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
    store = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    run, _ = train(config, tmp_path / "runs", "--track", "env")
    assert client(store).get_run(run_id_of(run)).info.status == "FINISHED"


def test_without_the_extra_tracking_is_refused_before_training(tmp_path, iris_config, monkeypatch):
    hide_package(monkeypatch, "mlflow")
    result = cli("train", iris_config(), "--runs-dir", tmp_path / "runs", "--track", "file:/never")
    assert_clean_error(result, 'pip install "nnctl[mlflow]"')
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_a_server_killed_mid_run_costs_one_warning_and_nnctl_track_uploads_later(server, tmp_path, iris_config):
    from nnctl.tracking import live

    config = iris_config("training:\n  iterations: 60\n  log_every: 1\n")
    original = live.LiveRun.on_epoch_end

    def kill_at_epoch_20(self, log):
        original(self, log)
        if log["epoch"] == 20:  # the MLflow run was opened before training
            assert self.run_id is not None and self.failure is None
            server.kill()

    try:
        with pytest.MonkeyPatch.context() as killing:
            killing.setattr(live.LiveRun, "on_epoch_end", kill_at_epoch_20)
            killing.setattr(live, "SEND_SECONDS", 0.05)
            result = cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet", "--track", server.uri)
    finally:
        server.start()  # on the same port and store, for the upload and the tests after this one
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip().splitlines()[-1])
    assert {"model.npz", "metrics.json", "history.csv", "config.yaml", "diagnostics.csv"} <= {p.name for p in run.iterdir()}
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"nnctl track {run} --uri {server.uri}" in warnings[0]

    uploaded = cli("track", run, "--uri", server.uri)
    assert uploaded.exit_code == 0, uploaded.stderr
    c = client(server.uri)
    logged = c.get_run(uploaded.stdout.strip())
    assert logged.info.status == "FINISHED" and "model.npz" in {a.path for a in c.list_artifacts(logged.info.run_id)}
    assert_histories_equal(c, logged.info.run_id, run)
    again = cli("track", run, "--uri", server.uri)
    assert again.exit_code == 0 and "already logged" in again.stderr


def test_nnctl_track_uploads_an_old_run_and_refuses_what_is_not_a_run(server, iris_run, tmp_path):
    copy = shutil.copytree(iris_run, tmp_path / iris_run.name)
    result = cli("track", copy, "--uri", server.uri, "--experiment", "old-runs")
    assert result.exit_code == 0, result.stderr
    c = client(server.uri)
    logged = c.get_run(result.stdout.strip())
    assert c.get_experiment(logged.info.experiment_id).name == "old-runs"
    assert_histories_equal(c, logged.info.run_id, copy)
    assert_clean_error(cli("track", tmp_path, "--uri", server.uri), "not a finished run", str(tmp_path))


def test_seeds_and_repeated_cv_are_parents_with_their_runs_nested(tmp_path, iris_config, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as nnctl sets it for its own file: stores
    store = f"file:{tmp_path / 'mlruns'}"
    config = iris_config("training:\n  iterations: 6\n")
    c = client(store)

    def nested(folder, tag):
        parent = c.get_run(run_id_of(folder))
        children = c.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
        assert all(r.info.status == "FINISHED" for r in children)
        return parent, sorted(r.data.tags[tag] for r in children)

    seeds = cli("train", config, "--seeds", "2", "--workers", "1", "--runs-dir", tmp_path / "runs", "--quiet",
                "--track", store)
    assert seeds.exit_code == 0, seeds.stderr
    folder = Path(seeds.stdout.strip().splitlines()[-1])
    parent, tags = nested(folder, "nnctl.seed")
    summary = json.loads((folder / "summary.json").read_text())
    assert tags == sorted(str(seed) for seed in summary["seeds"]) and len(tags) == 2
    assert parent.data.metrics["val_loss_mean"] == pytest.approx(summary["val_loss"]["mean"])
    assert "representative_mean" not in parent.data.metrics

    repeated = cli("cv", config, "--folds", "2", "--repeats", "2", "--workers", "1", "--runs-dir", tmp_path / "runs",
                   "--quiet", "--track", store)
    assert repeated.exit_code == 0, repeated.stderr
    parent, tags = nested(Path(repeated.stdout.strip().splitlines()[-1]), "nnctl.fold")
    assert len(tags) == 4 and parent.info.run_name.startswith(config.stem)

    # after the fact: nnctl track uploads a seeds folder as the same parent and children
    later = f"file:{tmp_path / 'later'}"
    uploaded = cli("track", folder, "--uri", later)
    assert uploaded.exit_code == 0, uploaded.stderr
    c2 = client(later)
    runs = c2.search_runs([e.experiment_id for e in c2.search_experiments()])
    assert len(runs) == 3 and sum("mlflow.parentRunId" in r.data.tags for r in runs) == 2


# --- credentials, whose run, Ctrl-C at the end, where a store lies ----------------------------------
def files_holding(folder: Path, secret: bytes) -> list[str]:
    """Every file under `folder` that holds `secret`, the members of .npz (zip) files read
    unpacked, since a compressed member would hide it from a plain byte search."""
    import zipfile

    found = []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                found += [f"{path}:{m}" for m in archive.namelist() if secret in archive.read(m)]
        elif secret in path.read_bytes():
            found.append(str(path))
    return found


def test_credentials_in_the_uri_are_used_but_never_stored_uploaded_or_printed(server, tmp_path, iris_config):
    secret = "s3cr3t-Pw"
    config = iris_config("training:\n  iterations: 5\n  checkpoint_every: 2\n")
    with_secret = server.uri.replace("http://", f"http://alice:{secret}@")
    run, result = train(config, tmp_path / "runs", "--track", with_secret)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "MLFLOW_TRACKING_USERNAME" in warnings[0], result.stderr
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice" and os.environ["MLFLOW_TRACKING_PASSWORD"] == secret
    assert secret not in result.stdout + result.stderr
    assert json.loads((run / "tracking.json").read_text())["uri"] == server.uri
    assert f"uri: {server.uri}" in (run / "config.yaml").read_text()
    assert (run / "checkpoint.npz").exists() and files_holding(run, secret.encode()) == []
    c = client(server.uri)
    uploaded = Path(c.download_artifacts(run_id_of(run), "", str(tmp_path / "uploaded")))
    assert (uploaded / "config.yaml").exists() and files_holding(uploaded, secret.encode()) == []
    assert secret not in json.dumps(c.get_run(run_id_of(run)).data.to_dictionary())

    # the warning of a server that does not answer names it without the secret, and so does the
    # hint to log the run later; a config that holds credentials is refused before training
    dead = f"http://alice:{secret}@127.0.0.1:{free_port()}"
    run, result = train(config, tmp_path / "runs", "--track", dead)
    down = [line for line in result.stderr.splitlines() if "failed" in line]
    assert len(down) == 1 and f"--uri http://127.0.0.1:{dead.rsplit(':', 1)[1]}" in down[0], result.stderr
    assert secret not in result.stdout + result.stderr and files_holding(run, secret.encode()) == []
    stored = iris_config(f"tracking:\n  uri: {with_secret}\n")
    refused = cli("train", stored, "--runs-dir", tmp_path / "refused")
    assert_clean_error(refused, "tracking.uri", "MLFLOW_TRACKING_PASSWORD")
    assert secret not in refused.stderr and not (tmp_path / "refused").exists()


def test_nnctl_track_never_writes_into_the_mlflow_run_of_another_folder(server, iris_run, tmp_path):
    victim = shutil.copytree(iris_run, tmp_path / "victim" / iris_run.name)
    logged = cli("track", victim, "--uri", server.uri)
    assert logged.exit_code == 0, logged.stderr
    victim_id = logged.stdout.strip()
    c = client(server.uri)
    before = {a.path: a.file_size for a in c.list_artifacts(victim_id)}

    # another run folder (here: the same run trained again, with a different model) whose
    # tracking.json was copied from the victim's, then marked as not logged in full
    other = shutil.copytree(iris_run, tmp_path / "other" / iris_run.name)
    (other / "model.npz").write_bytes((other / "model.npz").read_bytes() + b"\0" * 64)
    record = json.loads((victim / "tracking.json").read_text())
    for logged_in_full in (True, False):
        (other / "tracking.json").write_text(json.dumps({**record, "logged": logged_in_full}))
        result = cli("track", other, "--uri", server.uri)
        assert result.exit_code == 0, result.stderr
        assert result.stdout.strip() != victim_id and f"{victim.resolve()}'s" in result.stderr, result.stderr
        assert json.loads((other / "tracking.json").read_text())["run_id"] == result.stdout.strip()
    kept = c.get_run(victim_id)
    assert kept.data.tags["nnctl.run_folder"] == str(victim.resolve())
    assert {a.path: a.file_size for a in c.list_artifacts(victim_id)} == before


def children_of(c, parent) -> dict:
    runs = c.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    named = {}
    for r in runs:
        named.setdefault(r.info.run_name, []).append(r.info.status)
    return named


@pytest.mark.parametrize("when", ["in the last fold's callback", "once summary.json is written"])
def test_ctrl_c_as_a_tracked_cv_finishes_keeps_it_whole_and_logged_once(server, tmp_path, iris_config, monkeypatch,
                                                                        when):
    from nnctl.sweep import cv
    from nnctl.tracking.sweeps import CvTracker

    if when == "in the last fold's callback":  # before the tracker has queued that fold
        original, seen = CvTracker.__call__, []

        def interrupted(self, key, result):
            seen.append(key)
            if len(seen) == 3:
                raise KeyboardInterrupt
            original(self, key, result)

        monkeypatch.setattr(CvTracker, "__call__", interrupted)
    else:  # as a signal held while the summary is written acts, once it is
        summary = cv._cv_summary

        def interrupted(*args, **kwargs):
            summary(*args, **kwargs)
            raise KeyboardInterrupt

        monkeypatch.setattr(cv, "_cv_summary", interrupted)
    config = iris_config("training:\n  iterations: 4\n")
    result = cli("cv", config, "--folds", "3", "--workers", "1", "--runs-dir", tmp_path / "runs", "--quiet",
                 "--track", server.uri)
    folder = next((tmp_path / "runs").glob("*-cv3-*"))
    if when == "in the last fold's callback":  # nothing was left to stop: the cv ends as usual
        assert result.exit_code == 0 and result.stdout.strip() == str(folder), result.stderr
    else:
        assert result.exit_code == 130 and f"complete and kept: {folder}" in result.stderr, result.stderr
    assert "warning" not in result.stderr and "log it later" not in result.stderr, result.stderr
    assert {"folds.csv", "summary.json", "fold_0", "fold_1", "fold_2"} <= {p.name for p in folder.iterdir()}
    c = client(server.uri)
    parent = c.get_run(run_id_of(folder))
    assert parent.info.status == "FINISHED" and "val_loss_mean" in parent.data.metrics
    assert children_of(c, parent) == {f"fold_{i}": ["FINISHED"] for i in range(3)}


def test_ctrl_c_while_a_cv_is_copied_in_ends_its_runs_killed_and_nnctl_track_logs_the_rest_once(
        server, tmp_path, iris_config):
    from nnctl.tracking.groups import ParentRun

    # a deterministic Ctrl-C: the main thread is interrupted while it waits for the children,
    # once the first is logged; the second goes on only once the stop is asked for
    add_child, wait, first = ParentRun.add_child, ParentRun.wait, __import__("threading").Event()

    def add_child_slowly(self, name, *args, **kwargs):
        if name == "fold_1":
            first.set()
            assert self.stop.wait(600)
        add_child(self, name, *args, **kwargs)

    def interrupted_wait(self):
        assert first.wait(600)
        join, calls = self.thread.join, []

        def join_interrupted(timeout=None):
            calls.append(timeout)
            if len(calls) == 1:
                raise KeyboardInterrupt
            return join(timeout)

        self.thread.join = join_interrupted
        wait(self)

    config = iris_config("training:\n  iterations: 4\n")
    with pytest.MonkeyPatch.context() as interrupting:
        interrupting.setattr(ParentRun, "add_child", add_child_slowly)
        interrupting.setattr(ParentRun, "wait", interrupted_wait)
        result = cli("cv", config, "--folds", "3", "--workers", "1", "--runs-dir", tmp_path / "runs", "--quiet",
                     "--track", server.uri)
    assert result.exit_code == 130, result.stderr
    folder = next((tmp_path / "runs").glob("*-cv3-*"))
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"nnctl track {folder} --uri {server.uri}" in warnings[0], result.stderr
    assert (folder / "summary.json").exists()
    c = client(server.uri)
    parent = c.get_run(run_id_of(folder))
    assert parent.info.status == "KILLED"
    assert children_of(c, parent) == {"fold_0": ["FINISHED"], "fold_1": ["FINISHED"]}

    later = cli("track", folder, "--uri", server.uri)
    assert later.exit_code == 0 and later.stdout.strip() == parent.info.run_id, later.stderr
    parent = c.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED" and "val_loss_mean" in parent.data.metrics
    assert children_of(c, parent) == {f"fold_{i}": ["FINISHED"] for i in range(3)}


def test_a_store_among_run_folders_is_refused_before_training(tmp_path, iris_config, iris_run, monkeypatch):
    config = iris_config("training:\n  iterations: 3\n")
    runs = tmp_path / "runs"
    for store in (f"file:{runs}", f"sqlite:///{runs}/mlflow.db", str(runs / "mlruns")):
        result = cli("train", config, "--runs-dir", runs, "--track", store)
        assert_clean_error(result, "--track", "inside", str(runs))
        assert not runs.exists() or not list(runs.iterdir())
    monkeypatch.chdir(tmp_path)
    assert_clean_error(cli("cv", config, "--folds", "2", "--track", "file:runs"), "--track", "inside")
    assert_clean_error(cli("track", iris_run, "--uri", f"file:{iris_run}"), "--uri", "inside", str(iris_run))
    assert_clean_error(cli("track", iris_run, "--uri", f"file:{iris_run.parent}"), "--uri", "inside")


def test_a_sqlite_store_keeps_its_artifacts_beside_the_database(tmp_path, iris_config, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    store = f"sqlite:///{db}"
    run, _ = train(iris_config("training:\n  iterations: 3\n"), tmp_path / "runs", "--track", store)
    assert list(elsewhere.iterdir()) == []
    run_id = run_id_of(run)
    assert (tmp_path / "store" / "mlflow-artifacts" / run_id / "artifacts" / "model.npz").is_file()
    assert client(store).get_run(run_id).info.status == "FINISHED"


def test_ctrl_c_while_a_run_is_copied_in_ends_it_killed_and_nnctl_track_completes_it(server, tmp_path, iris_config):
    from nnctl.tracking import live

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    config = iris_config("training:\n  iterations: 4\n")
    with pytest.MonkeyPatch.context() as interrupting:
        interrupting.setattr(live, "log_folder", interrupted)
        result = cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet", "--track", server.uri)
    assert result.exit_code == 130, result.stderr
    run = next((tmp_path / "runs").iterdir())
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"nnctl track {run} --uri {server.uri}" in warnings[0], result.stderr
    c = client(server.uri)
    assert c.get_run(run_id_of(run)).info.status == "KILLED"
    later = cli("track", run, "--uri", server.uri)
    assert later.exit_code == 0 and later.stdout.strip() == run_id_of(run), later.stderr
    assert c.get_run(run_id_of(run)).info.status == "FINISHED"
    assert_histories_equal(c, run_id_of(run), run)
