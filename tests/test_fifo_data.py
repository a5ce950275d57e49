"""What must seek or read a file twice (Parquet, streaming, data.test_path) refuses a FIFO or a
device with a clear error, instead of waiting forever for a writer (through SIGTERM and Ctrl-C);
a CSV stream read once (stdin, a pipe as data.path) still works."""
import os

import pytest

from .cli_helpers import assert_clean_error, subprocess_cli
from .conftest import DATASETS

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")

# a subprocess with a timeout: if the refusal regressed, the test fails instead of hanging
TIMEOUT = 60


def _fifo(tmp_path, name):
    path = tmp_path / name
    os.mkfifo(path)
    return path


def _config(tmp_path, data, extra=""):
    path = tmp_path / "config.yaml"
    path.write_text(f"data:\n  path: {data}\n  target: species\n{extra}training:\n  iterations: 2\n")
    return path


def test_a_fifo_named_parquet_as_data_path_is_refused(tmp_path):
    config = _config(tmp_path, _fifo(tmp_path, "table.parquet"))
    result = subprocess_cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet", timeout=TIMEOUT)
    assert_clean_error(result, "not a regular file", "table.parquet", "Parquet file is read from its end")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_streaming_refuses_a_fifo(tmp_path):
    config = _config(tmp_path, _fifo(tmp_path, "table.csv"), "  streaming: true\n")
    result = subprocess_cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet", timeout=TIMEOUT)
    assert_clean_error(result, "not a regular file", "streaming reads it more than once", "data.path")


def test_a_fifo_as_test_path_is_refused(tmp_path):
    config = _config(tmp_path, DATASETS / "iris.csv", f"  test_path: {_fifo(tmp_path, 'test.csv')}\n")
    result = subprocess_cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet", timeout=TIMEOUT)
    assert_clean_error(result, "not a regular file", "data.test_path", "read again after training")


def test_predict_refuses_a_fifo_named_parquet_and_still_reads_stdin(tmp_path, iris_run):
    result = subprocess_cli("predict", iris_run, _fifo(tmp_path, "rows.parquet"), timeout=TIMEOUT)
    assert_clean_error(result, "not a regular file", "rows.parquet")
    rows = (DATASETS / "iris.csv").read_text()
    result = subprocess_cli("predict", iris_run, "-", input=rows, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].endswith("prediction") and len(result.stdout.splitlines()) == 151
