"""benchmarks/streaming.py is not run in CI, but its generated table and first-pass measurement
must keep working as the API changes."""
import importlib.util

from .conftest import ROOT


def _load():
    spec = importlib.util.spec_from_file_location("streaming", ROOT / "benchmarks" / "streaming.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_table_is_seeded_and_its_first_pass_runs(tmp_path):
    bench = _load()
    rows = bench.generate(tmp_path / "t.csv", 60_000, chunk_rows=300)
    again = bench.generate(tmp_path / "u.csv", 60_000, chunk_rows=300)
    assert rows == again and rows % 300 == 0 and (tmp_path / "t.csv").read_bytes() == (tmp_path / "u.csv").read_bytes()
    bench.to_parquet(tmp_path / "t.csv", tmp_path / "t.parquet", row_group=250)
    for name in ("t.csv", "t.parquet"):
        result = bench._first_pass(str(tmp_path / name), str(tmp_path))
        assert result["rows"] == rows and result["inputs"] == 12 + sum(bench.CATEGORIES.values())
    assert not (tmp_path / "encoded.npy").exists()
