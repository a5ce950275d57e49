"""`train --seeds N` as the members of one pass (a population: each member on its own split,
with its own scores, early stopping, plateau schedule and run folder) equals N separate runs; and
where members cannot be (runs that are ensembles, unequal parts, Ray) the seeds run separately with
a note saying why."""
import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from nnctl.commands.train import resume_run
from nnctl.nn.losses import LOSSES, member_values
from nnctl.sweep.seeds import train_seeds
from nnctl.training.checkpoint import load_checkpoint
from nnctl.training.population import same_shapes

from .cli_helpers import cli
from .conftest import CONFIGS

# float64 so that equal means equal to rounding; patience 4 on iris stops the seeds at
# different epochs, so members stop while others train on, and a plateau of patience 2 (the new
# defaults' schedule) halves each member's rate on its own validation loss before it stops
STOPPING = ["training.dtype=float64", "training.iterations=60", "training.early_stopping={patience: 4}",
            "training.schedule={name: plateau, patience: 2}",
            "training.grad_clip=1.0", "training.label_smoothing=0.05", "model.dropout=0.1"]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    runs = tmp_path_factory.mktemp("population")
    members = train_seeds(CONFIGS / "iris.yaml", 3, STOPPING, runs_dir=runs / "members")
    separate = train_seeds(CONFIGS / "iris.yaml", 3, STOPPING, runs_dir=runs / "separate", workers=2, separate=True)
    return members, separate


def _numbers(path: Path) -> list[list]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    skip = {i for i, name in enumerate(rows[0]) if name in ("seconds", "run")}
    return [rows[0]] + [[_number(v) for i, v in enumerate(r) if i not in skip] for r in rows[1:]]


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _close(a, b, where):
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            if k not in ("seconds", "created"):
                _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-8, nan_ok=True), where
    else:
        assert a == b, where


def test_members_equal_separate_runs_file_by_file(both):
    members, separate = both
    assert members["note"] is None and separate["note"] is None
    epochs, rates = [], []
    for m, s in zip(members["rows"], separate["rows"]):
        a, b = Path(m["run"]), Path(s["run"])
        assert a.name == b.name and sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        metrics = json.loads((a / "metrics.json").read_text())
        _close(metrics, json.loads((b / "metrics.json").read_text()), a.name)
        epochs.append((metrics["status"], metrics["epochs"]))
        assert (a / "config.yaml").read_text() == (b / "config.yaml").read_text()
        for name in ("history.csv", "diagnostics.csv", "validation.csv"):
            _close(_numbers(a / name), _numbers(b / name), f"{a.name}/{name}")
        with np.load(a / "model.npz") as x, np.load(b / "model.npz") as y:
            assert sorted(x.files) == sorted(y.files)
            for key in y.files:
                if key != "meta":
                    np.testing.assert_allclose(x[key], y[key], rtol=1e-5, atol=1e-8, err_msg=key)
        ca, cb = load_checkpoint(a), load_checkpoint(b)
        assert sorted(ca.arrays) == sorted(cb.arrays)
        for key, value in cb.arrays.items():
            np.testing.assert_allclose(ca.arrays[key], value, rtol=1e-5, atol=1e-8, err_msg=key)
        for key in ("completed", "optimizer_t", "rng", "status", "steps", "clipped_steps", "data_digest", "name"):
            assert ca.meta[key] == cb.meta[key], key
        _close(ca.meta["schedule"], cb.meta["schedule"], f"{a.name} plateau")
        rates.append(_column(a / "history.csv", "learning_rate"))
    # the seeds stopped early at different epochs: a member stopped while the others trained on
    assert all(status == "early_stopped" for status, _ in epochs) and len({e for _, e in epochs}) > 1
    _lowered_on_their_own(rates)
    _close(_numbers(members["folder"] / "seeds.csv"), _numbers(separate["folder"] / "seeds.csv"), "seeds.csv")


def _column(path: Path, name: str) -> list:
    rows = _numbers(path)
    return [row[rows[0].index(name)] for row in rows[1:]]


def _lowered_on_their_own(rates: list[list[float]]) -> None:
    """Every member's plateau lowered its rate, not all at the same epochs."""
    assert all(min(r) < max(r) for r in rates)
    assert len({tuple(r[:min(map(len, rates))]) for r in rates}) > 1


def test_a_member_run_resumes_as_the_separate_run_does(both, tmp_path):
    members, separate = both
    more = ["training.early_stopping.patience=8"]
    a = resume_run(members["rows"][0]["run"], more, runs_dir=tmp_path, plot=False).run
    b = resume_run(separate["rows"][0]["run"], more, runs_dir=tmp_path, plot=False).run
    with np.load(a / "model.npz") as x, np.load(b / "model.npz") as y:
        np.testing.assert_allclose(x["layers.0.W"], y["layers.0.W"], rtol=1e-5, atol=1e-8)


def test_runs_that_cannot_be_members_train_separately_with_a_note(tmp_path):
    result = cli("train", CONFIGS / "iris.yaml", "--seeds", "2", "--runs-dir", tmp_path,
                 "--set", "training.iterations=2", "--set", "model.ensemble=2")
    assert result.exit_code == 0, result.stderr
    assert "note: the seeds train as separate runs: each run is an ensemble already" in result.stderr
    assert len(list(Path(result.stdout.strip().splitlines()[-1]).glob("seed_*/model.npz"))) == 2
    # --separate asks for it: no note
    asked = cli("train", CONFIGS / "iris.yaml", "--seeds", "2", "--separate", "--runs-dir", tmp_path,
                "--set", "training.iterations=2", "--workers", "1")
    assert asked.exit_code == 0 and "note:" not in asked.stderr


def test_parts_of_unequal_size_are_no_population():
    def part(train, val):
        return SimpleNamespace(X_train=np.zeros((train, 4)), X_val=np.zeros((val, 4)), n_outputs=3)

    assert same_shapes([part(120, 30), part(120, 30)]) is None
    assert "validation parts differ" in same_shapes([part(120, 30), part(120, 31)])
    assert "training parts differ" in same_shapes([part(120, 30), part(119, 30)])


@pytest.mark.parametrize("smoothed", [False, True])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_member_losses_are_each_members_own(name, smoothed):
    rng = np.random.default_rng(0)
    K, rows, outputs = 3, 5, 1 if name in ("binary_cross_entropy", "mse", "mae", "huber") else 3
    loss = LOSSES[name]
    z = rng.normal(size=(K, rows, outputs))
    a = loss.forward(z, np.empty_like(z))
    if name == "cross_entropy":
        y = np.eye(outputs)[rng.integers(0, outputs, size=(K, rows))]
    elif name == "binary_cross_entropy":
        y = rng.integers(0, 2, size=(K, rows, 1)).astype(float)
    else:
        y = rng.normal(size=(K, rows, outputs))
    w = rng.uniform(0.5, 2, size=(K, rows, 1))
    if smoothed and name in ("cross_entropy", "binary_cross_entropy"):
        y = y * 0.9 + 0.1 / max(outputs, 2)
    got = member_values(name, z, a, y, w)
    want = [loss.value(z[k], a[k], y[k], w[k]) for k in range(K)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.fixture(scope="module")
def both_cv(tmp_path_factory):
    from nnctl.sweep.cv import run_cv

    runs = tmp_path_factory.mktemp("cv")
    members = run_cv(CONFIGS / "iris.yaml", 3, STOPPING, runs_dir=runs / "members")
    separate = run_cv(CONFIGS / "iris.yaml", 3, STOPPING, runs_dir=runs / "separate", workers=2, separate=True)
    return members, separate


def test_cv_folds_as_members_equal_separate_folds_file_by_file(both_cv):
    members, separate = both_cv
    assert members["note"] is None and separate["note"] is None
    epochs, rates = set(), []
    for m, s in zip(members["rows"], separate["rows"]):
        a, b = Path(m["run"]), Path(s["run"])
        assert a.name == b.name and sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        metrics = json.loads((a / "metrics.json").read_text())
        _close(metrics, json.loads((b / "metrics.json").read_text()), a.name)
        epochs.add(metrics["epochs"])
        assert (a / "config.yaml").read_text() == (b / "config.yaml").read_text()
        for name in ("history.csv", "validation.csv"):
            _close(_numbers(a / name), _numbers(b / name), f"{a.name}/{name}")
        rates.append(_column(a / "history.csv", "learning_rate"))
        with np.load(a / "model.npz") as x, np.load(b / "model.npz") as y:
            for key in y.files:
                if key != "meta":
                    np.testing.assert_allclose(x[key], y[key], rtol=1e-5, atol=1e-8, err_msg=key)
    assert len(epochs) > 1  # the folds stopped at different epochs
    _lowered_on_their_own(rates)
    _close(_numbers(members["folder"] / "folds.csv"), _numbers(separate["folder"] / "folds.csv"), "folds.csv")
    _close(json.loads((members["folder"] / "summary.json").read_text()),
           json.loads((separate["folder"] / "summary.json").read_text()), "summary.json")


def test_cv_folds_in_groups_of_members_on_workers_equal_one_pass(both_cv, tmp_path):
    from nnctl.sweep.cv import run_cv

    members, _ = both_cv
    grouped = run_cv(CONFIGS / "iris.yaml", 3, STOPPING, runs_dir=tmp_path, workers=2)
    assert grouped["note"] is None
    _close(_numbers(grouped["folder"] / "folds.csv"), _numbers(members["folder"] / "folds.csv"), "folds.csv")
    for g, m in zip(grouped["rows"], members["rows"]):
        a, b = Path(g["run"]), Path(m["run"])
        _close(json.loads((a / "metrics.json").read_text()), json.loads((b / "metrics.json").read_text()), a.name)


def test_cv_repeats_as_members_keep_their_layout(tmp_path):
    from nnctl.sweep.cv import run_cv

    result = run_cv(CONFIGS / "iris.yaml", 2, ["training.iterations=3"], runs_dir=tmp_path, repeats=2)
    assert result["note"] is None
    assert sorted(str(p.relative_to(result["folder"])) for p in result["folder"].glob("repeat_*/fold_*/model.npz")) \
        == [f"repeat_{r}/fold_{i}/model.npz" for r in range(2) for i in range(2)]
    alone = run_cv(CONFIGS / "iris.yaml", 2, ["training.iterations=3", "seed=43"], runs_dir=tmp_path / "alone",
                   separate=True, workers=1)
    with np.load(result["folder"] / "repeat_1/fold_1/model.npz") as x, \
            np.load(alone["folder"] / "fold_1/model.npz") as y:
        np.testing.assert_allclose(x["layers.0.W"], y["layers.0.W"], rtol=1e-5, atol=1e-7)


def test_cv_folds_that_cannot_be_members_train_separately_with_a_note(tmp_path):
    result = cli("cv", CONFIGS / "iris.yaml", "--folds", "2", "--runs-dir", tmp_path, "--workers", "1",
                 "--set", "training.iterations=2", "--set", "model.ensemble=2")
    assert result.exit_code == 0, result.stderr
    assert "note: the folds train as separate runs: each run is an ensemble already" in result.stderr
    asked = cli("cv", CONFIGS / "iris.yaml", "--folds", "2", "--separate", "--runs-dir", tmp_path,
                "--set", "training.iterations=2", "--workers", "1")
    assert asked.exit_code == 0 and "note:" not in asked.stderr


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_members_with_their_own_learning_rate_and_l2_equal_separate_runs(tmp_path, optimizer):
    from nnctl.commands.population import population_problem, train_members
    from nnctl.commands.train import train_config
    from nnctl.config import load_config
    from nnctl.data import load_seeds

    own = [(0.03, 0.0), (0.01, 0.01), (0.003, 0.1)]
    cfgs = [load_config(CONFIGS / "iris.yaml", STOPPING + [f"training.optimizer={optimizer}",
                                                           f"training.learning_rate={lr}", f"training.l2={l2}"])
            for lr, l2 in own]
    datasets = load_seeds(cfgs)
    assert population_problem(cfgs, datasets) is None
    (tmp_path / "members").mkdir()
    together = train_members(cfgs, datasets, [(tmp_path / "members", f"run_{i}") for i in range(3)],
                             watched={"val_loss": "metric.name"})
    epochs = set()
    for i, (cfg, result) in enumerate(zip(cfgs, together)):
        alone = train_config(cfg, runs_dir=tmp_path / "separate", folder=f"run_{i}", plot=False,
                             metrics={"val_loss": "metric.name"})
        a, b = Path(result.run), Path(alone.run)
        _close(json.loads((a / "metrics.json").read_text()), json.loads((b / "metrics.json").read_text()), a.name)
        _close(_numbers(a / "history.csv"), _numbers(b / "history.csv"), f"{a.name}/history.csv")
        with np.load(a / "model.npz") as x, np.load(b / "model.npz") as y:
            np.testing.assert_allclose(x["layers.0.W"], y["layers.0.W"], rtol=1e-5, atol=1e-8)
        epochs.add(result.epochs)
    assert len(epochs) > 1


def test_configs_that_differ_in_more_than_a_member_holds_are_no_population():
    from nnctl.commands.population import population_problem
    from nnctl.config import load_config

    cfgs = [load_config(CONFIGS / "iris.yaml", [f"training.batch_size={b}"]) for b in (8, 16)]
    assert "differ in more than seed, training.learning_rate, training.l2" in population_problem(cfgs, [None, None])


@pytest.mark.new_defaults
def test_the_recipe_defaults_seeds_are_one_population(tmp_path):
    """`nnctl init`'s config (plateau schedule and early stopping by default) trains its seeds
    as members, not separately."""
    from dataclasses import replace

    from nnctl.commands.population import population_problem
    from nnctl.config import load_config
    from nnctl.data import load_seeds

    assert cli("init", tmp_path / "nnctl.yaml").exit_code == 0
    cfg = load_config(tmp_path / "nnctl.yaml", [])
    assert cfg.training.schedule["name"] == "plateau" and cfg.training.early_stopping
    cfgs = [replace(cfg, seed=cfg.seed + i) for i in range(2)]
    assert population_problem(cfgs, load_seeds(cfgs)) is None


def test_members_with_their_own_rates_in_float32_take_the_steps_of_runs_alone(tmp_path):
    """In float32, member k's (K, 1) rate and weight decay, each plateau-lowered on its own
    score, make the factors its run alone makes from Python floats (computed in float64, rounded
    once): the weights are the separate runs' bit for bit, not merely within 1e-5."""
    from nnctl.commands.population import one_blas_thread, train_members
    from nnctl.commands.train import train_config
    from nnctl.config import load_config
    from nnctl.data import load_seeds

    plateau = ["training.iterations=30", "training.early_stopping={patience: 4}", "training.optimizer=adamw",
               "training.schedule={name: plateau, patience: 2}"]
    cfgs = [load_config(CONFIGS / "iris.yaml", plateau + [f"training.learning_rate={lr}", f"training.l2={l2}"])
            for lr, l2 in [(0.03, 0.001), (0.01, 0.01)]]
    (tmp_path / "members").mkdir()
    together = train_members(cfgs, load_seeds(cfgs), [(tmp_path / "members", f"run_{i}") for i in range(2)])
    for i, (cfg, result) in enumerate(zip(cfgs, together)):
        with one_blas_thread():  # as the pass: one BLAS thread sums its products in one order
            alone = train_config(cfg, runs_dir=tmp_path / "separate", folder=f"run_{i}", plot=False)
        rates = _column(Path(result.run) / "history.csv", "learning_rate")
        assert rates == _column(Path(alone.run) / "history.csv", "learning_rate") and min(rates) < max(rates)
        with np.load(Path(result.run) / "model.npz") as x, np.load(Path(alone.run) / "model.npz") as y:
            for key in y.files:
                if key != "meta":
                    np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_stopped_members_leave_the_pass_with_the_same_results(tmp_path, monkeypatch):
    """Once a member stops, the pass trains only the active members (fewer member-rows through
    the network per step), and every file of every run is exactly what a pass that keeps the
    stopped members in it, frozen, writes (float32; Adam's state, batch norm's running
    statistics, dropout, clipping and a plateau included)."""
    from nnctl.training.population import PopulationLoop

    passes = []
    step = PopulationLoop.train_step
    monkeypatch.setattr(PopulationLoop, "train_step",
                        lambda self, net, xb, *a: passes.append(xb.shape[0]) or step(self, net, xb, *a))
    config = [s for s in STOPPING if "dtype" not in s] + ["training.iterations=40", "training.optimizer=adamw",
                                                          "training.l2=0.001", "model.normalization=batch"]
    results = {}
    for compact in (False, True):
        monkeypatch.setattr(PopulationLoop, "compact", compact)
        passes.clear()
        results[compact] = (train_seeds(CONFIGS / "iris.yaml", 3, config, runs_dir=tmp_path / str(compact)),
                            list(passes))
    (frozen, whole), (compact, counts) = results[False], results[True]
    assert set(whole) == {3} and counts[0] == 3 and min(counts) < 3 and sum(counts) < sum(whole)
    assert counts == sorted(counts, reverse=True)
    for m, s in zip(compact["rows"], frozen["rows"]):
        a, b = Path(m["run"]), Path(s["run"])
        for name in ("history.csv", "diagnostics.csv", "validation.csv"):
            assert _numbers(a / name) == _numbers(b / name), f"{a.name}/{name}"
        with np.load(a / "model.npz") as x, np.load(b / "model.npz") as y:
            assert sorted(x.files) == sorted(y.files)
            for key in y.files:
                if key != "meta":
                    np.testing.assert_array_equal(x[key], y[key], err_msg=key)
        ca, cb = load_checkpoint(a), load_checkpoint(b)
        assert sorted(ca.arrays) == sorted(cb.arrays)
        for key, value in cb.arrays.items():
            np.testing.assert_array_equal(ca.arrays[key], value, err_msg=key)
        assert _timeless(ca.meta) == _timeless(cb.meta)


def _timeless(value):
    """`value` without its clock readings (seconds, created), which no two runs share."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in ("seconds", "created")}
    return [_timeless(v) for v in value] if isinstance(value, list) else value


def test_members_own_rows_are_scored_in_pieces_with_the_bits_of_one_pass(tmp_path):
    """A population's validation rows, (K, rows, inputs), pass CHUNK / K rows at a time (K
    members' arrays of a whole chunk leave the cache); each chunk's outputs and losses are
    those of one pass over it."""
    from nnctl.config import load_config
    from nnctl.data import load_dataset
    from nnctl.nn.network import Network
    from nnctl.training.build import build_network

    from .test_resume import iris_config

    cfgs = [load_config(iris_config(tmp_path, "adam"), [f"seed={s}", "model.layers=[8]"]) for s in (1, 2, 3, 4)]
    networks = [build_network(cfg, load_dataset(cfg)) for cfg in cfgs]
    network = Network.stack(networks)
    X = np.random.default_rng(0).normal(size=(4, 150, 4)).astype(network.dtype)
    t = np.eye(3, dtype=network.dtype)[np.random.default_rng(1).integers(0, 3, size=(4, 150))]
    ws, whole = network.workspace(), network.workspace()
    starts = []
    for start, out in network.forward_chunks(X, 64, ws):  # chunks of 64 rows in pieces of 16
        n = out.shape[1]
        one = network.forward(np.ascontiguousarray(X[:, start:start + n]), ws=whole)
        assert out.tobytes() == one.tobytes()
        assert network.member_losses(t[:, start:start + n], ws=ws).tobytes() == \
            network.member_losses(t[:, start:start + n], ws=whole).tobytes()
        starts.append(start)
    assert starts == [0, 64, 128]
