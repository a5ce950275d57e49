"""Training on streamed data (data.streaming): shards in the cache, window shuffling, scoring in
chunks, exact resume, class weights, stratified cv folds scaled on their own training rows, the
held-out sample after training, and sweeps."""
import json
from pathlib import Path

import numpy as np
import pytest

from nnctl.commands.train import resume_run, train_config
from nnctl.config import load_config
from nnctl.data import load_dataset, streamed
from nnctl.data.dataset import Dataset

from .cli_helpers import assert_clean_error, cli


def write_table(tmp_path, rows=1200, regression=False) -> Path:
    """Three numeric columns and a categorical one; a target that depends on them."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3))
    colour = rng.choice(["red", "green", "blue"], size=rows)
    signal = x[:, 0] - 0.5 * x[:, 1] + (colour == "red") * 0.8
    target = (signal + 0.1 * rng.normal(size=rows)).round(4) if regression else \
        np.where(signal > 0.6, "high", np.where(signal > -0.6, "mid", "low"))
    lines = ["a,b,c,colour,target"] + [f"{a:.4f},{b:.4f},{c:.4f},{k},{t}" for (a, b, c), k, t in zip(x, colour, target)]
    path = tmp_path / "table.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_cfg(tmp_path, table, extra="", name="stream.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"""seed: 5
data:
  path: {table}
  target: target
  categorical: [colour]
  streaming: true
  shuffle_window: 256
model:
  layers: [8]
training:
  optimizer: adam
  learning_rate: 0.02
  batch_size: 32
  iterations: 6
  log_every: 1
{extra}""")
    return path


@pytest.fixture
def small_shards(monkeypatch):
    """Shards of 128 rows, so a table of a thousand rows has several and windows of two."""
    monkeypatch.setattr(streamed, "SHARD_BYTES", 1)
    monkeypatch.setattr(streamed, "MIN_SHARD_ROWS", 128)


def metrics(run) -> dict:
    return json.loads((Path(run) / "metrics.json").read_text())


def weights(run) -> dict:
    with np.load(Path(run) / "model.npz", allow_pickle=False) as npz:
        return {k: npz[k].tobytes() for k in npz.files if k != "meta"}


def test_streamed_data_is_shards_in_the_cache_and_a_second_run_reads_no_table(tmp_path, small_shards, monkeypatch):
    cfg = load_config(write_cfg(tmp_path, write_table(tmp_path)))
    data = load_dataset(cfg)
    assert getattr(data, "streamed", False) and not isinstance(data, Dataset)
    train, val = data.parts["train"], data.parts["validation"]
    assert train.shard_rows == 128 and train.n_shards == -(-len(train) // 128)
    assert len(train) + len(val) == 1200 and 150 < len(val) < 330  # the hash split's 20 %
    assert data.window == 256 and data.n_inputs == 6 and data.n_outputs == 3
    assert train.shape == (len(train), 6) and train.head(5)[0].dtype == np.float32
    assert not hasattr(data, "X_train") and not hasattr(data, "y_val")  # no stand-ins: the parts are read
    assert sum(data.counts["train"]) == len(train)
    assert any("streaming from encoded shards" in text and "data.streaming is true" in text for _, text in data.notes)
    import nnctl.data.onepass as onepass

    monkeypatch.setattr(onepass, "write_shards", lambda *a, **k: pytest.fail("the table was read again"))
    again = load_dataset(cfg)
    assert np.array_equal(again.parts["train"].head(300)[0], train.head(300)[0]) and len(again.parts["train"]) == len(train)


def test_a_streamed_run_trains_and_scores_its_parts_in_chunks(tmp_path, small_shards):
    config = write_cfg(tmp_path, write_table(tmp_path))
    result = train_config(load_config(config), tmp_path / "runs", "s", plot=False)
    m = metrics(result.run)
    assert m["status"] == "completed" and m["epochs"] == 6
    assert m["validation"]["accuracy"] > 0.8, m["validation"]
    assert m["train"]["rows"] + m["validation"]["rows"] == 1200
    # the final scores equal the whole parts scored at once by the in-memory scorer
    from nnctl.runs.model import load_model
    from nnctl.training.scoring import score

    data = load_dataset(load_config(config))
    network = load_model(result.run).network
    X, y = data.parts["validation"].head(10_000)
    loss, accuracy = score(network, "classification", X, y)
    assert accuracy == m["validation"]["accuracy"] and loss == pytest.approx(m["validation"]["loss"], rel=1e-5)
    assert len((result.run / "validation.csv").read_text().splitlines()) == m["validation"]["rows"] + 1


def test_the_same_seed_gives_the_same_weights_and_every_row_is_visited_once_an_epoch(tmp_path, small_shards):
    from nnctl.training import loop

    config = write_cfg(tmp_path, write_table(tmp_path))
    a = train_config(load_config(config), tmp_path / "a", "s", plot=False)
    b = train_config(load_config(config), tmp_path / "b", "s", plot=False)
    assert weights(a.run) == weights(b.run)
    seen = []
    gather = loop._Loop.gather

    def spy(self, perm):
        gather(self, perm)
        seen.append(self.epoch_arrays()[0][:len(perm), 0].copy())

    loop._Loop.gather = spy
    try:
        train_config(load_config(config, ["training.iterations=2"]), tmp_path / "c", "s", plot=False)
    finally:
        loop._Loop.gather = gather
    data = load_dataset(load_config(config))
    every = np.sort(data.parts["train"].head(10_000)[0][:, 0])
    windows = len(seen) // 2
    epoch1, epoch2 = np.concatenate(seen[:windows]), np.concatenate(seen[windows:])
    assert np.array_equal(np.sort(epoch1), every) and np.array_equal(np.sort(epoch2), every)
    assert not np.array_equal(epoch1, epoch2)  # shuffled again


def test_an_interrupt_mid_window_resumes_to_the_same_weights(tmp_path, small_shards):
    config = write_cfg(tmp_path, write_table(tmp_path), "  grad_clip: 1.0\n  class_weight: balanced\n"
                       "  early_stopping: {patience: 20}\n  schedule: {name: step, step_size: 2, gamma: 0.5}\n")
    straight = train_config(load_config(config), tmp_path / "a", "s", plot=False)
    calls = {"n": 0}

    def stop_mid_epoch():  # about 30 batches an epoch: epoch 3, inside a window
        calls["n"] += 1
        return calls["n"] >= 70

    cut = train_config(load_config(config), tmp_path / "b", "s", plot=False, should_stop=stop_mid_epoch)
    assert cut.status == "interrupted" and cut.epochs == 2
    resumed = resume_run(cut.run, (), tmp_path / "b", plot=False)
    assert weights(straight.run) == weights(resumed.run)
    assert metrics(resumed.run)["validation"] == metrics(straight.run)["validation"]
    assert metrics(resumed.run)["clipped_steps"] == metrics(straight.run)["clipped_steps"]


def test_balanced_class_weights_come_from_the_counts_written_with_the_shards(tmp_path, small_shards):
    from nnctl.training.scoring import class_weights

    data = load_dataset(load_config(write_cfg(tmp_path, write_table(tmp_path))))
    y = np.concatenate(list(data.parts["train"].targets()))
    counts = np.bincount(y, minlength=3)
    assert np.array_equal(data.counts["train"], counts)
    assert np.allclose(class_weights("balanced", data), len(y) / (3 * counts))


def test_streamed_regression_scores_r2_and_target_units_in_chunks(tmp_path, small_shards):
    config = write_cfg(tmp_path, write_table(tmp_path, regression=True))
    result = train_config(load_config(config, ["training.iterations=8"]), tmp_path / "runs", "r", plot=False)
    m = metrics(result.run)
    from nnctl.nn.metrics import r2
    from nnctl.runs.model import load_model

    model = load_model(result.run)
    X, y = load_dataset(load_config(config)).parts["validation"].head(10_000)
    assert m["validation"]["r2"] == pytest.approx(r2(y, model.network.predict_output(X)), abs=1e-6)
    assert m["validation"]["r2"] > 0.8
    truth = y[:, 0] * model.meta["target_scaler"]["scale"][0] + model.meta["target_scaler"]["offset"][0]
    mae = np.mean(np.abs(truth - model.values_from_inputs(X).reshape(-1)))
    assert m["validation"]["mae"] == pytest.approx(mae, rel=1e-5)


def test_auto_streams_only_over_the_memory_budget_and_says_why(tmp_path, monkeypatch):
    rows = 40_000  # over a megabyte of text, so the size is estimated at all
    table = write_table(tmp_path, rows)
    config = write_cfg(tmp_path, table).read_text().replace("streaming: true", "streaming: auto")
    (tmp_path / "auto.yaml").write_text(config)
    cfg = load_config(tmp_path / "auto.yaml")
    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", "10GB")
    assert streamed.streaming_reason(cfg) is None
    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", "100KB")
    reason = streamed.streaming_reason(cfg)
    assert "would exceed the memory budget" in reason and "100.0 KB" in reason
    assert streamed.streaming_reason(load_config(tmp_path / "auto.yaml", ["data.streaming=false"])) is None
    result = cli("train", tmp_path / "auto.yaml", "--runs-dir", tmp_path / "runs", "--set", "training.iterations=1",
                 env={"NNCTL_MEMORY_LIMIT": "100KB"})
    assert result.exit_code == 0, result.stderr
    assert "note: streaming from encoded shards on disk, because the encoded training data" in result.stderr


def test_a_bad_streaming_value_is_one_error_line(tmp_path):
    config = write_cfg(tmp_path, write_table(tmp_path, 50))
    assert_clean_error(cli("train", config, "--set", "data.streaming=maybe"), "data.streaming", "auto, true or false")
    assert_clean_error(cli("train", config, "--set", "data.shuffle_window=0"), "data.shuffle_window")


def test_cv_folds_on_streamed_data_are_stratified_and_scaled_on_their_training_folds(tmp_path, small_shards):
    """Issue 35: each fold keeps the class proportions (within one row a class), and its scaler
    is its training folds' alone, as in-memory cv's is."""
    from nnctl.sweep.cv import run_cv

    config = write_cfg(tmp_path, write_table(tmp_path))
    cfg = load_config(config)
    folds = [load_dataset(cfg, fold=(i, 3)) for i in range(3)]
    sizes = [len(f.parts["validation"]) for f in folds]
    assert sum(sizes) == 1200 and max(sizes) - min(sizes) <= 3
    per_class = np.array([f.counts["validation"] for f in folds])  # (folds, classes)
    assert (per_class.max(axis=0) - per_class.min(axis=0) <= 1).all()
    rows = [np.concatenate([f.parts["validation"]._array(j, "rows")[f.parts["validation"]._kept(j)]
                            for j in range(f.parts["validation"].n_shards)]) for f in folds]
    assert sorted(np.concatenate(rows).tolist()) == list(range(1200))  # every row in exactly one fold
    fold0 = folds[0]
    assert len(fold0.parts["train"]) == 1200 - sizes[0]
    # the numbers of fold 0's training rows are standardized by themselves: mean 0, std 1
    X = fold0.parts["train"].head(10_000)[0][:, :3].astype(np.float64)
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(X.std(axis=0), 1, atol=1e-5)
    # and the model's scaler maps the raw table the same way
    import pandas as pd

    from nnctl.data.splits import dealt_fold  # noqa: F401 (the rule the folds follow)
    raw = pd.read_csv(tmp_path / "table.csv")
    train_rows = np.setdiff1d(np.arange(1200), rows[0])
    scaler = fold0.encoder.scaler
    np.testing.assert_allclose(scaler["offset"][:3], raw[["a", "b", "c"]].to_numpy()[train_rows].mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(scaler["scale"][:3], raw[["a", "b", "c"]].to_numpy()[train_rows].std(axis=0), rtol=1e-5)
    result = run_cv(config, 3, ["training.iterations=3"], tmp_path / "cv", workers=1)
    summary = json.loads((result["folder"] / "summary.json").read_text())
    folds = (result["folder"] / "folds.csv").read_text()
    assert summary and "fold" in folds
    scored = sorted(metrics(result["folder"] / f"fold_{i}")["validation"]["rows"] for i in range(3))
    assert scored == sorted(sizes)


def test_a_streamed_fold_fills_and_scales_its_target_from_its_training_folds_alone(tmp_path, small_shards):
    """Issue 35: `missing: mean` fills and a regression target's scaler come from the fold's
    training rows, as in-memory cv's do, not from every row of the table."""
    import pandas as pd

    table = write_table(tmp_path, regression=True)
    lines = table.read_text().splitlines()
    for i in range(1, len(lines), 7):  # column a missing in every 7th row, colour in every 5th
        lines[i] = "," + lines[i].split(",", 1)[1]
    for i in range(3, len(lines), 5):
        cells = lines[i].split(",")
        lines[i] = ",".join(cells[:3] + [""] + cells[4:])
    table.write_text("\n".join(lines) + "\n")
    cfg = load_config(write_cfg(tmp_path, table), ["data.missing=mean"])
    fold = load_dataset(cfg, fold=(1, 3))  # whose training rows' most frequent colour is not the table's
    raw = pd.read_csv(table)
    held_out = fold.parts["validation"].head_rows(len(fold.parts["validation"]))
    train = np.setdiff1d(np.arange(len(raw)), held_out)
    assert fold.encoder.fill["a"] == pytest.approx(np.nanmean(raw["a"].to_numpy()[train]), abs=1e-5)
    y = raw["target"].to_numpy()[train]
    np.testing.assert_allclose(fold.target_scaler["offset"], [y.mean()], atol=1e-4)
    np.testing.assert_allclose(fold.target_scaler["scale"], [y.std()], rtol=1e-4)
    X, y_scaled = fold.parts["train"].head(len(fold.parts["train"]))
    assert not np.isnan(X).any()
    np.testing.assert_allclose(y_scaled.astype(np.float64).mean(), 0, atol=1e-5)
    np.testing.assert_allclose(y_scaled.astype(np.float64).std(), 1, atol=1e-5)
    a = np.where(raw["a"].isna(), np.nanmean(raw["a"].to_numpy()[train]), raw["a"]).astype(np.float32)[train]
    np.testing.assert_allclose(X[:, 0].astype(np.float64).mean(), 0, atol=1e-5)  # a, filled, then standardized
    np.testing.assert_allclose(X[:, 0].astype(np.float64).std(), 1, atol=1e-4)
    np.testing.assert_allclose(fold.encoder.scaler["scale"][0], a.astype(np.float64).std(), rtol=1e-4)
    colour = raw["colour"].to_numpy()[train]
    names, counts = np.unique(colour[pd.notna(colour)].astype(str), return_counts=True)
    assert fold.encoder.fill["colour"] == names[np.argmax(counts)]
    assert (X[:, 3:6].sum(axis=1) == 1).all()  # every row one category: a missing one its fill


def test_a_sweep_on_streamed_data_trains_its_trials(tmp_path):
    pytest.importorskip("optuna")
    from nnctl.sweep.driver import run_sweep

    config = write_cfg(tmp_path, write_table(tmp_path, 400))
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"""config: {config}
method: random
trials: 2
seed: 1
parameters:
  training.learning_rate: {{values: [0.01, 0.03]}}
  training.iterations: {{values: [2]}}
""")
    folder = run_sweep(sweep, runs_dir=tmp_path / "runs", workers=1)["folder"]
    trials = sorted((folder / "trials").iterdir())
    assert len(trials) == 2
    for trial in trials:
        assert metrics(trial)["status"] == "completed" and metrics(trial)["validation"]["rows"] > 40


def test_a_streamed_fold_pickles_for_a_ray_worker_and_reads_the_same_rows(tmp_path, small_shards):
    import pickle

    data = load_dataset(load_config(write_cfg(tmp_path, write_table(tmp_path))), fold=(1, 3))
    copy = pickle.loads(pickle.dumps(data))
    assert len(copy.parts["validation"]) == len(data.parts["validation"])
    assert np.array_equal(copy.parts["validation"].head(50)[0], data.parts["validation"].head(50)[0])


def test_a_window_never_ends_in_a_batch_of_one_row_so_batch_norm_streams(tmp_path, small_shards):
    from nnctl.data.source import batch_bounds

    assert batch_bounds(65, 32) == [0, 32, 48, 65] and batch_bounds(64, 32) == [0, 32, 64]
    assert batch_bounds(1, 32) == [0, 1] and batch_bounds(33, 32) == [0, 16, 33]
    # 1200 rows: windows of 256 rows cut into batches of 51 leave one row over
    config = write_cfg(tmp_path, write_table(tmp_path), "  batch_size: 51\n").read_text()
    config = config.replace("  batch_size: 32\n", "").replace("layers: [8]", "layers: [8]\n  normalization: batch")
    (tmp_path / "bn.yaml").write_text(config)
    result = train_config(load_config(tmp_path / "bn.yaml", ["training.iterations=2"]), tmp_path / "runs", "bn",
                          plot=False)
    assert metrics(result.run)["status"] == "completed"


def test_dealt_folds_keep_each_class_even_however_the_rows_are_chunked():
    from nnctl.data.splits import dealt_fold

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 5000)
    ranks = np.empty(5000, dtype=np.int64)
    for c in range(3):
        ranks[labels == c] = np.arange((labels == c).sum())
    fold = dealt_fold(ranks, labels, seed=4, k=5)
    for c in range(3):
        counts = np.bincount(fold[labels == c], minlength=5)
        assert counts.max() - counts.min() <= 1
    halves = np.concatenate([dealt_fold(ranks[:1234], labels[:1234], 4, 5), dealt_fold(ranks[1234:], labels[1234:], 4, 5)])
    assert np.array_equal(halves, fold)  # a row's fold is its own: chunks do not matter
    assert not np.array_equal(fold, dealt_fold(ranks, labels, seed=5, k=5))  # the seed draws the order
    first = fold[(labels == 0)][:50]
    assert len(set(np.diff(first).tolist())) > 2  # not dealt round-robin in file order


def test_the_steps_after_training_read_a_random_sample_of_validation_rows(tmp_path, small_shards, monkeypatch):
    """Issue 35: calibration, conformal scores and importance use a seeded random sample of the
    validation rows, not its first rows (a file sorted by class would give one class)."""
    from nnctl.commands import train as train_command

    table = write_table(tmp_path)
    lines = table.read_text().splitlines()
    table.write_text("\n".join([lines[0]] + sorted(lines[1:], key=lambda line: line.rsplit(",", 1)[1])) + "\n")
    data = load_dataset(load_config(write_cfg(tmp_path, table)))
    monkeypatch.setattr(train_command, "HELD_OUT_ROWS", 60)
    held = train_command._held_out(data, 5)
    assert held.X_val.shape == (60, data.n_inputs) and len(np.unique(held.y_val)) == 3
    assert len(np.unique(data.parts["validation"].head(60)[1])) == 1  # what the first rows were
    again = train_command._held_out(data, 5)
    assert np.array_equal(again.X_val, held.X_val)  # seeded
    X, y = data.parts["validation"].head(len(data.parts["validation"]))
    found = [int(np.flatnonzero((X == row).all(axis=1))[0]) for row in held.X_val[:10]]
    assert found == sorted(found) and np.array_equal(y[found], held.y_val[:10])  # real rows, in file order


def test_an_ensemble_trains_on_streamed_data_and_resumes_exactly(tmp_path, small_shards):
    """model.ensemble on streamed data: the members share the shard order, each shuffles a
    window's rows in its own order (as in memory), each stops on its own score (ensemble.py's
    member loop), the scores are the members' mean's, and an interrupt mid-window resumes to the
    same weights."""
    from nnctl.runs.model import load_model
    from nnctl.training.scoring import score

    config = write_cfg(tmp_path, write_table(tmp_path), "  grad_clip: 1.0\n  early_stopping: {patience: 20}\n")
    config.write_text(config.read_text().replace("  layers: [8]\n", "  layers: [8]\n  ensemble: 3\n"))
    straight = train_config(load_config(config), tmp_path / "a", "s", plot=False)
    m = metrics(straight.run)
    assert m["status"] == "completed" and m["validation"]["accuracy"] > 0.8
    model = load_model(straight.run)
    assert model.network.members == 3
    W = model.network.layers[0].W
    assert not np.allclose(W[0], W[1])
    X, y = load_dataset(load_config(config)).parts["validation"].head(10_000)
    loss, accuracy = score(model.network, "classification", X, y)
    assert accuracy == m["validation"]["accuracy"] and loss == pytest.approx(m["validation"]["loss"], rel=1e-5)
    calls = {"n": 0}

    def stop_mid_epoch():
        calls["n"] += 1
        return calls["n"] >= 70

    cut = train_config(load_config(config), tmp_path / "b", "s", plot=False, should_stop=stop_mid_epoch)
    assert cut.status == "interrupted"
    resumed = resume_run(cut.run, (), tmp_path / "b", plot=False)
    assert weights(straight.run) == weights(resumed.run)
    assert metrics(resumed.run)["validation"] == m["validation"]


def test_r2_gathered_chunk_by_chunk_is_nn_metrics_r2_exactly_for_one_chunk_and_to_rounding_for_several():
    from nnctl.nn.metrics import r2
    from nnctl.training.scoring import R2Sums

    rng = np.random.default_rng(0)
    t = rng.normal(3.0, 2.0, (1000, 2)).astype(np.float32)
    out = (t + rng.normal(0, 0.5, t.shape)).astype(np.float32)
    one = R2Sums()
    one.add(t, out)
    assert float(one.value()) == r2(t, out)  # a part in memory: one chunk, bit for bit
    many = R2Sums()
    for s in range(0, 1000, 128):
        many.add(t[s:s + 128], out[s:s + 128])
    assert float(many.value()) == pytest.approx(r2(t, out), rel=1e-12)
    members = R2Sums()  # a leading members' axis: each member's own R²
    members.add(np.broadcast_to(t, (2,) + t.shape), np.stack([out, t]))
    assert members.value().tolist() == [r2(t, out), 1.0]
