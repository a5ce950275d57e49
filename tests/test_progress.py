"""What a person sees while training: the live table and plain lines, rendered for real."""
import io

from rich.console import Console

from nnctl.ui.fmt import format_duration, format_number, sparkline
from nnctl.ui.progress import LiveTable, PlainLines

BEGIN = {"epochs": 10, "validation": True, "metric": "val_accuracy"}


def _log(epoch):
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 2.0 / epoch, "val_accuracy": epoch / 10,
            "learning_rate": 0.01, "seconds": epoch * 0.5}


def _rows(text):
    return [line.split() for line in text.strip().splitlines()]


def test_live_table_shows_the_thinned_rows_then_the_latest_epoch():
    console = Console(file=io.StringIO(), width=120, no_color=True, force_terminal=False)
    live = LiveTable(console, display_rows=2, title="training iris.yaml")
    live.table.begin(BEGIN)  # without starting rich's Live: render() is what it redraws
    for epoch in range(1, 8):
        live.on_epoch_end(_log(epoch))
    console.print(live.render())
    rows = _rows(console.file.getvalue())
    assert rows[0] == ["training", "iris.yaml"]
    assert rows[1] == ["epoch", "train", "loss", "val", "loss", "val", "accuracy", "learning", "rate", "elapsed", "eta"]
    # 10 epochs in about 2 rows: every 5th is kept (1, 5), and the latest (7) is shown below them
    assert rows[2] == ["1", "1.0000", "2.0000", "0.1000", "0.01", "0.5s", "4.5s"]
    assert rows[3] == ["5", "0.2000", "0.4000", "0.5000", "0.01", "2.5s", "2.5s"]
    assert rows[4] == ["7", "0.1429", "0.2857", "0.7000", "0.01", "3.5s", "1.5s"]
    assert rows[5][:2] == ["loss", "trend"] and len(rows[5][2]) == 7 and rows[5][2][0] == "█"
    assert len(rows) == 6


def test_plain_lines_are_the_same_rows_without_escape_codes():
    out = io.StringIO()
    plain = PlainLines(out, display_rows=2)
    plain.on_train_begin(BEGIN)
    for epoch in range(1, 11):
        plain.on_epoch_end(_log(epoch))
    text = out.getvalue()
    assert "\x1b" not in text
    assert [r[0] for r in _rows(text)] == ["epoch", "1", "5", "10"]


def test_formatters():
    assert format_number(0.5) == "0.5000" and format_number(1e-5) == "1.000e-05" and format_number(None) == ""
    assert format_number(float("nan")) == "nan" and format_number(3) == "3"
    assert format_duration(75) == "1m15s" and format_duration(3.25) == "3.2s" and format_duration(7300) == "2h01m"
    assert sparkline([1.0, 0.1, 0.01]) == "█▅▁" and sparkline([]) == ""


def test_a_streamed_tables_first_pass_shows_rows_rate_and_time_left(monkeypatch):
    """Issue 32 item 14: the first pass says how far it has read, every READ_LINE_EVERY seconds
    on plain lines, then how long it took, before the notes and the table."""
    import time

    from nnctl.ui import progress

    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    out = io.StringIO()
    plain = PlainLines(out, display_rows=5)
    plain.on_read({"file": "big.csv", "rows": 100_000, "fraction": 0.1})  # starts the clock: no line yet
    now[0] = 104.0
    plain.on_read({"file": "big.csv", "rows": 400_000, "fraction": 0.25})  # 4 s in: too soon
    assert out.getvalue() == ""
    now[0] = 112.0
    plain.on_read({"file": "big.csv", "rows": 1_200_000, "fraction": 0.5})  # 12 s in
    assert out.getvalue() == "reading big.csv: 1,200,000 rows (50%), 100,000 rows/s, about 12.0s left\n"
    now[0] = 130.0
    plain.on_read({"file": "big.csv", "rows": 2_400_000, "fraction": 1.0})
    plain.on_train_begin({**BEGIN, "notes": [("note", "streaming from encoded shards")]})
    lines = out.getvalue().splitlines()
    assert lines[1] == "reading big.csv: 2,400,000 rows (100%), 80,000 rows/s"  # 18 s after the last line
    assert lines[2] == "read 2,400,000 rows of big.csv in 30.0s" and lines[3] == "note: streaming from encoded shards"
    assert progress.reading_text({"file": "-", "rows": 10, "fraction": None, "seconds": 0.0}) == "reading -: 10 rows"


def test_the_first_pass_is_shown_on_stderr_but_not_with_quiet_or_on_json_stdout(tmp_path):
    from .cli_helpers import cli
    from .test_streaming import write_cfg, write_table

    config = write_cfg(tmp_path, write_table(tmp_path))
    shown = cli("train", config, "--runs-dir", tmp_path / "runs", "--set", "training.iterations=1", "--no-cache")
    assert shown.exit_code == 0, shown.stderr
    assert "read 1,200 rows of " in shown.stderr
    quiet = cli("train", config, "--runs-dir", tmp_path / "runs", "--set", "training.iterations=1", "--no-cache",
                "--quiet", "--json")
    assert quiet.exit_code == 0 and "read 1,200" not in quiet.stderr + quiet.stdout
    assert "reading" not in quiet.stdout
