"""What predict and an exported model say about their inputs (issue 22, item 29's small ones)."""
import io

import numpy as np
import pandas as pd
import pytest

from .cli_helpers import assert_clean_error, cli


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A regression run and a classification run (missing: error) on a tiny table."""
    folder = tmp_path_factory.mktemp("small")
    rows = "".join(f"{i % 5},{i % 3},{i * 0.5},{'ab'[i % 2]}\n" for i in range(30))
    (folder / "data.csv").write_text("x,z,v,y\n" + rows)
    runs = {}
    for name, target, features in (("reg", "v", "[x, z]"), ("cls", "y", "[x, z]")):
        (folder / f"{name}.yaml").write_text(f"data:\n  path: data.csv\n  target: {target}\n  features: {features}\n"
                                             "model:\n  layers: [3]\ntraining:\n  iterations: 3\n")
        result = cli("train", folder / f"{name}.yaml", "--runs-dir", folder / "runs", "--quiet")
        assert result.exit_code == 0, result.stderr
        runs[name] = result.stdout.strip().splitlines()[-1]
    return folder, runs


def test_threshold_on_a_regression_is_one_clear_sentence(small):
    folder, runs = small
    result = cli("predict", runs["reg"], folder / "data.csv", "--threshold", "0.5")
    assert_clean_error(result, "--threshold turns a class probability into a class, but this model is a regression "
                               "(it predicts numbers): leave --threshold out")
    assert len(result.stderr.strip().splitlines()) == 1  # no hint line that speaks of classes


def test_a_missing_number_at_predict_names_its_row(small):
    folder, runs = small
    (folder / "holes.csv").write_text("x,z\n1,2\n3,4\n,1\n2,\n")
    assert_clean_error(cli("predict", runs["cls"], folder / "holes.csv"),
                       "column 'x' has 1 missing value(s) (first in data row 3)")


def test_the_row_is_counted_across_chunks(small):
    from nnctl.commands.predict import predict_frames
    from nnctl.errors import NnctlError
    from nnctl.runs.model import load_model

    folder, runs = small
    (folder / "late.csv").write_text("x,z\n" + "1,2\n" * 7 + "1,\n")
    with pytest.raises(NnctlError, match=r"column 'z' has 1 missing value\(s\) \(first in data row 8\)"):
        list(predict_frames(load_model(runs["cls"]), folder / "late.csv", chunk_rows=3))


def test_onnx_reads_nan_in_a_string_column_as_missing_as_predict_does(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(1)
    colors = rng.choice(["red", "blue"], 40).astype(object)
    colors[[2, 9]] = None
    frame = pd.DataFrame({"color": colors, "size": rng.normal(size=40)})
    frame["kind"] = np.where(frame["size"] > 0, "big", "small")
    frame.to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "c.yaml").write_text("data:\n  path: train.csv\n  target: kind\n  categorical: [color]\n"
                                     "  missing: mean\nmodel:\n  layers: [3]\ntraining:\n  iterations: 3\n")
    run = cli("train", tmp_path / "c.yaml", "--runs-dir", tmp_path / "runs", "--quiet").stdout.strip()
    onnx_path = cli("export", run).stdout.strip()
    expected = pd.read_csv(io.StringIO(cli("predict", run, tmp_path / "train.csv", "--proba").stdout))
    session = ort.InferenceSession(onnx_path)
    # a pandas column fed as it is, missing values included: onnxruntime turns NaN into 'nan'
    feeds = {"color": frame[["color"]].to_numpy(dtype=object), "size": frame[["size"]].to_numpy(np.float32)}
    assert pd.isna(feeds["color"][2, 0])
    label, proba = session.run(["label", "probabilities"], feeds)
    assert [v.decode() if isinstance(v, bytes) else v for v in label] == list(expected["prediction"])
    np.testing.assert_allclose(proba, expected[["p_big", "p_small"]].to_numpy(), atol=1e-5)


def test_a_gzip_csv_on_stdin_is_read(iris_run):
    """GzipFile's first argument is a file name: the stream read into memory goes in as fileobj."""
    import gzip
    import subprocess
    import sys

    from .conftest import DATASETS

    result = subprocess.run([sys.executable, "-m", "nnctl", "predict", str(iris_run), "-"], capture_output=True,
                            input=gzip.compress((DATASETS / "iris.csv").read_bytes()))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines()[:2] == ["prediction", "setosa"]
