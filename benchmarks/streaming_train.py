"""Streaming training against in-memory training on a table that fits (issue 27, the training
side). Prints; asserts nothing.

    python benchmarks/streaming_train.py                       # 400,000 rows x 50 features, 3 epochs
    python benchmarks/streaming_train.py --rows 50000 --epochs 2 --no-rss

1. Throughput: the same config (layers [32], adam, batch 256, float32) trained with
   data.streaming false and true, rows per second of training (the loop's own seconds, so the
   first pass and loading are left out; the shards are written by an untimed first run and read
   from the page cache after, as a second run on the same table would).
2. Peak RSS of each as `nnctl train` in a subprocess, the streamed one under
   NNCTL_MEMORY_LIMIT=--budget (ru_maxrss of the children), from the shards step 1 left in the
   cache (the first pass's own peak is scan's part of the benchmark).
3. The shuffle window's effect on convergence: the in-memory full shuffle against windows of 8
   shards and of 1 shard (shards of --shard-rows rows), same seed, validation loss per epoch (on
   one validation file, --shuffle-rows / 5 rows, so every variant is scored on the same rows), on
   the table in random row order and on the same rows sorted by the target (the worst case: a
   window then holds one class). Written as a Markdown table and shuffle.png under --workdir.

The table is synthesized, seeded: Gaussian features, three classes from two linear rules with 10%
of labels flipped; written as Parquet a row group at a time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RSS_WRAPPER = """import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)"""


def synthesize(path: Path, rows: int, features: int, seed: int = 0, sort: bool = False) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    w = np.random.default_rng(99).normal(size=(features, 2))
    chunks = []
    for start in range(0, rows, 200_000):
        n = min(200_000, rows - start)
        X = rng.normal(size=(n, features)).astype(np.float32)
        score = X @ w
        label = np.where(score[:, 0] > 0.5, 2, np.where(score[:, 1] > 0, 1, 0))
        flip = rng.random(n) < 0.1
        label[flip] = rng.integers(0, 3, flip.sum())
        chunks.append((X, label))
    if sort:  # the rows of the random table, ordered by class
        X = np.concatenate([c[0] for c in chunks])
        label = np.concatenate([c[1] for c in chunks])
        order = np.argsort(label, kind="stable")
        chunks = [(X[order], label[order])]
    names = [f"x{i}" for i in range(features)] + ["label"]
    writer = None
    for X, label in chunks:
        for s in range(0, len(X), 200_000):
            table = pa.table([pa.array(X[s:s + 200_000, i]) for i in range(features)] +
                             [pa.array(label[s:s + 200_000].astype(np.int64))], names=names)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    writer.close()
    return path


def write_config(workdir: Path, table: Path, epochs: int, name: str = "stream.yaml",
                 validation: Path | None = None) -> Path:
    path = workdir / name
    split = f"validation_path: {validation.name}" if validation else "validation_split: 0.1"
    path.write_text(f"""seed: 3
data:
  path: {table.name}
  target: label
  {split}
model:
  layers: [32]
training:
  optimizer: adam
  learning_rate: 0.003
  batch_size: 256
  iterations: {epochs}
  log_every: 1
  checkpoint_every: null
""")
    return path


def trained(config: Path, runs: Path, sets: list[str]):
    from nnctl.commands.train import train_config
    from nnctl.config import load_config

    return train_config(load_config(config, sets), runs, "bench", plot=False)


def throughput(config: Path, workdir: Path) -> dict:
    rates = {}
    for mode in ("false", "true"):
        sets = [f"data.streaming={mode}"]
        trained(config, workdir / "runs", sets + ["training.iterations=1"])  # untimed: writes the cache/shards
        result = trained(config, workdir / "runs", sets)
        rows = result.metrics["train"]["rows"]
        rates["in memory" if mode == "false" else "streamed"] = rows * result.epochs / result.seconds
    return rates


def peak_rss(config: Path, workdir: Path, budget: str) -> dict:
    peaks = {}
    for label, mode, limit in (("in memory", "false", "64GB"), ("streamed", "true", budget)):
        command = [sys.executable, "-m", "nnctl", "train", str(config), "--runs-dir", str(workdir / "runs"), "--quiet",
                   "--set", f"data.streaming={mode}", "--set", "training.iterations=1"]
        done = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *command], capture_output=True, text=True, check=True,
                              env={**os.environ, "NNCTL_MEMORY_LIMIT": limit, "PYTHONPATH": str(ROOT)})
        peaks[label] = int(done.stdout.split()[-1])
    return peaks


def shuffle_effect(workdir: Path, rows: int, features: int, epochs: int, shard_rows: int) -> dict:
    """{table: {variant: [val_loss per epoch]}}."""
    from nnctl.data import streamed

    saved = streamed.SHARD_BYTES, streamed.MIN_SHARD_ROWS
    streamed.SHARD_BYTES, streamed.MIN_SHARD_ROWS = 1, shard_rows  # shards of exactly shard_rows rows
    try:
        return _curves(workdir, rows, features, epochs, shard_rows)
    finally:
        streamed.SHARD_BYTES, streamed.MIN_SHARD_ROWS = saved


def _curves(workdir: Path, rows: int, features: int, epochs: int, shard_rows: int) -> dict:
    # one validation file for every variant: the hash split and the stratified one hold out other rows
    validation = synthesize(workdir / "shuffle-validation.parquet", rows // 5, features, 2)
    curves = {}
    for table_name, sort in (("random order", False), ("sorted by label", True)):
        table = synthesize(workdir / f"shuffle-{'sorted' if sort else 'random'}.parquet", rows, features, 1, sort)
        config = write_config(workdir, table, epochs, f"shuffle-{'sorted' if sort else 'random'}.yaml", validation)
        variants = {"full shuffle (in memory)": ["data.streaming=false"],
                    f"window 8 shards ({8 * shard_rows:,} rows)": ["data.streaming=true",
                                                                   f"data.shuffle_window={8 * shard_rows}"],
                    f"window 1 shard ({shard_rows:,} rows)": ["data.streaming=true", f"data.shuffle_window={shard_rows}"]}
        curves[table_name] = {name: [row["val_loss"] for row in trained(config, workdir / "runs", sets).history]
                              for name, sets in variants.items()}
    return curves


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.2), sharey=True)
    for ax, (table, variants) in zip(np.atleast_1d(axes), curves.items()):
        for name, losses in variants.items():
            ax.plot(range(1, len(losses) + 1), losses, marker="o", label=name)
        ax.set_title(f"table: {table}")
        ax.set_xlabel("epoch")
    np.atleast_1d(axes)[0].set_ylabel("validation loss")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--budget", default="100MB", help="NNCTL_MEMORY_LIMIT of the streamed RSS run")
    parser.add_argument("--shuffle-rows", type=int, default=60_000, help="rows of the shuffle-effect tables")
    parser.add_argument("--shard-rows", type=int, default=1024, help="shard size of the shuffle-effect runs")
    parser.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "data" / "streaming")
    parser.add_argument("--no-rss", action="store_true", help="skip the subprocess peak-RSS runs")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NNCTL_CACHE_DIR", str(args.workdir / "cache"))
    table = synthesize(args.workdir / "table.parquet", args.rows, args.features)
    config = write_config(args.workdir, table, args.epochs)
    found = {"rows": args.rows, "features": args.features}
    rates = found["rows_per_second"] = throughput(config, args.workdir)
    print(f"training throughput, {args.rows:,} rows x {args.features} features, layers [32], batch 256:")
    for name, rate in rates.items():
        print(f"  {name:<10} {rate:>12,.0f} rows/s")
    print(f"  streamed / in memory: {rates['streamed'] / rates['in memory']:.2f}x (goal >= 0.8x)")
    if not args.no_rss:
        peaks = found["peak_rss"] = peak_rss(config, args.workdir, args.budget)
        print(f"peak RSS of `nnctl train` (1 epoch): in memory {peaks['in memory'] / 2**20:,.0f} MB, "
              f"streamed under NNCTL_MEMORY_LIMIT={args.budget} from the cached shards "
              f"{peaks['streamed'] / 2**20:,.0f} MB")
    curves = found["shuffle"] = shuffle_effect(args.workdir, args.shuffle_rows, args.features, args.epochs * 2,
                                               args.shard_rows)
    print(f"\nvalidation loss per epoch, {args.shuffle_rows:,} rows, seed 3:")
    for table_name, variants in curves.items():
        print(f"\n| {table_name} | " + " | ".join(f"epoch {i + 1}" for i in range(len(next(iter(variants.values())))))
              + " |\n|---|" + "---|" * len(next(iter(variants.values()))))
        for name, losses in variants.items():
            print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in losses) + " |")
    plot(curves, args.workdir / "shuffle.png")
    (args.workdir / "figures.json").write_text(json.dumps(found, indent=1))
    print(f"\nwrote {args.workdir / 'shuffle.png'} and figures.json")
    return found


if __name__ == "__main__":
    main()
