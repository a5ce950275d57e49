"""Bigger than memory (issue 27): a generated table of a given size, as CSV and as Parquet, and
what reading it costs. Prints its figures; asserts nothing.

    python benchmarks/streaming.py                       # 4 GB CSV, 1 GB budget
    python benchmarks/streaming.py --size-gb 1 --budget 1GB --workdir /tmp/nnctl-streaming

The first pass (`data.scan.scan_table`, "scan", then every training row encoded by
`encoded_chunks` into a throwaway .npy, as streaming's shards are: "scan+encode", which reads the
file twice) is timed in MB of the file per second against
`pandas.read_csv` of the same file in chunks of the same rows (parsing alone, nothing learned;
for Parquet, pyarrow's batches of those rows as DataFrames),
each in its own subprocess under NNCTL_MEMORY_LIMIT=--budget, which reports its peak RSS
(`resource.getrusage`). The table: 10 numeric columns, 2 integer, 3 categorical (12, 8 and 4
categories: 36 inputs once one-hot encoded) and a 3-class target that depends on some of them; written in chunks from a seed, so
the same arguments give the same bytes. Generated files are kept in --workdir and reused.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

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


def prepare(workdir: Path, size_gb: float) -> tuple[Path, Path]:
    """The CSV and Parquet files of this size in `workdir`, generated once."""
    workdir.mkdir(parents=True, exist_ok=True)
    csv = workdir / f"table-{size_gb:g}gb.csv"
    parquet = csv.with_suffix(".parquet")
    if not csv.exists():
        start = time.perf_counter()
        rows = generate(csv, int(size_gb * 2**30))
        print(f"wrote {csv} ({rows:,} rows) in {time.perf_counter() - start:.0f} s", flush=True)
    if not parquet.exists():
        to_parquet(csv, parquet)
    return csv, parquet


# --- measurements, each in a subprocess of its own (peak RSS is per process) -------------------

def _first_pass(path: str, workdir: str) -> dict:
    from numpy.lib import format as npy

    from nnctl.config import resolve
    from nnctl.data.scan import encoded_chunks, scan_table

    cfg = resolve({"data": {"path": path, "target": "label", "categorical": list(CATEGORIES)}}, base_dir=".")
    start = time.perf_counter()
    scan = scan_table(cfg)
    scanned = time.perf_counter() - start
    out = Path(workdir) / "encoded.npy"
    # written through a file, not a memory map: a map's pages would count in the peak RSS
    with open(out, "wb") as fh:
        npy.write_array_header_1_0(fh, {"descr": npy.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                                        "shape": (scan.train_rows, scan.n_inputs)})
        for _, X, _ in encoded_chunks(cfg, scan, "train"):
            fh.write(np.ascontiguousarray(X).data)
    out.unlink()
    return {"seconds": time.perf_counter() - start, "scan_seconds": scanned, "rows": scan.rows,
            "inputs": scan.n_inputs}


def _pandas_chunks(path: str, workdir: str) -> dict:
    import pandas as pd

    from nnctl.data.scan import default_chunk_rows

    start, rows, chunk_rows = time.perf_counter(), 0, default_chunk_rows(16)
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        source = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)  # as nnctl reads it
        chunks = (batch.to_pandas() for batch in source.iter_batches(batch_size=chunk_rows))
    else:
        chunks = pd.read_csv(path, chunksize=chunk_rows, low_memory=False)
    for chunk in chunks:
        rows += len(chunk)
    return {"seconds": time.perf_counter() - start, "rows": rows}


MEASURES = {"first_pass": _first_pass, "pandas": _pandas_chunks}


def _child(measure: str, path: str, workdir: str) -> None:
    import resource

    result = MEASURES[measure](path, workdir)
    result["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KB
    print(json.dumps(result))


def measure(what: str, path: Path, workdir: Path, budget: str) -> dict:
    """Run one measurement in a fresh interpreter under the memory budget."""
    env = {**os.environ, "NNCTL_MEMORY_LIMIT": budget, "PYTHONPATH": str(ROOT)}
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import streaming; " \
           f"streaming._child({what!r}, {str(path)!r}, {str(workdir)!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def first_pass_figures(paths: list[Path], workdir: Path, budget: str) -> list[str]:
    lines = [f"{'file':<24} {'MB':>6} {'scan MB/s':>10} {'scan+encode MB/s':>17} {'pandas MB/s':>12} {'ratio':>6} "
             f"{'peak RSS (pass)':>16} {'peak RSS (pandas)':>18}"]
    for path in paths:
        mb = path.stat().st_size / 2**20
        ours, theirs = measure("first_pass", path, workdir, budget), measure("pandas", path, workdir, budget)
        scan, rate, base = mb / ours["scan_seconds"], mb / ours["seconds"], mb / theirs["seconds"]
        lines.append(f"{path.name:<24} {mb:>6.0f} {scan:>10.1f} {rate:>17.1f} {base:>12.1f} {rate / base:>5.2f}× "
                     f"{ours['peak_rss'] / 2**20:>13.0f} MB {theirs['peak_rss'] / 2**20:>15.0f} MB")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=4.0, help="the CSV's size in GB (default 4)")
    parser.add_argument("--budget", default="1GB", help="NNCTL_MEMORY_LIMIT for the measured processes")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/nnctl-streaming"),
                        help="where the generated files are kept (and reused)")
    args = parser.parse_args(argv)
    csv, parquet = prepare(args.workdir, args.size_gb)
    print(f"first pass ({args.size_gb:g} GB table, NNCTL_MEMORY_LIMIT={args.budget}; pandas: read_csv, or "
          "pyarrow's batches to_pandas, in chunks of the same rows)")
    print("\n".join(first_pass_figures([csv, parquet], args.workdir, args.budget)), flush=True)


if __name__ == "__main__":
    main()
