"""nnctl's benchmark suite: training speed against PyTorch and scikit-learn, start-up, end-to-end
time, dataset reload and peak memory. Prints figures; asserts nothing (tests do that).

    pip install torch --index-url https://download.pytorch.org/whl/cpu   # PyTorch's CPU build
    pip install -e ".[bench]"            # scikit-learn (and torch, if absent), optional peers
    python benchmarks/bench.py           # all workloads, 3 repeats
    python benchmarks/bench.py --workloads W1 W2 --repeat 5 --skip-cli
    python benchmarks/bench.py --workloads W1 W2 --baseline HEAD~1   # this tree vs a revision
                                                                     # ("base ÷ own" is the like-for-like ratio)

Training speed is measured as the checker does: each run at E and 3E epochs, nnctl and its peers
alternated in the same process, and the difference of the two times (which cancels start-up and
CSV parsing) gives the seconds of 2E epochs of the training loop as a user runs it — validation,
history and logging included. Ratios are taken within one run; the machine is shared and noisy,
so compare ratios, not absolute figures. float32, 2 threads (OMP/OPENBLAS/MKL_NUM_THREADS).
"""
from __future__ import annotations

import argparse
import os
import sys

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

import contextlib  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# name: rows, features, hidden layers, classes, batch (0 = full), learning rate, E epochs
WORKLOADS = {
    "W1": (150, 4, [16], 3, 0, 0.1, 2000),
    "W2": (20_000, 64, [128, 64], 10, 64, 0.01, 10),
    "W3": (60_000, 784, [256, 128], 10, 128, 0.01, 2),
}
# Whole-process (CLI) timings need a loop long enough to dominate the jitter of starting two
# processes: W1's 2000 epochs take nnctl about 0.05 s, so its CLI rows run 10x the epochs; W2's
# 20 (the 3E - E difference) about 0.4 s, so 3x.
CLI_EPOCH_FACTOR = {"W1": 10, "W2": 3}


# --- data ------------------------------------------------------------------------------------
# The workloads as they were defined: the recipe defaults (#33) would add a periodic embedding,
# a schedule, warm-up and early stopping (which ends W1 long before its epochs, so 3E - E would
# time nothing). A baseline tree gets only the keys its config spec names.
PINNED = {"data": {"scale": "standard", "embedding": "{}"},
          "model": {"numeric_embedding": "none"},
          "training": {"l2": "0.0", "schedule": "constant", "warmup": "0", "early_stopping": "null"}}


def synthesize(name: str, data_dir: Path, tree: Path | None = None) -> tuple[Path, Path]:
    """(csv, config) of a workload, made deterministically once and reused; with `tree` (another
    revision's source), a config of the keys that tree knows."""
    rows, features, layers, classes, batch, lr, epochs = WORKLOADS[name]
    csv, config = data_dir / f"{name.lower()}.csv", data_dir / f"{name.lower()}{'.base' if tree else ''}.yaml"
    spec = (tree / "nnctl" / "config" / "spec.py").read_text() if tree else None
    pins = {section: "".join(f"  {key}: {value}\n" for key, value in keys.items()
                             if spec is None or f'"{key}"' in spec)
            for section, keys in PINNED.items()}
    if not csv.exists():
        import pandas as pd

        rng = np.random.default_rng(int(name[1:]))
        if name == "W3":  # pixel-like integers 0..255, as MNIST
            X = rng.integers(0, 256, size=(rows, features)).astype(np.int32)
            Xf = X / 255.0
        else:
            X = Xf = rng.normal(size=(rows, features)).round(4)
        teacher = rng.normal(size=(features, classes))
        y = np.argmax(np.tanh(Xf @ teacher) + 0.1 * rng.normal(size=(rows, classes)), axis=1)
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(features)])
        frame["label"] = y
        tmp = csv.with_suffix(".tmp")
        frame.to_csv(tmp, index=False)
        tmp.rename(csv)
    config.write_text(
        f"seed: 0\ndata:\n  path: {csv.name}\n  target: label\n  validation_split: 0.2\n{pins['data']}"
        f"model:\n  task: classification\n  layers: {layers}\n  activation: relu\n{pins['model']}"
        f"training:\n  optimizer: sgd\n  learning_rate: {lr}\n  batch_size: {batch or 'null'}\n"
        f"  iterations: {epochs}\n  log_every: auto\n{pins['training']}")
    return csv, config


def train_rows_of(name: str) -> int:
    return WORKLOADS[name][0] - round(0.2 * WORKLOADS[name][0])  # the configs hold out 20%


def weights_of(name: str) -> int:
    rows, features, layers, classes, *_ = WORKLOADS[name]
    sizes = [features] + layers + [classes]
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


# --- peers -----------------------------------------------------------------------------------
def nnctl_api(config: Path, epochs: int) -> float:
    """Seconds of nnctl's training loop (validation, history and plain-line logging included)."""
    from loop_time import main as loop_seconds_of

    return loop_seconds_of(str(config), epochs)


def torch_api(name: str, csv: Path, epochs: int) -> float:
    rows, features, layers, classes, batch, lr, _ = WORKLOADS[name]
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "torch_mlp.py"), str(csv), "--layers",
                          *map(str, layers), "--batch", str(batch), "--lr", str(lr), "--epochs", str(epochs)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def sklearn_api(config: Path, epochs: int) -> float:
    """scikit-learn's MLPClassifier on the same prepared data, in its own process: SciPy's
    OpenBLAS thread pool in this process would slow nnctl's in-process rows."""
    out = subprocess.run([sys.executable, __file__, "--sklearn-peer", str(config), str(epochs)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _sklearn_fit(config: Path, epochs: int) -> float:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from nnctl.config import load_config
    from nnctl.data import load_dataset

    cfg = load_config(config)
    dataset = load_dataset(cfg)
    t = cfg.training
    model = MLPClassifier(hidden_layer_sizes=cfg.model.layers, solver="sgd", learning_rate_init=t.learning_rate,
                          batch_size=t.batch_size or len(dataset.X_train), momentum=0.0, nesterovs_momentum=False,
                          alpha=0.0, max_iter=epochs, tol=0.0, n_iter_no_change=10**9, shuffle=True, random_state=0)
    X, y = np.asarray(dataset.X_train), np.asarray(dataset.y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X, y)
        return time.perf_counter() - start


def base_api(tree: Path, config: Path, epochs: int) -> float:
    """The training loop of another revision's source tree (see loop_time.py)."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "loop_time.py"), str(config), str(epochs)],
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(tree)})
    return float(out.stdout.strip().splitlines()[-1])


def base_cli(tree: Path, config: Path, epochs: int, runs: Path) -> float:
    """`nnctl train` of another revision's source tree, as a whole process."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nnctl", "train", str(config), "--quiet", "--runs-dir", str(runs),
                    "--set", f"training.iterations={epochs}"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(tree)},
                   cwd=tree)  # `python -m` puts the working folder first on the import path
    return time.perf_counter() - start


@contextlib.contextmanager
def source_tree(rev: str | None):
    """A checkout of `rev` in a temporary folder (None: nothing)."""
    if rev is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as tree:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        yield Path(tree)


def wall(cmd: list[str], cwd=None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    return time.perf_counter() - start


def nnctl_cli(config: Path, epochs: int, runs: Path) -> float:
    return wall([sys.executable, "-m", "nnctl", "train", str(config), "--quiet", "--runs-dir", str(runs),
                 "--set", f"training.iterations={epochs}"])


def torch_cli(name: str, csv: Path, epochs: int) -> float:
    rows, features, layers, classes, batch, lr, _ = WORKLOADS[name]
    return wall([sys.executable, str(ROOT / "benchmarks" / "torch_mlp.py"), str(csv), "--layers", *map(str, layers),
                 "--batch", str(batch), "--lr", str(lr), "--epochs", str(epochs)])


def loop_seconds(runs: dict, repeat: int, epochs: int) -> dict:
    """For each peer, the best time of 2E epochs: min over repeats of t(3E) - t(E), with the
    peers alternated inside every repeat."""
    times = {peer: {1: [], 3: []} for peer in runs}
    for _ in range(repeat):
        for factor in (1, 3):
            for peer, run in runs.items():
                times[peer][factor].append(run(epochs * factor))
    return {peer: max(min(t[3]) - min(t[1]), 1e-9) for peer, t in times.items()}


# --- the other figures -----------------------------------------------------------------------
def gemm_peak() -> float:
    """GFLOP/s of a large float32 matrix product with this NumPy, best of 5."""
    a = np.random.default_rng(0).normal(size=(2048, 2048)).astype(np.float32)
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    best = min(_timed(lambda: np.matmul(a, a, out=out)) for _ in range(5))
    return 2 * 2048 ** 3 / best / 1e9


def products_per_batch(name: str, repeat: int = 5) -> float:
    """Seconds of one batch's matrix products alone, each timed on its own as nnctl calls it:
    a forward product per layer, a weight gradient per layer, an input gradient per layer but
    the first. The rest of a batch (biases, activations, softmax, update) costs extra, so PyTorch's
    time per batch over this is the most any NumPy trainer could beat it by on this machine."""
    rows, features, layers, classes, batch, *_ = WORKLOADS[name]
    n = batch or train_rows_of(name)
    sizes = [features] + layers + [classes]
    rng = np.random.default_rng(0)
    acts = [rng.normal(size=(n, k)).astype(np.float32) for k in sizes]
    weights = [rng.normal(size=(a, b)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    grads = [np.empty_like(W) for W in weights]
    calls = []
    for i, W in enumerate(weights):
        calls.append(lambda a=acts[i], W=W, z=acts[i + 1]: np.dot(a, W, out=z))
        calls.append(lambda a=acts[i], d=acts[i + 1], g=grads[i]: np.dot(a.T, d, out=g))
        if i > 0:
            calls.append(lambda d=acts[i + 1], W=W, out=acts[i]: np.dot(d, W.T, out=out))
    number = max(1, int(2e-3 / max(_timed(calls[0]), 1e-7)))
    return sum(min(_timed(lambda: [call() for _ in range(number)]) for _ in range(repeat)) / number
               for call in calls)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def startup(repeat: int) -> tuple[float, float]:
    """(`nnctl --help`, `python -c pass`) wall seconds, best of `repeat`."""
    help_ = min(wall([sys.executable, "-m", "nnctl", "--help"]) for _ in range(repeat))
    bare = min(wall([sys.executable, "-c", "pass"]) for _ in range(repeat))
    return help_, bare


def end_to_end(repeat: int) -> float:
    with tempfile.TemporaryDirectory() as runs:
        return min(wall([sys.executable, "-m", "nnctl", "train", str(ROOT / "configs" / "iris.yaml"), "--quiet",
                         "--runs-dir", runs]) for _ in range(repeat))


def reload(config: Path) -> tuple[float, float]:
    """(first, second) seconds of load_dataset on a cold, then warm, dataset cache."""
    from nnctl.config import load_config
    from nnctl.data import load_dataset

    with tempfile.TemporaryDirectory() as cache:
        os.environ["NNCTL_CACHE_DIR"] = cache
        cfg = load_config(config)
        first = _timed(lambda: load_dataset(cfg))
        second = _timed(lambda: load_dataset(cfg))
        del os.environ["NNCTL_CACHE_DIR"]
    return first, second


def peak_memory(config: Path) -> tuple[float, float]:
    """(peak bytes held while training one epoch, bytes of float32 data + model). The data
    arrays are counted in full; what training allocates is traced with tracemalloc."""
    from nnctl.training.build import build_network
    from nnctl.config import load_config
    from nnctl.data import load_dataset
    from nnctl.training import train

    cfg = load_config(config, ["training.iterations=1"])
    dataset = load_dataset(cfg, cache=False)
    data_bytes = sum(np.asarray(getattr(dataset, n)).nbytes for n in ("X_train", "X_val", "y_train", "y_val"))
    network = build_network(cfg, dataset)
    tracemalloc.start()
    train(network, dataset, cfg.training, seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    model_bytes = network.flat_params.nbytes
    return data_bytes + model_bytes + peak, data_bytes + model_bytes


# --- report ----------------------------------------------------------------------------------
def budget_line(name: str, seconds: dict, batches: int, products: float) -> str:
    """Per batch: the matrix products alone, nnctl's whole loop and PyTorch's, and so the
    ceiling on nnctl's ratio if everything but the products cost nothing."""
    line = (f"{name} per batch: matrix products alone {products * 1e6:.1f} µs, "
            f"nnctl's whole loop {seconds['nnctl'] / batches * 1e6:.1f} µs")
    if "pytorch" in seconds:
        torch_batch = seconds["pytorch"] / batches
        line += (f", PyTorch's {torch_batch * 1e6:.1f} µs: even with everything but the products free, "
                 f"at most {torch_batch / products:.1f}× PyTorch")
    return line


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-cli", action="store_true", help="skip the whole-command-line comparison")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "data")
    parser.add_argument("--baseline", metavar="REV", help="also time nnctl as of this git revision (peer 'base')")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    torch_ok = have("torch") and not args.skip_torch
    sklearn_ok = have("sklearn")

    peak = gemm_peak()
    print(f"machine: {os.cpu_count()} cores, {os.environ['OPENBLAS_NUM_THREADS']} BLAS threads; "
          f"NumPy {np.__version__} float32 GEMM peak {peak:.1f} GFLOP/s (2048³)\n")
    header = f"{'workload':9} {'how':6} {'peer':8} {'samples/s':>12} {'GFLOP/s':>9} {'% peak':>7} {'nnctl ÷ peer':>13}"
    print(header)
    print("-" * len(header))
    budgets = []
    with tempfile.TemporaryDirectory() as runs, source_tree(args.baseline) as base:
        for name in args.workloads:
            rows, features, layers, classes, batch, lr, epochs = WORKLOADS[name]
            csv, config = synthesize(name, args.data_dir)
            train_rows = train_rows_of(name)
            suites = {"api": {"nnctl": lambda e, c=config: nnctl_api(c, e)}}
            if torch_ok:
                suites["api"]["pytorch"] = lambda e, n=name, c=csv: torch_api(n, c, e)
            if sklearn_ok:
                suites["api"]["sklearn"] = lambda e, c=config: sklearn_api(c, e)
            if base is not None:
                base_config = synthesize(name, args.data_dir, base)[1]
                suites["api"]["base"] = lambda e, c=base_config: base_api(base, c, e)
                # this tree timed exactly as `base` is (its own process, loop_time.py): the like-for-like
                # peer for the base ratio, as the in-process row runs under other conditions
                suites["api"]["own"] = lambda e, c=config: base_api(ROOT, c, e)
            if not args.skip_cli:
                suites["cli"] = {"nnctl": lambda e, c=config: nnctl_cli(c, e, Path(runs))}
                if torch_ok:
                    suites["cli"]["pytorch"] = lambda e, n=name, c=csv: torch_cli(n, c, e)
                if base is not None:
                    suites["cli"]["base"] = lambda e, c=base_config: base_cli(base, c, e, Path(runs))
            for how, peers in suites.items():
                nnctl_api(config, 1)  # warm the dataset cache and imports
                run_epochs = epochs * (CLI_EPOCH_FACTOR.get(name, 1) if how == "cli" else 1)
                # the products are timed on both sides of the loop, the faster kept: a burst of
                # load from another tenant would otherwise inflate them (once 35 -> 55 us for W2)
                products = products_per_batch(name) if how == "api" else None
                seconds = loop_seconds(peers, args.repeat, run_epochs)
                samples = 2 * run_epochs * train_rows
                flops = 6 * weights_of(name) * samples
                for peer, s in seconds.items():
                    ratio = "" if peer == "nnctl" else f"{s / seconds['nnctl']:.2f}×"
                    gflops = flops / s / 1e9
                    print(f"{name:9} {how:6} {peer:8} {samples / s:12,.0f} {gflops:9.1f} {100 * gflops / peak:6.0f}% {ratio:>13}")
                if "own" in seconds and "base" in seconds:
                    print(f"{name:9} {how:6} base ÷ own (each in its own process): {seconds['base'] / seconds['own']:.2f}×"
                          " (below 1: this tree is slower)")
                if how == "api":
                    products = min(products, products_per_batch(name))
                    budgets.append(budget_line(name, seconds, 2 * run_epochs * -(-train_rows // (batch or train_rows)),
                                               products))
        print()
        for line in budgets:
            print(line)
        help_, bare = startup(max(args.repeat, 5))
        print(f"startup: `nnctl --help` {help_:.3f} s (python -c pass: {bare:.3f} s)")
        print(f"end to end: `nnctl train configs/iris.yaml` {end_to_end(args.repeat):.3f} s wall")
        if "W3" in args.workloads:
            first, second = reload(synthesize("W3", args.data_dir)[1])
            print(f"data reload (W3 CSV): first {first:.2f} s, second {second:.3f} s: {first / second:.0f}× faster")
            held, budget = peak_memory(synthesize("W3", args.data_dir)[1])
            print(f"peak memory training W3: {held / 2**20:.0f} MB = {held / budget:.2f}× (float32 data + model: "
                  f"{budget / 2**20:.0f} MB)")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--sklearn-peer":  # the peer's own process
        print(_sklearn_fit(Path(sys.argv[2]), int(sys.argv[3])))
        sys.exit(0)
    with contextlib.suppress(KeyboardInterrupt):
        main()
