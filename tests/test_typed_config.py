"""The resolved config is typed: frozen dataclasses made from the one key table."""
import dataclasses
import pickle

import pytest

from nnctl.config import dump_config, load_config
from nnctl.config.spec import Key, spec
from nnctl.config.typed import Config, DataConfig, EarlyStoppingConfig, TrainingConfig, from_dict

from .conftest import CONFIGS


def test_a_loaded_config_reads_by_attribute():
    cfg = load_config(CONFIGS / "iris.yaml", ["training.early_stopping={patience: 5}", "model.layers=[8]"])
    assert isinstance(cfg, Config) and isinstance(cfg.data, DataConfig) and isinstance(cfg.training, TrainingConfig)
    assert cfg.training.learning_rate == 0.01 and cfg.model.layers == [8] and cfg.data.target == "species"
    assert cfg.training.early_stopping == EarlyStoppingConfig(patience=5, min_delta=0.0, metric="val_loss",
                                                              restore_best=True)
    assert cfg.training.schedule == {"name": "constant"}  # a mapping whose keys vary stays a mapping


def test_it_is_frozen_and_changed_only_by_replace():
    cfg = load_config(CONFIGS / "iris.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.training.learning_rate = 1.0
    faster = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, learning_rate=0.1))
    assert faster.training.learning_rate == 0.1 and cfg.training.learning_rate == 0.01


def test_every_key_of_the_table_is_a_field_in_its_order():
    cfg = load_config(CONFIGS / "iris.yaml")

    def walk(table: dict, node, path):
        assert [f.name for f in dataclasses.fields(node)] == list(table), path
        for name, entry in table.items():
            if isinstance(entry, dict):
                walk(entry, getattr(node, name), path + (name,))

    walk(spec(), cfg, ())
    assert isinstance(spec()["training"]["early_stopping"], Key)


def test_the_plain_form_round_trips_through_yaml_json_and_pickle(tmp_path):
    from nnctl.jsonfmt import dumps

    cfg = load_config(CONFIGS / "iris.yaml", ["training.early_stopping={patience: 3}"])
    plain = cfg.to_dict()
    assert isinstance(plain["training"]["early_stopping"], dict) and from_dict(plain) == cfg
    (tmp_path / "again.yaml").write_text(dump_config(cfg))
    assert load_config(tmp_path / "again.yaml") == cfg
    import json

    assert json.loads(dumps({"config": cfg}))["config"] == plain  # how checkpoints store it
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # how sweep workers and Ray tasks receive it


# --- a config changed in Python is checked as a YAML file is ---------------------------------------
def test_a_config_changed_with_dataclasses_replace_is_validated():
    from nnctl.errors import NnctlError

    cfg = load_config(CONFIGS / "iris.yaml")
    assert dataclasses.replace(cfg.training, learning_rate=0.5).learning_rate == 0.5
    assert dataclasses.replace(cfg, seed=7).seed == 7
    for change, fragment in [({"learning_rate": -1}, "training.learning_rate must be > 0"),
                             ({"optimizer": "nope"}, "training.optimizer must be one of")]:
        with pytest.raises(NnctlError, match=fragment):
            dataclasses.replace(cfg.training, **change)
    with pytest.raises(NnctlError, match="model.ensemble"):
        dataclasses.replace(cfg.model, ensemble=0)
    # cross-key rules too, once the whole config is made
    model = dataclasses.replace(cfg.model, layers=[8], activation=["relu", "tanh"])
    with pytest.raises(NnctlError, match="model.activation lists 2 activations for 1 hidden layers"):
        dataclasses.replace(cfg, model=model)
