"""What backprop's diagnostics cost: the training loop with diagnostics (the default: on every
logged epoch) against the same loop with them switched off, on bench.py's workloads. Prints
figures.

    python benchmarks/diagnostics.py                  # W1 W2, 7 repeats
    python benchmarks/diagnostics.py --workloads W1 W2 W3 --repeat 3

Both variants train in this process, alternated within every repeat; the fastest of the repeats
is kept. Logging follows each workload's config (log_every: auto).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    from bench import WORKLOADS, synthesize

    import nnctl.training.loop as loop
    from nnctl.config import load_config
    from nnctl.data import load_dataset
    from nnctl.training import train
    from nnctl.training.build import build_network

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["W1", "W2"], choices=list(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "data")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    with_diagnostics = loop._Loop.epoch

    def without(self, epoch, measured, diagnose=False):
        return with_diagnostics(self, epoch, measured, False)

    print(f"{'workload':9} {'epochs':>6} {'off (s)':>9} {'on (s)':>9} {'on ÷ off':>9} {'logged epochs':>14}")
    for name in args.workloads:
        _, config = synthesize(name, args.data_dir)
        epochs = WORKLOADS[name][-1] * 3
        cfg = load_config(config, [f"training.iterations={epochs}"])
        dataset = load_dataset(cfg)
        best = {"off": float("inf"), "on": float("inf")}
        logged = 0
        for _ in range(args.repeat):
            for setting in ("off", "on"):
                loop._Loop.epoch = without if setting == "off" else with_diagnostics
                network = build_network(cfg, dataset)
                start = time.perf_counter()
                result = train(network, dataset, cfg.training, seed=cfg.seed)
                best[setting] = min(best[setting], time.perf_counter() - start)
                logged = len(result.history)
        loop._Loop.epoch = with_diagnostics
        print(f"{name:9} {epochs:6d} {best['off']:9.3f} {best['on']:9.3f} {best['on'] / best['off']:8.3f}× {logged:14d}")


if __name__ == "__main__":
    main()
