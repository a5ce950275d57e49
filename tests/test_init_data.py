"""`nnctl init FILE --data DATA --target COL`: the recipe, adapted to the table, with reasons."""
import numpy as np
import pandas as pd
import pytest
import yaml

from nnctl.config import load_config

from .cli_helpers import assert_clean_error, cli

# init writes the key table's defaults: these tests see them
pytestmark = pytest.mark.new_defaults


def table(tmp_path, rows=400, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "customer_id": np.arange(1000, 1000 + rows),                  # an ID: excluded
        "note": [f"free text {i}" for i in range(rows)],               # unique text: excluded
        "city": rng.choice(["Oslo", "Lima", "Pune"], rows),            # a categorical
        "income": rng.lognormal(10, 1.5, rows).round(2),               # heavy-tailed
        "age": rng.integers(18, 80, rows),
        "visits": rng.poisson(3 * rng.gamma(0.5, 4, rows)),            # a skewed count target
        "churn": rng.choice(["yes", "no"], rows, p=[0.05, 0.95]),     # an imbalanced class
    })
    frame.loc[[3, 9], "age"] = np.nan
    path = tmp_path / "customers.csv"
    frame.to_csv(path, index=False)
    return path


def written(path):
    text = path.read_text()
    return text, yaml.safe_load(text)


def test_a_count_target_is_a_regression_with_ids_left_out_and_its_skew_named(tmp_path):
    data = table(tmp_path)
    config = tmp_path / "cfg" / "visits.yaml"
    result = cli("init", config, "--data", data, "--target", "visits")
    assert result.exit_code == 0, result.stderr
    text, cfg = written(config)
    assert cfg["data"]["path"] == "../customers.csv" and cfg["data"]["target"] == "visits"
    assert cfg["model"]["task"] == "regression" and "is a count" in text
    assert cfg["data"]["exclude"] == ["customer_id", "note"]
    assert "'customer_id': a different value in every row: an ID" in text
    assert cfg["data"]["target_transform"] == "standard" and "'visits' is skewed" in text and "log1p fits" in text
    assert cfg["data"]["scale"] == "robust" and "heavy tails in 'income'" in text
    assert cfg["data"]["categorical"] == "auto" and "one-hot: 'city', 'churn'" in text
    assert cfg["data"]["missing"] == "mean" and "missing values in 'age'" in text
    assert "label_smoothing" not in cfg["training"]  # a classification key, left out
    loaded = load_config(config)  # a valid config, and it trains
    assert loaded.training.optimizer == "adamw" and loaded.training.early_stopping.patience == 16
    trained = cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet", "--set", "training.iterations=2")
    assert trained.exit_code == 0, trained.stderr


def test_a_text_target_is_a_classification_and_its_imbalance_is_noted(tmp_path):
    data = table(tmp_path)
    config = tmp_path / "churn.yaml"
    assert cli("init", config, "--data", data, "--target", "churn").exit_code == 0
    text, cfg = written(config)
    assert cfg["model"]["task"] == "classification" and "target_transform" not in cfg["data"]
    assert "'churn' is imbalanced" in text


def test_init_without_data_writes_the_recipe_for_iris(tmp_path):
    config = tmp_path / "starter.yaml"
    assert cli("init", config).exit_code == 0
    cfg = load_config(config)
    assert str(cfg.data.path).endswith("iris.csv") and cfg.model.layers == [256, 256, 256]
    assert cfg.training.early_stopping is not None


def test_bad_init_requests_are_one_error_line(tmp_path):
    data = table(tmp_path)
    assert_clean_error(cli("init", tmp_path / "a.yaml", "--data", data), "--data needs --target too")
    assert_clean_error(cli("init", tmp_path / "a.yaml", "--data", data, "--target", "churnn"),
                       "--target names 'churnn', which is not a column", "did you mean 'churn'")
    assert_clean_error(cli("init", tmp_path / "a.yaml", "--data", tmp_path / "none.csv", "--target", "y"), "none.csv")
    assert not (tmp_path / "a.yaml").exists()
