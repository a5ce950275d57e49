"""nnctl sweep and cv on a real two-node Ray cluster (ray.cluster_utils.Cluster).

Ray binds to the machine's interface address and probes outside addresses to find it; tests
here may only send traffic to loopback. So each test re-runs itself inside a network namespace
that has only loopback (`unshare -n`, then `ip link set lo up`), where Ray falls back to
127.0.0.1. That needs root and unshare (CI runs as root); elsewhere the tests skip and say why.
Everything is installed before entering the namespace, which has no network.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import CONFIGS

IN_NAMESPACE = os.environ.get("NNCTL_LOOPBACK_ONLY") == "1"
pytestmark = pytest.mark.slow  # a Ray cluster per test


def _ray_processes(netns: str | None = None, pattern: str = "raylet|gcs_server") -> list[str]:
    """Ray's processes left in network namespace `netns` (default: this process's): only this
    test's, not those of tests that other workers or other checkouts run beside it."""
    netns = netns or os.readlink("/proc/self/ns/net")
    found = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
    left = []
    for line in found.splitlines():
        try:
            if "pgrep" not in line and os.readlink(f"/proc/{line.split()[0]}/ns/net") == netns:
                left.append(line)
        except OSError:  # it ended while listed
            pass
    return left


def in_loopback_namespace(test):
    """Run the test's body in a loopback-only network namespace: outside one, re-run pytest on
    just this test inside `unshare -n`, and pass or fail with it."""
    def wrapper(tmp_path):
        if IN_NAMESPACE:
            return test(tmp_path)
        for module in ("ray", "optuna"):
            if __import__("importlib").util.find_spec(module) is None:
                if os.environ.get("CI"):
                    pytest.fail(f"CI must test the Ray path: {module} is not installed (the test extra has it)")
                pytest.skip(f"{module} is not installed (pip install -e '.[test]')")
        if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
            pytest.skip("needs root, unshare and ip for a loopback-only network namespace, which Ray tests run in")
        netns = tmp_path / "netns"
        script = (f'ip link set lo up && readlink /proc/self/ns/net > "{netns}" && '
                  f'exec "{sys.executable}" -m pytest -q -p no:cacheprovider -x "{__file__}::{test.__name__}"')
        result = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=600,
                                env={**os.environ, "NNCTL_LOOPBACK_ONLY": "1"}, cwd=Path(__file__).parent.parent)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert "1 passed" in result.stdout, result.stdout[-2000:]
        assert _ray_processes(netns.read_text().strip()) == []  # the cluster is gone, whatever happened inside
    wrapper.__name__ = test.__name__
    return wrapper


def _cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    return cluster, worker


def _wait_for_trials_running(count: int, proc, timeout: float = 240) -> None:
    """Until `count` Ray workers in this network namespace run a trial (a worker's process title
    is `ray::_ray_job` while it runs one), or fail after `timeout` s or if the sweep ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        if sum("ray::_ray_job" in line for line in _ray_processes(pattern="ray::")) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{count} trials were not running after {timeout} s")


def _trials(folder) -> list[dict]:
    with open(Path(folder) / "trials.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _nnctl(*args, **kwargs):
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "nnctl", *map(str, args)], capture_output=True, text=True, env=env,
                          **kwargs)


@in_loopback_namespace
def test_a_sweep_runs_on_both_nodes_and_every_artifact_comes_back(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"""config: {CONFIGS / 'iris.yaml'}
method: random
trials: 6
parameters:
  training.learning_rate: {{distribution: log_uniform, min: 1.0e-3, max: 0.1}}
  training.iterations: {{values: [150, 300]}}
""")
    cluster, _ = _cluster()
    try:
        result = _nnctl("sweep", sweep, "--ray", cluster.address, "--runs-dir", tmp_path / "runs", timeout=300)
        assert result.returncode == 0, result.stderr
        folder = Path(result.stdout.strip().splitlines()[-1])
        rows = _trials(folder)
        assert len(rows) == 6 and {r["state"] for r in rows} == {"complete"}
        assert len({r["node"] for r in rows}) == 2, rows  # both nodes ran trials
        for r in rows:  # each trial's run folder came back to the driver's sweep folder
            run = Path(r["run"])
            assert run.parent == folder / "trials"
            assert {"model.npz", "metrics.json", "history.csv", "config.yaml"} <= {p.name for p in run.iterdir()}
            # the trial's own value reached it (the default early stopping may end it sooner)
            assert yaml.safe_load((run / "config.yaml").read_text())["training"]["iterations"] == int(r["training.iterations"])
            assert json.loads((run / "metrics.json").read_text())["epochs"] <= int(r["training.iterations"])
        assert _nnctl("evaluate", rows[0]["run"], CONFIGS.parent / "datasets" / "iris.csv").returncode == 0
        cv = _nnctl("cv", CONFIGS / "iris.yaml", "--folds", "3", "--ray", cluster.address, "--runs-dir",
                    tmp_path / "cv", "--set", "training.iterations=30", timeout=300)
        assert cv.returncode == 0, cv.stderr
        assert (Path(cv.stdout.strip().splitlines()[-1]) / "folds.csv").exists()
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()
    assert _ray_processes() == []


@in_loopback_namespace
def test_a_node_that_dies_mid_trial_never_loses_or_hangs_the_sweep(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"""config: {CONFIGS / 'iris.yaml'}
method: grid
parameters:
  training.learning_rate: {{values: [0.01, 0.02, 0.03, 0.04]}}
  training.iterations: {{values: [3000]}}
""")
    cluster, worker = _cluster()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "nnctl", "sweep", str(sweep), "--ray", cluster.address,
                                 "--runs-dir", str(tmp_path / "runs"), "--quiet"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
        _wait_for_trials_running(2, proc)  # the cluster's two CPUs are busy with the first two trials
        cluster.remove_node(worker, allow_graceful=False)
        out, err = proc.communicate(timeout=400)
        assert proc.returncode in (0, 1), err
        rows = _trials(out.strip().splitlines()[-1])
        assert len(rows) == 4 and {r["state"] for r in rows} <= {"complete", "failed"}, rows
        for r in rows:
            assert r["state"] == "complete" or r["error"], r  # a failure says why
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()
    assert _ray_processes() == []
