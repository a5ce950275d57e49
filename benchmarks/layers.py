"""Each new layer's own cost per epoch: W2's network (bench.py) plain, then with dropout 0.2,
batch norm, layer norm and training.grad_clip 1.0, one at a time. Prints seconds per epoch and
the ratio to plain; asserts nothing.

    python benchmarks/layers.py                      # W2, 10 epochs a run, 5 repeats
    python benchmarks/layers.py --epochs 5 --repeat 3

The training loop is timed in this process (validation, history and logging included, as a user
runs it) on one loaded dataset. The variants are interleaved, plain, dropout, ..., plain, dropout,
..., so a busy spell of the shared machine slows all of them rather than one, and each variant's
figure is its fastest repeat. float32, 2 threads, as bench.py.
"""
from __future__ import annotations

import argparse
import os
import sys

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

VARIANTS = {
    "plain": [],
    "+dropout 0.2": ["model.dropout=0.2"],
    "+batch norm": ["model.normalization=batch"],
    "+layer norm": ["model.normalization=layer"],
    "+grad_clip 1.0": ["training.grad_clip=1.0"],
}


def measure(config: Path, epochs: int, repeat: int, variants: dict = VARIANTS) -> dict[str, float]:
    """Seconds per epoch of each variant: the fastest of `repeat` interleaved runs."""
    from nnctl.config import load_config
    from nnctl.data import load_dataset
    from nnctl.training import train
    from nnctl.training.build import build_network
    from nnctl.ui.progress import PlainLines

    def load(*more):
        return {name: load_config(config, [f"training.iterations={epochs}", *more, *sets])
                for name, sets in variants.items()}

    # the variants differ only in model and training keys: one dataset serves them all
    plain = load()["plain"]
    dataset = load_dataset(plain, cache=False)
    batch = batch_for_batch_norm(len(dataset.X_train), plain.training.batch_size)
    configs = load(f"training.batch_size={batch or 'null'}")
    best = {name: float("inf") for name in variants}
    with open(os.devnull, "w") as devnull:
        for _ in range(repeat):
            for name, cfg in configs.items():
                network = build_network(cfg, dataset)
                start = time.perf_counter()
                train(network, dataset, cfg.training, seed=cfg.seed, callback=PlainLines(devnull))
                best[name] = min(best[name], (time.perf_counter() - start) / epochs)
    return best


def batch_for_batch_norm(rows: int, batch: int | None) -> int | None:
    """The workload's batch size, or the next one up when its epoch would end in a batch of one
    row, which batch norm refuses (W2: 16,001 training rows, batch 64). Every variant then
    uses it, so the ratios stay like for like."""
    if not batch or rows % batch != 1:
        return batch
    chosen = next(b for b in range(batch + 1, rows + 1) if rows % b != 1)
    print(f"batch_size {chosen} for every variant: at {batch}, the last of {rows:,} rows would be a batch of "
          "one, which batch norm cannot normalize", file=sys.stderr)
    return chosen


def table(seconds: dict[str, float]) -> str:
    plain = seconds["plain"]
    lines = [f"{'variant':<16}{'s/epoch':>10}{'vs plain':>10}"]
    lines += [f"{name:<16}{s:>10.4f}{s / plain:>9.2f}×" for name, s in seconds.items()]
    return "\n".join(lines)


def main() -> None:
    from bench import WORKLOADS, synthesize

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="W2", choices=list(WORKLOADS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "data")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    rows, features, layers, classes, batch, *_ = WORKLOADS[args.workload]
    print(f"{args.workload}: {rows:,} rows × {features} features, layers {layers}, {classes} classes, batch {batch}; "
          f"{args.epochs} epochs a run, fastest of {args.repeat}", file=sys.stderr)
    print(table(measure(synthesize(args.workload, args.data_dir)[1], args.epochs, args.repeat)))


if __name__ == "__main__":
    main()
