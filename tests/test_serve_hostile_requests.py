"""`nnctl serve`'s app in-process against odd and hostile requests: each gets a 4xx that names
the problem, never a 500, a traceback, a redirect to another host or a megabyte echoed back;
and the option `unknown_category` (predict's --unknown-category)."""
import gzip
import io
import json
import zipfile

import numpy as np
import pytest

from nnctl.runs.model import load_model

from .cli_helpers import assert_clean_error, cli, train_run
from .test_serve import write_categorical

testclient = pytest.importorskip("fastapi.testclient")

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
CSV = b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n"
KEY_ENV, KEY = "NNCTL_TEST_HOSTILE_KEY", "hostile-key"


def client(model, **settings):
    from nnctl.serving import app as serving

    app = serving.create_app(model, serving.ServeSettings(model=str(model.path), **settings))
    return testclient.TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def iris(iris_run):
    return client(load_model(iris_run))


def post_json(c, body: bytes):
    return c.post("/predict", content=body, headers={"Content-Type": "application/json"})


def post_csv(c, body: bytes, **params):
    return c.post("/predict", content=body, params=params, headers={"Content-Type": "text/csv"})


def test_bodies_that_broke_the_parser_are_4xx_naming_the_problem(iris, capfd):
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("rows.csv", CSV)
    answers = {
        "gzip": post_csv(iris, gzip.compress(CSV)),
        "zip": post_csv(iris, zipped.getvalue()),
        "deep": post_json(iris, b'{"rows": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        "digits": post_json(iris, json.dumps({"rows": [{**ROW, "sepal_length": 10 ** 399}]}).encode()),
        "csv digits": post_csv(iris, CSV.replace(b"5.1", b"9" * 400)),
        "surrogate": post_json(iris, b'{"rows": [{"sepal_length": "\\ud800", "sepal_width": 1, '
                                     b'"petal_length": 1, "petal_width": 1}]}'),
    }
    assert {name: a.status_code for name, a in answers.items()} == {
        "gzip": 415, "zip": 415, "deep": 400, "digits": 422, "csv digits": 422, "surrogate": 422}
    assert answers["gzip"].json()["error"] == "the CSV body is gzip-compressed"
    assert answers["zip"].json()["error"] == "the CSV body is zip-compressed"
    assert "nests too deep" in answers["deep"].json()["error"]
    for name in ("digits", "csv digits"):
        assert answers[name].json()["column"] == "sepal_length" and "too large" in answers[name].json()["error"]
    assert "lone surrogate" in answers["surrogate"].json()["error"]
    log = capfd.readouterr().err
    assert "internal error" not in log and "Traceback" not in log


def test_true_in_a_number_column_is_refused_as_predict_refuses_it(iris):
    answer = iris.post("/predict", json={"rows": [ROW, {**ROW, "petal_width": True}]})
    assert answer.status_code == 422
    assert answer.json() | {"hint": None} == {"error": "column 'petal_width' holds true, where the model takes a number",
                                              "row": 1, "column": "petal_width", "hint": None}


def test_errors_echo_only_a_prefix_of_a_bad_value(iris):
    huge = "x" * 1_000_000
    for answer in (iris.post("/predict", json={"rows": [{**ROW, "sepal_width": huge}]}),
                   iris.post("/predict", json={"rows": [ROW], "threshold": huge}),
                   iris.post("/predict", json={"rows": [ROW], huge: 1}),
                   iris.post("/predict", json={"rows": [ROW], "keep": [huge]})):
        assert answer.status_code == 422 and len(answer.content) < 1000, answer.text[:200]
    assert "(1,000,000 characters)" in iris.post("/predict", json={"rows": [{**ROW, "sepal_width": huge}]}).text


def test_a_kept_column_in_no_row_is_not_called_one_of_the_models(iris):
    answer = iris.post("/predict", json={"rows": [ROW], "keep": ["nope"]}).json()
    assert answer["error"] == "column 'nope' (asked for in 'keep') is in none of the rows"
    assert answer["hint"] == f"the model's columns: {', '.join(FEATURES)}"


def test_unknown_query_parameters_are_refused_for_csv_as_for_json(iris):
    answer = post_csv(iris, CSV, probas="true")
    assert answer.status_code == 422 and answer.json()["error"] == "unknown query parameter 'probas' (did you mean 'proba'?)"
    assert post_csv(iris, CSV, proba="true").status_code == 200


def test_no_redirect_is_built_from_the_host_header(iris):
    answer = iris.get("/model/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert answer.status_code == 404 and "location" not in answer.headers


def test_the_schema_and_docs_are_behind_the_key_when_there_is_one(iris_run, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    locked = client(load_model(iris_run), api_key_env=KEY_ENV)
    for path in ("/openapi.json", "/docs"):
        assert locked.get(path).status_code == 401
        assert locked.get(path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert locked.get("/redoc").status_code == 404
    assert locked.get("/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).json()["paths"]["/predict"]


def test_the_access_log_escapes_newlines_and_terminal_escapes_in_the_path():
    from nnctl.serving.accesslog import AccessLog

    for json_lines in (False, True):
        out = io.StringIO()
        AccessLog(None, json_lines=json_lines, stream=out).write("GET", "/x\nGET /forged 200\x1b[31m", 404, None, 1.0)
        line = out.getvalue()
        assert line.count("\n") == 1 and "\x1b" not in line
        if json_lines:
            assert json.loads(line)["path"] == "/x\nGET /forged 200\x1b[31m"
        else:
            assert " /x%0AGET%20/forged%20200%1B%5B31m 404 " in line


def test_a_header_of_many_columns_says_which_the_model_misses(iris, tmp_path, iris_run):
    header = ",".join(f"c{i}" for i in range(20_000)).encode()  # longer than the 64 KiB first read
    answer = post_csv(iris, header + b"\n" + b",".join([b"1"] * 20_000) + b"\n")
    assert answer.status_code == 422
    assert answer.json()["error"].startswith("columns 'sepal_length', 'sepal_width', 'petal_length', 'petal_width' "
                                             "not in the CSV")
    wide = tmp_path / "wide.csv"
    wide.write_bytes(header + b"," + CSV.splitlines()[0] + b"\n" + b",".join([b"1"] * 20_000) + b",5.1,3.5,1.4,0.2\n")
    result = cli("predict", iris_run, wide)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["prediction", "setosa"]


# --- unknown_category at predict time ----------------------------------------------------------
@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """A model trained with unknown_category: error (one-hot), one with an embedding, and a
    table whose rows 125 and 140 have the category 'purple' that training never saw."""
    folder = tmp_path_factory.mktemp("strict")
    config, test = write_categorical(folder)
    config.write_text(config.read_text().replace("unknown_category: ignore", "unknown_category: error"))
    onehot = train_run(config, folder / "runs")
    embedded = train_run(config, folder / "runs", "data.embedding={color: 2}")
    return onehot, embedded, test


def expected_ignoring(run, test):
    """What the model predicts when an unseen category adds nothing: the same model told so."""
    import pandas as pd

    from nnctl.commands.predict import PredictOptions, predict_chunk

    model = load_model(run)
    model.encoder.unknown = "ignore"
    return predict_chunk(model, pd.read_csv(test), "test", PredictOptions(proba=True))


def test_predict_unknown_category_ignore_reads_an_unseen_category_as_adding_nothing(strict):
    for run in strict[:2]:
        test = strict[2]
        refused = cli("predict", run, test)
        assert_clean_error(refused, "category 'purple' that training never saw", "--unknown-category ignore")
        result = cli("predict", run, test, "--proba", "--unknown-category", "ignore")
        assert result.exit_code == 0, result.stderr
        import pandas as pd

        got = pd.read_csv(io.StringIO(result.stdout))
        expected = expected_ignoring(run, test)
        assert got["prediction"].tolist() == expected["prediction"].tolist()
        np.testing.assert_allclose(got.filter(like="p_").to_numpy(), expected.filter(like="p_").to_numpy(), atol=1e-6)
        assert cli("predict", run, test, "--unknown-category", "error").exit_code == 2
    table = load_model(strict[1]).network.layers[0].params["table_0"]
    assert not table[-1].any()  # the unseen row: zero, as training (under error too) left it


def test_serve_takes_unknown_category_per_request_and_as_a_server_default(strict):
    import pandas as pd

    run, _, test = strict
    rows = json.loads(pd.read_csv(test).to_json(orient="records"))
    expected = expected_ignoring(run, test)["prediction"].tolist()
    plain = client(load_model(run))
    assert plain.post("/predict", json={"rows": rows}).status_code == 422
    assert plain.post("/predict", json={"rows": rows, "unknown_category": "ignore"}).json()["predictions"] == expected
    as_csv = post_csv(plain, test.read_bytes(), unknown_category="ignore")
    assert as_csv.status_code == 200 and as_csv.json()["predictions"] == expected
    wrong = plain.post("/predict", json={"rows": rows, "unknown_category": "skip"})
    assert wrong.status_code == 422 and "'unknown_category' must be" in wrong.json()["error"]
    lenient = client(load_model(run), unknown_category="ignore")
    assert lenient.post("/predict", json={"rows": rows}).json()["predictions"] == expected
    assert lenient.post("/predict", json={"rows": rows, "unknown_category": "error"}).status_code == 422


def test_onnx_of_an_error_model_fails_the_whole_run_as_its_doc_string_says(strict, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import pandas as pd

    frame = pd.read_csv(strict[2])
    feeds = {"x1": frame[["x1"]].to_numpy(np.float32), "x2": frame[["x2"]].to_numpy(np.float32),
             "color": frame[["color"]].fillna("").astype(str).to_numpy(object)}
    for run, message in zip(strict[:2], ("Unknown Category and zeros = 0", "indices element out of data bounds")):
        path = tmp_path / f"{run.name}.onnx"
        assert cli("export", run, "--output", path).exit_code == 0
        assert "fails the whole run" in onnx.load(str(path)).doc_string
        with pytest.raises(Exception, match=message):
            ort.InferenceSession(str(path)).run(None, feeds)
        ignoring = tmp_path / f"{run.name}-ignore.onnx"
        assert cli("export", run, "--output", ignoring, "--unknown-category", "ignore").exit_code == 0
        probabilities = ort.InferenceSession(str(ignoring)).run(None, feeds)[1]
        expected = expected_ignoring(run, strict[2]).filter(like="p_").to_numpy()
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)


# --- big JSON bodies: parsed a chunk of rows at a time ------------------------------------------
def test_a_big_json_body_reads_as_json_loads_would_in_bounded_memory(iris_run):
    import tracemalloc

    from nnctl.serving.bodies import STREAMED_BYTES, json_request, rows_frame

    model = load_model(iris_run)
    rng = np.random.default_rng(0)
    rows = [dict(zip(FEATURES, r)) for r in rng.normal(5, 1, (30_000, 4)).round(3).tolist()]
    rows[7]["petal_width"], rows[9000]["sepal_width"] = None, 10  # a null, and an int among floats
    del rows[20_000]["sepal_length"]
    for row in rows[::1000]:
        row["id"] = f"r{len(row)}"
    body = json.dumps({"proba": True, "rows": rows, "keep": ["id"]}, indent=1).encode()  # whitespace too
    assert len(body) > STREAMED_BYTES
    tracemalloc.start()
    given, frame, options = json_request(body, model, 100_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    expected = rows_frame(rows, FEATURES + ["id"], FEATURES, FEATURES)
    assert frame.equals(expected) and options.proba and options.keep == ("id",)
    assert given.kept(["id"])[:2] == [{"id": "r4"}, {"id": None}]
    assert peak < 4 * len(body)  # json.loads' dict per row took about 5 times the body

    def refused(text: bytes):
        with pytest.raises(Exception) as caught:
            json_request(text + b" " * STREAMED_BYTES, model, 100)
        return caught.value.status, caught.value.error

    assert refused(b'{"rows": [' + b'{"sepal_length": 1},' * 101 + b'{}]}') == (
        413, "the request has more than 100 rows, over this server's limit of 100")
    assert refused(b'{"rows": [{}, 3]}') == (422, "row 1 is not an object of column: value")
    assert refused(b'{"rows": [{}, {}')[0] == 400
    assert refused(b'{"rows": [{}]} x')[0] == 400
    assert refused(b'{"rows": 3}')[0] == 422
