"""Warm-up, the cosine's decay length, the plateau schedule and label smoothing."""
import json
import math

import numpy as np
import pytest

from nnctl.commands.train import RunOptions, train_config
from nnctl.config import load_config
from nnctl.config.typed import TrainingConfig
from nnctl.nn.losses import LOSSES, smooth_labels
from nnctl.nn.schedules import Plateau
from nnctl.training.optimization import LearningRate

from .cli_helpers import assert_clean_error, cli
from .conftest import DATASETS, central_differences


def rates(epochs=10, **training):
    schedule = LearningRate(TrainingConfig(**{"learning_rate": 0.1, "iterations": epochs, "warmup": 0,
                                              "schedule": {"name": "constant"}, **training}))
    return [schedule(e) for e in range(epochs)]


def test_warmup_climbs_linearly_then_hands_over_to_the_schedule():
    assert rates(6, warmup=3) == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    cosine = rates(7, warmup=2, schedule={"name": "cosine", "min_learning_rate": 0.0, "decay_epochs": None})
    assert cosine[:2] == pytest.approx([0.1 / 3, 0.2 / 3])
    # the cosine runs over the 5 epochs left, from its own epoch 0
    assert cosine[2:] == pytest.approx([0.05 * (1 + math.cos(math.pi * e / 5)) for e in range(5)])


def test_the_cosine_decays_over_its_own_length_then_stays_at_the_minimum():
    lr = rates(10, schedule={"name": "cosine", "min_learning_rate": 0.01, "decay_epochs": 4})
    assert lr[0] == pytest.approx(0.1) and lr[2] == pytest.approx(0.055)
    assert lr[4:] == pytest.approx([0.01] * 6)


def test_plateau_cuts_the_rate_after_patience_stalled_values_down_to_min_lr():
    p = Plateau(factor=0.5, patience=2, min_lr=0.02)
    seen = []
    for value in [1.0, 0.9, 0.9, 0.95, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]:
        p.observe(value)
        seen.append(p.rate(0.1))
    assert seen == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02, 0.02, 0.02])
    restored = Plateau(0.5, 2, 0.02)
    restored.load_state(json.loads(json.dumps(p.state())))
    assert restored.state() == p.state()
    up = Plateau(0.1, 1, 0.0, maximize=True)
    for value in (0.5, 0.6, 0.6):
        up.observe(value)
    assert up.rate(1.0) == pytest.approx(0.1)


def test_plateau_reduces_in_training_and_its_patience_must_be_below_early_stoppings(tmp_path):
    config = tmp_path / "p.yaml"
    config.write_text(f"seed: 0\ndata:\n  path: {DATASETS / 'iris.csv'}\n  target: species\n"
                      "model:\n  layers: [8]\ntraining:\n  optimizer: adam\n  learning_rate: 0.5\n  iterations: 40\n"
                      "  schedule: {name: plateau, factor: 0.5, patience: 2, min_lr: 0.001}\n  log_every: 1\n")
    run = train_config(load_config(config), options=RunOptions(tmp_path / "runs", "p", plot=False, cache=False)).run
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()] \
        if (run / "history.jsonl").exists() else None
    if history is None:
        import csv
        with open(run / "history.csv") as fh:
            history = [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(fh)]
    lr = [row["learning_rate"] for row in history]
    assert lr[0] == 0.5 and min(lr) < 0.5 and all(b <= a for a, b in zip(lr, lr[1:]))
    result = cli("train", config, "--set", "training.early_stopping={patience: 2}")
    assert_clean_error(result, "training.schedule.patience", "smaller than training.early_stopping.patience")


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy"])
def test_the_smoothed_loss_gradient_matches_finite_differences(loss):
    rng = np.random.default_rng(0)
    outputs = 4 if loss == "cross_entropy" else 1
    z = rng.normal(size=(5, outputs))
    y = np.eye(outputs)[rng.integers(0, outputs, 5)] if loss == "cross_entropy" else rng.integers(0, 2, (5, 1)) * 1.0
    y = smooth_labels(y, 0.2, outputs if loss == "cross_entropy" else 2)
    spec = LOSSES[loss]

    def value(z):
        return spec.value(z, spec.forward(z, np.empty_like(z)), y)

    delta = spec.delta(z, spec.forward(z, np.empty_like(z)), y, np.empty_like(z))
    np.testing.assert_allclose(delta, central_differences(value, z), rtol=1e-6, atol=1e-9)
    if loss == "cross_entropy":  # −Σ y log softmax(z), every class counted
        log_p = z - z.max(axis=1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
        assert value(z) == pytest.approx(-(y * log_p).sum(axis=1).mean(), rel=1e-12)


def test_label_smoothing_trains_on_soft_targets_and_validates_on_true_ones(tmp_path):
    def run(smoothing):
        config = tmp_path / f"s{smoothing}.yaml"
        config.write_text(f"seed: 0\ndata:\n  path: {DATASETS / 'iris.csv'}\n  target: species\n"
                          f"model:\n  layers: [16]\ntraining:\n  optimizer: adam\n  learning_rate: 0.05\n"
                          f"  iterations: 150\n  label_smoothing: {smoothing}\n")
        options = RunOptions(tmp_path / "runs", f"s{smoothing}", plot=False, cache=False)
        return train_config(load_config(config), options=options)

    from nnctl.runs.model import load_model

    sharp, smooth = run(0.0), run(0.3)
    X = load_model(sharp.run).encoder  # noqa: F841 (the same inputs for both)
    import pandas as pd

    frame = pd.read_csv(DATASETS / "iris.csv").drop(columns="species")
    top = [load_model(r.run).predict_proba(frame).max(axis=1).mean() for r in (sharp, smooth)]
    # smoothed targets cap how sure the model gets: at most 1 − 0.3 + 0.1 = 0.8 at the optimum
    assert top[1] < 0.85 < top[0]
