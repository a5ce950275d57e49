"""The key table's defaults are the tabular recipe: a config with only data.path and data.target
trains it, and the defaults give way to what a config writes instead of failing on it."""
import re

import pytest
import yaml

from nnctl.config import load_config
from nnctl.config.recipe import CHOICES, DEFAULTS, recipe
from nnctl.config.spec import spec

from .cli_helpers import cli
from .conftest import DATASETS, OLD_DEFAULTS, ROOT

pytestmark = pytest.mark.new_defaults


def minimal(write_config, extra=""):
    return load_config(write_config(f"data:\n  path: {DATASETS / 'iris.csv'}\n  target: species\n{extra}"))


def test_a_minimal_config_resolves_to_the_recipe(write_config):
    cfg = minimal(write_config)
    assert cfg.data.embedding == "auto"  # only categoricals of more than 10 categories; none here
    assert cfg.model.numeric_embedding == {"kind": "periodic", "frequencies": 16, "width": 16, "sigma": 0.1}
    assert cfg.data.scale == "robust" and cfg.model.layers == [256, 256, 256] and cfg.model.dropout == 0.0
    t = cfg.training
    assert (t.optimizer, t.learning_rate, t.l2, t.batch_size, t.warmup, t.iterations) == ("adamw", 0.001, 0.0001, 256, 5, 200)
    assert t.schedule == {"name": "plateau", "factor": 0.5, "patience": 6, "min_lr": 1e-5}
    assert t.early_stopping.to_dict() == {"patience": 16, "min_delta": 0.0, "metric": "val_loss", "restore_best": True}


def test_init_writes_the_defaults_from_the_key_table_not_a_copy():
    table = spec()
    for (section, key), (value, _) in recipe().items():
        if (section, key) in DEFAULTS:
            assert value == table[section][key].default, (section, key)
        else:  # init's own data choices differ from the defaults on purpose
            assert (section, key) in CHOICES and section == "data"


def test_without_a_validation_part_the_default_early_stopping_is_off(write_config):
    cfg = minimal(write_config, "  validation_split: 0\n")
    assert cfg.training.early_stopping is None and cfg.training.schedule["name"] == "plateau"


def test_early_stopping_written_without_a_validation_part_is_still_an_error(write_config):
    with pytest.raises(Exception, match="val_loss needs a validation part"):
        minimal(write_config, "  validation_split: 0\ntraining:\n  early_stopping: {patience: 5}\n")


@pytest.mark.parametrize("patience, plateau", [(6, {"name": "plateau", "factor": 0.5, "patience": 3, "min_lr": 1e-5}),
                                               (3, {"name": "plateau", "factor": 0.5, "patience": 1, "min_lr": 1e-5}),
                                               (1, {"name": "constant"}),
                                               (30, {"name": "plateau", "factor": 0.5, "patience": 6, "min_lr": 1e-5})])
def test_a_short_early_stopping_patience_shortens_the_default_plateau(write_config, patience, plateau):
    cfg = minimal(write_config, f"training:\n  early_stopping: {{patience: {patience}}}\n")
    assert cfg.training.schedule == plateau


def test_a_written_plateau_that_outwaits_early_stopping_is_still_an_error(write_config):
    with pytest.raises(Exception, match="not below early stopping's patience"):
        minimal(write_config, "training:\n  early_stopping: {patience: 4}\n  schedule: {name: plateau, patience: 4}\n")


def test_a_minimal_config_trains_the_recipe_and_stops_early(write_config, tmp_path):
    path = write_config(f"data:\n  path: {DATASETS / 'iris.csv'}\n  target: species\n"
                        "training:\n  early_stopping: {patience: 3}\n")
    result = cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet", "--set", "training.iterations=60")
    assert result.exit_code == 0, result.stderr
    run = result.stdout.strip().splitlines()[-1]
    written = yaml.safe_load(open(f"{run}/config.yaml"))
    assert written["training"]["optimizer"] == "adamw" and written["model"]["layers"] == [256, 256, 256]
    assert written["training"]["schedule"]["patience"] == 1  # the default plateau under patience 3
    assert "accuracy" in open(f"{run}/metrics.json").read()


def test_the_changelog_names_every_old_default_the_tests_pin():
    """docs/config.md's "Defaults changed" table lists each key whose default changed with its
    old and new value: the old ones are those conftest pins for tests written before, the new
    ones are the key table's."""
    text = (ROOT / "docs" / "config.md").read_text()
    section = text.split("## Defaults changed", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9_.]+)` \| `(.+?)` \| `(.+?)` \|", section, flags=re.M)
    documented = {tuple(key.split(".")): (yaml.safe_load(old), yaml.safe_load(new)) for key, old, new in rows}
    assert set(documented) == set(OLD_DEFAULTS)
    table = spec()
    for path, (old, new) in documented.items():
        assert old == OLD_DEFAULTS[path], path
        entry = table[path[0]][path[1]]
        current = entry.sub[path[2]].default if len(path) == 3 else entry.default
        assert new == current, path
