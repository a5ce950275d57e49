"""What K members trained at once cost: the training loop's marginal time for `model.ensemble: 8`
against one member, against 8 separate runs, and against PyTorch doing the same with
`torch.func.stack_module_state` + `vmap`. Prints figures; asserts nothing.

    python benchmarks/ensemble.py                       # W1, W2, W3; K = 8; 3 repeats
    python benchmarks/ensemble.py --workloads W1 W2 --members 4 --repeat 5 --skip-torch
    python benchmarks/ensemble.py --seeds 8             # `train iris --seeds 8` against --separate --workers 2
    python benchmarks/ensemble.py --seeds 8 --seeds-on iris W2 --repeat 3
    python benchmarks/ensemble.py --cv 5                # `cv --folds 5` on iris and W2 against --separate --workers 2
    python benchmarks/ensemble.py --sweep 8             # a grid sweep of 8 learning rates, the same way

As bench.py: each timing is the difference of E and 3E epochs (start-up and CSV parsing cancel),
the best of the repeats, with the peers alternated inside every repeat. All ratios are within one
run of this script; the machine is shared, so compare ratios, not seconds. The workloads are
bench.py's (W1 150 × 4 → 16 → 3 full batch; W2 20k × 64 → 128 → 64 → 10, batch 64; W3 60k × 784 →
256 → 128 → 10, batch 128), SGD, float32, 2 threads.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import WORKLOADS, have, loop_seconds, synthesize  # noqa: E402

# W3's 2 epochs of 8 members would take minutes on two cores; one epoch shows the same ratio
EPOCHS = {"W1": 2000, "W2": 10, "W3": 1}


def nnctl_loop(config: Path, members: int):
    from loop_time import main as loop_seconds_of

    return lambda epochs: loop_seconds_of(str(config), epochs, [f"model.ensemble={members}"])


def torch_loop(name: str, csv: Path, members: int):
    rows, features, layers, classes, batch, lr, _ = WORKLOADS[name]

    def run(epochs: int) -> float:
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "torch_ensemble.py"), str(csv),
                              "--members", str(members), "--layers", *map(str, layers), "--batch", str(batch),
                              "--lr", str(lr), "--epochs", str(epochs)],
                             capture_output=True, text=True, check=True, cwd=ROOT / "benchmarks")
        return float(out.stdout.strip().splitlines()[-1])

    return run


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nnctl", *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def members_ratio(base: list[str], repeat: int, runs: Path, grouped: bool = False) -> tuple:
    """Whole commands as a user runs them, `base` (`train CONFIG --seeds N` or `cv CONFIG --folds
    K`: members of one pass) then the same with `--separate --workers 2` (and with `grouped`,
    `--workers 2`: two groups of members), alternated `repeat` times: (median seconds of each)."""
    members, separate, groups = [], [], []
    base = [*base, "--quiet", "--runs-dir", str(runs)]
    for _ in range(repeat):
        members.append(timed(base))
        separate.append(timed(base + ["--separate", "--workers", "2"]))
        if grouped:
            groups.append(timed(base + ["--workers", "2"]))
    return statistics.median(members), statistics.median(separate), statistics.median(groups) if grouped else None


def whole_command_part(args, command: str, flag: str, n: int, tables: list[str]) -> None:
    for table in tables:
        config = ROOT / "configs" / "iris.yaml" if table == "iris" else synthesize(table, args.data_dir)[1]
        with tempfile.TemporaryDirectory() as folder:
            if command == "sweep":  # a grid of n learning rates: trials as members, n / 2 per worker
                sweep = Path(folder) / "rates.yaml"
                rates = ", ".join(f"{0.001 * 1.5 ** i:.6g}" for i in range(n))
                sweep.write_text(f"config: {config}\nmethod: grid\nparameters:\n"
                                 f"  training.learning_rate: {{values: [{rates}]}}\n")
                base = [command, str(sweep)]
            else:
                base = [command, str(config), flag, str(n)]
            members, separate, groups = members_ratio(base, args.repeat, Path(folder), grouped=command == "cv")
        shown = f"{command} of {n} learning rates" if command == "sweep" else f"{command} {flag} {n}"
        print(f"{shown} on {table}: members of one pass take {members / separate:.2f}x the time of "
              f"--separate --workers 2 ({separate / members:.2f}x faster; median of {args.repeat})"
              + ("" if groups is None else f"; two groups of members (--workers 2) {groups / separate:.2f}x"),
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", nargs="+", default=["W1", "W2", "W3"], choices=sorted(WORKLOADS))
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "data")
    parser.add_argument("--seeds", type=int, metavar="N",
                        help="instead: `nnctl train CONFIG --seeds N` (members) against --separate --workers 2")
    parser.add_argument("--seeds-on", nargs="+", default=["iris"], choices=["iris", *sorted(WORKLOADS)])
    parser.add_argument("--cv", type=int, metavar="K",
                        help="instead: `nnctl cv CONFIG --folds K` (members) against --separate --workers 2")
    parser.add_argument("--cv-on", nargs="+", default=["iris", "W2"], choices=["iris", *sorted(WORKLOADS)])
    parser.add_argument("--sweep", type=int, metavar="N",
                        help="instead: a grid sweep of N learning rates (trials as members) against --separate "
                             "--workers 2, on the --cv-on tables")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if args.sweep:
        return whole_command_part(args, "sweep", "", args.sweep, args.cv_on)
    if args.seeds:
        return whole_command_part(args, "train", "--seeds", args.seeds, args.seeds_on)
    if args.cv:
        return whole_command_part(args, "cv", "--folds", args.cv, args.cv_on)
    K = args.members
    with_torch = not args.skip_torch and have("torch")
    print(f"K = {K} members; marginal seconds of 2E epochs of the training loop, best of {args.repeat}")
    header = f"{'workload':8} {'E':>5} {'K=1 s':>8} {'K=%d s' % K:>8} {'K/1':>6} {'÷ %d runs' % K:>9}"
    if with_torch:
        header += f" {'torch K=1':>10} {'torch K':>8} {'torch K/1':>9} {'nnctl ÷ torch':>13}"
    print(header)
    with tempfile.TemporaryDirectory():
        for name in args.workloads:
            csv, config = synthesize(name, args.data_dir)
            runs = {"one": nnctl_loop(config, 1), "members": nnctl_loop(config, K)}
            if with_torch:
                runs.update({"torch_one": torch_loop(name, csv, 1), "torch": torch_loop(name, csv, K)})
            seconds = loop_seconds(runs, args.repeat, EPOCHS[name])
            line = (f"{name:8} {EPOCHS[name]:>5} {seconds['one']:>8.3f} {seconds['members']:>8.3f} "
                    f"{seconds['members'] / seconds['one']:>6.2f} {seconds['members'] / (K * seconds['one']):>9.2f}")
            if with_torch:
                line += (f" {seconds['torch_one']:>10.3f} {seconds['torch']:>8.3f} "
                         f"{seconds['torch'] / seconds['torch_one']:>9.2f} {seconds['members'] / seconds['torch']:>13.2f}")
            print(line, flush=True)
    print(f"K/1: K members' time over one member's (goal: <= 2.0 on W1, <= 3.0 on W2); ÷ {K} runs: over {K} "
          "separate runs' (goal: <= 1.0 on W3); nnctl ÷ torch: < 1.0 means nnctl is faster")


if __name__ == "__main__":
    main()
