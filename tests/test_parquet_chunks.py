"""Reading Parquet in chunks within the memory budget (the streamed first pass): a row group is
read whole when that is cheaper than pyarrow's per-column batch readers, in batches when it is
not; either way the chunks are exactly `chunksize` rows across row-group ends, numbered by their
place in the file, with the file's values, and chunk sizes follow NNCTL_MEMORY_LIMIT."""
import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from nnctl.data.scan import default_chunk_rows  # noqa: E402
from nnctl.data.tables import open_table, read_table  # noqa: E402


def write(path, columns: int, rows: int, row_group: int):
    X = np.random.default_rng(0).standard_normal((rows, columns), dtype=np.float32)
    table = pa.table([pa.array(X[:, i]) for i in range(columns)], names=[f"x{i}" for i in range(columns)])
    pq.write_table(table, path, row_group_size=row_group, use_dictionary=False)
    return X


def read_all(path, chunksize):
    """(each chunk's (index, values) copied out of pyarrow's memory, the most pyarrow held)."""
    held, chunks = [], []
    pool = pa.default_memory_pool()
    before = pool.bytes_allocated()
    for chunk in read_table(open_table(path), chunksize=chunksize):
        held.append(pool.bytes_allocated() - before)
        chunks.append((chunk.index, np.array(chunk.to_numpy(), copy=True)))  # a frame's block is pyarrow's
    return chunks, max(held)


@pytest.mark.parametrize("budget", ["100MB", "1MB"])
def test_chunks_cross_row_groups_with_the_files_values(tmp_path, monkeypatch, budget):
    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", budget)  # 1MB: each column read on its own
    X = write(tmp_path / "t.parquet", 12, 50_000, 20_000)
    chunks, _ = read_all(tmp_path / "t.parquet", 7_000)
    assert [len(values) for _, values in chunks] == [7_000] * 7 + [1_000]
    assert chunks[3][0][0] == 21_000 and chunks[-1][0][-1] == 49_999
    np.testing.assert_array_equal(np.concatenate([values for _, values in chunks]), X)


def test_a_wide_row_group_is_read_whole_not_by_60_column_readers(tmp_path, monkeypatch):
    """60 columns of 20,000 rows: 4.8 MB decoded. Read whole, pyarrow holds about that; its
    batched reader would hold a page, a dictionary and a buffer for each column besides."""
    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", "8MB")
    write(tmp_path / "w.parquet", 60, 60_000, 20_000)
    chunks, held = read_all(tmp_path / "w.parquet", 5_000)
    assert sum(len(values) for _, values in chunks) == 60_000
    assert held < 1.5 * 20_000 * 60 * 4


def test_a_row_group_larger_than_its_readers_is_read_in_batches(tmp_path, monkeypatch):
    """Two columns of 1,500,000 rows in one row group: 12 MB whole, against two readers' pages
    and dictionaries (3 MB each at most) and a chunk: read in batches, pyarrow holds half."""
    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", "1MB")
    X = write(tmp_path / "b.parquet", 2, 1_500_000, 1_500_000)
    chunks, held = read_all(tmp_path / "b.parquet", 10_000)
    assert len(chunks) == 150 and held < 1_500_000 * 2 * 4 / 1.5
    np.testing.assert_array_equal(np.concatenate([values for _, values in chunks]), X)


def test_chunk_sizes_follow_the_memory_budget(monkeypatch):
    sizes = {}
    for budget in ("100MB", "1GB", "1TB", "64KB"):
        monkeypatch.setenv("NNCTL_MEMORY_LIMIT", budget)
        sizes[budget] = default_chunk_rows(60)
    assert sizes["100MB"] == (100 << 20) // 8 // 24 // 60  # an eighth of it, 24 bytes a cell
    assert sizes["1GB"] == (1 << 30) // 8 // 24 // 60
    assert sizes["1TB"] == 8_000_000 // 60  # past 8 million cells larger chunks gain nothing
    assert sizes["64KB"] == 250_000 // 60  # nor do tiny ones cost less than pandas' per-chunk work


@pytest.mark.parametrize("budget", ["100MB", "1MB"])
def test_text_read_as_categories_gives_the_shards_text_read_as_strings_gives(write_config, tmp_path, monkeypatch,
                                                                              budget):
    """The passes read a Parquet file's text columns as categories, from its dictionaries (each
    row group's own, some of them cut across chunks); the one pass's shards and meta are those
    of the same text read as strings, missing values, categories and classes alike."""
    from nnctl.data import parquetfile
    from nnctl.data.onepass import write_shards

    from .test_onepass import config, mixed_table

    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", budget)  # 1MB: row groups in batches, chunks as copies
    pq.write_table(pa.Table.from_pandas(mixed_table(900), preserve_index=False), tmp_path / "t.parquet",
                   row_group_size=250)
    chunk = next(parquetfile.read_parquet(open_table(tmp_path / "t.parquet"), ["colour", "a"], 100, categories=True))
    assert chunk["colour"].dtype == "category" and chunk["a"].dtype == np.float64
    cfg = config(write_config, tmp_path / "t.parquet", "  missing: mean\n  embedding: {city: 4}\n")
    found = []
    for text in (parquetfile._text_columns, lambda schema, columns: []):
        monkeypatch.setattr(parquetfile, "_text_columns", text)
        folder = tmp_path / f"s{len(found)}"
        folder.mkdir()
        meta = write_shards(cfg, folder, lambda n, size: 64)
        found.append((meta, {f.name: np.load(f) for f in sorted(folder.glob("*.npy"))}))
    (meta, arrays), (strings_meta, strings_arrays) = found
    assert meta == strings_meta and meta["encoder"]["categories"]["colour"] == ["blue", "green", "grey", "red"]
    assert arrays.keys() == strings_arrays.keys() and len(arrays) > 6
    for name, array in arrays.items():
        np.testing.assert_array_equal(array, strings_arrays[name])
