"""One-hot against an embedding for a 2,000-category column (issue 23). Prints, for each: the
network's inputs, peak memory of loading and one epoch, seconds per epoch and held-out test
accuracy, with the ratios; asserts nothing.

    python benchmarks/embedding.py                   # 25,000 rows, 2,000 categories, 20 epochs
    python benchmarks/embedding.py --rows 5000 --epochs 5

The table is synthesized, seeded, under benchmarks/data/: a `shop` column of 2,000 categories,
each with its own effect on the target drawn once from N(0, 1), and four numeric columns, two of
which matter. The label is 1 when shop effect + 0.8 x1 - 0.8 x2 + noise > 0, so no model can
score well without learning the shop. 80% of the rows train (of which the config's
validation_split holds 20% out for early stopping); the other 20% are a test file scored once.
Both variants train the same config (layers [64], adam, batch 64) and differ only in
`data.embedding: {shop: 16}`. Peak memory is tracemalloc's peak over loading the dataset,
building the network and one epoch (numpy's arrays included); time per epoch is timed without
tracemalloc, the fastest of the runs' epochs counted as total seconds / epochs. float32, 2 threads.
"""
from __future__ import annotations

import argparse
import os
import sys

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = {"one-hot": [], "embedding 16": ["data.embedding={shop: 16}"]}


def synthesize(data_dir: Path, rows: int = 25_000, categories: int = 2_000, seed: int = 0) -> Path:
    """Writes shops-train.csv, shops-test.csv and shops.yaml; returns the config's path. The same
    arguments give the same bytes."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(0.0, 1.0, categories)
    shop = rng.integers(0, categories, rows)
    x = rng.normal(0.0, 1.0, (rows, 4))
    label = (effect[shop] + 0.8 * x[:, 0] - 0.8 * x[:, 1] + rng.normal(0.0, 0.5, rows) > 0).astype(int)
    lines = ["shop,x1,x2,x3,x4,label\n"]
    lines += [f"s{s:04d},{a:.5f},{b:.5f},{c:.5f},{d:.5f},{y}\n" for s, (a, b, c, d), y in zip(shop, x, label)]
    cut = 1 + int(round(rows * 0.8))
    stem = f"shops-{rows}-{categories}"
    (data_dir / f"{stem}-train.csv").write_text("".join(lines[:cut]))
    (data_dir / f"{stem}-test.csv").write_text(lines[0] + "".join(lines[cut:]))
    config = data_dir / f"{stem}.yaml"
    config.write_text(f"""seed: 42
data:
  path: {stem}-train.csv
  test_path: {stem}-test.csv
  target: label
  categorical: [shop]
  unknown_category: ignore
model:
  layers: [64]
training:
  optimizer: adam
  learning_rate: 0.001
  iterations: 20
  batch_size: 64
  dtype: float32
  early_stopping: {{patience: 5}}
""")
    return config


def peak_bytes(config: Path, sets: list[str]) -> int:
    """tracemalloc's peak over loading, building and one epoch."""
    from nnctl.config import load_config
    from nnctl.data import load_dataset
    from nnctl.training import train
    from nnctl.training.build import build_network

    cfg = load_config(config, [*sets, "training.iterations=1"])
    tracemalloc.start()
    dataset = load_dataset(cfg, cache=False)
    train(build_network(cfg, dataset), dataset, cfg.training, seed=cfg.seed)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def measure(config: Path, epochs: int | None = None) -> dict[str, dict]:
    """Per variant: inputs (the first dense layer's fan-in), peak bytes, seconds per epoch,
    epochs run and test accuracy."""
    import tempfile

    from nnctl import load_config, train_config
    from nnctl.data import load_dataset
    from nnctl.nn.layers import Dense
    from nnctl.training.build import build_network

    more = [f"training.iterations={epochs}"] if epochs else []
    out = {}
    with tempfile.TemporaryDirectory() as runs, open(os.devnull, "w") as devnull:
        for name, sets in VARIANTS.items():
            cfg = load_config(config, [*sets, *more])
            dataset = load_dataset(cfg, cache=False)
            network = build_network(cfg, dataset)
            dense = next(layer for layer in network.layers if isinstance(layer, Dense))
            stdout, sys.stdout = sys.stdout, devnull
            try:
                start = time.perf_counter()
                result = train_config(cfg, runs_dir=runs, plot=False, cache=False)
                total = time.perf_counter() - start
            finally:
                sys.stdout = stdout
            out[name] = {"inputs": dataset.X_train.shape[1], "dense_inputs": dense.params["W"].shape[0],
                         "peak": peak_bytes(config, [*sets, *more]),
                         "seconds": result.seconds / max(result.epochs, 1), "wall": total,
                         "epochs": result.epochs, "accuracy": float(result.metrics["test"]["accuracy"])}
    return out


def table(results: dict[str, dict]) -> str:
    onehot, emb = results["one-hot"], results["embedding 16"]
    lines = [f"{'variant':<14}{'input cols':>11}{'dense in':>10}{'peak MB':>10}{'s/epoch':>10}{'epochs':>8}{'test acc':>10}"]
    for name, r in results.items():
        lines.append(f"{name:<14}{r['inputs']:>11,}{r['dense_inputs']:>10,}{r['peak'] / 1e6:>10.1f}"
                     f"{r['seconds']:>10.3f}{r['epochs']:>8}{r['accuracy']:>10.4f}")
    lines.append(f"one-hot / embedding: {onehot['dense_inputs'] / emb['dense_inputs']:.0f}× the dense layer's inputs, "
                 f"{onehot['peak'] / emb['peak']:.1f}× the peak memory, {onehot['seconds'] / emb['seconds']:.1f}× "
                 f"the time per epoch; test accuracy {onehot['accuracy'] - emb['accuracy']:+.4f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25_000)
    parser.add_argument("--categories", type=int, default=2_000)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's 20, with early stopping")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "data")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    config = synthesize(args.data_dir, args.rows, args.categories)
    print(f"{args.rows:,} rows ({args.rows - round(args.rows * 0.2):,} train file, the rest test), "
          f"{args.categories:,} shops, 4 numeric columns", file=sys.stderr)
    print(table(measure(config, args.epochs)))


if __name__ == "__main__":
    main()
