"""`nnctl serve` as a service: the real command in a subprocess on a free loopback port, talked to
with httpx, stopped by its PID. Its answers must agree with `nnctl predict` on the same rows."""
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .cli_helpers import assert_clean_error, cli, train_run, wait_until
from .conftest import DATASETS, hide_package

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytestmark = pytest.mark.slow  # trained models served by real `nnctl serve` processes

KEY_ENV = "NNCTL_TEST_SERVE_KEY"
KEY = "s3cret-key-for-tests"


@contextmanager
def serving(run, *options, log: Path, env=None):
    """`nnctl serve RUN --port 0 OPTIONS` until the block ends: the URL it printed."""
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "nnctl", "serve", str(run), "--port", "0", *options],
                                stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **(env or {})})
    try:
        yield wait_listening(proc, log), proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_listening(proc, log: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("listening on http://127.0.0.1:"):
                url = line.split()[-1]
                assert httpx.get(f"{url}/health").json() == {"status": "ok"}
                return url
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    raise AssertionError(f"no 'listening on' line: {log.read_text()}")


def sockets_of(pid: int) -> set:
    """The sockets process `pid` holds open: a new one once it has accepted a connection."""
    links = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            links.add(os.readlink(fd))
        except FileNotFoundError:  # closed while listed
            pass
    return {link for link in links if link.startswith("socket:")}


def split(source: Path, folder: Path, train_rows: int):
    frame = pd.read_csv(source)
    train, test = folder / "train.csv", folder / "test.csv"
    frame.iloc[:train_rows].to_csv(train, index=False)
    frame.iloc[train_rows:].to_csv(test, index=False)
    return train, test


def write_categorical(folder: Path):
    """A three-class table with a categorical column and missing cells; the held-out part has a
    category training never saw ('purple'), which `unknown_category: ignore` reads as all zeros."""
    rng = np.random.default_rng(0)
    n = 160
    color = rng.choice(["red", "green", "blue"], n).astype(object)
    x1, x2 = rng.normal(size=n).round(4), rng.normal(size=n).round(4)
    score = x1 + 1.5 * (color == "red") - (color == "blue") + 0.3 * x2
    frame = pd.DataFrame({"id": [f"00{i}" for i in range(n)], "x1": x1, "x2": x2, "color": color,
                          "label": np.where(score > 0.8, "high", np.where(score < -0.5, "low", "mid"))})
    frame.loc[::11, "x1"] = np.nan
    frame.loc[5::13, "color"] = None
    frame.loc[[125, 140], "color"] = "purple"
    frame.iloc[:120].to_csv(folder / "train.csv", index=False)
    frame.iloc[120:].to_csv(folder / "test.csv", index=False)
    config = folder / "cats.yaml"
    config.write_text(f"seed: 1\ndata:\n  path: {folder / 'train.csv'}\n  target: label\n  features: [x1, x2, color]\n"
                      "  categorical: [color]\n  missing: mean\n  unknown_category: ignore\n"
                      "model:\n  layers: [8]\ntraining:\n  iterations: 20\n")
    return config, folder / "test.csv"


@pytest.fixture(scope="module")
def cats(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cats")
    config, test = write_categorical(folder)
    run = train_run(config, folder / "runs")
    with serving(run, "--api-key-env", KEY_ENV, "--max-rows", "100", log=folder / "serve.log",
                 env={KEY_ENV: KEY}) as (url, _):
        yield run, test, url, folder / "serve.log"


def served_table(folder: Path, table: str, target: str, train_rows: int, data_keys: str = ""):
    """A bundled table cut by rows, a small model trained on the first part, served: yields
    (run, the held-out CSV, url). `data_keys`: more lines of the data section."""
    train, test = split(DATASETS / table, folder, train_rows)
    config = folder / "config.yaml"
    config.write_text(f"seed: 0\ndata:\n  path: {train}\n  target: {target}\n{data_keys}model:\n  layers: [8]\n"
                      "training:\n  iterations: 10\n")
    run = train_run(config, folder / "runs")
    with serving(run, log=folder / "serve.log") as (url, _):
        yield run, test, url


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    yield from served_table(tmp_path_factory.mktemp("binary"), "breast_cancer.csv", "diagnosis", 500)


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    yield from served_table(tmp_path_factory.mktemp("regression"), "diabetes.csv", "progression", 400)


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    """A regression with quantile-scaled inputs and a log1p target."""
    yield from served_table(tmp_path_factory.mktemp("transformed"), "diabetes.csv", "progression", 400,
                            "  scale: quantile\n  target_transform: log1p\n")


def predicted(run, data, *options) -> pd.DataFrame:
    """`nnctl predict RUN DATA OPTIONS` as a DataFrame (ID columns kept as text)."""
    result = cli("predict", run, data, *options)
    assert result.exit_code == 0, result.stderr
    return pd.read_csv(io.StringIO(result.stdout), dtype={"id": str})


def json_rows(path: Path) -> list:
    """The CSV's rows as a JSON client sends them: empty cells as null, IDs as written."""
    frame = pd.read_csv(path, dtype={"id": str})
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


def post(url, key=KEY, **kwargs):
    headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
    return httpx.post(f"{url}/predict", headers=headers, timeout=30, **kwargs)


def assert_same_classes(answer: dict, expected: pd.DataFrame, classes):
    assert answer["predictions"] == expected["prediction"].astype(str).tolist()
    got = np.array([[p[str(c)] for c in classes] for p in answer["probabilities"]])
    np.testing.assert_allclose(got, expected[[f"p_{c}" for c in classes]].to_numpy(), rtol=0, atol=1e-6)


# --- agreement with nnctl predict --------------------------------------------------------------
def test_categories_missing_and_unknown_agree_with_predict_as_json_and_csv(cats):
    run, test, url, _ = cats
    expected = predicted(run, test, "--proba", "--keep", "id")
    classes = ["high", "low", "mid"]
    answer = post(url, json={"rows": json_rows(test), "proba": True, "keep": ["id"]})
    assert answer.status_code == 200, answer.text
    assert_same_classes(answer.json(), expected, classes)
    assert [k["id"] for k in answer.json()["kept"]] == expected["id"].tolist()
    as_csv = post(url, content=test.read_bytes(), params={"proba": "true", "keep": "id"},
                  headers={"Content-Type": "text/csv"})
    assert as_csv.status_code == 200, as_csv.text
    assert_same_classes(as_csv.json(), expected, classes)
    assert as_csv.json()["kept"][0] == {"id": "00120"}  # kept exactly as written, leading zeros and all


def test_two_classes_with_a_threshold_agree_with_predict(binary):
    run, test, url = binary
    expected = predicted(run, test, "--proba", "--threshold", "0.3")
    answer = post(url, json={"rows": json_rows(test), "proba": True, "threshold": 0.3})
    assert answer.status_code == 200, answer.text
    assert_same_classes(answer.json(), expected, ["benign", "malignant"])
    plain = post(url, json={"rows": json_rows(test)}).json()["predictions"]
    assert plain != answer.json()["predictions"]  # the threshold changed some labels


def test_regression_agrees_with_predict(regression):
    run, test, url = regression
    expected = predicted(run, test)["prediction"].to_numpy()
    answer = post(url, content=test.read_bytes(), headers={"Content-Type": "text/csv"})
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(answer.json()["predictions"], expected, rtol=1e-6)
    assert "probabilities" not in answer.json() and "kept" not in answer.json()


def test_scaling_and_target_transforms_agree_with_predict(transformed):
    run, test, url = transformed
    expected = predicted(run, test, "--interval", "0.9")
    answer = post(url, content=test.read_bytes(), params={"interval": "0.9"}, headers={"Content-Type": "text/csv"})
    assert answer.status_code == 200, answer.text
    for name, column in (("predictions", "prediction"), ("lower", "lower"), ("upper", "upper")):
        np.testing.assert_allclose(answer.json()[name], expected[column].to_numpy(), rtol=1e-6)


# --- what the model takes ------------------------------------------------------------------
def test_model_describes_columns_classes_and_training_metrics(cats):
    run, _, url, _ = cats
    info = httpx.get(f"{url}/model", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert set(info) == {"name", "task", "features", "classes", "target", "metrics", "nnctl_version"}
    assert info["name"] == run.name and info["task"] == "classification" and info["target"] == "label"
    assert info["features"] == [{"name": "x1", "type": "number"}, {"name": "x2", "type": "number"},
                                {"name": "color", "type": "category", "categories": ["blue", "green", "red"]}]
    assert info["classes"] == ["high", "low", "mid"]
    assert info["metrics"] == json.loads((run / "metrics.json").read_text())
    from nnctl import __version__
    assert info["nnctl_version"] == __version__


def test_openapi_request_schema_names_the_model_columns(cats):
    _, _, url, _ = cats
    auth = {"Authorization": f"Bearer {KEY}"}
    # the schema lists the columns and categories: behind the key, as /model is
    assert httpx.get(f"{url}/openapi.json").status_code == 401 and httpx.get(f"{url}/docs").status_code == 401
    schema = httpx.get(f"{url}/openapi.json", headers=auth).json()
    row = schema["components"]["schemas"]["Row"]["properties"]
    assert list(row) == ["x1", "x2", "color"]
    assert row["color"]["anyOf"][0] == {"type": "string"} or "blue" in row["color"]["description"]
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "text/csv"}
    assert schema["paths"]["/predict"]["post"]["security"] == [{"bearer": []}]
    assert httpx.get(f"{url}/docs", headers=auth).status_code == 200


# --- errors ----------------------------------------------------------------------------------
def test_unreadable_bodies_are_400(cats):
    _, _, url, _ = cats
    bad_json = post(url, content=b"{rows: [", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]
    binary_csv = post(url, content=b"x1,x2\n\x00\x01\x02", headers={"Content-Type": "text/csv"})
    assert binary_csv.status_code == 400 and "binary" in binary_csv.json()["error"]
    assert post(url, content=b"a", headers={"Content-Type": "image/png"}).status_code == 415


def test_bad_rows_are_422_naming_row_and_column_with_predicts_message(regression, tmp_path):
    run, test, url = regression
    rows = json_rows(test)[:3]
    rows[2]["bmi"] = "tall"
    answer = post(url, json={"rows": rows})
    assert answer.status_code == 422
    assert answer.json() | {"hint": None} == {"error": "column 'bmi' is not numeric (e.g. 'tall')", "row": 2,
                                              "column": "bmi", "hint": None}
    rows[2]["bmi"], rows[1]["bp"] = 25.0, None
    missing = post(url, json={"rows": rows}).json()
    (tmp_path / "gap.csv").write_text(pd.DataFrame(rows).to_csv(index=False))
    from_cli = cli("predict", run, tmp_path / "gap.csv")
    assert missing["error"] in from_cli.stderr and (missing["row"], missing["column"]) == (1, "bp")
    absent = post(url, json={"rows": [{"age": 50}]}).json()
    assert absent["column"] == "sex" and "in none of the rows" in absent["error"]
    assert post(url, json={"rows": rows, "probas": True}).status_code == 422
    reshaped = post(url, content=b"age\n1", params={"threshold": "high"}, headers={"Content-Type": "text/csv"})
    assert reshaped.status_code == 422 and set(reshaped.json()) == {"error", "row", "column"}
    assert "threshold" in reshaped.json()["error"]


def test_no_traceback_or_server_path_in_an_answer(regression):
    run, test, url = regression
    answer = post(url, json={"rows": json_rows(test)[:2], "proba": True})  # predict's error names the model file
    assert answer.status_code == 422 and "regression" in answer.json()["error"]
    assert str(run) not in answer.text and "Traceback" not in answer.text and "/tmp" not in answer.text


def test_over_max_rows_is_413_by_count_and_by_body_size(cats):
    _, test, url, _ = cats
    row = json_rows(test)[0]
    assert post(url, json={"rows": [row] * 101}).status_code == 413
    assert post(url, json={"rows": [row] * 100}).status_code == 200
    header, line = test.read_text().splitlines()[:2]
    many = post(url, content=(header + "\n" + (line + "\n") * 101).encode(), headers={"Content-Type": "text/csv"})
    assert many.status_code == 413 and "100" in many.json()["error"]
    huge = post(url, content=b"x" * (3 << 20), headers={"Content-Type": "text/csv"})
    assert huge.status_code == 413 and "bytes" in huge.json()["error"]


def test_api_key_is_required_compared_and_never_logged(cats):
    _, test, url, log = cats
    body = {"rows": json_rows(test)[:1]}
    assert httpx.post(f"{url}/predict", json=body).status_code == 401
    wrong = post(url, key="guess", json=body)
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{url}/model").status_code == 401
    assert post(url, json=body).status_code == 200
    assert httpx.get(f"{url}/health").status_code == 200  # open, for load balancers' probes
    text = log.read_text()
    assert KEY not in text
    assert any(line.endswith(" POST /predict 401 rows=- ms=" + line.rsplit("=", 1)[-1]) for line in text.splitlines())


# --- the process ------------------------------------------------------------------------------
def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(binary, tmp_path):
    run, test, _ = binary
    lines = test.read_bytes().splitlines(keepends=True)
    sent, terminated = threading.Event(), threading.Event()

    def slow_body():
        yield b"".join(lines[:10])
        sent.set()
        assert terminated.wait(60)  # SIGTERM arrives while the body is still coming
        time.sleep(0.3)
        yield b"".join(lines[10:])

    with serving(run, log=tmp_path / "serve.log") as (url, proc):
        listening = sockets_of(proc.pid)
        answers = []
        client = threading.Thread(target=lambda: answers.append(
            httpx.post(f"{url}/predict", content=slow_body(), headers={"Content-Type": "text/csv"}, timeout=60)))
        client.start()
        assert sent.wait(60)
        # a socket it did not hold before: the health check's kept-alive connection may close
        # meanwhile, so the set need not grow
        wait_until(lambda: sockets_of(proc.pid) - listening, "the server to accept the connection")
        time.sleep(0.3)  # and read the request's head, which came before the body's first part
        proc.send_signal(signal.SIGTERM)
        terminated.set()
        client.join(30)
        assert proc.wait(20) == 0
    assert answers[0].status_code == 200 and len(answers[0].json()["predictions"]) == len(lines) - 1


def test_two_workers_answer_and_log_json_lines(regression, tmp_path):
    run, test, _ = regression
    log = tmp_path / "serve.log"
    with serving(run, "--workers", "2", "--log-json", log=log) as (url, proc):
        rows = json_rows(test)[:5]
        with httpx.Client() as client:
            for _ in range(4):
                assert len(client.post(f"{url}/predict", json={"rows": rows}).json()["predictions"]) == 5
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    posts = [e for e in entries if e["path"] == "/predict"]
    assert len(posts) == 4 and all(e["status"] == 200 and e["rows"] == 5 and e["ms"] > 0 for e in posts)
    assert set(posts[0]) == {"time", "method", "path", "status", "rows", "ms"}


# --- refused before binding --------------------------------------------------------------------
def test_bad_model_unset_key_and_taken_port_are_clean_errors(iris_run, tmp_path, monkeypatch):
    assert_clean_error(cli("serve", tmp_path / "nowhere"), "model not found")
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert_clean_error(cli("serve", iris_run, "--api-key-env", KEY_ENV), KEY_ENV, "unset or empty")
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_clean_error(cli("serve", iris_run, "--port", port), f"127.0.0.1:{port}", "--port 0")


def test_missing_extra_says_how_to_install_it(iris_run, monkeypatch):
    hide_package(monkeypatch, "fastapi")
    assert_clean_error(cli("serve", iris_run), 'pip install "nnctl[serve]"')


# --- conformal intervals and sets: the same as predict --interval / --sets -------------------
def test_intervals_and_sets_agree_with_predict(regression, cats):
    run, test, url = regression
    expected = predicted(run, test, "--interval", "0.9")
    as_csv = post(url, content=test.read_bytes(), params={"interval": "0.9"}, headers={"Content-Type": "text/csv"})
    assert as_csv.status_code == 200, as_csv.text
    for side in ("lower", "upper"):
        np.testing.assert_allclose(as_csv.json()[side], expected[side].to_numpy(), rtol=1e-6)
    assert post(url, json={"rows": json_rows(test)[:3], "interval": 0.9}).json()["lower"] == as_csv.json()["lower"][:3]
    wrong = post(url, json={"rows": json_rows(test)[:3], "sets": 0.9})
    assert wrong.status_code == 422 and "--sets is for classification" in wrong.json()["error"]
    assert post(url, json={"rows": json_rows(test)[:3], "interval": "wide"}).status_code == 422

    run, test, url, _ = cats
    expected = predicted(run, test, "--sets", "0.8")
    answer = post(url, json={"rows": json_rows(test), "sets": 0.8})
    assert answer.status_code == 200, answer.text
    assert ["|".join(s) for s in answer.json()["prediction_sets"]] == expected["prediction_set"].fillna("").tolist()
    assert post(url, json={"rows": json_rows(test)[:2], "sets": 1.5}).status_code == 422


# --- one model, many clients at once ----------------------------------------------------------
def test_concurrent_clients_each_get_their_own_rows_answers(regression, tmp_path):
    """Bodies over a megabyte are predicted in the thread pool, small ones on the event loop, with
    one model between them: 8 clients sending both at once each get exactly the answer their rows
    get alone (a big body once came back with another client's rows)."""
    from .test_concurrency import bodies, hammer

    run, test, url = regression
    rows = pd.read_csv(test).drop(columns="progression")
    big = pd.concat([rows] * (1 + (2 << 20) // len(rows.to_csv(index=False))), ignore_index=True)
    requests = [("json", r) for r in bodies(rows, seed=3)[:6]] + [("csv", big), ("csv", big.iloc[::-1])]

    def send(request):
        kind, frame = request
        if kind == "csv":
            answer = post(url, content=frame.to_csv(index=False), headers={"Content-Type": "text/csv"})
        else:
            answer = post(url, json={"rows": frame.to_dict("records")})
        assert answer.status_code == 200, answer.text
        return answer.json()["predictions"]

    alone = [send(r) for r in requests]
    for i, answer in hammer(send, requests, rounds=12):
        assert answer == alone[i]
