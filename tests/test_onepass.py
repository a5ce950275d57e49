"""Streaming's first pass reads the table once (data/onepass.py): its shards hold exactly the
arrays that the scan and a second, encoding read give (`scan.encoded_chunks`), whichever reader
parsed the file, and a file pyarrow cannot read as pandas does is read by pandas instead."""
import numpy as np
import pandas as pd
import pytest

from nnctl.config import load_config
from nnctl.data import arrowcsv, reading
from nnctl.data.encoding import FeatureEncoder
from nnctl.data.onepass import write_shards
from nnctl.data.scan import encoded_chunks, scan_table
from nnctl.data.shards import ShardPart

from .test_scan import config, mixed_table

pytest.importorskip("pyarrow")


def shards(cfg, folder, progress=None):
    meta = write_shards(cfg, folder, lambda n, size: 64, progress)
    dtype = np.dtype(meta["dtype"])
    y_dtype = np.int64 if meta["task"] == "classification" else dtype
    parts = {name: ShardPart(folder, name, meta["parts"][name], meta["shard_rows"], meta["n_inputs"], dtype, y_dtype,
                             meta["y_width"]) for name in ("train", "validation")}
    return meta, parts


def two_reads(cfg, part, meta=None):
    """The two-read encoding; with the one pass's `meta`, by its encoder (whose scaler, merged
    over other chunks, may differ in the last float64 bits)."""
    scan = scan_table(cfg, chunk_rows=41)
    if meta is not None:
        scan.encoder = FeatureEncoder.from_meta(meta["encoder"], saved=False)
        scan.target_scaler = meta["target_scaler"]
    pieces = list(encoded_chunks(cfg, scan, part, chunk_rows=53))
    return scan, [np.concatenate([p[i] for p in pieces]) for i in range(3)]


def whole(part):
    X, y = zip(*part.chunks())
    rows = np.concatenate([part._array(j, "rows") for j in range(part.n_shards)])
    return rows, np.concatenate(X), np.concatenate(y)

def assert_parts_equal_two_reads(cfg, meta, parts):
    """Each part's shards hold exactly the rows, X and y of `two_reads`; the last scan."""
    for part in ("train", "validation"):
        scan, (rows, X, y) = two_reads(cfg, part, meta)
        got_rows, got_X, got_y = whole(parts[part])
        np.testing.assert_array_equal(got_rows, rows)
        np.testing.assert_array_equal(got_X, X)
        np.testing.assert_array_equal(got_y, y)
    return scan


@pytest.mark.parametrize("arrow", [True, False])
@pytest.mark.parametrize("extra", ["  missing: mean\n  embedding: {city: 4}\n", "  scale: minmax\n  missing: drop\n",
                                   "  missing: mean\ntraining:\n  dtype: float64\n", "  scale: robust\n  missing: mean\n", "  scale: quantile\n  missing: drop\n"])
def test_the_shards_are_the_two_read_encoding_bit_for_bit(write_config, tmp_path, monkeypatch, arrow, extra):
    monkeypatch.setattr(reading, "PREFER_ARROW", arrow)
    monkeypatch.setattr(arrowcsv, "block_bytes", lambda: 4096)  # many blocks, pyarrow's types fixed by the first
    mixed_table(900).to_csv(tmp_path / "t.csv", index=False)
    cfg = config(write_config, tmp_path / "t.csv", extra)
    (tmp_path / "s").mkdir()
    meta, parts = shards(cfg, tmp_path / "s")
    scan = assert_parts_equal_two_reads(cfg, meta, parts)
    expected = scan_table(cfg, chunk_rows=41).encoder.to_meta()
    for key in ("features", "categories", "embedding"):
        assert meta["encoder"][key] == expected[key]
    for key in ("offset", "scale"):  # merged over other chunks: equal to float64 rounding
        np.testing.assert_allclose(meta["encoder"]["scaler"][key], expected["scaler"][key], rtol=1e-8)
    assert meta["classes"] == scan.classes
    assert not list((tmp_path / "s").glob("raw-*"))  # the raw pieces are gone once finished


def test_a_regression_target_is_scaled_as_the_two_reads_scale_it(write_config, tmp_path):
    rng = np.random.default_rng(1)
    pd.DataFrame({"x": rng.normal(size=700), "c": rng.choice(["a", "b"], 700),
                  "y": rng.normal(50.0, 4.0, 700)}).to_csv(tmp_path / "r.csv", index=False)
    cfg = config(write_config, tmp_path / "r.csv")
    (tmp_path / "s").mkdir()
    meta, parts = shards(cfg, tmp_path / "s")
    _, (rows, X, y) = two_reads(cfg, "train", meta)
    got_rows, got_X, got_y = whole(parts["train"])
    assert meta["task"] == "regression" and meta["y_width"] == 1
    np.testing.assert_array_equal(got_X, X)
    np.testing.assert_array_equal(got_y, y)


def test_a_column_pyarrow_typed_from_its_first_block_is_read_again(write_config, tmp_path, monkeypatch):
    """Integers in the first block, a decimal later: read again as floats; a word later in a
    number column: pandas reads the file, as it would have without pyarrow."""
    monkeypatch.setattr(reading, "PREFER_ARROW", True)
    monkeypatch.setattr(arrowcsv, "block_bytes", lambda: 4096)
    n = 3000
    df = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "n": np.arange(n) % 17, "y": np.arange(n) % 2})
    df.to_csv(tmp_path / "t.csv", index=False)
    text = (tmp_path / "t.csv").read_text().splitlines()
    text[2500] = text[2500].split(",")[0] + ",2.5," + text[2500].split(",")[2]
    (tmp_path / "t.csv").write_text("\n".join(text) + "\n")
    cfg = config(write_config, tmp_path / "t.csv", "  exclude: [id]\n")  # pyarrow reads n as column #1
    tried = []
    real = arrowcsv.chunks
    monkeypatch.setattr(arrowcsv, "chunks", lambda part, used, as_float: tried.append(set(as_float)) or
                        real(part, used, as_float))
    (tmp_path / "s").mkdir()
    meta, parts = shards(cfg, tmp_path / "s")
    assert tried == [set(), {"n"}]  # the second read takes n as floats from the start
    _, (rows, X, y) = two_reads(cfg, "train")
    np.testing.assert_array_equal(whole(parts["train"])[1], X)
    text[2700] = text[2700].split(",")[0] + ",many," + text[2700].split(",")[2]
    (tmp_path / "t.csv").write_text("\n".join(text) + "\n")
    tried.clear()
    meta, parts = shards(cfg, tmp_path / "s")
    assert tried == [set(), {"n"}]  # then pyarrow gave up: pandas read it
    assert "many" in meta["encoder"]["categories"]["n"]  # pandas' whole-chunk reading: a text column


def test_the_pass_says_how_far_it_has_read(write_config, tmp_path):
    mixed_table(900).to_csv(tmp_path / "t.csv", index=False)
    cfg = config(write_config, tmp_path / "t.csv", "  missing: mean\n")
    told = []
    (tmp_path / "s").mkdir()
    shards(cfg, tmp_path / "s", told.append)
    assert told and told[-1]["rows"] == 900 and told[-1]["file"] == str(tmp_path / "t.csv")
    assert [t["rows"] for t in told] == sorted(t["rows"] for t in told)
    assert all(t["fraction"] is None or 0 < t["fraction"] <= 1.0 for t in told)


def test_reading_ahead_hands_over_the_readers_error_and_stops_when_left(tmp_path):
    def items():
        yield 1
        raise ValueError("bad row")
    got = reading.ahead(items())
    assert next(got) == 1
    with pytest.raises(ValueError, match="bad row"):
        next(got)
    endless = reading.ahead(iter(range(10**9)))
    assert next(endless) == 0
    endless.close()  # the thread stops: nothing left running


def test_pieces_beyond_the_memory_share_go_to_disk_and_give_the_same_shards(write_config, tmp_path, monkeypatch):
    import nnctl.data.onepass as onepass

    mixed_table(900).to_csv(tmp_path / "t.csv", index=False)
    cfg = config(write_config, tmp_path / "t.csv", "  missing: mean\n")
    got, real = {}, onepass._raw_path
    for name, share in (("held", onepass.RAW_SHARE), ("spilled", 10**15)):  # a room of 0 bytes: every piece spills
        monkeypatch.setattr(onepass, "RAW_SHARE", share)
        monkeypatch.setattr(reading, "PREFER_ARROW", False)
        paths = []
        monkeypatch.setattr(onepass, "_raw_path", lambda *a: paths.append(a) or real(*a))
        monkeypatch.setattr(onepass, "default_chunk_rows", lambda columns: 100)  # 9 pieces
        (tmp_path / name).mkdir()
        meta, parts = shards(cfg, tmp_path / name)
        got[name] = [whole(parts[part]) for part in ("train", "validation")]
        assert bool(paths) == (name == "spilled")
        assert not list((tmp_path / name).glob("raw-*"))
    for held, spilled in zip(got["held"], got["spilled"]):
        for a, b in zip(held, spilled):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_chunks_of_training_rows_only_give_the_two_read_encoding(write_config, tmp_path, dtype):
    """With data.validation_path every row of data.path is a training row: the pass takes the
    short way (no rows to pick), its temporaries reused from column to column and chunk to chunk."""
    table = mixed_table(900)
    table.iloc[:700].to_csv(tmp_path / "t.csv", index=False)
    table.iloc[700:].to_csv(tmp_path / "v.csv", index=False)
    cfg = load_config(write_config(f"seed: 7\ndata:\n  path: {tmp_path / 't.csv'}\n  target: y\n  categorical: auto\n"
                                   f"  validation_path: {tmp_path / 'v.csv'}\n  missing: mean\n"
                                   f"training:\n  dtype: {dtype}\n"))
    (tmp_path / "s").mkdir()
    meta, parts = shards(cfg, tmp_path / "s")
    assert_parts_equal_two_reads(cfg, meta, parts)
    assert whole(parts["validation"])[1].dtype == np.dtype(dtype) and len(whole(parts["train"])[0]) == 700


def test_finished_pieces_come_in_order_and_a_workers_error_is_raised_here():
    import time

    def slow_first(k):
        time.sleep(0.02 if k == 0 else 0)
        if k == 5:
            raise ValueError("piece 5")
        return k * 10

    got = reading.mapped(slow_first, range(5))
    assert list(got) == [0, 10, 20, 30, 40]
    failing = reading.mapped(slow_first, range(8))
    with pytest.raises(ValueError, match="piece 5"):
        list(failing)


def test_slabs_end_at_line_breaks_and_give_every_byte_once(tmp_path):
    text = b"a,b\r\n" + b"".join(b"%d,x%d\r\n" % (i, i) for i in range(3000))
    (tmp_path / "t.csv").write_bytes(text)
    slabs = list(arrowcsv._slabs(tmp_path / "t.csv", 1000))
    assert b"".join(bytes(s) for s, _, _ in slabs) == text
    assert [first for _, _, first in slabs] == [True] + [False] * (len(slabs) - 1)
    assert [at for _, at, _ in slabs] == list(np.cumsum([len(s) for s, _, _ in slabs]))
    assert all(bytes(s)[-1:] in (b"\n", b"\r") for s, _, _ in slabs) and len(bytes(slabs[0][0])) <= 1000


def test_a_quoted_line_break_cut_by_a_slab_sends_the_file_to_pandas(write_config, tmp_path, monkeypatch):
    """A slab ends at its last line break, one inside quotes too: pyarrow then finds a short row
    and gives up, and pandas reads the file as the two reads do."""
    monkeypatch.setattr(reading, "PREFER_ARROW", True)
    monkeypatch.setattr(arrowcsv, "block_bytes", lambda: 4096)
    head = "x,note,y\n" + "".join(f"{i},n{i},{i % 2}\n" for i in range(300))
    # the quoted line break is the first slab's last one: its 4096 bytes end inside "two\nlines"
    filler = "1," + '"' + "w" * (4090 - len(head) - 7 - 7) + '"' + ",0\n"
    rows = "".join(f"{i},n{i},{i % 2}\n" for i in range(300, 900))
    (tmp_path / "t.csv").write_text(head + filler + '7,"two\nlines",1\n' + rows)
    cfg = config(write_config, tmp_path / "t.csv", "  exclude: [note]\n")
    from nnctl.data.tables import open_table, table_parts

    with pytest.raises(arrowcsv.Fallback):
        list(arrowcsv.chunks(table_parts(open_table(str(tmp_path / "t.csv"), None))[0], ["x", "y"]))
    (tmp_path / "s").mkdir()
    meta, parts = shards(cfg, tmp_path / "s")
    assert meta["rows_read"] == 902
    np.testing.assert_array_equal(whole(parts["train"])[1], two_reads(cfg, "train", meta)[1][1])


def test_columns_learned_in_threads_give_the_same_shards_and_the_first_error(write_config, tmp_path, monkeypatch):
    from nnctl.data import scanpass
    from nnctl.errors import NnctlError

    monkeypatch.setattr(reading, "PREFER_ARROW", False)
    mixed_table(900).to_csv(tmp_path / "t.csv", index=False)
    cfg = config(write_config, tmp_path / "t.csv", "  missing: mean\n")
    got = {}
    for alone in (10**9, 0):  # one thread; every chunk in LEARNERS threads
        monkeypatch.setattr(scanpass, "LEARN_ALONE_ROWS", alone)
        (tmp_path / str(alone)).mkdir()
        got[alone] = [whole(part) for part in shards(cfg, tmp_path / str(alone))[1].values()]
    for one, threaded in zip(got[10**9], got[0]):
        for a, b in zip(one, threaded):
            np.testing.assert_array_equal(a, b)
    table = mixed_table(900)
    table.loc[500, "big"] = np.inf
    table.loc[700, "a"] = -np.inf
    table.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "e").mkdir()
    with pytest.raises(NnctlError, match="column 'a' has an infinite value"):
        shards(cfg, tmp_path / "e")


def test_a_file_of_crlf_lines_read_in_slabs_gives_the_two_read_encoding(write_config, tmp_path, monkeypatch):
    monkeypatch.setattr(reading, "PREFER_ARROW", True)
    monkeypatch.setattr(arrowcsv, "block_bytes", lambda: 1001)  # slabs cut between \r and \n too
    mixed_table(900).to_csv(tmp_path / "t.csv", index=False, lineterminator="\r\n")
    cfg = config(write_config, tmp_path / "t.csv", "  missing: mean\n")
    (tmp_path / "s").mkdir()
    with monkeypatch.context() as patched:  # read by pyarrow, not given up on
        patched.setattr(reading, "read_table", lambda *a, **k: pytest.fail("pandas read the file"))
        meta, parts = shards(cfg, tmp_path / "s")
    assert_parts_equal_two_reads(cfg, meta, parts)


@pytest.mark.parametrize("scale", ["robust", "standard"])
def test_moments_learned_from_the_raw_rows_in_a_thread_are_the_columns_own(write_config, tmp_path, scale):
    """The one pass learns its numeric columns' training moments and samples from the raw
    training rows, in a thread of its own; they are bit for bit what learning them from the
    columns gives (the scan, which writes no raw rows), missing values and all."""
    from nnctl.data.scanpass import FirstPass
    from nnctl.data.splits import hashed_validation

    cfg = config(write_config, tmp_path / "t.csv", f"  scale: {scale}\n  missing: mean\n")
    frame = mixed_table(700)
    features = ["a", "big", "n", "colour", "city"]
    passes = [FirstPass(cfg, features, "t.csv") for _ in range(2)]
    for start in range(0, len(frame), 150):
        chunk = frame.iloc[start:start + 150]
        rows = np.arange(start, start + len(chunk), dtype=np.int64)
        val = hashed_validation(rows, cfg.seed, 0.25)
        for state, raw in zip(passes, (True, False)):
            state.add(chunk, rows, val, "t.csv", raw=raw)
    threaded, inline = passes
    threaded.settle()
    for col in ("a", "big", "n"):
        assert vars(threaded.moments[col]) == vars(inline.moments[col])
        assert threaded.moments[col].n == inline.train_rows - inline.missing_train[col] > 0
        if scale == "robust":
            np.testing.assert_array_equal(threaded.samples[col].values, inline.samples[col].values)
