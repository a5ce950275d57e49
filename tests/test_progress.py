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
