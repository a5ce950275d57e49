"""One model shared by many callers at once, as `nnctl serve` shares it between its event loop and
its thread pool: every caller gets exactly the answer it gets alone, and a row's answer does not
depend on the rows sent with it."""
import threading

import numpy as np
import pandas as pd

from nnctl.runs.model import load_model

from .cli_helpers import train_run
from .conftest import DATASETS


def bodies(frame: pd.DataFrame, seed: int) -> list[pd.DataFrame]:
    """Requests of every size, from one row to more than the network scores in one chunk, each
    a different draw of rows."""
    rng = np.random.default_rng(seed)
    sizes = [1, 2, 3, 7, 30, 64, 65, 150, 2047, 3000]
    return [frame.iloc[rng.integers(0, len(frame), size)].reset_index(drop=True) for size in sizes]


def hammer(predict, requests: list, threads: int = 8, rounds: int = 200) -> list:
    """Call `predict` on `requests` from `threads` threads, `rounds` times each, every thread
    starting at a different request; the (request index, answer) pairs each thread saw."""
    seen = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def work(t):
        start.wait()
        for r in range(rounds):
            i = (t * 3 + r) % len(requests)
            seen[t].append((i, predict(requests[i])))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return [pair for pairs in seen for pair in pairs]


def test_eight_threads_predicting_with_one_model_get_the_single_threaded_answers(iris_run):
    model = load_model(iris_run)
    frame = pd.read_csv(DATASETS / "iris.csv").drop(columns="species")
    requests = bodies(frame, seed=0)
    alone = [model.predict_proba(r) for r in requests]
    for i, answer in hammer(model.predict_proba, requests):
        np.testing.assert_array_equal(answer, alone[i])


def test_a_rows_prediction_does_not_depend_on_the_rows_sent_with_it(tmp_path):
    """The float32 sums of BLAS kernels depend on how many rows a product has; a regression
    model's one output column made a row alone and the same row among others differ in the last
    places (serve's JSON and CSV bodies of the same rows disagreed at the sixth digit)."""
    config = tmp_path / "diabetes.yaml"
    config.write_text(f"seed: 0\ndata:\n  path: {DATASETS / 'diabetes.csv'}\n  target: progression\n"
                      "model:\n  layers: [8]\ntraining:\n  iterations: 5\n")
    model = load_model(train_run(config, tmp_path / "runs"))
    frame = pd.read_csv(DATASETS / "diabetes.csv").drop(columns="progression")
    whole = model.predict(frame)
    for start, size in [(0, 1), (3, 2), (5, 3), (10, 29), (40, 64), (100, 65), (7, 200)]:
        np.testing.assert_array_equal(model.predict(frame.iloc[start:start + size]), whole[start:start + size])
    requests = bodies(frame, seed=2)
    alone = [model.predict(r) for r in requests]
    for i, answer in hammer(model.predict, requests, rounds=50):
        np.testing.assert_array_equal(answer, alone[i])
