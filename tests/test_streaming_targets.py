"""Several targets on streamed data (issues 34 and large-data): the first pass learns each
target as the in-memory path does, the stream loop and its scorer walk every head, early
stopping watches a target's column, a cut run resumes exactly, and cv folds rescale each
regression target on their own training rows."""
import json
from pathlib import Path

import numpy as np
import pytest

from nnctl.commands.train import resume_run, train_config
from nnctl.config import load_config
from nnctl.data import load_dataset, streamed
from nnctl.errors import NnctlError
from tests.cli_helpers import assert_clean_error, cli
from tests.test_targets import table


@pytest.fixture
def small_shards(monkeypatch):
    """Shards of 128 rows, so that a few hundred rows make several shards and windows."""
    monkeypatch.setattr(streamed, "SHARD_BYTES", 1)
    monkeypatch.setattr(streamed, "MIN_SHARD_ROWS", 128)


def config(tmp_path, data: str, extra: str = "", training: str = "", name: str = "c.yaml",
           target: str = "[price, days, cond]") -> Path:
    path = tmp_path / name
    path.write_text(f"""seed: 4
data:
  path: {data}
  target: {target}
  features: [a, b, c, d]
  streaming: true
{extra}model:
  layers: [8]
training:
  optimizer: adam
  learning_rate: 0.02
  batch_size: 32
  iterations: 5
  log_every: 1
{training}""")
    return path


def write(tmp_path, rows: int, seed: int, name: str, missing_day: int | None = None) -> Path:
    """test_targets' table (price, days: regressions; cond: three classes) and `sold`, yes or
    no; with `missing_day`, that row has no `days`."""
    lines = table(rows, seed).splitlines()
    lines = [lines[0] + ",sold"] + [line + ("," + ("yes" if float(line.split(",")[4]) > 10 else "no"))
                                    for line in lines[1:]]
    if missing_day is not None:
        cells = lines[missing_day + 1].split(",")
        cells[5] = ""
        lines[missing_day + 1] = ",".join(cells)
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def metrics(run) -> dict:
    return json.loads((Path(run) / "metrics.json").read_text())


def weights(run) -> dict:
    with np.load(Path(run) / "model.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k != "meta"}


def history(run) -> list[str]:
    return (Path(run) / "history.csv").read_text().splitlines()


def test_a_streamed_run_of_several_targets_equals_the_in_memory_run(tmp_path):
    """Same rows in the same order (a validation file, no shuffle, float64): the two paths
    learn the same scalers, classes, class weights and loss scales, and train the same weights."""
    train = write(tmp_path, 200, 0, "train.csv", missing_day=7)
    valid = write(tmp_path, 90, 1, "valid.csv")
    extra = (f"  validation_path: {valid}\n  targets:\n    days: {{missing: drop}}\n"
             "    cond: {class_weight: balanced}\n")
    path = config(tmp_path, train, extra, "  shuffle: false\n  dtype: float64\n  target_weights: {price: 2}\n")
    on_disk = train_config(load_config(path, ["training.iterations=3"]), tmp_path / "s", "s", plot=False)
    in_memory = train_config(load_config(path, ["training.iterations=3", "data.streaming=false"]), tmp_path / "m", "m",
                             plot=False)
    a, b = weights(on_disk.run), weights(in_memory.run)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-8, atol=1e-10)
    from nnctl.runs.model import load_model

    meta_s, meta_m = load_model(on_disk.run).meta["targets"], load_model(in_memory.run).meta["targets"]
    for got_t, want_t in zip(meta_s, meta_m):  # each loss's scale at initialization, and its weight
        assert got_t["loss_scale"] == pytest.approx(want_t["loss_scale"], rel=1e-9)
        assert got_t["weight"] == pytest.approx(want_t["weight"], rel=1e-9)
    assert [t["weight"] for t in meta_s] == pytest.approx([2.0, 1.0, 1.0])
    got, want = metrics(on_disk.run), metrics(in_memory.run)
    assert got["train"]["rows"] == want["train"]["rows"] == 199  # the row without `days` dropped
    for part in ("train", "validation"):
        for key, value in want[part].items():
            assert got[part][key] == pytest.approx(value, rel=1e-7, abs=1e-9), (part, key)
    assert history(on_disk.run)[0] == history(in_memory.run)[0]
    assert "val_price_r2,val_days_r2,val_cond_accuracy" in history(on_disk.run)[0]
    # predict and evaluate read the streamed run's model as any other (its weights are the above)
    out = cli("predict", str(on_disk.run), str(valid), "--proba")
    assert out.exit_code == 0, out.stderr
    assert out.stdout.splitlines()[0] == "price,days,cond,p_cond_fair,p_cond_good,p_cond_poor"
    assert len(out.stdout.splitlines()) == 91
    evaluated = cli("evaluate", str(on_disk.run), str(valid), "--json", "--fail-under", "cond.accuracy=0.0")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert json.loads(evaluated.stdout.splitlines()[-1])["price.r2"] == pytest.approx(
        got["validation"]["price.r2"], rel=1e-6)


def test_each_target_is_learned_in_the_first_pass(tmp_path, small_shards, monkeypatch):
    """Tasks, classes (the positive class last), class counts and each regression target's
    scaler, as the in-memory path finds them; y shards are (rows, targets) in the dtype."""
    train = write(tmp_path, 400, 0, "t.csv")
    path = config(tmp_path, train, "  targets:\n    sold: {positive_class: \"no\"}\n"
                  "  validation_split: 0.0\n", target="[price, cond, sold, days]")
    data = load_dataset(load_config(path))
    whole = load_dataset(load_config(path, ["data.streaming=false"]))
    assert [t.name for t in data.targets] == ["price", "cond", "sold", "days"] and data.task == "multitarget"
    assert data.n_outputs == whole.n_outputs == 6
    for got, want in zip(data.targets, whole.targets):
        assert (got.task, got.classes, got.class_counts) == (want.task, want.classes, want.class_counts)
        if want.target_scaler:
            np.testing.assert_allclose(got.target_scaler["offset"], want.target_scaler["offset"], rtol=1e-12)
            np.testing.assert_allclose(got.target_scaler["scale"], want.target_scaler["scale"], rtol=1e-12)
    assert data.targets[2].classes == ["yes", "no"]
    import nnctl.data.onepass as onepass  # a second run opens the cached shards, targets and all

    monkeypatch.setattr(onepass, "write_shards", lambda *a, **k: pytest.fail("the table was read again"))
    assert load_dataset(load_config(path)).targets == data.targets
    y = np.concatenate(list(data.parts["train"].targets()))
    assert y.shape == (400, 4) and y.dtype == np.float32
    np.testing.assert_allclose(y, whole.y_train, rtol=1e-5, atol=1e-5)
    # the window's buffers: one (rows, outputs) array of targets, none per target
    from nnctl.training.build import build_network
    from nnctl.training.streamloop import StreamLoop

    from nnctl.training.callbacks import Callback

    cfg = load_config(path)
    loop = StreamLoop(build_network(cfg, data), data, cfg.training, cfg.seed, Callback(), None, {})
    assert loop.t_win.shape == (len(loop.X_read), 6) and loop.y_read.shape == (len(loop.X_read), 4)
    assert loop.w_win is None
    # what auto streaming sizes before the first pass: one value a row per target, in the dtype
    from nnctl.data.scan import estimate_size
    from nnctl.resources import encoded_bytes_estimate

    estimate = estimate_size(cfg)
    assert (estimate.inputs, estimate.n_outputs) == (4, 4)
    assert encoded_bytes_estimate(cfg, estimate) == int(estimate.rows * (4 + 4) * 4)


def test_early_stopping_watches_a_target_and_a_cut_run_resumes_exactly(tmp_path, small_shards):
    train = write(tmp_path, 700, 0, "t.csv")
    path = config(tmp_path, train, "  targets:\n    cond: {class_weight: balanced}\n",
                  "  early_stopping: {metric: val_cond_f1, patience: 20}\n  grad_clip: 1.0\n"
                  "  target_weights: {days: 0.5}\n  label_smoothing: 0.1\n")
    straight = train_config(load_config(path), tmp_path / "a", "s", plot=False)
    header = history(straight.run)[0].split(",")
    assert {"val_price_r2", "val_days_r2", "val_cond_accuracy", "val_cond_f1"} <= set(header)
    assert metrics(straight.run)["validation"]["cond.f1"] > 0
    calls = {"n": 0}

    def stop_mid_epoch():  # about 18 batches an epoch in windows of 2 shards: epoch 3, mid-window
        calls["n"] += 1
        return calls["n"] >= 45

    cut = train_config(load_config(path), tmp_path / "b", "s", plot=False, should_stop=stop_mid_epoch)
    assert cut.status == "interrupted"
    resumed = resume_run(cut.run, (), tmp_path / "b", plot=False)
    a, b = weights(straight.run), weights(resumed.run)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert metrics(resumed.run)["validation"] == metrics(straight.run)["validation"]


def test_streamed_cv_folds_rescale_each_regression_target_on_their_training_rows(tmp_path, small_shards):
    train = write(tmp_path, 500, 0, "t.csv")
    cfg = load_config(config(tmp_path, train))
    fold = load_dataset(cfg, fold=(1, 3))
    part = fold.parts["train"]
    y = part.head(len(part))[1].astype(np.float64)  # as training reads it: rescaled
    np.testing.assert_allclose(y[:, :2].mean(axis=0), 0, atol=1e-5)  # price, days: standardized again
    np.testing.assert_allclose(y[:, :2].std(axis=0), 1, atol=1e-5)
    assert set(np.unique(y[:, 2])) <= {0.0, 1.0, 2.0}  # cond's class indices pass untouched
    raw = np.loadtxt(train, delimiter=",", skiprows=1, usecols=(4, 5))
    rows = np.concatenate([fold.parts["train"]._array(j, "rows")[fold.parts["train"]._kept(j)]
                           for j in range(fold.parts["train"].n_shards)])
    price = fold.targets[0].target_scaler
    assert price["offset"][0] == pytest.approx(raw[rows, 0].mean(), rel=1e-6)
    assert price["scale"][0] == pytest.approx(raw[rows, 0].std(), rel=1e-6)


def test_a_streamed_target_missing_a_value_is_one_error_naming_it(tmp_path):
    train = write(tmp_path, 60, 0, "t.csv", missing_day=9)
    result = cli("train", str(config(tmp_path, train)), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert_clean_error(result, "target column 'days' has missing values (first in data row 10)")
    with pytest.raises(NnctlError, match="data.targets: {days: {missing: drop}}"):
        load_dataset(load_config(config(tmp_path, train)))


def test_the_closing_line_names_the_first_targets_test_metric():
    """A run of several targets with data.test_path: `price.r2`, not a KeyError on `r2`."""
    from types import SimpleNamespace

    from nnctl.ui.progress import summary_line

    metrics = {"validation": {"loss": 1.0, "price.r2": 0.5, "rows": 9},
               "test": {"task": "multitarget", "rows": 7, "targets": ["price", "cond"], "price.r2": 0.25,
                        "cond.accuracy": 0.5}}
    result = SimpleNamespace(metrics=metrics, status="completed", restored_best=False, best_epoch=2, epochs=2,
                             best_by="val_loss", seconds=1.0)
    assert "test price.r2 0.2500 (7 rows)" in summary_line(result, "runs/x")


@pytest.mark.parametrize("transform", ["log1p", "quantile"])
def test_streamed_shards_hold_a_transformed_target_as_memory_does(tmp_path, transform):
    """The first pass wrote (y - offset) / scale without the transform's link: a log1p or
    quantile target trained on other values than the in-memory run and the validation file."""
    train, valid = write(tmp_path, 200, 0, "t.csv"), write(tmp_path, 40, 1, "v.csv")
    path = config(tmp_path, train, f"  target_transform: {transform}\n  validation_path: {valid}\n")
    for target in ("[price, cond]", "price"):
        cfg = load_config(path, [f"data.target={target}"])
        y = np.concatenate(list(load_dataset(cfg).parts["train"].targets()))
        whole = load_dataset(load_config(path, [f"data.target={target}", "data.streaming=false"]))
        np.testing.assert_allclose(y.reshape(len(y), -1)[:, :1], whole.y_train.reshape(len(y), -1)[:, :1],
                                   rtol=1e-4, atol=1e-4)
