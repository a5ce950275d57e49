"""benchmarks/streaming.py is not run in CI, but its generated table, its first pass and its
training figures must keep working as the API changes: each part on a tiny table, every figure
it prints measured."""
import json

import pytest

from .conftest import load_benchmark

pytest.importorskip("pyarrow")


def _load():
    return load_benchmark("streaming")


def test_the_generated_table_is_seeded_and_its_first_pass_runs(tmp_path):
    bench = _load()
    rows = bench.generate(tmp_path / "t.csv", 60_000, chunk_rows=300)
    again = bench.generate(tmp_path / "u.csv", 60_000, chunk_rows=300)
    assert rows == again and rows % 300 == 0 and (tmp_path / "t.csv").read_bytes() == (tmp_path / "u.csv").read_bytes()
    bench.to_parquet(tmp_path / "t.csv", tmp_path / "t.parquet", row_group=250)
    for name in ("t.csv", "t.parquet"):
        for arrow in (False, True):
            result = bench._first_pass(str(tmp_path / name), str(tmp_path), arrow)
            assert result["rows"] == rows and result["inputs"] == 12 + sum(bench.CATEGORIES.values())
    assert not (tmp_path / "shards").exists()


@pytest.mark.slow
def test_the_first_pass_figures_compare_each_file_with_pandas(tmp_path, capsys):
    bench = _load()
    found = bench.main(["--size-gb", str(40_000 / 2**30), "--generate-rows", "200", "--budget", "50MB",
                        "--workdir", str(tmp_path), "--skip-train", "--repeat", "1"])
    figures = found["first_pass"]
    name = f"table-{40_000 / 2**30:g}gb"
    assert set(figures) == {f"{name}.csv", f"{name}.csv (pyarrow)", f"{name}.parquet"}
    assert figures[f"{name}.csv"]["peer"] == "pandas" and figures[f"{name}.parquet"]["peer"] == "read_table"
    for row in figures.values():
        assert row["rows"] >= 200 and row["rows"] % 200 == 0
        assert row["pass_mb_s"] > 0 and row["peer_mb_s"] > 0
        assert row["ratio"] > 0 and row["cpu_ratio"] > 0 and row["ratio_median"] > 0 and row["turns"] == 1
        assert row["peak_rss"] > 20 << 20  # an interpreter with NumPy and pandas, measured in its own process
    out = capsys.readouterr().out
    assert "pass MB/s" in out and "peer MB/s" in out
    assert json.loads((tmp_path / "figures.json").read_text())["first_pass"].keys() == figures.keys()


def test_the_training_figures_measure_throughput_and_the_shuffle_window(tmp_path, capsys):
    bench = _load()
    found = bench.main(["--skip-first-pass", "--rows", "6000", "--features", "4", "--epochs", "1",
                        "--shuffle-rows", "3000", "--shard-rows", "256", "--workdir", str(tmp_path), "--no-rss",
                        "--repeat", "1"])["train"]
    assert set(found["rows_per_second"]) == {"in memory", "streamed"}
    assert all(rate > 0 for rate in found["rows_per_second"].values())
    assert set(found["rows_per_cpu_second"]) == {"in memory", "streamed"}
    curves = found["shuffle"]
    assert set(curves) == {"random order", "sorted by label"}
    for variants in curves.values():
        assert len(variants) == 3 and all(len(losses) == 2 for losses in variants.values())
    out = capsys.readouterr().out
    assert "streamed / in memory" in out and "| full shuffle (in memory) |" in out
    assert (tmp_path / "shuffle.png").stat().st_size > 0 and (tmp_path / "figures.json").exists()
    from nnctl.data import streamed

    assert streamed.MIN_SHARD_ROWS == 1024  # the benchmark put the shard size back
