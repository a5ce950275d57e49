"""`data.exclude`: columns to leave out, every other one used (issue 22, item 24)."""
import pytest

from nnctl.config import load_config
from nnctl.data import load_dataset
from nnctl.errors import NnctlError

from .cli_helpers import assert_clean_error, cli

ROWS = "".join(f"{i},{i % 3 * 0.5},{i % 7},{'ab'[i % 2]}\n" for i in range(40))
TABLE = "id,x,z,y\n" + ROWS


def _config(write_config, write_csv, extra):
    return write_config(f"data:\n  path: {write_csv(TABLE)}\n  target: y\n{extra}")


def test_excluded_columns_are_left_out_and_the_rest_used(write_config, write_csv):
    dataset = load_dataset(load_config(_config(write_config, write_csv, "  exclude: [id]\n")))
    assert dataset.encoder.features == ["x", "z"]
    assert dataset.n_inputs == 2
    assert not [text for kind, text in dataset.notes if "'id'" in text]


def test_the_id_warning_suggests_exclude(write_config, write_csv):
    dataset = load_dataset(load_config(_config(write_config, write_csv, "")))
    warnings = [text for kind, text in dataset.notes if kind == "warning"]
    assert warnings == ["column 'id' has a different whole number in every row (an ID?) and is used as a feature; "
                        "leave it out with data.exclude: [id]"]


def test_exclude_may_be_empty_and_defaults_so(write_config, write_csv):
    cfg = load_config(_config(write_config, write_csv, "  exclude: []\n"))
    assert cfg.data.exclude == []
    assert load_config(_config(write_config, write_csv, "")).data.exclude == []
    assert load_dataset(cfg).encoder.features == ["id", "x", "z"]


def test_a_misspelt_excluded_column_is_an_error_not_a_kept_column(write_config, write_csv):
    config = _config(write_config, write_csv, "  exclude: [ID]\n")
    assert_clean_error(cli("validate", config), "data.exclude names 'ID', which is not a column of the file",
                       "did you mean 'id'?")


@pytest.mark.parametrize("extra, fragment", [
    ("  exclude: [id]\n  features: [x]\n", "is set together with data.features"),
    ("  exclude: [y]\n", "names the target column 'y'"),
])
def test_exclude_conflicts_are_config_errors(write_config, write_csv, extra, fragment):
    with pytest.raises(NnctlError, match=fragment):
        load_config(_config(write_config, write_csv, extra))


def test_set_exclude_on_the_command_line(write_config, write_csv):
    result = cli("validate", _config(write_config, write_csv, ""), "--set", "data.exclude=[id]")
    assert result.exit_code == 0, result.stderr
    assert "exclude:\n  - id" in result.stdout or "exclude: [id]" in result.stdout
    assert "(an ID?)" not in result.stderr
