"""Robust and quantile feature scaling, regression target transforms: the formulas, the bounded
sample of streamed data, and the same numbers from predict, evaluate, intervals and ONNX."""
import json

import numpy as np
import pandas as pd
import pytest

from nnctl.commands.predict import evaluate_csv, predict_csv
from nnctl.commands.train import RunOptions, train_config
from nnctl.config import load_config
from nnctl.data import scaling
from nnctl.data.dataset import load_dataset
from nnctl.data.scanstats import Reservoir, sample_rows
from nnctl.runs.model import load_model

from .cli_helpers import assert_clean_error, cli


def heavy_table(tmp_path, rows=600, seed=0):
    """x has a lognormal tail, k is discrete (few values), colour categorical; y > 0 and skewed."""
    rng = np.random.default_rng(seed)
    x = rng.lognormal(0, 1.5, rows)
    k = rng.integers(0, 4, rows)
    colour = rng.choice(["red", "blue"], rows)
    y = np.exp(0.4 * np.log(x) + 0.3 * k + (colour == "red") + 0.2 * rng.normal(size=rows))
    frame = pd.DataFrame({"x": x.round(5), "k": k, "colour": colour, "y": y.round(5)})
    path = tmp_path / "heavy.csv"
    frame.to_csv(path, index=False)
    return path


def train(tmp_path, data, *sets, name="run"):
    config = tmp_path / f"{name}.yaml"
    config.write_text(f"seed: 0\ndata:\n  path: {data}\n  target: y\n  categorical: [colour]\n"
                      "model:\n  layers: [8]\ntraining:\n  optimizer: adam\n  learning_rate: 0.01\n"
                      "  iterations: 15\n  batch_size: 64\n")
    cfg = load_config(config, list(sets))
    return train_config(cfg, options=RunOptions(tmp_path / "runs", name, plot=False, cache=False)).run


# --- the formulas ----------------------------------------------------------------------------


def test_robust_is_median_and_iqr_then_the_smooth_clip():
    X = np.array([[1.0, 1], [2, 0], [3, 0], [4, 1], [100, 0]], dtype=np.float32)
    scaler = scaling.fit_scaler(X, "robust", np.array([False, True]))
    assert scaler["offset"] == [3.0, 0.0] and scaler["scale"] == [2.0, 1.0]  # q75 − q25 = 4 − 2
    assert scaler["clipped"] == [0]  # the one-hot column is left alone
    out = X.copy()
    scaling.apply_scaler(out, scaler)
    u = (X[:, 0] - 3) / 2
    np.testing.assert_allclose(out[:, 0], u / np.sqrt(1 + (u / 3) ** 2), rtol=1e-6)
    assert out[4, 0] == pytest.approx(48.5 / np.sqrt(1 + (48.5 / 3) ** 2)) and out[4, 0] < 3  # the outlier: < 3
    np.testing.assert_array_equal(out[:, 1], X[:, 1])


def test_robust_falls_back_to_half_the_range_when_the_iqr_is_zero():
    X = np.array([[0.0], [0], [0], [0], [0], [4]])
    assert scaling.fit_scaler(X, "robust", np.array([False]))["scale"] == [2.0]


def test_quantile_maps_a_heavy_tail_to_a_normal_and_keeps_few_knots():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.lognormal(0, 2, 20000), rng.integers(0, 3, 20000)]).astype(np.float32)
    scaler = scaling.fit_scaler(X, "quantile", np.array([False, False]))
    knots, scores = scaler["quantiles"]["0"]
    assert len(knots) == scaling.QUANTILES
    assert len(scaler["quantiles"]["1"][0]) == 3  # a discrete column: one knot per value
    out = X.copy()
    scaling.apply_scaler(out, scaler)
    assert abs(np.mean(out[:, 0])) < 0.02 and abs(np.std(out[:, 0]) - 1) < 0.05
    assert np.all(np.diff(out[np.argsort(X[:, 0]), 0]) >= 0)  # monotone
    new = np.array([[1e9, 5.0], [-1.0, -1.0]], dtype=np.float32)  # beyond the training range: the ends
    scaling.apply_scaler(new, scaler)
    assert new[0, 0] == pytest.approx(scores[-1]) and new[1, 0] == pytest.approx(scores[0])


def test_the_quantile_tables_interpolate_as_np_interp():
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.normal(size=300), rng.integers(0, 5, 300), np.full(300, 7.0)])
    scaler = scaling.fit_scaler(X, "quantile", np.array([False, False, False]))
    inner, low, high, start, score, slope, mapped = scaling.quantile_tables(scaler, 3)
    x = np.column_stack([rng.normal(size=50) * 3, rng.uniform(-1, 6, 50), rng.normal(size=50)])
    inside = np.clip(x, low, high)
    k = (inside[:, :, None] >= inner[None]).sum(axis=2)
    rows = np.arange(3)[None, :]
    ours = score[rows, k] + slope[rows, k] * (inside - start[rows, k])
    expected = x.copy()
    scaling.apply_scaler(expected, scaler)
    np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_a_reservoir_keeps_a_uniform_bounded_sample():
    r = Reservoir(size=1000, seed=0)
    for start in range(0, 100_000, 7_000):
        r.add(np.arange(start, min(start + 7_000, 100_000), dtype=np.float64))
    assert len(r.values) == 1000 and r.seen == 100_000 and len(set(r.values)) == 1000
    assert abs(np.median(r.values) - 50_000) < 5_000  # the whole range, not the first chunk
    small = Reservoir(size=1000)
    small.add(np.arange(10.0))
    np.testing.assert_array_equal(small.values, np.arange(10.0))


def test_a_reservoir_takes_every_row_with_the_same_chance_whatever_its_chunk():
    """Each of 1,000 values, added in chunks of 250, is in a 100-value sample with chance 1/10:
    a draw scaled wrongly favours the first or the last chunks."""
    taken = np.zeros(1000)
    for seed in range(300):
        r = Reservoir(size=100, seed=seed)
        for start in range(0, 1000, 250):
            r.add(np.arange(start, start + 250, dtype=np.float64))
        taken[r.values.astype(int)] += 1
    by_chunk = taken.reshape(4, 250).mean(axis=1) / 300
    np.testing.assert_allclose(by_chunk, 0.1, atol=0.01)


def test_a_reservoir_keeps_what_scaling_every_draw_by_its_count_keeps():
    """Only the draws under a bound are multiplied by their counts: the sample is the one that
    multiplying all of them gives (Algorithm R, a chunk at a time), the same seed's sample."""
    def every_draw(size, chunks, seed):
        rng, kept, seen = np.random.default_rng(seed), np.empty(0), 0
        for values in chunks:
            room = size - len(kept)
            kept, seen, values = np.concatenate([kept, values[:max(room, 0)]]), seen + min(max(room, 0), len(values)), \
                values[max(room, 0):]
            slots = rng.random(len(values)) * (np.arange(1, len(values) + 1) + seen)
            kept[slots[slots < size].astype(np.int64)] = values[slots < size]
            seen += len(values)
        return kept
    rng = np.random.default_rng(4)
    chunks = [rng.normal(size=n) for n in (300, 2000, 5, 7000, 1, 40_000)]
    r = Reservoir(size=1000, seed=9)
    for values in chunks:
        r.add(values)
    np.testing.assert_array_equal(r.values, every_draw(1000, chunks, 9))


def test_the_targets_sample_is_kept_only_for_a_quantile_transform(write_config, tmp_path):
    from nnctl.data.scanpass import FirstPass

    made = {}
    for transform in ("quantile", "standard"):
        cfg = load_config(write_config(f"data:\n  path: {tmp_path / 't.csv'}\n  target: y\n"
                                       f"  target_transform: {transform}\n"))
        made[transform] = FirstPass(cfg, ["x"], "t.csv").target.sample
    assert isinstance(made["quantile"], Reservoir) and made["standard"] is None


def test_the_streamed_samples_together_fit_a_share_of_the_budget(monkeypatch):
    # 60 columns of 100k float64 values were 48 MB: half a 100 MB budget before any fitting
    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", "100MB")
    rows = sample_rows(60)
    assert 10_000 <= rows and rows * 60 * 8 <= (100 << 20) // 8
    assert sample_rows(2) == scaling.SAMPLE_ROWS  # few columns: the full sample still fits
    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", "1MB")
    assert sample_rows(60) == 10_000  # never so few rows that the quartiles are noise


def test_robust_and_quantile_fit_one_column_at_a_time():
    """Fitting copied every sample side by side in float64 and np.quantile copied that again:
    three times the samples' memory at once, on top of them (403 MB under a 100 MB budget)."""
    import tracemalloc

    X = np.random.default_rng(0).lognormal(size=(20_000, 30))
    passthrough = np.zeros(30, dtype=bool)
    passthrough[3] = True
    for kind in ("robust", "quantile"):
        tracemalloc.start()
        try:
            got = scaling.scaler_from_sample(X, kind, passthrough)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < X.nbytes / 4, (kind, peak, X.nbytes)
    robust = scaling.scaler_from_sample(X, "robust", passthrough)
    q25, median, q75 = np.quantile(X, [0.25, 0.5, 0.75], axis=0)
    keep = ~passthrough
    np.testing.assert_array_equal(np.array(robust["offset"])[keep], median[keep])
    np.testing.assert_array_equal(np.array(robust["scale"])[keep], (q75 - q25)[keep])
    assert robust["offset"][3] == 0.0 and robust["scale"][3] == 1.0 and 3 not in robust["clipped"]
    assert robust["clipped"] == [j for j in range(30) if j != 3]
    assert set(got["quantiles"]) == {str(j) for j in range(30) if j != 3}


@pytest.mark.parametrize("kind", ["standard", "log1p", "quantile"])
def test_a_target_transform_round_trips(kind):
    y = np.random.default_rng(3).lognormal(2, 1, (500, 1))
    scaler = scaling.fit_target(y, kind)
    t = scaling.to_training(y, scaler)
    assert abs(t.mean()) < 0.1 and abs(t.std() - 1) < 0.1
    np.testing.assert_allclose(scaling.from_training(t, scaler), y, rtol=1e-9)


# --- training, predict, evaluate, export -----------------------------------------------------


@pytest.mark.parametrize("scale", ["robust", "quantile"])
def test_scaled_inputs_are_what_the_model_stores_and_predict_applies(tmp_path, scale):
    data = heavy_table(tmp_path)
    cfg = load_config(_config(tmp_path, data), [f"data.scale={scale}"])
    dataset = load_dataset(cfg)
    assert dataset.encoder.scaler["kind"] == scale
    # the colour one-hot columns pass through as 0/1
    assert set(np.unique(dataset.X_train[:, 2:4])) <= {0.0, 1.0}
    assert np.abs(dataset.X_train[:, :2]).max() < (3 if scale == "robust" else 5.3)
    run = train(tmp_path, data, f"data.scale={scale}")
    model = load_model(run)
    assert model.meta["scaler"]["kind"] == scale
    frame = pd.read_csv(data)
    np.testing.assert_allclose(model.predict(frame.drop(columns="y")), predict_csv(run, data)["prediction"])


def _config(tmp_path, data):
    config = tmp_path / "c.yaml"
    config.write_text(f"seed: 0\ndata:\n  path: {data}\n  target: y\n  categorical: [colour]\n")
    return config


def test_log1p_needs_a_target_above_minus_one(tmp_path):
    path = tmp_path / "neg.csv"
    path.write_text("x,y\n" + "".join(f"{i % 3},{i - 5.5}\n" for i in range(20)))
    config = tmp_path / "neg.yaml"
    config.write_text(f"data:\n  path: {path}\n  target: y\n  target_transform: log1p\n")
    assert_clean_error(cli("train", config, "--runs-dir", tmp_path / "runs"), "log1p needs target 'y' above -1",
                       "target_transform: quantile")


@pytest.mark.parametrize("kind", ["log1p", "quantile"])
def test_predictions_metrics_and_intervals_are_in_the_target_units(tmp_path, kind):
    data = heavy_table(tmp_path)
    run = train(tmp_path, data, f"data.target_transform={kind}", "training.iterations=40")
    model = load_model(run)
    assert model.meta["target_scaler"]["kind"] == kind
    y = pd.read_csv(data)["y"].to_numpy()
    out = predict_csv(run, data, interval=0.8)
    assert 0.5 * y.mean() < out["prediction"].mean() < 2 * y.mean()  # the target's units, not log or normal scores
    assert (out["lower"] <= out["prediction"]).all() and (out["prediction"] <= out["upper"]).all()
    # made in g's space: wider above than below a skewed target's prediction
    assert ((out["upper"] - out["prediction"]) > (out["prediction"] - out["lower"])).mean() > 0.9
    report = evaluate_csv(run, data, interval=0.8)
    assert report["rmse"] == pytest.approx(np.sqrt(np.mean((out["prediction"] - y) ** 2)), rel=1e-6)
    assert report["coverage"] == pytest.approx(np.mean((out["lower"] <= y) & (y <= out["upper"])))
    assert report["mean_width"] == pytest.approx(np.mean(out["upper"] - out["lower"]))
    assert 0.7 < report["coverage"] < 0.95
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["validation"]["rmse"] < 3 * y.std()


@pytest.mark.parametrize("sets", [["data.scale=robust", "data.target_transform=log1p"],
                                  ["data.scale=quantile", "data.target_transform=quantile"],
                                  ["data.scale=quantile", "training.dtype=float64"]])
def test_onnx_equals_predict_with_intervals(tmp_path, sets):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    data = heavy_table(tmp_path)
    run = train(tmp_path, data, *sets)
    result = cli("export", run, "--interval", "0.9", "--output", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.stderr
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    frame = pd.read_csv(data)
    dtype = np.float64 if "training.dtype=float64" in sets else np.float32
    feeds = {"x": frame[["x"]].to_numpy(dtype), "k": frame[["k"]].to_numpy(dtype),
             "colour": frame[["colour"]].to_numpy(object)}
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    expected = predict_csv(run, data, interval=0.9)
    for name in ("prediction", "lower", "upper"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sets", [["data.scale=robust"], ["data.scale=quantile", "data.target_transform=quantile"],
                                  ["data.scale=robust", "data.target_transform=log1p", "data.missing=mean"]])
def test_streaming_fits_the_same_scalers_from_a_bounded_sample(tmp_path, sets):
    data = heavy_table(tmp_path, rows=1500)
    memory = load_dataset(load_config(_config(tmp_path, data), list(sets)))
    streamed = load_dataset(load_config(_config(tmp_path, data), list(sets) + ["data.streaming=true"]))
    assert getattr(streamed, "streamed", False)
    a, b = memory.encoder.scaler, streamed.encoder.scaler
    assert a["kind"] == b["kind"]
    if a["kind"] == "robust":
        # the hash split's training rows are not the random split's: close, not equal
        np.testing.assert_allclose(a["offset"][:2], b["offset"][:2], rtol=0.15)
        np.testing.assert_allclose(a["scale"][:2], b["scale"][:2], rtol=0.15)
    else:
        assert b["quantiles"]["1"][0] == [0.0, 1.0, 2.0, 3.0]
    ta, tb = memory.target_scaler, streamed.target_scaler
    assert ta["kind"] == tb["kind"]
    probe = np.array([[0.5], [2.0], [8.0]])
    np.testing.assert_allclose(scaling.to_training(probe, ta), scaling.to_training(probe, tb), atol=0.2)


def test_a_tampered_quantile_scaler_is_refused(tmp_path):
    data = heavy_table(tmp_path)
    run = train(tmp_path, data, "data.scale=quantile")
    with np.load(run / "model.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    meta["scaler"]["quantiles"]["0"][0].reverse()
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "bad.npz", **arrays)
    assert_clean_error(cli("predict", tmp_path / "bad.npz", data), "quantile", "increasing")


def test_a_target_near_float64s_limit_gets_a_finite_scale():
    # found by test_fuzz: [178001.66, 1e308] overflowed the std to inf, saved as null in model.npz
    scaler = scaling.fit_target(np.array([178001.66, 1e308]), "standard")
    assert np.isfinite(scaler["offset"][0]) and np.isfinite(scaler["scale"][0])
    assert scaler["offset"][0] == pytest.approx(5e307) and scaler["scale"][0] == pytest.approx(5e307)
    assert scaling.to_training(np.array([1e308]), scaler)[0] == pytest.approx(1.0)
    plain = scaling.fit_target(np.array([1.0, 2.0, 4.0]), "standard")
    assert plain["offset"] == [np.mean([1.0, 2.0, 4.0])] and plain["scale"] == [np.std([1.0, 2.0, 4.0])]


def test_a_quantile_target_with_no_validation_rows_trains(tmp_path):
    # validation_split: 0.0 left an empty validation part that the quantile link could not reshape
    rows = np.random.default_rng(0).normal(size=(60, 2))
    pd.DataFrame({"a": rows[:, 0], "y": np.exp(rows[:, 1])}).to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "c.yaml").write_text("data:\n  path: t.csv\n  target: y\n  target_transform: quantile\n"
                                     "  validation_split: 0.0\ntraining:\n  iterations: 2\n")
    data = load_dataset(load_config(tmp_path / "c.yaml"))
    assert data.X_val.shape[0] == 0 and data.y_val.shape[0] == 0 and data.target_scaler["kind"] == "quantile"
    assert scaling.to_training(np.zeros((0, 1)), data.target_scaler).shape == (0, 1)
