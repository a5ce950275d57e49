"""Outputs written atomically never replace special files: symlinks are written through,
FIFOs and devices directly; an output that is the input is refused; plot writes exactly the
file it names."""
import os
import threading
from pathlib import Path

import pytest

from nnctl.atomic import atomic_file, written_directly
from .cli_helpers import assert_clean_error, cli
from .conftest import DATASETS


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path):
    target = tmp_path / "real.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    with atomic_file(link) as fh:
        fh.write("new\n")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "real.csv"]  # no temporary left


def test_a_fifo_is_written_into_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(Path(fifo).read_text()))
    reader.start()
    with atomic_file(fifo) as fh:
        fh.write("through the pipe\n")
    reader.join(5)
    assert got == ["through the pipe\n"]
    assert fifo.is_fifo()


def _device(path: str) -> str:
    """Guard: tests run as root could replace the machine's real device if the code regressed,
    so nothing is written unless the code promises to write it directly."""
    if not Path(path).is_char_device():
        pytest.skip(f"no {path} here")
    assert written_directly(Path(path))
    return path


def test_a_device_is_written_directly(tmp_path):
    with atomic_file(_device("/dev/null")) as fh:
        fh.write("nothing\n")
    assert Path("/dev/null").is_char_device()
    assert not list(Path("/dev").glob(".null.*"))


def test_a_full_device_names_itself():
    with pytest.raises(OSError) as caught:
        with atomic_file(_device("/dev/full")) as fh:
            fh.write("x" * 100_000)
    assert caught.value.filename == "/dev/full" and "No space left" in caught.value.strerror
    assert Path("/dev/full").is_char_device()


def test_predict_output_through_a_symlink(iris_run, tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    result = cli("predict", iris_run, DATASETS / "iris.csv", "--output", link)
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink()
    assert target.read_text().splitlines()[0] == "prediction" and len(target.read_text().splitlines()) == 151


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
def test_predict_refuses_to_overwrite_its_input(iris_run, tmp_path, how):
    data = tmp_path / "d.csv"
    data.write_bytes((DATASETS / "iris.csv").read_bytes())
    output = data
    if how == "symlink":
        output = tmp_path / "alias.csv"
        output.symlink_to(data)
    elif how == "hardlink":
        output = tmp_path / "hard.csv"
        os.link(data, output)
    before = data.read_bytes()
    assert_clean_error(cli("predict", iris_run, data, "--output", output), "--output is the input file", str(output))
    assert data.read_bytes() == before


def test_plot_without_a_suffix_writes_and_prints_that_very_file(iris_run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "noext"
    result = cli("plot", iris_run, "--output", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "noext.png").exists()


def test_plot_svg_by_suffix(iris_run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.svg"
    result = cli("plot", iris_run, "--output", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out) and "<svg" in out.read_text()


def test_plot_refuses_a_folder_and_an_unknown_format(iris_run, tmp_path):
    pytest.importorskip("matplotlib")
    assert_clean_error(cli("plot", iris_run, "--output", tmp_path), "--output is a folder")
    assert_clean_error(cli("plot", iris_run, "--output", tmp_path / "x.txt"), "cannot draw a '.txt' image", "png")
    assert list(tmp_path.iterdir()) == []


def test_predict_to_dev_stdout_writes_to_stdout(iris_run):
    from .cli_helpers import subprocess_cli

    assert written_directly(Path("/dev/stdout"))  # guard: never let a regression replace it
    result = subprocess_cli("predict", iris_run, DATASETS / "iris.csv", "--output", "/dev/stdout")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "prediction" and len(result.stdout.splitlines()) == 151
    assert Path("/dev/stdout").is_symlink() or not Path("/dev/stdout").is_file()


def test_report_through_a_symlink(iris_run, tmp_path):
    target = tmp_path / "real.html"
    target.write_text("")
    link = tmp_path / "report.html"
    link.symlink_to(target)
    result = cli("report", iris_run, "--output", link)
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and target.read_text().lstrip().lower().startswith("<!doctype html")
