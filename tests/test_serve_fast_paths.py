"""`nnctl serve`'s fast paths, in-process: the answer built from predict's columns, JSON number
columns read straight into float arrays, the encoder's one-conversion path for all-numeric tables,
the warm-up at startup and the thread for big bodies. Each must give exactly what the slow path
(and `nnctl predict`) gives."""
import numpy as np
import pandas as pd
import pytest

from nnctl.commands.predict import PredictOptions, check_options, predict_chunk, predict_csv, prediction_columns
from nnctl.data.encoding import FeatureEncoder
from nnctl.runs.model import load_model

from .cli_helpers import train_run
from .conftest import DATASETS
from .test_serve import write_categorical

pytest.importorskip("fastapi")
testclient = pytest.importorskip("fastapi.testclient")

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def client(model, **settings):
    from nnctl.serving import app as serving

    return testclient.TestClient(serving.create_app(model, serving.ServeSettings(model=str(model.path), **settings)))


@pytest.fixture(scope="module")
def cats_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cats-fast")
    config, test = write_categorical(folder)
    return load_model(train_run(config, folder / "runs")), test


def test_encoder_converts_an_all_numeric_table_at_once_bit_identically():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=50), "b": rng.integers(-5, 5, 50),
                          "c": rng.normal(size=50).astype(np.float32), "d": rng.normal(size=50) * 1e6})
    scaler = {"kind": "standard", "offset": [0.1, -1.0, 0.5, 3e5], "scale": [2.0, 3.0, 0.7, 1e6]}
    encoder = FeatureEncoder(["a", "b", "c", "d"], scaler=scaler)
    reordered = frame[["d", "c", "b", "a"]]  # not just the features in order: the column-by-column path
    for dtype in (np.float32, np.float64):
        fast, slow = encoder.transform(frame, dtype), encoder.transform(reordered, dtype)
        assert fast.dtype == dtype and fast.tobytes() == slow.tobytes()
    assert encoder._finite_numbers(frame) is not None and encoder._finite_numbers(reordered) is None


def test_encoder_leaves_missing_and_odd_values_to_the_column_path():
    encoder = FeatureEncoder(["a", "b"], fill={"a": 5.0, "b": 0.0}, scaler={"kind": "none", "offset": [0, 0],
                                                                               "scale": [1, 1]})
    gaps = pd.DataFrame({"a": [1.0, np.nan], "b": [2.0, 3.0]})
    assert encoder._finite_numbers(gaps) is None
    assert encoder.transform(gaps).tolist() == [[1.0, 2.0], [5.0, 3.0]]
    assert encoder._finite_numbers(pd.DataFrame({"a": [True, False], "b": [1.0, 2.0]})) is None
    assert encoder._finite_numbers(pd.DataFrame({"a": ["1", "2"], "b": [1.0, 2.0]})) is None


def test_rows_frame_reads_numeric_json_columns_as_the_csv_reader_would():
    from nnctl.serving.bodies import rows_frame

    rows = [{"x": 1, "y": "a", "z": True}, {"x": None, "y": " NA ", "z": False}, {"y": "b", "x": 2.5}]
    frame = rows_frame(rows, ["x", "y", "z"], numeric=["x"])
    assert frame["x"].dtype == np.float64 and np.array_equal(frame["x"].to_numpy(), [1.0, np.nan, 2.5],
                                                               equal_nan=True)
    assert frame["y"][[0, 2]].tolist() == ["a", "b"] and pd.isna(frame["y"][1])
    assert frame["z"][:2].tolist() == [True, False] and pd.isna(frame["z"][2])  # not a number column: as given
    alone = rows_frame([{"x": 1}, {"x": 2}], ["x"], numeric=["x"])
    assert alone["x"].tolist() == [1.0, 2.0] and list(alone.columns) == ["x"]
    huge = rows_frame([{"x": 10 ** 400}], ["x"], numeric=["x"])  # past float64: left for the encoder to refuse
    assert huge["x"].tolist() == [10 ** 400]


def test_prediction_columns_are_predict_chunks_columns(cats_model):
    model, test = cats_model
    chunk = pd.read_csv(test, dtype={"id": str})
    options = PredictOptions(proba=True, keep=("id",))
    chosen = check_options(model, options)
    frame = predict_chunk(model, chunk, "test", options, chosen)
    columns = prediction_columns(model, chunk, "test", options, chosen)
    assert list(frame.columns) == ["id", *columns]
    for name, values in columns.items():
        assert frame[name].tolist() == list(values)


def test_json_and_csv_answers_match_predict(cats_model):
    model, test = cats_model
    expected = predict_csv(model.path, test, proba=True, keep=("id",))
    rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in pd.read_csv(test, dtype={"id": str}).to_dict("records")]
    with client(model) as http:
        as_json = http.post("/predict", json={"rows": rows, "proba": True, "keep": ["id"]}).json()
        as_csv = http.post("/predict", content=test.read_bytes(), params={"proba": "true", "keep": "id"},
                           headers={"Content-Type": "text/csv"}).json()
    for answer in (as_json, as_csv):
        assert answer["predictions"] == expected["prediction"].tolist()
        p = np.array([[row[str(c)] for c in model.classes] for row in answer["probabilities"]])
        assert np.abs(p - expected[[f"p_{c}" for c in model.classes]].to_numpy()).max() < 1e-6
        assert [row["id"] for row in answer["kept"]] == expected["id"].astype(str).str.zfill(3).tolist()


def test_big_bodies_are_answered_in_a_thread_with_the_same_answer(iris_run, monkeypatch):
    from nnctl.serving import app as serving

    model = load_model(iris_run)
    rows = pd.read_csv(DATASETS / "iris.csv")[FEATURES].to_dict("records")
    with client(model) as http:
        inline = http.post("/predict", json={"rows": rows, "proba": True})
        monkeypatch.setattr(serving, "INLINE_BYTES", 0)
        threaded = http.post("/predict", json={"rows": rows, "proba": True})
        refused = http.post("/predict", json={"rows": [{**rows[0], "sepal_length": "long"}]})
    assert inline.status_code == threaded.status_code == 200 and inline.json() == threaded.json()
    assert len(inline.json()["predictions"]) == 150
    assert refused.status_code == 422 and refused.json()["column"] == "sepal_length"


def test_the_app_predicts_once_per_body_kind_before_serving_and_logs_neither(iris_run, monkeypatch, capsys):
    from nnctl.serving import app as serving

    model = load_model(iris_run)
    seen = []
    real = serving.predictions
    monkeypatch.setattr(serving, "predictions", lambda m, frame, *a: seen.append(len(frame)) or real(m, frame, *a))
    monkeypatch.setenv("NNCTL_TEST_WARM_KEY", "k3y")
    app = serving.create_app(model, serving.ServeSettings(model=str(iris_run), api_key_env="NNCTL_TEST_WARM_KEY"))
    assert seen == [1, 1] and capsys.readouterr().err == ""  # past the key check, and not in the log
    with testclient.TestClient(app) as http:
        assert http.post("/predict", json={"rows": [dict(zip(FEATURES, (5.1, 3.5, 1.4, 0.2)))]},
                         headers={"Authorization": "Bearer k3y"}).json() == {"predictions": ["setosa"]}
    log = capsys.readouterr().err.strip().splitlines()
    assert len(log) == 1 and " POST /predict 200 rows=1 " in log[0]


def test_warm_up_row_suits_every_feature(cats_model, iris_run, tmp_path):
    from nnctl.serving.app import warm_up_row

    model, _ = cats_model
    row = warm_up_row(model)
    assert list(row) == ["x1", "x2", "color"] and row["color"] in model.encoder.categories["color"]
    assert row["x1"] == model.encoder.fill["x1"]
    iris = load_model(iris_run)  # numbers without a fill: the least the training part saw (no range warning)
    assert warm_up_row(iris) == {f: iris.encoder.ranges[f][0] for f in FEATURES}
    pd.DataFrame([row]).to_csv(tmp_path / "row.csv", index=False)
    assert len(predict_csv(model.path, tmp_path / "row.csv")) == 1


def test_the_listening_socket_has_nodelay_so_kept_alive_answers_are_not_held_back():
    """Connections inherit TCP_NODELAY from the listening socket; without it a kept-alive
    connection's answer waited ~40 ms for the client's delayed ACK (the benchmark shows it)."""
    import socket

    from nnctl.serving.server import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        sock.close()
