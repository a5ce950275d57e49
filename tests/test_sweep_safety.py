"""Sweeps and cv that stay in their folder, resume without repeats, stop cleanly on signals and
leave no orphans (issue 22, items 1, 7, 8, 16, 17, 18). Every subprocess is bounded and killed."""
import csv
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS, DATASETS

pytest.importorskip("optuna")

def random_sweep(iterations: int) -> str:
    """Six random trials over the learning rate, each training `iterations` epochs."""
    return f"""method: random
trials: 6
seed: 1
parameters:
  training.learning_rate: {{distribution: log_uniform, min: 1.0e-3, max: 0.1}}
  training.iterations: {{values: [{iterations}]}}
"""


SMALL_RANDOM = random_sweep(3)


def write_sweep(tmp_path, body: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"config: {CONFIGS / 'iris.yaml'}\n{body}")
    return path


def trials(folder) -> list[dict]:
    with open(Path(folder) / "trials.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def learning_rates(folder) -> list[str]:
    return [r["training.learning_rate"] for r in trials(folder)]


# --- 1. a name is one folder name -------------------------------------------------------------------
BAD_NAMES = ["../escape", "../../x", "a/b", "line\nbreak", ".hidden", "n" * 101, ""]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_sweep_and_cv_names_are_one_folder_name(tmp_path, name):
    runs = tmp_path / "box" / "runs"
    sweep = cli("sweep", write_sweep(tmp_path, SMALL_RANDOM), "--runs-dir", runs, "--name", name, "--workers", "1")
    assert_clean_error(sweep, "a sweep name must be", "--name")
    cv = cli("cv", CONFIGS / "iris.yaml", "--folds", "2", "--runs-dir", runs, "--name", name)
    assert_clean_error(cv, "a cv name must be", "--name")
    assert {p.name for p in tmp_path.rglob("*")} == {"sweep.yaml"}  # nothing written, inside or out


def test_train_refuses_the_same_names(tmp_path):
    for name in ("line\nbreak", ".hidden", "n" * 101):
        assert_clean_error(cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--name", name),
                           "a run name must be")
    assert list(tmp_path.iterdir()) == []
    assert cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--name", "n" * 100, "--quiet",
               "--set", "training.iterations=1").exit_code == 0


# --- 7. one driver per folder ----------------------------------------------------------------------
def test_resuming_a_sweep_that_is_running_is_refused(tmp_path):
    from nnctl.sweep.driver import run_sweep

    folder = run_sweep(write_sweep(tmp_path, SMALL_RANDOM.replace("trials: 6", "trials: 2")),
                       runs_dir=tmp_path / "runs", workers=1)["folder"]
    before = (folder / "trials.csv").read_text(), sorted(p.name for p in (folder / "trials").iterdir())
    with open(folder / ".lock") as held:  # as a live `nnctl sweep` holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        result = cli("sweep", "--resume", folder, "--workers", "1")
    assert_clean_error(result, "this sweep is running", str(folder))
    assert ((folder / "trials.csv").read_text(), sorted(p.name for p in (folder / "trials").iterdir())) == before


def test_a_cv_holds_its_folder_while_it_runs(tmp_path):
    from nnctl.runs.folder import is_running
    from nnctl.sweep.cv import run_cv

    seen = []
    result = run_cv(CONFIGS / "iris.yaml", 2, ["training.iterations=2"], tmp_path, workers=1,
                    callback=lambda i, r: seen.append(is_running(Path(r["run"]).parent)))
    assert seen == [True, True] and not is_running(result["folder"])


# --- 8. resume goes on with the sampler's sequence, never repeating a trial --------------------------
class StopAfter:
    def __init__(self, n):
        self.n = n

    def on_start(self, info):
        pass

    def on_trial(self, row, best):
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_an_interrupted_random_sweep_resumes_where_it_stopped(tmp_path):
    from nnctl.sweep.driver import run_sweep

    sweep = write_sweep(tmp_path, SMALL_RANDOM)
    # one trial per job, so that the interrupt comes between trials (members: test_sweep_members.py)
    whole = run_sweep(sweep, runs_dir=tmp_path / "whole", workers=1, separate=True)["folder"]
    part = run_sweep(sweep, runs_dir=tmp_path / "part", workers=1, callback=StopAfter(4), separate=True)
    assert part["status"] == "interrupted" and len(trials(part["folder"])) == 4
    resumed = run_sweep(resume=part["folder"], workers=1)
    assert resumed["status"] == "completed"
    assert learning_rates(part["folder"]) == learning_rates(whole)
    assert len(set(learning_rates(whole))) == 6


@pytest.mark.slow
def test_a_trial_killed_mid_run_is_run_again_with_its_parameters(tmp_path):
    """As after kill -9: the journal holds a trial still `running`."""
    from nnctl.sweep.driver import _study, run_sweep
    from nnctl.sweep.space import distributions

    part = run_sweep(write_sweep(tmp_path, SMALL_RANDOM), runs_dir=tmp_path, workers=1, callback=StopAfter(2),
                     separate=True)
    import yaml

    sweep = yaml.safe_load((part["folder"] / "sweep.yaml").read_text())
    killed = _study(part["folder"], sweep, 3, load=True).ask(distributions(sweep["parameters"]))
    run_sweep(resume=part["folder"], workers=1)
    rows = trials(part["folder"])
    rates = [float(r["training.learning_rate"]) for r in rows]
    assert len(rows) == 6 and len(set(rates)) == 6
    assert killed.params["training.learning_rate"] in rates


@pytest.mark.slow
def test_a_random_sweep_never_repeats_parameters(tmp_path):
    """Two combinations, five trials asked for: each runs once (a trial is deterministic)."""
    result = cli("sweep", write_sweep(tmp_path, """method: random
trials: 5
parameters:
  model.layers: {values: [[4], [8]]}
  training.iterations: {values: [2]}
"""), "--runs-dir", tmp_path / "runs", "--workers", "1")
    assert result.exit_code == 0, result.stderr
    rows = trials(result.stdout.strip().splitlines()[-1])
    assert sorted(r["model.layers"] for r in rows) == ["[4]", "[8]"]
    assert "every combination of the parameters was tried" in result.stderr


# --- 18. huge grids -----------------------------------------------------------------------------------
def test_a_grid_over_the_limit_is_refused_with_its_size(tmp_path):
    values = list(range(1, 31))
    result = cli("sweep", write_sweep(tmp_path, f"""method: grid
parameters:
  training.iterations: {{values: {values}}}
  training.batch_size: {{values: {values}}}
  seed: {{values: {values}}}
"""), "--runs-dir", tmp_path / "runs")
    assert_clean_error(result, "27,000 combinations", "10,000", "method: random")
    assert not (tmp_path / "runs").exists()


def test_a_large_grid_starts_at_once(tmp_path):
    from nnctl.sweep.driver import JOURNAL, run_sweep

    values = list(range(1, 101))
    sweep = write_sweep(tmp_path, f"""method: grid
parameters:
  seed: {{values: {values}}}
  training.batch_size: {{values: {values}}}
  training.iterations: {{values: [1]}}
""")
    start = time.perf_counter()
    result = run_sweep(sweep, runs_dir=tmp_path, workers=1, callback=StopAfter(1))
    assert time.perf_counter() - start < 15
    assert len(trials(result["folder"])) == 1
    assert (result["folder"] / JOURNAL).stat().st_size < 20_000  # not 10,000 enqueued trials


# --- 17. cv's folds are checked first; a stopped cv leaves nothing ------------------------------------
@pytest.mark.parametrize("folds, fragments", [
    (51, ["--folds 51 is more than the rows of the smallest class", "50", "--folds 50 or fewer"]),
    (1, ["--folds must be 2 or more"]),
])
def test_cv_folds_are_checked_before_training(tmp_path, folds, fragments):
    result = cli("cv", CONFIGS / "iris.yaml", "--folds", folds, "--runs-dir", tmp_path / "runs")
    assert_clean_error(result, *fragments)
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_cv_folds_of_a_regression_are_at_most_its_rows(tmp_path, write_csv, write_config):
    data = write_csv("x,y\n" + "".join(f"{i},{i * 0.5}\n" for i in range(6)))
    config = write_config(f"data:\n  path: {data}\n  target: y\nmodel:\n  task: regression\n")
    assert_clean_error(cli("cv", config, "--folds", "7", "--runs-dir", tmp_path / "runs"),
                       "--folds 7 is more than the data's 6 rows")


def test_a_sweep_scored_by_too_many_folds_is_refused(tmp_path):
    result = cli("sweep", write_sweep(tmp_path, SMALL_RANDOM + "folds: 60\n"), "--runs-dir", tmp_path / "runs")
    assert_clean_error(result, "folds 60 is more than the rows of the smallest class")


# --- 16. signals and orphans (subprocesses, each bounded) ---------------------------------------------
def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def wait_until(condition, seconds: float = 60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


LONG = random_sweep(400)  # trials long enough to be killed mid-run


def start(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "nnctl", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"}, **kwargs)


def started_trial(runs: Path):
    """True once a worker is training (its run folder exists)."""
    return any(runs.glob("*/trials/.tmp-*")) or any(runs.glob("*/trials/0*"))


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig, ignore_sigint", [(signal.SIGTERM, False), (signal.SIGINT, True)])
def test_sigterm_or_an_ignored_sigint_stops_a_sweep_like_ctrl_c(tmp_path, sig, ignore_sigint):
    """SIGINT as a non-interactive shell's background job gets it: ignored at start."""
    runs = tmp_path / "runs"
    preexec = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
    proc = start(["sweep", write_sweep(tmp_path, LONG), "--runs-dir", runs, "--workers", "2"], preexec_fn=preexec)
    try:
        assert wait_until(lambda: started_trial(runs)), proc.stderr.read() if proc.poll() is not None else ""
        workers = children(proc.pid)
        assert workers
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted ·" in err and "Traceback" not in err
    assert wait_until(lambda: all(gone(p) for p in workers), 10)
    folder = Path(out.strip().splitlines()[-1])
    assert not list((folder / "trials").glob(".tmp-*"))


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal and /proc")
def test_workers_die_with_a_killed_sweep_and_resume_finishes_it(tmp_path):
    runs = tmp_path / "runs"
    proc = start(["sweep", write_sweep(tmp_path, LONG), "--runs-dir", runs, "--workers", "2"])
    try:
        assert wait_until(lambda: started_trial(runs))
        workers = children(proc.pid)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert workers and wait_until(lambda: all(gone(p) for p in workers), 10)
    folder = next(runs.iterdir())
    result = cli("sweep", "--resume", folder, "--workers", "1", "--set", "training.iterations=3", "--quiet")
    assert result.exit_code == 0, result.stderr
    rates = learning_rates(folder)
    assert len(rates) == 6 and len(set(rates)) == 6


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_an_interrupted_cv_stops_its_workers_and_leaves_no_folder(tmp_path):
    runs = tmp_path / "runs"
    assert_interrupt_leaves_nothing(["cv", CONFIGS / "iris.yaml", "--folds", "2"], runs, signal.SIGTERM,
                                    "interrupted after 0 of 2 folds; the cv folder was removed")


def assert_interrupt_leaves_nothing(args: list, runs, sig, said: str) -> None:
    """`nnctl ARGS` with two workers, interrupted by `sig` once its first runs are being
    written: exit 130 saying `said`, its workers gone, nothing left in `runs`."""
    proc = start([*args, "--workers", "2", "--runs-dir", runs, "--set", "training.iterations=2000"])
    try:
        assert wait_until(lambda: any(runs.glob("*/.tmp-*")))
        workers = children(proc.pid)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert said in err and "Traceback" not in err
    assert wait_until(lambda: all(gone(p) for p in workers), 10)
    assert list(runs.iterdir()) == []


TERM_WHILE_WRITING = """import os, signal, sys
import nnctl.atomic
nnctl.atomic.follow_umask = lambda *a, **k: os.kill(os.getpid(), signal.SIGTERM)  # SIGTERM mid-write
from nnctl.cli import main
sys.argv = ["nnctl", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("command", ["predict", "export", "report"])
def test_sigterm_while_writing_leaves_no_temporary_file(tmp_path, iris_run, command):
    pytest.importorskip({"predict": "numpy", "export": "onnx", "report": "matplotlib"}[command])
    out = tmp_path / "out" / "p.csv"
    out.parent.mkdir()
    args = {"predict": [iris_run, DATASETS / "iris.csv", "--output", out],
            "export": [iris_run, "--output", out], "report": [iris_run, "--output", out]}[command]
    result = subprocess.run([sys.executable, "-c", TERM_WHILE_WRITING, command, *map(str, args)],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 130, result.stderr
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("metric, goal", [("val_f1", "maximize"), ("val_accuracy", "maximize"),
                                          ("val_loss", "minimize"), ({"name": "val_f1", "goal": "minimize"}, "minimize")])
def test_a_higher_is_better_metric_is_maximized_unless_the_goal_says_otherwise(write_config, tmp_path, metric, goal):
    import yaml

    from nnctl.sweep.spec import load_sweep

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"config": str(CONFIGS / "iris.yaml"), "method": "random", "trials": 2,
                                    "metric": metric, "parameters": {"training.iterations": {"values": [3]}}}))
    assert load_sweep(path)["metric"]["goal"] == goal


@pytest.mark.slow
def test_cv_with_early_stopping_says_its_scores_are_optimistic(tmp_path):
    result = cli("cv", CONFIGS / "iris.yaml", "--folds", "2", "--runs-dir", tmp_path, "--workers", "1", "--json",
                 "--set", "training.iterations=5", "--set", "training.early_stopping={patience: 2}")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-2])
    assert "optimistic" in summary["note"] and "note: early stopping chose each fold's epoch" in result.stderr
    plain = cli("cv", CONFIGS / "iris.yaml", "--folds", "2", "--runs-dir", tmp_path, "--workers", "1", "--json",
                "--set", "training.iterations=5", "--set", "training.early_stopping=null")
    assert "note" not in json.loads(plain.stdout.strip().splitlines()[-2])


def test_ctrl_c_waits_for_the_journal_write_to_finish():
    # a KeyboardInterrupt inside Optuna's lock release once failed a sweep with exit 2: journal
    # writes hold Ctrl-C and SIGTERM, which act as soon as the write is whole (with other threads
    # running too, as in a sweep with workers)
    import threading

    stop = threading.Event()
    busy = threading.Thread(target=stop.wait)
    busy.start()
    from nnctl.sweep.space import journal_writes_whole

    done = []
    with pytest.raises(KeyboardInterrupt):
        with journal_writes_whole():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # a real handler would have raised by now
            done.append("the write finished")
    stop.set()
    busy.join()
    assert done == ["the write finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is restored
