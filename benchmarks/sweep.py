"""What sweeps cost and gain. Prints figures.

    python benchmarks/sweep.py                 # parallelism and overhead, locally
    python benchmarks/sweep.py --ray           # and on a local two-node Ray cluster (needs root:
                                               # it runs inside a loopback-only network namespace)

- Parallelism: 16 trials of a W2-sized config (bench.py's W2: 20,000 rows, 64 features,
  128-64 hidden, batch 64, 10 epochs) with --workers 2 against --workers 1.
- Overhead: a 20-trial sweep of iris-sized trials: the sweep's wall time against the sum of its
  trials' training times (metrics.json "seconds"): what the search, the processes and the
  bookkeeping cost.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def sweep_file(folder: Path, config: Path, trials: int, iterations: int) -> Path:
    path = folder / f"sweep-{config.stem}.yaml"
    path.write_text(f"""config: {config}
method: random
trials: {trials}
seed: 0
parameters:
  training.learning_rate: {{distribution: log_uniform, min: 1.0e-3, max: 0.05}}
  training.iterations: {{values: [{iterations}]}}
""")
    return path


def timed_sweep(path: Path, runs: Path, workers=None, ray=None) -> tuple[float, float]:
    """(wall seconds, sum of the trials' training seconds)."""
    from nnctl.sweep.driver import run_sweep

    start = time.perf_counter()
    result = run_sweep(path, runs_dir=runs, workers=workers, ray_address=ray)
    wall = time.perf_counter() - start
    trained = sum(json.loads((Path(r["run"]) / "metrics.json").read_text())["seconds"] for r in result["rows"])
    return wall, trained


def ray_part(folder: Path, iris_sweep: Path) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        wall, trained = timed_sweep(iris_sweep, folder / "ray", ray=cluster.address)
        print(f"overhead, Ray (2 nodes x 1 CPU): 20 iris trials in {wall:.2f} s wall, {trained:.2f} s of training: "
              f"{(2 * wall - trained) / 20:.2f} s per trial beyond its training")
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()


def main() -> None:
    from bench import synthesize

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray", action="store_true", help="also on a local two-node Ray cluster (root)")
    parser.add_argument("--ray-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "data")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        iris_sweep = sweep_file(folder, ROOT / "configs" / "iris.yaml", 20, 150)
        if args.ray_only:
            ray_part(folder, iris_sweep)
            return
        _, w2 = synthesize("W2", args.data_dir)
        w2_sweep = sweep_file(folder, w2, 16, 10)
        one, _ = timed_sweep(w2_sweep, folder / "one", workers=1)
        two, _ = timed_sweep(w2_sweep, folder / "two", workers=2)
        print(f"parallelism: 16 W2-sized trials, --workers 1 {one:.1f} s, --workers 2 {two:.1f} s: {one / two:.2f}x faster")
        wall, trained = timed_sweep(iris_sweep, folder / "local", workers=2)
        print(f"overhead, local (--workers 2): 20 iris trials in {wall:.2f} s wall, {trained:.2f} s of training: "
              f"{(2 * wall - trained) / 20:.2f} s per trial beyond its training")
        if args.ray:
            # Ray finds its address by probing outside hosts: inside a namespace with only loopback
            script = f'ip link set lo up && exec "{sys.executable}" "{__file__}" --ray-only'
            subprocess.run(["unshare", "-n", "sh", "-c", script], check=True)


if __name__ == "__main__":
    main()
