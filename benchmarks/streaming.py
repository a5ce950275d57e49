"""Bigger than memory (issue 27): what streaming costs, printed as figures; asserts nothing.

    python benchmarks/streaming.py                                # 4 GB CSV and its Parquet, 1 GB budget
    python benchmarks/streaming.py --size-gb 0.5 --skip-train     # the first pass only, smaller
    python benchmarks/streaming.py --skip-first-pass --rows 50000 --epochs 2 --no-rss

1. The first pass over a generated table of --size-gb, as CSV and as Parquet
   (`data.onepass.write_shards`: the table read once, learned from and written as shards into a
   throwaway folder; for CSV with the default reader, pandas', and with pyarrow's), in MB of the file per
   second against a peer measured in the same run: `pandas.read_csv` of the same CSV in chunks
   (parsing alone, nothing learned), `pyarrow.parquet.read_table` of the Parquet (the whole file
   at once, on every core), each in its own subprocess under NNCTL_MEMORY_LIMIT=--budget, which
   reports its peak RSS and its CPU seconds (every thread's, over the timed part; "CPU ratio" is the peer's CPU
   seconds over the pass's, the figure to read on a machine shared with other work; each
   times its reading alone, its modules imported before the clock starts). The table: 10 numeric columns, 2 integer, 3 categorical (12, 8 and 4
   categories: 36 inputs once one-hot encoded) and a 3-class target that depends on some of
   them; written in chunks from a seed, so the same arguments give the same bytes. Generated
   files are kept in --workdir and reused.
2. Training throughput: the same config (layers [32], adam, batch 256, float32) on a table that
   fits (--rows x --features), trained with data.streaming false and true, rows per second of
   training (the loop's own seconds, so the first pass and loading are left out; the shards are
   written by an untimed first run and read from the page cache after, as a second run on the
   same table would); the best of --repeat runs of each, taking turns, and rows per CPU
   second of the process beside them.
3. Peak RSS of each as `nnctl train` in a subprocess, the streamed one under
   NNCTL_MEMORY_LIMIT=--budget (ru_maxrss of the children), from the shards step 2 left in the
   cache.
4. The shuffle window's effect on convergence: the in-memory full shuffle against windows of 8
   shards and of 1 shard (shards of --shard-rows rows), same seed, validation loss per epoch (on
   one validation file, --shuffle-rows / 5 rows, so every variant is scored on the same rows), on
   the table in random row order and on the same rows sorted by the target (the worst case: a
   window then holds one class). Written as a Markdown table and shuffle.png under --workdir.
   The training tables are synthesized, seeded: Gaussian features, three classes from two linear
   rules with 10% of labels flipped; written as Parquet a row group at a time.

Every figure also goes to --workdir/figures.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GENERATE_ROWS = 200_000  # rows written at a time
CATEGORIES = {"shop": 12, "region": 8, "channel": 4}


def table_chunk(rng, rows: int):
    """One chunk of the generated table, a DataFrame of `rows` rows."""
    import pandas as pd

    numbers = rng.normal(size=(rows, 10)).round(5)
    frame = pd.DataFrame(numbers, columns=[f"x{i}" for i in range(10)])
    frame["count"] = rng.poisson(3.0, rows)
    frame["age"] = rng.integers(18, 90, rows)
    for name, n in CATEGORIES.items():
        frame[name] = np.array([f"{name[0]}{i}" for i in range(n)], dtype=object)[rng.integers(0, n, rows)]
    score = numbers[:, 0] + 0.5 * numbers[:, 1] - 0.3 * frame["count"].to_numpy() + (frame["channel"] == "c1")
    frame["label"] = np.digitize(score + rng.normal(0, 0.5, rows), [-1.2, 0.2])
    return frame


def generate(path: Path, size_bytes: int, seed: int = 0, chunk_rows: int = GENERATE_ROWS) -> int:
    """Write a CSV of about `size_bytes` (whole chunks) at `path`; returns its rows. pyarrow's
    CSV writer, because pandas' to_csv would take longer than the measurements."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    rows, tmp, writer = 0, path.with_suffix(".tmp"), None
    with pa.OSFile(str(tmp), "wb") as sink:
        while sink.tell() < size_bytes:
            chunk = pa.Table.from_pandas(table_chunk(rng, chunk_rows), preserve_index=False)
            writer = writer or pacsv.CSVWriter(sink, chunk.schema,
                                               write_options=pacsv.WriteOptions(quoting_style="needed"))
            writer.write_table(chunk)
            rows += chunk.num_rows
        writer.close()
    tmp.rename(path)
    return rows


def to_parquet(csv: Path, path: Path, row_group: int = 500_000) -> None:
    """The CSV's rows as Parquet, written chunk by chunk (row groups of `row_group` rows)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp, writer = path.with_suffix(".tmp"), None
    for chunk in pd.read_csv(csv, chunksize=row_group):
        batch = pa.Table.from_pandas(chunk, preserve_index=False)
        writer = writer or pq.ParquetWriter(tmp, batch.schema)
        writer.write_table(batch, row_group_size=row_group)
    writer.close()
    tmp.rename(path)


def prepare(workdir: Path, size_gb: float, chunk_rows: int = GENERATE_ROWS) -> tuple[Path, Path]:
    """The CSV and Parquet files of this size in `workdir`, generated once."""
    workdir.mkdir(parents=True, exist_ok=True)
    csv = workdir / f"table-{size_gb:g}gb.csv"
    parquet = csv.with_suffix(".parquet")
    if not csv.exists():
        start = time.perf_counter()
        rows = generate(csv, int(size_gb * 2**30), chunk_rows=chunk_rows)
        print(f"wrote {csv} ({rows:,} rows) in {time.perf_counter() - start:.0f} s", flush=True)
    if not parquet.exists():
        to_parquet(csv, parquet, row_group=max(chunk_rows * 5 // 2, 250))  # 500,000 by default
    return csv, parquet


# --- measurements, each in a subprocess of its own (peak RSS is per process) -------------------

def _first_pass(path: str, workdir: str, arrow: bool | None = None) -> dict:
    """Streaming's first pass as `nnctl train` makes it (`data.onepass.write_shards`): the table
    read once, learned from and written as shards, into a throwaway folder; a CSV with the
    default reader (reading.PREFER_ARROW), or with pyarrow's (`arrow` True) or pandas' (False)."""
    import shutil

    from nnctl.config import resolve
    from nnctl.data import reading
    from nnctl.data.onepass import write_shards
    from nnctl.data.streamed import shard_rows_for

    cfg = resolve({"data": {"path": path, "target": "label", "categorical": list(CATEGORIES)}}, base_dir=".")
    folder = Path(workdir) / "shards"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    # the readers' modules are imported before the clock starts, as each peer imports its own:
    # importing pandas and pyarrow takes 0.6-0.8 CPU s whatever the file's size, half of the
    # pass's time on the 124 MB Parquet, and no part of reading it
    import pandas  # noqa: F401
    import pyarrow.csv  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    preferred = reading.PREFER_ARROW
    reading.PREFER_ARROW = preferred if arrow is None else arrow
    try:
        start, cpu = time.perf_counter(), time.process_time()
        meta = write_shards(cfg, folder, shard_rows_for)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        reading.PREFER_ARROW = preferred
        shutil.rmtree(folder)
    return {"seconds": seconds, "cpu_seconds": cpu, "rows": meta["rows_read"], "inputs": meta["n_inputs"]}


def _first_pass_arrow(path: str, workdir: str) -> dict:
    return _first_pass(path, workdir, arrow=True)


def _pandas_chunks(path: str, workdir: str) -> dict:
    import pandas as pd

    from nnctl.data.scan import default_chunk_rows

    start, cpu, rows, chunk_rows = time.perf_counter(), time.process_time(), 0, default_chunk_rows(16)
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        source = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)  # as nnctl reads it
        chunks = (batch.to_pandas() for batch in source.iter_batches(batch_size=chunk_rows))
    else:
        chunks = pd.read_csv(path, chunksize=chunk_rows, low_memory=False)
    for chunk in chunks:
        rows += len(chunk)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu, "rows": rows}


def _read_table(path: str, workdir: str) -> dict:
    """pyarrow.parquet.read_table: the whole file at once, on every core (memory no object)."""
    import pyarrow.parquet as pq

    start, cpu = time.perf_counter(), time.process_time()
    rows = pq.read_table(path).num_rows
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu, "rows": rows}


MEASURES = {"first_pass": _first_pass, "first_pass_arrow": _first_pass_arrow, "pandas": _pandas_chunks,
            "read_table": _read_table}


def _child(measure: str, path: str, workdir: str) -> None:
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF)
    result = MEASURES[measure](path, workdir)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["peak_rss"] = usage.ru_maxrss * 1024  # Linux reports KB
    # CPU seconds of every thread over the timed part, as each measure reports them (else over the
    # whole measure): on a shared machine the wall-clock rates move with the load, the CPU a byte much less
    result.setdefault("cpu_seconds", usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime)
    print(json.dumps(result))


def measure(what: str, path: Path, workdir: Path, budget: str) -> dict:
    """Run one measurement in a fresh interpreter under the memory budget."""
    env = {**os.environ, "NNCTL_MEMORY_LIMIT": budget, "PYTHONPATH": str(ROOT)}
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import streaming; " \
           f"streaming._child({what!r}, {str(path)!r}, {str(workdir)!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def first_pass_figures(paths: list[Path], workdir: Path, budget: str, repeat: int = 1) -> tuple[list[str], dict]:
    """(the table's lines, {file name: figures}): the pass against pandas' chunks (CSV) or
    pyarrow.parquet.read_table (Parquet), measured one after the other in the same run; for a
    CSV, the pass with pyarrow's reader too. With `repeat`, each is measured that many times,
    peer and passes taking turns, and each one's best turn is given (as bench.py does: other
    work on the machine only ever slows a run down), and beside it the median of the turns'
    own ratios (each pass against the peer run just before it)."""
    found = {}
    lines = [f"{'file':<26} {'MB':>6} {'pass MB/s':>10} {'peer':>11} {'peer MB/s':>10} {'ratio':>6} "
             f"{'CPU ratio':>9} {'median':>6} {'peak RSS (pass)':>16} {'peak RSS (peer)':>16}"]
    for path in paths:
        mb = path.stat().st_size / 2**20
        parquet = path.suffix == ".parquet"
        peer_name = "read_table" if parquet else "pandas"
        variants = [("first_pass", "")] + ([] if parquet else [("first_pass_arrow", " (pyarrow)")])
        turns = []
        for _ in range(repeat):
            turns.append({what: measure(what, path, workdir, budget)
                          for what in [peer_name] + [v for v, _ in variants]})
        base = max(mb / t[peer_name]["seconds"] for t in turns)
        peer = {"peak_rss": max(t[peer_name]["peak_rss"] for t in turns)}
        for what, label in variants:
            rate = max(mb / t[what]["seconds"] for t in turns)
            ratio = rate / base
            # the peer's CPU over the pass's, each its least
            least = min(t[what]["cpu_seconds"] for t in turns)
            cpu = min(t[peer_name]["cpu_seconds"] for t in turns) / max(least, 1e-9)
            # each turn's pass against the peer measured just before it, the middle one
            median = float(np.median([t[peer_name]["seconds"] / t[what]["seconds"] for t in turns]))
            ours = {"peak_rss": max(t[what]["peak_rss"] for t in turns), "rows": turns[0][what]["rows"]}
            key = path.name + label
            found[key] = {"mb": mb, "pass_mb_s": rate, "peer": peer_name, "peer_mb_s": base, "ratio": ratio,
                          "cpu_ratio": cpu, "ratio_median": median, "peak_rss": ours["peak_rss"], "peer_peak_rss": peer["peak_rss"],
                          "rows": ours["rows"], "turns": repeat}
            lines.append(f"{key:<26} {mb:>6.0f} {rate:>10.1f} {peer_name:>11} {base:>10.1f} {ratio:>5.2f}× "
                         f"{cpu:>8.2f}× {median:>5.2f}× {ours['peak_rss'] / 2**20:>13.0f} MB {peer['peak_rss'] / 2**20:>13.0f} MB")
    return lines, found


# --- training from shards against training in memory ---------------------------------------

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


MODES = {"in memory": "false", "streamed": "true"}


def throughput(config: Path, workdir: Path, repeat: int = 1) -> tuple[dict, dict]:
    """({mode: rows per second of the loop}, {mode: rows per CPU second of the process}), the
    best of `repeat` runs of each, the two modes taking turns: on a shared machine, runs a
    minute apart see different loads, and other work only ever slows a run down."""
    import resource

    rates, cpu = {name: [] for name in MODES}, {name: [] for name in MODES}
    for mode in MODES.values():  # untimed: writes the cache/shards
        trained(config, workdir / "runs", [f"data.streaming={mode}", "training.iterations=1"])
    for _ in range(repeat):
        for name, mode in MODES.items():
            before = resource.getrusage(resource.RUSAGE_SELF)
            result = trained(config, workdir / "runs", [f"data.streaming={mode}"])
            after = resource.getrusage(resource.RUSAGE_SELF)
            done = result.metrics["train"]["rows"] * result.epochs
            rates[name].append(done / result.seconds)
            seconds = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            cpu[name].append(done / max(seconds, 1e-9))
    return {name: max(r) for name, r in rates.items()}, {name: max(r) for name, r in cpu.items()}


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


def train_figures(args) -> dict:
    workdir = args.workdir / "train"
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NNCTL_CACHE_DIR", str(workdir / "cache"))
    table = synthesize(workdir / "table.parquet", args.rows, args.features)
    config = write_config(workdir, table, args.epochs)
    found = {"rows": args.rows, "features": args.features}
    rates, cpu = throughput(config, workdir, args.repeat)
    found["rows_per_second"], found["rows_per_cpu_second"] = rates, cpu
    print(f"\ntraining throughput, {args.rows:,} rows x {args.features} features, layers [32], batch 256 "
          f"(best of {args.repeat}, the modes taking turns):")
    for name, rate in rates.items():
        print(f"  {name:<10} {rate:>12,.0f} rows/s {cpu[name]:>12,.0f} rows/CPU s")
    print(f"  streamed / in memory: {rates['streamed'] / rates['in memory']:.2f}x (goal >= 0.8x), "
          f"per CPU second {cpu['streamed'] / cpu['in memory']:.2f}x")
    if not args.no_rss:
        peaks = found["peak_rss"] = peak_rss(config, workdir, args.budget)
        print(f"peak RSS of `nnctl train` (1 epoch): in memory {peaks['in memory'] / 2**20:,.0f} MB, "
              f"streamed under NNCTL_MEMORY_LIMIT={args.budget} from the cached shards "
              f"{peaks['streamed'] / 2**20:,.0f} MB")
    curves = found["shuffle"] = shuffle_effect(workdir, args.shuffle_rows, args.features, args.epochs * 2,
                                               args.shard_rows)
    print(f"\nvalidation loss per epoch, {args.shuffle_rows:,} rows, seed 3:")
    for table_name, variants in curves.items():
        print(f"\n| {table_name} | " + " | ".join(f"epoch {i + 1}" for i in range(len(next(iter(variants.values())))))
              + " |\n|---|" + "---|" * len(next(iter(variants.values()))))
        for name, losses in variants.items():
            print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in losses) + " |")
    plot(curves, args.workdir / "shuffle.png")
    return found


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=4.0, help="the first pass's CSV in GB (default 4)")
    parser.add_argument("--budget", default="1GB", help="NNCTL_MEMORY_LIMIT of the measured processes")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/nnctl-streaming"),
                        help="where the generated files are kept (and reused) and the figures written")
    parser.add_argument("--generate-rows", type=int, default=GENERATE_ROWS,
                        help="rows the generated table is written in (and its Parquet's row groups)")
    parser.add_argument("--skip-first-pass", action="store_true", help="leave out the first pass's figures")
    parser.add_argument("--skip-train", action="store_true", help="leave out training throughput, RSS and shuffle")
    parser.add_argument("--rows", type=int, default=400_000, help="rows of the training table that fits")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3,
                        help="turns of each measurement, peers and modes alternating (the best is given)")
    parser.add_argument("--shuffle-rows", type=int, default=60_000, help="rows of the shuffle-effect tables")
    parser.add_argument("--shard-rows", type=int, default=1024, help="shard size of the shuffle-effect runs")
    parser.add_argument("--no-rss", action="store_true", help="skip the training's subprocess peak-RSS runs")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    found = {}
    if not args.skip_first_pass:
        csv, parquet = prepare(args.workdir, args.size_gb, args.generate_rows)
        print(f"first pass ({args.size_gb:g} GB table, NNCTL_MEMORY_LIMIT={args.budget}; peers: pandas.read_csv "
              "in chunks for CSV (goal >= 1.0x), pyarrow.parquet.read_table for Parquet (goal >= 0.5x))")
        lines, found["first_pass"] = first_pass_figures([csv, parquet], args.workdir, args.budget, args.repeat)
        print("\n".join(lines), flush=True)
    if not args.skip_train:
        found["train"] = train_figures(args)
    (args.workdir / "figures.json").write_text(json.dumps(found, indent=1))
    print(f"\nwrote {args.workdir / 'figures.json'}" + ("" if args.skip_train else " and shuffle.png"))
    return found


if __name__ == "__main__":
    main()
