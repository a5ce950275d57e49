"""model.ensemble: K members trained in one run, each the network its own seed (seed + i) trains
alone; early stopping and checkpoints judge the members' mean; resume is exact; model.npz is
format 3 (K = 1 stays format 2); predict and evaluate give the members' mean."""
import io
import json

import numpy as np
import pandas as pd
import pytest

from nnctl.commands.train import resume_run, train_config
from nnctl.config import load_config
from nnctl.runs.model import load_model

from .cli_helpers import cli
from .conftest import DATASETS
from .test_resume import arrays, assert_same_weights, metrics
from .test_resume import iris_config as resume_config

K = 3


@pytest.mark.parametrize("dropout, more", [(0.0, []), (0.3, []), (0.3, ["model.layers=[8, 8]", "model.residual=true"])])
def test_members_equal_separately_trained_networks(tmp_path, dropout, more):
    """On one dataset (one split), member i of a K-member run ends as the network seed + i
    trains alone: its weights, batch order, dropout masks, clipping and optimizer state are its
    own."""
    from nnctl.data import load_dataset
    from nnctl.training.build import build_network
    from nnctl.training.loop import train

    config = resume_config(tmp_path, "adam", "  grad_clip: 0.5\n  l2: 0.001\n  dtype: float64\n")
    sets = ["training.iterations=12", "training.early_stopping=null", "model.layers=[8, 6]",
            f"model.dropout={dropout}"] + more  # residual: dropout inside the blocks
    cfg = load_config(config, sets + [f"model.ensemble={K}"])
    dataset = load_dataset(cfg)
    together = build_network(cfg, dataset)
    train(together, dataset, cfg.training, seed=cfg.seed)
    assert together.layers[0].W.shape == (K, 4, 8)
    for i in range(K):
        alone_cfg = load_config(config, sets + [f"seed={cfg.seed + i}"])
        alone = build_network(alone_cfg, dataset)
        train(alone, dataset, alone_cfg.training, seed=alone_cfg.seed)
        for name, value in alone.arrays().items():
            np.testing.assert_allclose(together.arrays()[name][i], value, rtol=0, atol=1e-5, err_msg=f"{name}, {i}")


def test_member_i_starts_as_the_single_network_of_seed_plus_i(iris_config):
    from nnctl.data import load_dataset
    from nnctl.training.build import build_network

    config = iris_config("seed: 5\nmodel:\n  layers: [8, 6]\n  normalization: layer\n")
    cfg = load_config(config, [f"model.ensemble={K}"])
    ensemble = build_network(cfg, load_dataset(cfg))
    for i in range(K):
        alone = load_config(config, [f"seed={5 + i}"])
        single = build_network(alone, load_dataset(alone))
        for name, value in single.arrays().items():  # bit for bit: member 0 is today's network
            assert ensemble.arrays()[name][i].tobytes() == value.tobytes(), (name, i)


@pytest.mark.parametrize("restore_best", [True, False])
def test_members_stop_and_slow_down_as_they_would_alone(tmp_path, restore_best):
    """With early stopping, a plateau schedule and warm-up (the recipe's), member i still ends as
    the network seed + i trains alone: it halves its own rate and stops on its own validation
    scores, keeps its own best epoch (or, without restore_best, the weights it stopped with:
    a stopped member takes no more steps). One stop for all on the mean's score left members at
    the mean's best epoch, far from their own."""
    from nnctl.data import load_dataset
    from nnctl.training.build import build_network
    from nnctl.training.loop import train

    config = resume_config(tmp_path, "adamw", "  dtype: float64\n  warmup: 2\n  l2: 0.001\n")
    sets = ["training.iterations=60", "training.learning_rate=0.05", "model.layers=[8, 6]",
            "training.schedule={name: plateau, factor: 0.5, patience: 2}",
            f"training.early_stopping={{patience: 5, restore_best: {str(restore_best).lower()}}}"]
    cfg = load_config(config, sets + [f"model.ensemble={K}"])
    dataset = load_dataset(cfg)
    together = build_network(cfg, dataset)
    result = train(together, dataset, cfg.training, seed=cfg.seed)
    best = []
    for i in range(K):
        alone_cfg = load_config(config, sets + [f"seed={cfg.seed + i}"])
        alone = build_network(alone_cfg, dataset)
        best.append(train(alone, dataset, alone_cfg.training, seed=alone_cfg.seed).best_epoch)
        for name, value in alone.arrays().items():
            np.testing.assert_allclose(together.arrays()[name][i], value, rtol=0, atol=1e-5, err_msg=f"{name}, {i}")
    assert len(set(best)) > 1  # the members' own best epochs differ: one stop for all could not give them
    assert result.best_epoch == max(best)


def test_members_watching_the_training_loss_stop_all_at_once(tmp_path):
    config = resume_config(tmp_path, "adam")
    sets = [f"model.ensemble={K}", "training.iterations=6", "training.early_stopping={metric: train_loss}",
            "training.schedule={name: plateau}"]
    result = train_config(load_config(config, sets), tmp_path / "e", "iris", plot=False)
    assert result.best_epoch is not None and len(pd.read_csv(result.run / "history.csv")) == 6


def test_the_history_logs_the_members_mean_and_predictions_are_their_mean(tmp_path):
    config = resume_config(tmp_path, "adam")
    run = train_config(load_config(config, [f"model.ensemble={K}", "training.iterations=30"]), tmp_path / "e",
                       "iris", plot=False).run
    model = load_model(run)
    frame = pd.read_csv(DATASETS / "iris.csv")
    members = model.network.predict_members(model.inputs(frame))
    np.testing.assert_allclose(model.predict_proba(frame), members.mean(axis=0), rtol=1e-6)
    history = pd.read_csv(run / "history.csv")
    assert metrics(run)["best_epoch"] in set(history["epoch"])
    assert history["val_loss"].notna().all()


@pytest.mark.parametrize("schedule", ["{name: step, step_size: 10, gamma: 0.5}", "{name: plateau, patience: 2}"])
def test_an_ensemble_interrupted_mid_epoch_resumes_exactly(tmp_path, schedule):
    config = resume_config(tmp_path, "adam", f"  dtype: float64\n")
    sets = [f"model.ensemble={K}", "training.iterations=20", "model.dropout=0.2", f"training.schedule={schedule}"]
    straight = train_config(load_config(config, sets), tmp_path / "a", "iris", plot=False)
    calls = {"n": 0}

    def stop_after_37_batches():
        calls["n"] += 1
        return calls["n"] >= 37

    cut = train_config(load_config(config, sets), tmp_path / "b", "iris", plot=False, should_stop=stop_after_37_batches)
    assert cut.status == "interrupted"
    resumed = resume_run(cut.run, (), tmp_path / "b", plot=False)
    assert_same_weights(straight.run, resumed.run)
    assert metrics(resumed.run)["epochs"] == metrics(straight.run)["epochs"]


def test_train_predict_evaluate_round_trip_on_the_command_line(tmp_path):
    config = resume_config(tmp_path, "adam", "  iterations: 15\n")
    result = cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet", "--set", f"model.ensemble={K}")
    assert result.exit_code == 0, result.stderr
    run = result.stdout.strip()
    with np.load(f"{run}/model.npz") as saved:
        meta = json.loads(str(saved["meta"]))
        assert (meta["format_version"], meta["members"]) == (3, K)
        assert saved["layers.0.W"].shape == (K, 4, 8) and saved["layers.0.b"].shape == (K, 8)
    predicted = cli("predict", run, DATASETS / "iris.csv", "--proba")
    assert predicted.exit_code == 0, predicted.stderr
    table = pd.read_csv(io.StringIO(predicted.stdout))
    model = load_model(run)
    frame = pd.read_csv(DATASETS / "iris.csv")
    mean = model.network.predict_members(model.inputs(frame)).mean(axis=0)
    np.testing.assert_allclose(table[[c for c in table.columns if c.startswith("p_")]].to_numpy(), mean, atol=1e-6)
    evaluated = cli("evaluate", run, DATASETS / "iris.csv", "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["accuracy"] > 0.8


def test_one_member_is_written_as_format_2(tmp_path):
    config = resume_config(tmp_path, "adam", "  iterations: 3\n")
    run = train_config(load_config(config, ["model.ensemble=1"]), tmp_path / "a", "iris", plot=False).run
    with np.load(run / "model.npz") as saved:
        meta = json.loads(str(saved["meta"]))
        assert meta["format_version"] == 2 and "members" not in meta and saved["layers.0.W"].shape == (4, 8)


def test_ensemble_must_be_a_whole_number_of_one_or_more(iris_config):
    from .cli_helpers import assert_clean_error

    assert_clean_error(cli("train", iris_config("model:\n  ensemble: 0\n")), "model.ensemble")
