"""Usage mistakes are `error:` lines with exit 2, whoever finds them: nnctl or the argument
parser."""
import pytest

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS, DATASETS


@pytest.mark.parametrize("flag, spec", [("--fail-under", "accuracy=nan"), ("--fail-over", "loss=inf"),
                                        ("--fail-under", "accuracy=-inf")])
def test_a_non_finite_gate_is_a_usage_error(iris_run, flag, spec):
    assert_clean_error(cli("evaluate", iris_run, DATASETS / "iris.csv", flag, spec),
                       f"{flag} needs a finite number, got '{spec}'")


@pytest.mark.parametrize("tol", ["nan", "-1", "0", "inf"])
def test_gradcheck_tolerance_must_be_positive(tol):
    assert_clean_error(cli("gradcheck", CONFIGS / "iris.yaml", "--tol", tol), "--tol must be a positive number")


def test_an_empty_feature_list_is_called_that(write_config):
    config = write_config(f"data:\n  path: {DATASETS / 'iris.csv'}\n  target: species\n")
    assert_clean_error(cli("validate", config, "--set", "data.features=[]"), "got an empty list", "data.features")


def test_a_checkpoint_of_the_wrong_shape_says_so(write_config, tmp_path):
    import numpy as np

    config = write_config(f"data:\n  path: {DATASETS / 'iris.csv'}\n  target: species\nmodel:\n  layers: [4]\n"
                          "training:\n  iterations: 2\n  checkpoint_every: 1\n")
    trained = cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert trained.exit_code == 0, trained.stderr
    checkpoint = tmp_path / "runs" / trained.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1] / "checkpoint.npz"
    with np.load(checkpoint, allow_pickle=False) as npz:
        arrays = dict(npz)
    arrays["layers.0.b"] = arrays["layers.0.b"].reshape(1, -1)  # as many values, in two dimensions
    np.savez(checkpoint, **arrays)
    result = cli("train", "--resume", checkpoint.parent, "--set", "training.iterations=4", "--runs-dir", tmp_path / "more")
    assert_clean_error(result, "layers.0.b has the wrong shape", f"(1, {arrays['layers.0.b'].size})")


def test_a_file_that_expands_past_memory_says_memory(write_config, monkeypatch):
    import pandas as pd

    def out_of_memory(*args, **kwargs):
        raise pd.errors.ParserError("Error tokenizing data. C error: out of memory")

    monkeypatch.setattr(pd, "read_csv", out_of_memory)
    config = write_config(f"data:\n  path: {DATASETS / 'iris.csv'}\n  target: species\n")
    result = cli("validate", config)
    assert_clean_error(result, "not enough memory to read this file", "iris.csv")
    assert "delimiter" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["predict"], "error: missing argument 'MODEL' (nnctl predict)"),
    (["gradcheck", "x.yaml", "--rows", "abc"], "error: invalid value for '--rows'"),
    (["train", "--bogus"], "error: no such option: --bogus (nnctl train)"),
    (["nosuch"], "error: no such command 'nosuch' (nnctl)"),
])
def test_the_parsers_own_usage_errors_are_error_lines(args, message):
    result = cli(*args)
    assert_clean_error(result, message)
    assert result.stderr.splitlines()[0] == next(line for line in result.stderr.splitlines() if line.startswith(message))
    assert "Error:" not in result.stderr and not result.stderr.startswith("\n") and result.stdout == ""
    assert result.stderr.splitlines()[1].startswith(f"usage: nnctl {args[0] if args[0] != 'nosuch' else ''}".rstrip())


def test_the_same_as_a_subprocess():
    from .cli_helpers import subprocess_cli

    result = subprocess_cli("evaluate", "--fail-under")
    assert result.returncode == 2 and result.stderr.startswith("error: option '--fail-under' requires an argument")


def test_every_command_takes_debug_from_one_place():
    """--debug comes from the one error policy, not from each command's own parameters."""
    from nnctl.cli import app, ExitCode
    from typer.main import get_command

    group = get_command(app)
    for name, command in group.commands.items():
        assert "--debug" in [o for p in command.params for o in getattr(p, "opts", [])], name
    assert int(ExitCode.BAD_INPUT) == 2 and int(ExitCode.INTERRUPTED) == 130 and int(ExitCode.CHECK_FAILED) == 1


def test_a_negative_explain_seed_is_a_usage_error(iris_run):
    assert_clean_error(cli("explain", iris_run, DATASETS / "iris.csv", "--seed", "-1"),
                       "--seed must be a whole number of 0 or more, got -1")


def test_a_number_out_of_range_is_shown_as_given_not_rounded(iris_run):
    assert_clean_error(cli("predict", iris_run, DATASETS / "iris.csv", "--threshold", "1.0000001"),
                       "got 1.0000001")
    assert_clean_error(cli("predict", iris_run, DATASETS / "iris.csv", "--interval", "1.0000001"),
                       "strictly between 0 and 1, got 1.0000001")
    assert_clean_error(cli("gradcheck", CONFIGS / "iris.yaml", "--tol", "-0.5"), "got -0.5")


@pytest.mark.parametrize("value, fix", [("{country:16}", "--set 'data.embedding={country: 16}'"),
                                        ("{country: 16, team:8}", "--set 'data.embedding={country: 16, team: 8}'")])
def test_a_flow_mapping_without_a_space_after_the_colon_suggests_one(write_config, value, fix):
    config = write_config(f"data:\n  path: {DATASETS / 'iris.csv'}\n  target: species\n")
    result = cli("validate", config, "--set", f"data.embedding={value}")
    assert_clean_error(result, "reads as a key without a value: YAML needs a space after the colon", fix,
                       "(--set data.embedding)")
