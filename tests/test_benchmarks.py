"""The benchmark script is not run in CI (it measures, it doesn't assert), but its workloads
must stay valid nnctl configs and its helpers must keep working as the API changes."""
import importlib.util
import os

import pytest

from nnctl.config import load_config
from nnctl.data import load_dataset

from .conftest import ROOT


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    environ = dict(os.environ)
    spec.loader.exec_module(module)  # it pins BLAS threads for its own process; not for ours
    os.environ.clear()
    os.environ.update(environ)
    return module


def test_synthesized_workload_is_a_config_nnctl_trains_on(bench, tmp_path):
    csv, config = bench.synthesize("W1", tmp_path)
    cfg = load_config(config)
    dataset = load_dataset(cfg, cache=False)
    assert dataset.X_train.shape == (120, 4) and len(dataset.X_val) == 30
    assert sorted(set(dataset.y_train.tolist())) == [0, 1, 2]
    assert cfg.training.batch_size is None and cfg.model.layers == [16]
    # deterministic: made again, the same bytes
    first = csv.read_bytes()
    csv.unlink()
    assert bench.synthesize("W1", tmp_path)[0].read_bytes() == first


def test_budget_line_reports_the_ceiling_products_set(bench):
    products = bench.products_per_batch("W1", repeat=1)
    assert 0 < products < 0.1
    line = bench.budget_line("W2", {"nnctl": 0.8, "pytorch": 2.0}, 10_000, 40e-6)
    assert line == ("W2 per batch: matrix products alone 40.0 µs, nnctl's whole loop 80.0 µs, PyTorch's 200.0 µs: "
                    "even with everything but the products free, at most 5.0× PyTorch")
    assert bench.budget_line("W2", {"nnctl": 0.8}, 10_000, 40e-6).endswith("nnctl's whole loop 80.0 µs")


@pytest.fixture(scope="module")
def layers_bench(bench):
    spec = importlib.util.spec_from_file_location("layers_bench", ROOT / "benchmarks" / "layers.py")
    module = importlib.util.module_from_spec(spec)
    environ = dict(os.environ)
    spec.loader.exec_module(module)
    os.environ.clear()
    os.environ.update(environ)
    return module


def test_layer_costs_time_every_variant_on_a_tiny_workload(bench, layers_bench, tmp_path):
    _, config = bench.synthesize("W1", tmp_path)
    seconds = layers_bench.measure(config, epochs=2, repeat=1)
    assert list(seconds) == ["plain", "+dropout 0.2", "+batch norm", "+layer norm", "+grad_clip 1.0"]
    assert all(0 < s < 1 for s in seconds.values())
    lines = layers_bench.table({"plain": 0.5, "+batch norm": 0.6}).splitlines()
    assert lines[1].split() == ["plain", "0.5000", "1.00×"] and lines[2].split() == ["+batch", "norm", "0.6000", "1.20×"]


def test_layer_costs_avoid_a_last_batch_of_one_row_for_batch_norm(layers_bench):
    assert layers_bench.batch_for_batch_norm(16_001, 64) == 65  # W2's training part
    assert layers_bench.batch_for_batch_norm(16_000, 64) == 64
    assert layers_bench.batch_for_batch_norm(120, None) is None
