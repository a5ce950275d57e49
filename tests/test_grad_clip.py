"""training.grad_clip: the global gradient norm capped as torch.nn.utils.clip_grad_norm_ does, the
norm before clipping in diagnostics.csv, and how often it acted in metrics.json and the report."""
import csv
import json
import math

import numpy as np
import pytest

from nnctl.commands.train import resume_run, train_config
from nnctl.config import load_config
from nnctl.data import load_dataset
from nnctl.nn.clipping import clip_grad_norm
from nnctl.training.build import build_network
from nnctl.training.scoring import targets_for

from .cli_helpers import assert_clean_error, cli
from .test_resume import assert_same_weights, iris_config, metrics


def test_clipping_is_torchs_formula_worked_by_hand():
    g = np.array([3.0, 4.0, 0.0, 12.0])  # norm 13
    norm, clipped = clip_grad_norm(g, 5.0)
    assert norm == 13.0 and clipped
    # clip_grad_norm_: total_norm = ‖g‖₂; clip_coef = max_norm / (total_norm + 1e-6); g *= min(clip_coef, 1)
    coef = 5.0 / (13.0 + 1e-6)
    np.testing.assert_array_equal(g, np.array([3.0, 4.0, 0.0, 12.0]) * coef)
    assert math.sqrt(float(g @ g)) == pytest.approx(5.0 * 13.0 / (13.0 + 1e-6), rel=1e-12)  # just under 5
    small = np.array([0.3, 0.4], np.float32)
    assert clip_grad_norm(small, 1.0) == (pytest.approx(0.5), False)
    np.testing.assert_array_equal(small, np.array([0.3, 0.4], np.float32))  # untouched
    # at exactly max_norm torch still scales by max_norm / (max_norm + 1e-6) < 1
    edge = np.array([3.0, 4.0])
    assert clip_grad_norm(edge, 5.0)[1] and edge[0] == 3.0 * 5.0 / (5.0 + 1e-6)


def config_with(tmp_path, *sets):
    return load_config(iris_config(tmp_path, "sgd"), ["training.early_stopping=null", *sets])


def test_a_loose_clip_changes_nothing_and_a_tight_one_acts_on_every_step(tmp_path):
    plain = train_config(config_with(tmp_path, "training.iterations=5"), tmp_path / "a", "c", plot=False)
    loose = train_config(config_with(tmp_path, "training.iterations=5", "training.grad_clip=1e6"), tmp_path / "b",
                         "c", plot=False)
    assert_same_weights(plain.run, loose.run)
    assert metrics(loose.run)["clipped_steps"] == 0 and metrics(loose.run)["steps"] == 5 * 8
    assert "clipped_steps" not in metrics(plain.run)
    tight = train_config(config_with(tmp_path, "training.iterations=5", "training.grad_clip=1e-3"), tmp_path / "c",
                         "c", plot=False)
    assert metrics(tight.run)["clipped_steps"] == metrics(tight.run)["steps"] == 40
    report = cli("report", tight.run, "-o", tmp_path / "r.html")
    assert report.exit_code == 0, report.stderr
    assert "acted on 40 of 40 steps (100%)" in (tmp_path / "r.html").read_text()


def test_the_step_uses_the_clipped_gradient_and_diagnostics_record_the_norm_before(tmp_path):
    sets = ["training.iterations=1", "training.batch_size=0", "training.learning_rate=0.5", "training.grad_clip=0.05"]
    cfg = config_with(tmp_path, *sets)
    dataset = load_dataset(cfg)
    network = build_network(cfg, dataset)
    network.forward(dataset.X_train, True)
    grads = network.backward(targets_for(network, dataset.y_train)).astype(np.float64)
    norm = math.sqrt(float(grads @ grads))
    assert norm > 0.05
    expected = network.flat_params - 0.5 * grads * (0.05 / (norm + 1e-6))  # sgd's one full-batch step
    run = train_config(cfg, tmp_path / "r", "c", plot=False).run
    with np.load(run / "model.npz") as npz:
        trained = np.concatenate([npz[name].ravel() for name, _, _ in network.named_params()])
    np.testing.assert_allclose(trained, expected, rtol=1e-5, atol=1e-6)
    rows = list(csv.DictReader(open(run / "diagnostics.csv")))
    assert [r["layer"] for r in rows] == ["0", "1"]
    assert all(float(r["grad_norm_total"]) == pytest.approx(norm, rel=1e-5) for r in rows)
    assert metrics(run)["clipped_steps"] == 1


def test_without_clipping_diagnostics_still_record_the_total_norm(tmp_path):
    run = train_config(config_with(tmp_path, "training.iterations=2"), tmp_path, "c", plot=False).run
    rows = list(csv.DictReader(open(run / "diagnostics.csv")))
    for epoch in ("1", "2"):
        layers = [r for r in rows if r["epoch"] == epoch]
        total = float(layers[0]["grad_norm_total"])
        # the global norm is at least each layer's weight-gradient norm
        assert all(total >= float(r["grad_norm"]) for r in layers) and total > 0
    report = cli("report", run, "-o", tmp_path / "r.html")
    assert report.exit_code == 0 and "gradient clipping" not in (tmp_path / "r.html").read_text()


def test_resuming_keeps_the_count_and_the_weights(tmp_path):
    straight = train_config(config_with(tmp_path, "training.iterations=12", "training.grad_clip=0.5"), tmp_path / "a",
                            "c", plot=False)
    first = train_config(config_with(tmp_path, "training.iterations=5", "training.grad_clip=0.5"), tmp_path / "b",
                         "c", plot=False)
    resumed = resume_run(first.run, ["training.iterations=12"], tmp_path / "b", plot=False)
    assert_same_weights(straight.run, resumed.run)
    assert 0 < metrics(resumed.run)["clipped_steps"] == metrics(straight.run)["clipped_steps"]
    assert metrics(resumed.run)["steps"] == 12 * 8


@pytest.mark.parametrize("value, fragment", [("0", "training.grad_clip must be > 0"),
                                             ("-1", "training.grad_clip must be > 0"),
                                             ("big", "training.grad_clip must be a number")])
def test_bad_limits_are_clean_errors(tmp_path, iris_config, value, fragment):
    assert_clean_error(cli("train", iris_config(), "--runs-dir", tmp_path, "--set", f"training.grad_clip={value}"),
                       fragment)


def test_the_schema_and_starter_config_know_both_keys(tmp_path):
    schema = json.loads(cli("schema").stdout)
    assert schema["properties"]["training"]["properties"]["grad_clip"]["default"] is None
    assert schema["properties"]["model"]["properties"]["dropout"]["default"] == 0.0
    from nnctl.config.schema import starter_config

    text = starter_config("iris.csv", "species")  # every key with its default (init writes the recipe)
    assert "grad_clip: null" in text and "dropout: 0.0" in text
