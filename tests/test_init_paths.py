"""`nnctl init PATH` into folders that do not exist yet (issue 22, item 29)."""
import os

from .cli_helpers import assert_clean_error, cli


def test_init_makes_the_missing_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("init", "sub/dir/x.yaml")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "sub/dir/x.yaml").is_file() and (tmp_path / "sub/dir/iris.csv").is_file()
    assert cli("validate", "sub/dir/x.yaml").exit_code == 0


def test_init_under_a_file_names_that_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("not a folder")
    assert_clean_error(cli("init", "f/x.yaml"), "cannot make the config's folder: a file has that name", "(f)")
    assert sorted(os.listdir(tmp_path)) == ["f"]
