"""The first pass reads every file kind in chunks: CSV plain and compressed (.gz .bz2 .xz .zip),
and Parquet by row groups, with the same result as a plain CSV."""
import bz2
import gzip
import lzma
import zipfile

import numpy as np
import pytest

from nnctl.config import load_config
from nnctl.data.scan import encoded_chunks, estimate_size, scan_table
from nnctl.data.tables import open_table, read_table
from nnctl.resources import encoded_bytes_estimate

from .test_scan import mixed_table

OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def write_as(tmp_path, suffix: str):
    df = mixed_table(rows=400)
    text = df.to_csv(index=False).encode()
    path = tmp_path / f"t.csv{suffix}"
    if suffix in OPENERS:
        with OPENERS[suffix](path, "wb") as fh:
            fh.write(text)
    elif suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("t.csv", text)
    elif suffix == ".parquet":
        path = tmp_path / "t.parquet"
        df.to_parquet(path, index=False, row_group_size=64)  # several row groups
    else:
        path.write_bytes(text)
    return path


def scanned(write_config, path, name):
    cfg = load_config(write_config(f"seed: 3\ndata:\n  path: {path}\n  target: y\n  categorical: auto\n"
                                   "  missing: mean\n", name))
    scan = scan_table(cfg, chunk_rows=50)
    X = np.concatenate([X for _, X, _ in encoded_chunks(cfg, scan, "train", chunk_rows=70)])
    return scan, X


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zip", ".parquet"])
def test_each_file_kind_scans_in_chunks_as_plain_csv_does(write_config, tmp_path, suffix):
    plain, plain_X = scanned(write_config, write_as(tmp_path, ""), "plain.yaml")
    path = write_as(tmp_path, suffix)
    chunks = list(read_table(open_table(path), chunksize=50))
    assert max(len(c) for c in chunks) == 50 and sum(len(c) for c in chunks) == 400
    assert chunks[-1].index[-1] == 399  # each chunk keeps its rows' place in the file
    scan, X = scanned(write_config, path, "other.yaml")
    assert scan.encoder.to_meta() == plain.encoder.to_meta() and scan.classes == plain.classes
    np.testing.assert_array_equal(X, plain_X)


@pytest.mark.parametrize("suffix", ["", ".gz", ".parquet"])
def test_the_size_estimate_before_a_pass_is_near_the_scan(write_config, tmp_path, suffix):
    path = write_as(tmp_path, suffix)
    cfg = load_config(write_config(f"data:\n  path: {path}\n  target: y\n  categorical: auto\n  missing: mean\n"))
    estimate = estimate_size(cfg)
    assert estimate.inputs == 5
    scan = scan_table(cfg)
    low, high = (0.9, 1.1) if suffix != ".gz" else (0.2, 5)  # compressed text: a rough ratio
    assert low * (scan.train_rows + scan.val_rows) * 0.8 <= estimate.rows <= high * 400
    exact = encoded_bytes_estimate(cfg, scan)
    assert exact == scan.train_rows * (scan.n_inputs * 4 + 8)


def test_reading_parquet_in_chunks_holds_one_row_group_not_the_file(tmp_path):
    import pandas as pd
    import pyarrow as pa

    rng = np.random.default_rng(0)
    path = tmp_path / "big.parquet"
    pd.DataFrame(rng.normal(size=(400_000, 8))).rename(columns=str).to_parquet(path, row_group_size=25_000)
    size, held = path.stat().st_size, []
    for chunk in read_table(open_table(path), chunksize=10_000):
        held.append(pa.total_allocated_bytes())
    assert len(held) == 40 and max(held) < size / 4  # pyarrow's read-ahead would keep all of it
