"""The honest payoff of dropout and batch norm (issue 23): configs/breast_cancer.yaml,
configs/diabetes.yaml and a synthesized table with a high-cardinality `shop` column (trained with
`shop` one-hot and with data.embedding {shop: 16}), each trained over model.dropout {0, 0.1, 0.3}
x model.normalization {none, batch}, scored once on a held-out test file. Prints one table per
table and variant; asserts nothing.

    python benchmarks/payoff.py                 # 4 tables, 6 combinations x 3 seeds each
    python benchmarks/payoff.py --iterations 50 --seeds 1
    python benchmarks/payoff.py --shop-rows 25000 --shop-categories 2000   # embedding.py's size

The shop table is benchmarks/embedding.py's generator (each shop's effect on the label drawn from
N(0, 1), two of four numeric columns matter; its own 80/20 train/test files and config: layers
[64], adam, batch 64, 20 epochs, early stopping) at 6,000 rows and 300 categories by default, so
that one-hot's 36 runs stay within a couple of minutes on 2 cores.

Each bundled CSV is split once, by seed, into a training file (80%; its own validation_split
still picks the early-stopping rows out of it) and a test file (20%) that no run sees before
its final model is scored, written under benchmarks/data/. Everything else is the bundled
config, except batch_size when the training part would end an epoch in a batch of one row,
which batch norm refuses; then every combination uses the same next size up.
"""
from __future__ import annotations

import argparse
import os
import sys

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

import itertools  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

TABLES = {"breast_cancer": "accuracy", "diabetes": "r2"}
SHOP = {"shop one-hot": [], "shop embedding 16": ["data.embedding={shop: 16}"]}
METRICS = {**TABLES, **{name: "accuracy" for name in SHOP}}
DROPOUTS = (0.0, 0.1, 0.3)
NORMALIZATIONS = ("none", "batch")


def split(name: str, data_dir: Path, seed: int = 0, test_share: float = 0.2) -> tuple[Path, Path]:
    """The bundled CSV's rows, shuffled by `seed`, as <name>-train.csv and <name>-test.csv."""
    source = ROOT / "datasets" / f"{name}.csv"
    header, *rows = source.read_text().splitlines(keepends=True)
    order = np.random.default_rng(seed).permutation(len(rows))
    cut = int(round(len(rows) * test_share))
    train, test = data_dir / f"{name}-train.csv", data_dir / f"{name}-test.csv"
    train.write_text(header + "".join(rows[i] for i in sorted(order[cut:])))
    test.write_text(header + "".join(rows[i] for i in sorted(order[:cut])))
    return train, test


def measure(name: str, data_dir: Path, extra: list[str] = (), seeds: int = 3,
            shop: tuple[int, int] = (6_000, 300)) -> dict[tuple[float, str], list[float]]:
    """Held-out test scores of each (dropout, normalization) on one table, one per seed (42, 43,
    ...: the init, the dropout masks and the validation rows change; the test file does not).
    `name` is a bundled table or a key of SHOP (the synthesized table at `shop` = (rows,
    categories))."""
    from layers import batch_for_batch_norm

    from nnctl import load_config, train_config
    from nnctl.data import load_dataset

    if name in SHOP:
        from embedding import synthesize

        config = synthesize(data_dir, *shop)
        base = [*SHOP[name], *extra]
    else:
        train, test = split(name, data_dir)
        base = [f"data.path={train}", f"data.test_path={test}", *extra]
        config = ROOT / "configs" / f"{name}.yaml"
    plain = load_config(config, base)
    rows = len(load_dataset(plain, cache=False).X_train)
    batch = batch_for_batch_norm(rows, plain.training.batch_size)
    scores = {}
    with tempfile.TemporaryDirectory() as runs, open(os.devnull, "w") as devnull:
        for dropout, norm, seed in itertools.product(DROPOUTS, NORMALIZATIONS, range(42, 42 + seeds)):
            cfg = load_config(config, [*base, f"training.batch_size={batch or 'null'}", f"seed={seed}",
                                       f"model.dropout={dropout}", f"model.normalization={norm}"])
            stdout, sys.stdout = sys.stdout, devnull
            try:
                result = train_config(cfg, runs_dir=runs, plot=False, cache=False)
            finally:
                sys.stdout = stdout
            scores.setdefault((dropout, norm), []).append(float(result.metrics["test"][METRICS[name]]))
    return scores


def table(name: str, scores: dict[tuple[float, str], list[float]]) -> str:
    """Mean ± standard deviation over the seeds."""
    metric = METRICS[name]
    lines = [f"{name} (test {metric})".ljust(32) + "".join(f"{'norm ' + n:>18}" for n in NORMALIZATIONS)]
    for dropout in DROPOUTS:
        cells = [f"{np.mean(scores[dropout, n]):.4f} ± {np.std(scores[dropout, n]):.4f}" for n in NORMALIZATIONS]
        lines.append(f"{'dropout ' + str(dropout):<32}" + "".join(f"{c:>18}" for c in cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=None, help="epochs (default: each config's own)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per combination, seeds 42, 43, ...")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "data")
    parser.add_argument("--shop-rows", type=int, default=6_000, help="the synthesized shop table's rows")
    parser.add_argument("--shop-categories", type=int, default=300, help="its shop categories")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    extra = [f"training.iterations={args.iterations}"] if args.iterations else []
    for name in METRICS:
        scores = measure(name, args.data_dir, extra, args.seeds, (args.shop_rows, args.shop_categories))
        print(table(name, scores), flush=True)
        print()


if __name__ == "__main__":
    main()
