"""Several targets in one model against one model per target (issue 34).

A seeded synthetic table with two regression targets (`price`, `days`) and a three-class one
(`condition`), all made from one hidden representation of twelve features, as real targets of
one table often are. For each seed: one multi-target run (`data.target: [price, days,
condition]`) and three single-target runs of the same config, each scored on a separate test
table; wall time is each run end to end (reading, training, writing its run folder). Prints a
markdown table of the scores (mean ± std over the seeds) and the ratios multi ÷ single.

    python benchmarks/targets.py                 # 20,000 rows, 3 seeds
    python benchmarks/targets.py --rows 5000 --seeds 2

Ratios are taken within one run; the machine is shared and noisy, so compare ratios, not seconds.
"""
from __future__ import annotations

import argparse
import os
import sys

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = {"price": "r2", "days": "r2", "condition": "accuracy"}
CONFIG = """seed: {seed}
data:
  path: {train}
  target: {target}
  exclude: {exclude}
model:
  layers: [64, 64]
training:
  optimizer: adam
  learning_rate: 0.003
  batch_size: 128
  iterations: {epochs}
  checkpoint_every: null
"""


def synthesize(rows: int, seed: int = 0):
    """A DataFrame of twelve features and the three targets, deterministic from `seed`."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 12))
    hidden = np.tanh(X @ rng.normal(size=(12, 8)) / np.sqrt(12) * 2)
    price = 100 + 30 * hidden @ rng.normal(size=8) + 5 * rng.normal(size=rows)
    days = np.exp(1 + 0.4 * hidden @ rng.normal(size=8)) + 0.5 * rng.normal(size=rows)
    logits = hidden @ rng.normal(size=(8, 3)) * 2 + rng.gumbel(size=(rows, 3))
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(12)])
    df["price"], df["days"] = price.round(2), days.round(3)
    df["condition"] = np.array(["good", "fair", "poor"])[logits.argmax(axis=1)]
    return df


def write_tables(folder: Path, rows: int) -> tuple[Path, Path]:
    train, test = folder / "train.csv", folder / "test.csv"
    table = synthesize(rows + rows // 4)
    table.iloc[:rows].to_csv(train, index=False)
    table.iloc[rows:].to_csv(test, index=False)
    return train, test


def run(folder: Path, train: Path, test: Path, target, seed: int, epochs: int) -> tuple[float, dict]:
    """(seconds, {target: test score}) of one run end to end."""
    from nnctl.commands.predict import evaluate_csv
    from nnctl.commands.train import train_config
    from nnctl.config import load_config

    name = "multi" if isinstance(target, list) else target
    config = folder / f"{name}-{seed}.yaml"
    # a single-target run leaves the other targets out of its inputs, as the multi-target run does
    exclude = [] if isinstance(target, list) else [t for t in TARGETS if t != target]
    config.write_text(CONFIG.format(seed=seed, train=train, epochs=epochs, exclude=f"[{', '.join(exclude)}]",
                                    target=f"[{', '.join(target)}]" if isinstance(target, list) else target))
    start = time.perf_counter()
    result = train_config(load_config(config), folder / "runs", name, plot=False, cache=False)
    seconds = time.perf_counter() - start
    report = evaluate_csv(result.run, test)
    names = target if isinstance(target, list) else [target]
    if isinstance(target, list):
        return seconds, {t: report[f"{t}.{TARGETS[t]}"] for t in names}
    return seconds, {target: report[TARGETS[target]]}


def _shown(values) -> str:
    return f"{statistics.fmean(values):.4f} ± {statistics.pstdev(values):.4f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train, test = write_tables(folder, args.rows)
        multi = {t: [] for t in TARGETS}
        single = {t: [] for t in TARGETS}
        times = {"multi": [], "single": []}
        for seed in range(args.seeds):
            seconds, scores = run(folder, train, test, list(TARGETS), seed, args.epochs)
            times["multi"].append(seconds)
            for t, v in scores.items():
                multi[t].append(v)
            total = 0.0
            for t in TARGETS:
                seconds, scores = run(folder, train, test, t, seed, args.epochs)
                total += seconds
                single[t].append(scores[t])
            times["single"].append(total)
    print(f"{args.rows:,} training rows, {args.rows // 4:,} test rows, {args.epochs} epochs, "
          f"{args.seeds} seeds (mean ± std)\n")
    print("| target | test metric | one multi-target run | three single-target runs | multi ÷ single |")
    print("|---|---|---|---|---|")
    for t, metric in TARGETS.items():
        ratio = statistics.fmean(multi[t]) / statistics.fmean(single[t])
        print(f"| {t} | {metric} | {_shown(multi[t])} | {_shown(single[t])} | {ratio:.3f} |")
    ratio = [m / s for m, s in zip(times["multi"], times["single"])]
    print(f"| wall time | | 1 run | 3 runs | {statistics.fmean(ratio):.2f} (± {statistics.pstdev(ratio):.2f}) |")


if __name__ == "__main__":
    main()
