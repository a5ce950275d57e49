"""Reading a config or sweep file and --set values (issue 22: items 11, 21, and small ones of 29)."""
import pytest

from nnctl.config import load_config
from nnctl.errors import NnctlError
from nnctl.sweep.spec import load_sweep

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS, DATASETS

IRIS = f"data:\n  path: {DATASETS / 'iris.csv'}\n  target: species\n"


def test_a_key_written_twice_names_both_lines(write_config):
    config = write_config(IRIS + "training:\n  iterations: 5\nmodel:\n  layers: [4]\ntraining:\n  learning_rate: 0.1\n")
    assert_clean_error(cli("validate", config), "the key 'training' is written twice, at lines 4 and 8",
                       "config.yaml, line 8")


def test_a_nested_key_written_twice_is_refused_too(write_config):
    with pytest.raises(NnctlError, match="the key 'iterations' is written twice, at lines 5 and 6"):
        load_config(write_config(IRIS + "training:\n  iterations: 5\n  iterations: 6\n"))


def test_yaml_merge_keys_still_work(write_config):
    config = write_config(IRIS + "training:\n  <<: {iterations: 7}\n  learning_rate: 0.5\n")
    cfg = load_config(config)
    assert (cfg.training.iterations, cfg.training.learning_rate) == (7, 0.5)


def test_a_sweep_file_with_a_key_written_twice_names_both_lines(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"config: {CONFIGS / 'iris.yaml'}\ntrials: 2\nmethod: random\ntrials: 3\n"
                     "parameters:\n  training.l2: {values: [0.0, 0.1]}\n")
    with pytest.raises(NnctlError, match="the key 'trials' is written twice, at lines 2 and 4"):
        load_sweep(sweep)


def test_thousands_of_nested_brackets_are_a_config_error_naming_the_file(write_config):
    config = write_config(IRIS + "model:\n  layers: " + "[" * 5000 + "]" * 5000 + "\n")
    assert_clean_error(cli("validate", config), "invalid YAML: nested more than 50 levels deep", str(config))


def test_thousands_of_nested_brackets_in_set_are_refused_by_the_flag(write_config):
    result = cli("validate", write_config(IRIS), "--set", "model.layers=" + "[" * 5000 + "]" * 5000)
    assert_clean_error(result, "nested more than 50 levels deep", "(--set model.layers)")


def test_set_decimal_comma_works_as_written(write_config):
    assert load_config(write_config(IRIS), ["data.decimal=,"]).data.decimal == ","


def test_a_broken_flow_list_in_set_is_still_refused(write_config):
    assert_clean_error(cli("validate", write_config(IRIS), "--set", "model.layers=[1,2"),
                       "cannot read the value '[1,2'", "--set model.layers")


@pytest.mark.parametrize("key, suggestion", [("training.lr", "did you mean 'learning_rate'?"),
                                              ("training.epochs", "did you mean 'iterations'?"),
                                              ("lr", "write it as training.learning_rate")])
def test_other_libraries_key_names_suggest_nnctls(write_config, key, suggestion):
    assert_clean_error(cli("validate", write_config(IRIS), "--set", f"{key}=0.1"), suggestion)


def test_a_sweep_parameter_named_as_pytorch_does_suggests_nnctls(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"config: {CONFIGS / 'iris.yaml'}\nparameters:\n  training.lr: {{values: [0.1]}}\n")
    with pytest.raises(NnctlError, match="did you mean 'training.learning_rate'"):
        load_sweep(sweep)
