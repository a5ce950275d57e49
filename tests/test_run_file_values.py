"""Values in a run folder's files read as the data wrote them (issue 22, item 29)."""
import csv

from .cli_helpers import cli


def test_validation_csv_writes_a_regression_target_of_zero_as_zero(tmp_path):
    # offsets and scales that are not powers of two: the float32 round trip leaves noise (2.43e-08)
    rows = "".join(f"{i % 7},{[0, 0.1, 151, -2.5, 3.25, 0, 346][i % 7]}\n" for i in range(70))
    (tmp_path / "data.csv").write_text("x,v\n" + rows)
    (tmp_path / "c.yaml").write_text("data:\n  path: data.csv\n  target: v\n  validation_split: 0.5\n"
                                     "model:\n  layers: [3]\ntraining:\n  iterations: 2\n")
    run = cli("train", tmp_path / "c.yaml", "--runs-dir", tmp_path / "runs", "--quiet").stdout.strip()
    with open(f"{run}/validation.csv") as fh:
        truths = {row["target"] for row in csv.DictReader(fh)}
    assert truths <= {"0", "0.1", "151", "-2.5", "3.25", "346"}
    assert "0" in truths
