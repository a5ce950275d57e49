"""What checkpoints cost: training time with `checkpoint_every: auto` (the default) against
checkpoints off, on bench.py's workloads, and the size of checkpoint.npz. Prints figures.

    python benchmarks/checkpoints.py                      # W1 W2, 5 repeats
    python benchmarks/checkpoints.py --workloads W1 W2 W3 --repeat 3

Each figure is the whole of `train_config` (data from the cache, the data digest a checkpoint
needs, training, the final checkpoint, the run folder), the settings alternated within every
repeat and the fastest of the repeats kept; `every epoch` shows the worst case a user can ask for.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SETTINGS = {"off": "null", "auto": "auto", "every epoch": "1"}


def run_once(config: Path, epochs: int, every: str, runs: Path) -> tuple[float, int]:
    from nnctl.commands.train import train_config
    from nnctl.config import load_config

    cfg = load_config(config, [f"training.iterations={epochs}", f"training.checkpoint_every={every}"])
    start = time.perf_counter()
    result = train_config(cfg, runs, "bench", plot=False)
    seconds = time.perf_counter() - start
    checkpoint = result.run / "checkpoint.npz"
    return seconds, checkpoint.stat().st_size if checkpoint.exists() else 0


def main() -> None:
    from bench import WORKLOADS, synthesize

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["W1", "W2"], choices=list(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--epochs", type=int, help="epochs per run (default: 3E of bench.py)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "data")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    print(f"{'workload':9} {'epochs':>6} {'setting':12} {'seconds':>9} {'vs off':>8} {'checkpoint.npz':>15}")
    with tempfile.TemporaryDirectory() as runs:
        for name in args.workloads:
            _, config = synthesize(name, args.data_dir)
            epochs = args.epochs or 3 * WORKLOADS[name][-1]
            run_once(config, 1, "null", Path(runs))  # warm the dataset cache and imports
            best = {s: float("inf") for s in SETTINGS}
            size = {}
            for _ in range(args.repeat):
                for setting, every in SETTINGS.items():
                    seconds, size[setting] = run_once(config, epochs, every, Path(runs))
                    best[setting] = min(best[setting], seconds)
            for setting in SETTINGS:
                ratio = best[setting] / best["off"]
                shown = f"{size[setting] / 1024:,.0f} KB" if size[setting] else "—"
                print(f"{name:9} {epochs:6d} {setting:12} {best[setting]:9.3f} {ratio:7.3f}× {shown:>15}")


if __name__ == "__main__":
    main()
