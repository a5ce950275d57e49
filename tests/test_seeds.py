"""`nnctl train CONFIG --seeds N` (issue 24, "how much is luck"): N runs from seeds seed, seed+1,
..., in parallel; seeds.csv, summary.json and the median run kept; listed by `nnctl runs`,
shown by `nnctl report`; stopped by Ctrl-C as a cv is."""
import csv
import json
import re
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from nnctl.config import load_config
from nnctl.sweep.seeds import representative, train_seeds

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS

SHORT = ["training.iterations=8"]


@pytest.fixture(scope="module")
def seeds_folder(tmp_path_factory):
    """Three iris seeds (42, 43, 44) through the Python API, shared by the tests that only read."""
    runs = tmp_path_factory.mktemp("seeds")
    seen = []
    result = train_seeds(CONFIGS / "iris.yaml", 3, SHORT, runs_dir=runs, workers=2,
                         callback=lambda seed, r: seen.append((seed, r["state"])))
    assert sorted(seen) == [(42, "complete"), (43, "complete"), (44, "complete")]
    return result


def _rows(folder: Path) -> list[dict]:
    with open(folder / "seeds.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _weights(run) -> np.ndarray:
    with np.load(Path(run) / "model.npz", allow_pickle=False) as npz:
        return npz["layers.0.W"].copy()


def test_the_folder_is_complete(seeds_folder):
    folder = seeds_folder["folder"]
    assert folder.name.startswith("iris-seeds3-")
    assert sorted(p.name for p in folder.iterdir() if p.name != ".lock") == ["seed_42", "seed_43", "seed_44", "seeds.csv", "summary.json"]
    for seed in (42, 43, 44):
        run = folder / f"seed_{seed}"
        assert {"model.npz", "metrics.json", "config.yaml", "history.csv", "validation.csv"} <= \
            {p.name for p in run.iterdir()}
        assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    rows = _rows(folder)
    assert list(rows[0]) == ["seed", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "run"]
    assert [r["run"] for r in rows] == [str(folder / f"seed_{s}") for s in (42, 43, 44)]


def test_each_seed_changes_weights_split_and_is_that_seed_trained_alone(seeds_folder, tmp_path):
    from nnctl.commands.train import train_config

    folder = seeds_folder["folder"]
    runs = [folder / f"seed_{s}" for s in (42, 43, 44)]
    assert [load_config(r / "config.yaml").seed for r in runs] == [42, 43, 44]
    weights = [_weights(r) for r in runs]
    assert not np.array_equal(weights[0], weights[1]) and not np.array_equal(weights[1], weights[2])
    # the split differs too: the validation parts are not the same rows in the same order
    parts = [(r / "validation.csv").read_text() for r in runs]
    assert len(set(parts)) == 3
    # seed 43 of the spread (a member of one pass) is `seed: 43` trained on its own
    alone = train_config(load_config(CONFIGS / "iris.yaml", SHORT + ["seed=43"]), runs_dir=tmp_path, plot=False).run
    np.testing.assert_allclose(_weights(alone), weights[1], rtol=1e-5, atol=1e-6)


def test_the_summary_is_computed_from_seeds_csv(seeds_folder):
    folder = seeds_folder["folder"]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary == json.loads(json.dumps(seeds_folder["summary"]))
    assert summary["seeds"] == [42, 43, 44] and summary["metric"] == "val_accuracy"
    rows = _rows(folder)
    for column in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        values = np.array([float(r[column]) for r in rows])
        assert summary[column]["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert summary[column]["std"] == pytest.approx(values.std(), rel=1e-9, abs=1e-15)
        assert summary[column]["min"] == values.min() and summary[column]["max"] == values.max()
    # the kept run is the median by val_accuracy
    kept = summary["representative"]
    values = sorted(float(r["val_accuracy"]) for r in rows)
    assert kept["val_accuracy"] == values[1]
    assert float(next(r for r in rows if int(r["seed"]) == kept["seed"])["val_accuracy"]) == values[1]
    assert kept["run"] == str(folder / f"seed_{kept['seed']}")


@pytest.mark.parametrize("values, kept", [
    ([0.9, 0.7, 0.8], 2),            # odd: the middle value
    ([0.9, 0.6, 0.8, 0.7], 3),       # even: the lower of the two middle values (0.7)
    ([0.8, 0.9, 0.8, 0.8, 0.7], 0),  # ties at the median: the smallest seed
])
def test_the_representative_is_the_median(values, kept):
    rows = [{"seed": 10 + i, "m": v} for i, v in enumerate(values)]
    assert representative(rows, "m")["seed"] == 10 + kept


def test_the_command_line_prints_the_spread_and_the_folder_last(tmp_path):
    result = cli("train", CONFIGS / "iris.yaml", "--seeds", "2", "--workers", "2", "--runs-dir", tmp_path, "--json",
                 "--set", "training.iterations=3", "--name", "lucky")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    folder, summary = Path(lines[-1]), json.loads(lines[-2])
    assert folder.parent == tmp_path and folder.name.startswith("lucky-seeds2-")
    assert summary["folder"] == str(folder)
    assert {k: v for k, v in summary.items() if k != "folder"} == json.loads((folder / "summary.json").read_text())
    err = result.stderr
    assert "seed 42: complete" in err and "seed 43: complete" in err
    mean, std = summary["val_accuracy"]["mean"], summary["val_accuracy"]["std"]
    assert re.search(rf"^val_accuracy +{mean:.4f} ± {std:.4f} +{summary['val_accuracy']['min']:.4f} ", err, re.M)
    # two seeds: the lower middle value is the lower one
    assert summary["representative"]["val_accuracy"] == summary["val_accuracy"]["min"]
    assert f"kept: seed_{summary['representative']['seed']}, the median by val_accuracy" in err
    quiet = cli("train", CONFIGS / "iris.yaml", "--seeds", "2", "--runs-dir", tmp_path, "--quiet", "--report",
                "--set", "training.iterations=2", "--workers", "1")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert "Spread over the seeds" in (Path(quiet.stdout.strip()) / "report.html").read_text()


@pytest.mark.parametrize("args, fragments", [
    (["--seeds", "1"], ["--seeds must be 2 or more, got 1", "drop --seeds"]),
    (["--seeds", "0"], ["--seeds must be 2 or more, got 0"]),
    (["--workers", "2"], ["--workers is for training several seeds", "--seeds N"]),
    (["--seeds", "3", "--name", "a/b"], ["a seeds name must be one folder name"]),
    (["--seeds", "3", "--set", "data.path=nowhere.csv"], ["nowhere.csv"]),
])
def test_bad_seeds_options_are_refused_before_anything_is_written(tmp_path, args, fragments):
    runs = tmp_path / "runs"
    assert_clean_error(cli("train", CONFIGS / "iris.yaml", "--runs-dir", runs, *args), *fragments)
    assert not runs.exists() or list(runs.iterdir()) == []


def test_seeds_cannot_resume_a_run(tmp_path, iris_run):
    assert_clean_error(cli("train", "--resume", iris_run, "--seeds", "3", "--runs-dir", tmp_path),
                       "--seeds trains a config anew", "--seeds with --resume")
    assert_clean_error(cli("train", "--seeds", "3", "--runs-dir", tmp_path), "--seeds needs a CONFIG")
    assert list(tmp_path.iterdir()) == []


def test_runs_lists_the_seeds_folder_with_its_kind(seeds_folder):
    result = cli("runs", seeds_folder["folder"].parent, "--json")
    assert result.exit_code == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [e["kind"] for e in listed] == ["seeds"]  # its seed_<N> runs are inside it, not beside it
    entry = listed[0]
    assert entry["status"] == "completed" and entry["epochs"] == "3/3 seeds"
    assert entry["summary"] == {"label": "accuracy", "value": seeds_folder["summary"]["val_accuracy"]["mean"],
                                "std": seeds_folder["summary"]["val_accuracy"]["std"]}


def test_the_report_shows_the_spread_and_the_kept_run_has_its_own(seeds_folder, tmp_path):
    folder = seeds_folder["folder"]
    out = tmp_path / "spread.html"
    result = cli("report", folder, "--output", out)
    assert result.exit_code == 0, result.stderr
    html = out.read_text()
    summary = seeds_folder["summary"]
    assert "Spread over the seeds" in html and html.count('<figure class="chart">') == 4
    mean, std = summary["val_accuracy"]["mean"], summary["val_accuracy"]["std"]
    assert f"{mean:.4f} ± {std:.4f}" in html
    for seed in (42, 43, 44):
        assert f'<a href="seed_{seed}/">seed_{seed}</a>' in html
    kept = Path(summary["representative"]["run"])
    assert f"kept: {kept.name}" in html
    page = cli("report", kept)
    assert page.exit_code == 0, page.stderr
    assert Path(page.stdout.strip()) == kept / "report.html"
    assert_clean_error(cli("report", folder, kept, "--output", tmp_path / "both.html"), "reported alone")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_an_interrupted_seeds_run_stops_its_workers_and_leaves_no_folder(tmp_path):
    from .test_sweep_safety import assert_interrupt_leaves_nothing

    assert_interrupt_leaves_nothing(["train", CONFIGS / "iris.yaml", "--seeds", "2"], tmp_path / "runs", signal.SIGINT,
                                    "interrupted after 0 of 2 seeds; the seeds folder was removed")
