"""What training runs as the members of one pass gains. Prints ratios measured in one run.

    python benchmarks/ensemble.py --seeds 8                  # iris: --seeds 8 against --seeds 8 --separate --workers 2
    python benchmarks/ensemble.py --seeds 8 --table w2       # the same on bench.py's W2 (20,000 x 64)
    python benchmarks/ensemble.py --seeds 8 --repeat 3       # the median of 3 of each, interleaved

Each figure is the whole command as a user runs it (`nnctl train CONFIG --seeds N --quiet`, a
fresh process), members first and separate runs second, alternated `--repeat` times so that a
change in the machine's load falls on both; the ratio is of the medians.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nnctl", *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def seeds_ratio(config: Path, seeds: int, repeat: int, runs: Path) -> tuple[float, float]:
    """(median seconds as members, median seconds as separate runs on 2 workers)."""
    members, separate = [], []
    base = ["train", str(config), "--seeds", str(seeds), "--quiet", "--runs-dir", str(runs)]
    for _ in range(repeat):
        members.append(timed(base))
        separate.append(timed(base + ["--separate", "--workers", "2"]))
    return statistics.median(members), statistics.median(separate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="N of `train --seeds N`")
    parser.add_argument("--table", choices=["iris", "w2"], default="iris")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "data")
    args = parser.parse_args()
    if args.table == "iris":
        config = ROOT / "configs" / "iris.yaml"
    else:
        from bench import synthesize

        args.data_dir.mkdir(parents=True, exist_ok=True)
        config = synthesize("W2", args.data_dir)[1]
    with tempfile.TemporaryDirectory() as folder:
        members, separate = seeds_ratio(config, args.seeds, args.repeat, Path(folder))
    print(f"train --seeds {args.seeds} on {args.table}: members of one pass take {members / separate:.2f}x the time "
          f"of --separate --workers 2 ({separate / members:.2f}x faster; median of {args.repeat})")


if __name__ == "__main__":
    main()
