"""How a table's text is read: decimal commas and text encodings (issue 22, items 9 and 10)."""
import gzip

import pytest

from nnctl.config import load_config
from nnctl.data import load_dataset
from nnctl.errors import NnctlError

from .cli_helpers import assert_clean_error, cli

DECIMAL_COMMAS = "a;b;species\n1,5;2,25;x\n2,5;3,75;y\n1,25;2,5;x\n3,5;1,5;y\n"


def _config(write_config, path, extra=""):
    return write_config(f"data:\n  path: {path}\n  target: species\n  validation_split: 0\n{extra}")


def test_decimal_commas_are_named_before_auto_makes_them_categories(write_config, write_csv):
    config = _config(write_config, write_csv(DECIMAL_COMMAS), "  categorical: auto\n")
    assert_clean_error(cli("validate", config), "column 'a' holds numbers written with a decimal comma (e.g. '1,5')",
                       'set data.decimal: ","')


def test_decimal_commas_with_auto_read_as_numbers_once_decimal_is_set(write_config, write_csv):
    config = _config(write_config, write_csv(DECIMAL_COMMAS), "  categorical: auto\n  decimal: \",\"\n")
    dataset = load_dataset(load_config(config))
    assert dataset.encoder.categories == {}
    assert dataset.encoder.inputs == ["a", "b"]


def test_a_decimal_comma_column_listed_as_categorical_stays_the_users_choice(write_config, write_csv):
    config = _config(write_config, write_csv(DECIMAL_COMMAS), "  categorical: [a]\n  features: [a]\n")
    assert load_dataset(load_config(config)).encoder.categories == {"a": ["1,25", "1,5", "2,5", "3,5"]}


def _rows(labels):
    return "".join(f"{i},{label}\n" for i, label in enumerate(labels))


def test_utf8_and_latin1_rows_in_one_file_are_refused_with_both_lines(write_config, tmp_path):
    data = tmp_path / "mixed.csv"
    data.write_bytes(b"x,species\n" + _rows(["setosa", "café"] * 3).encode("utf-8")
                     + _rows(["café"]).encode("latin-1") + _rows(["x"] * 2).encode())
    with pytest.raises(NnctlError) as err:
        load_dataset(load_config(_config(write_config, data)))
    assert "not valid UTF-8 from line 8 on, so it would be read as Latin-1, but line 3 is UTF-8" in err.value.message


def test_mixed_encodings_inside_a_gzip_are_found_too(write_config, tmp_path):
    data = tmp_path / "mixed.csv.gz"
    data.write_bytes(gzip.compress(b"x,species\n" + _rows(["café"]).encode("latin-1")
                                   + _rows(["café", "x", "x"]).encode("utf-8")))
    assert_clean_error(cli("validate", _config(write_config, data)), "not valid UTF-8 from line 2 on",
                       "but line 3 is UTF-8", "mixed.csv.gz")


def test_a_file_that_stops_being_utf8_past_the_sniffed_head_names_the_line(write_config, tmp_path):
    data = tmp_path / "late.csv"
    data.write_bytes(b"x,species\n" + _rows(["setosa", "virginica"] * 5000).encode()
                     + _rows(["café"]).encode("latin-1"))
    assert_clean_error(cli("validate", _config(write_config, data)),
                       "data file is read as UTF-8 (as its first 64 KB are), but line 10002 is not valid UTF-8")


def test_a_latin1_file_alone_is_still_read_as_latin1(write_config, tmp_path):
    data = tmp_path / "latin1.csv"
    data.write_bytes(b"x,species\n" + _rows(["café", "x"] * 3).encode("latin-1"))
    dataset = load_dataset(load_config(_config(write_config, data)))
    assert dataset.classes == ["café", "x"]
