"""nnctl report shows the model's blocks (from model.npz) and labels each backprop-health row
with its layer's kind: batch/layer norm layers are trainable layers too, and a dead-unit flag
names the ReLU whose units died."""
import shutil
from html import unescape
from pathlib import Path

import pytest

from nnctl.report.blocks import Trainable
from nnctl.report.health import flags

from .cli_helpers import cli
from .conftest import CONFIGS


def train(runs, *sets):
    args = ["train", CONFIGS / "iris.yaml", "--runs-dir", runs, "--quiet", "--set", "training.iterations=3"]
    for s in sets:
        args += ["--set", s]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip())


def page(*runs, tmp_path) -> str:
    out = tmp_path / "report.html"
    result = cli("report", *runs, "--output", out)
    assert result.exit_code == 0, result.stderr
    return unescape(out.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("block-runs")
    return {"plain": train(folder),
            "batch": train(folder, "model.normalization=batch", "model.dropout=0.2"),
            "layer": train(folder, "model.normalization=layer", "model.dropout=[0.1, 0.3]")}


def test_summary_shows_each_block(runs, tmp_path):
    assert ("<td>blocks</td><td>4 → 16 [batch norm, relu, dropout 0.2] → 16 [batch norm, relu, dropout 0.2] "
            "→ 3 [softmax]</td>") in page(runs["batch"], tmp_path=tmp_path)
    assert ("<td>blocks</td><td>4 → 16 [layer norm, relu, dropout 0.1] → 16 [layer norm, relu, dropout 0.3] "
            "→ 3 [softmax]</td>") in page(runs["layer"], tmp_path=tmp_path)
    assert "<td>blocks</td><td>4 → 16 [relu] → 16 [relu] → 3 [softmax]</td>" in page(runs["plain"], tmp_path=tmp_path)


def test_health_rows_are_labelled_with_their_layers_kind(runs, tmp_path):
    rows = (runs["batch"] / "diagnostics.csv").read_text().splitlines()[1:]
    assert sorted({int(r.split(",")[1]) for r in rows}) == [0, 1, 2, 3, 4]  # the norms' gamma/beta have rows
    text = page(runs["batch"], tmp_path=tmp_path)
    for label in ("layer 0 (dense)", "layer 1 (batch norm)", "layer 2 (dense)", "layer 3 (batch norm)",
                  "layer 4 (dense)"):
        assert text.count(label) >= 3  # in the gradient, update-ratio and weight-norm charts' legends
    # dead units are counted at the relu's input, which the batch norm (not the dense layer) feeds
    assert "the relu after layer 1 (batch norm)" in text and "the relu after layer 3 (batch norm)" in text
    assert "relu after layer 0" not in text and "relu after layer 2" not in text
    assert "layer 1 (dense)" not in text


def test_plain_models_rows_are_dense_layers(runs, tmp_path):
    text = page(runs["plain"], tmp_path=tmp_path)
    assert "layer 0 (dense)" in text and "layer 2 (dense)" in text and "norm)" not in text
    assert "the relu after layer 0 (dense)" in text and "the relu after layer 1 (dense)" in text


def test_comparison_shows_blocks(runs, tmp_path):
    text = page(runs["plain"], runs["layer"], tmp_path=tmp_path)
    assert "<td>4 → 16 [relu] → 16 [relu] → 3 [softmax]</td>" in text
    assert "<td>4 → 16 [layer norm, relu, dropout 0.1] → 16 [layer norm, relu, dropout 0.3] → 3 [softmax]</td>" in text


def test_flags_name_the_layer_kind_and_the_relu_whose_units_died():
    kinds = [Trainable("dense", None), Trainable("batch norm", "relu"), Trainable("dense", None)]
    rows = [{"epoch": 1, "layer": i, "grad_norm": 1.0, "weight_norm": 1.0, "update_ratio": 1e-3,
             "dead_fraction": dead} for i, dead in enumerate([None, 0.75, None])]
    rows.append({**rows[1], "epoch": 2, "grad_norm": 5e3})
    said = [t for s, t in flags(rows, kinds) if s == "warning"]
    assert any(t.startswith("Dead units in the relu after layer 1 (batch norm): 75% of its units") for t in said)
    assert any(t.startswith("Exploding gradients in layer 1 (batch norm): the gradient norm grew from 1.00e+00 "
                            "to 5.00e+03") for t in said)
    # without model.npz's kinds, the rows are plain numbers, as before
    assert any(t.startswith("Dead units in layer 1: 75%") for _, t in flags(rows))


def test_a_run_without_a_readable_model_still_gets_its_page(runs, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(runs["batch"], run)
    (run / "model.npz").write_bytes(b"not a zip")
    text = page(run, tmp_path=tmp_path)
    assert "<td>blocks</td>" not in text and "layer 1 (batch norm)" not in text
    assert "model.npz could not be read" in text and "layer 1" in text  # health still shown, unlabelled
