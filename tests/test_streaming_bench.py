"""benchmarks/streaming_train.py on a tiny table: every figure it prints is measured."""
import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("pyarrow")


def _load():
    spec = importlib.util.spec_from_file_location("streaming_train_bench", ROOT / "benchmarks" / "streaming_train.py")
    module = importlib.util.module_from_spec(spec)
    environ = dict(os.environ)
    spec.loader.exec_module(module)
    os.environ.clear()
    os.environ.update(environ)
    return module


def test_the_streaming_benchmark_measures_throughput_and_the_shuffle_window(tmp_path, capsys):
    bench = _load()
    found = bench.main(["--rows", "6000", "--features", "4", "--epochs", "1", "--shuffle-rows", "3000",
                        "--shard-rows", "256", "--workdir", str(tmp_path), "--no-rss"])
    assert set(found["rows_per_second"]) == {"in memory", "streamed"}
    assert all(rate > 0 for rate in found["rows_per_second"].values())
    curves = found["shuffle"]
    assert set(curves) == {"random order", "sorted by label"}
    for variants in curves.values():
        assert len(variants) == 3 and all(len(losses) == 2 for losses in variants.values())
    out = capsys.readouterr().out
    assert "streamed / in memory" in out and "| full shuffle (in memory) |" in out
    assert (tmp_path / "shuffle.png").stat().st_size > 0 and (tmp_path / "figures.json").exists()
    from nnctl.data import streamed

    assert streamed.MIN_SHARD_ROWS == 1024  # the benchmark put the shard size back
