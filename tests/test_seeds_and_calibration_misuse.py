"""A careless user and an attacker against the trust features (calibration, --seeds, cv
--repeats): each bad input is one `error:` line naming it, exit 2, and nothing left behind."""
import json
import shutil

import numpy as np
import pytest

from nnctl.sweep.seeds import write_summary

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS, DATASETS


def with_temperature(run, dest, temperature):
    """A copy of `run`'s model.npz whose meta says calibration: {temperature: T}."""
    from nnctl.npzfile import meta_array

    with np.load(run / "model.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta["calibration"] = {"temperature": temperature}
    np.savez(dest, meta=meta_array(meta), **arrays)
    return dest


@pytest.fixture
def seeds_folder(iris_run, tmp_path):
    """A seeds folder as `train --seeds 2` writes it, made from two copies of one run (cheap)."""
    folder = tmp_path / "iris-seeds2-20260101-000000"
    jobs = []
    for seed in (42, 43):
        shutil.copytree(iris_run, folder / f"seed_{seed}")
        jobs.append({"runs_dir": str(folder), "folder": f"seed_{seed}", "key": seed})
    write_summary(folder, jobs, [{}, {}])
    return folder


@pytest.mark.parametrize("temperature", [1e308, 1e-300, 1e3, 1e-3])
def test_a_temperature_outside_the_fitted_range_is_refused(temperature, iris_run, tmp_path):
    # 1e308 in float32 is inf: every probability became 0.5 and the labels changed, silently
    path = with_temperature(iris_run, tmp_path / "model.npz", temperature)
    assert_clean_error(cli("predict", path, DATASETS / "iris.csv"), "calibration", str(path), "0.01 to 100")


@pytest.mark.parametrize("temperature", [0.01, 100.0, 2.5])
def test_a_temperature_inside_the_range_loads(temperature, iris_run, tmp_path):
    path = with_temperature(iris_run, tmp_path / "model.npz", temperature)
    result = cli("predict", path, DATASETS / "iris.csv", "--proba")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "prediction,p_setosa,p_versicolor,p_virginica"


@pytest.mark.parametrize("command", [("predict", True), ("evaluate", True), ("export", False)])
def test_a_seeds_folder_given_as_a_model_names_its_kept_run(command, seeds_folder):
    kept = json.loads((seeds_folder / "summary.json").read_text())["representative"]["seed"]
    name, takes_data = command
    result = cli(name, seeds_folder, *([DATASETS / "iris.csv"] if takes_data else []))
    assert_clean_error(result, "no model.npz", "2 runs", f"the kept run {seeds_folder / f'seed_{kept}'}")
    assert sorted(p.name for p in seeds_folder.iterdir()) == ["seed_42", "seed_43", "seeds.csv", "summary.json"]


@pytest.mark.parametrize("dropped", ["min", "max", "std"])
def test_report_names_a_summary_metric_without_its_numbers(dropped, seeds_folder):
    summary = json.loads((seeds_folder / "summary.json").read_text())
    del summary["val_accuracy"][dropped]
    (seeds_folder / "summary.json").write_text(json.dumps(summary))
    assert_clean_error(cli("report", seeds_folder), "summary.json", "val_accuracy", "mean, std, min and max")
    assert not (seeds_folder / "report.html").exists()


def test_the_seeds_page_gives_the_kept_runs_report_command_in_full(seeds_folder):
    assert cli("report", seeds_folder).exit_code == 0
    html = (seeds_folder / "report.html").read_text()
    kept = json.loads((seeds_folder / "summary.json").read_text())["representative"]["seed"]
    assert f"<code>nnctl report {seeds_folder / f'seed_{kept}'}</code>" in html


@pytest.mark.parametrize("n", ["1001", "1000000000", "99999999999999999999999"])
def test_huge_seeds_are_refused_before_anything(n, tmp_path):
    result = cli("train", CONFIGS / "iris.yaml", "--seeds", n, "--runs-dir", tmp_path / "runs")
    assert_clean_error(result, f"--seeds {n}", "more than 1000", "--seeds 1000 or fewer")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("repeats", ["201", "1000000000"])
def test_huge_cv_repeats_are_refused_before_anything(repeats, tmp_path):
    result = cli("cv", CONFIGS / "iris.yaml", "--folds", "5", "--repeats", repeats, "--runs-dir", tmp_path / "runs")
    assert_clean_error(result, "--repeats", "more than 1000", "--repeats 200 or fewer")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_interrupt_message_reads(monkeypatch, tmp_path):
    from nnctl.sweep import cv

    class Interrupting:
        def submit(self, job):
            raise KeyboardInterrupt

        def close(self, cancel=False):
            pass

    monkeypatch.setattr(cv, "make_runner", lambda *a: (Interrupting(), 1))
    with pytest.raises(cv.Stopped) as stopped:
        cv.run_all([{"runs_dir": str(tmp_path), "folder": "seed_1"}] * 2, tmp_path, 1, None, None, "seeds")
    assert str(stopped.value) == \
        "interrupted after 0 of 2 seeds; the seeds folder was removed (its seeds only count together)"


def test_a_validation_part_with_every_row_right_keeps_t_1(tmp_path, write_config):
    # one validation row, predicted right: the loss only falls as T -> 0, and T = 0.01 would have
    # made every probability 0 or 1 (iris's 30 validation rows, all right, did the same)
    rows = (DATASETS / "iris.csv").read_text().splitlines()
    (tmp_path / "val.csv").write_text("\n".join([rows[0], rows[1]]) + "\n")
    config = write_config(f"seed: 0\ndata: {{path: {DATASETS / 'iris.csv'}, target: species, "
                          f"validation_path: {tmp_path / 'val.csv'}}}\n"
                          "training: {iterations: 40, learning_rate: 0.05, calibration: temperature}\n")
    result = cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert "warning: training.calibration: every validation row was predicted right" in result.stderr
    run = result.stdout.strip().splitlines()[-1]
    metrics = json.loads((tmp_path / "runs" / run.split("/")[-1] / "metrics.json").read_text())
    assert metrics["calibration"]["temperature"] == 1.0 and "T = 1 was kept" in metrics["calibration"]["note"]
    assert metrics["calibration"]["val_log_loss_after"] == metrics["calibration"]["val_log_loss_before"]


@pytest.mark.parametrize("score, shown", [({"mean": True, "std": 0.1}, None),
                                          ({"mean": float("inf"), "std": 0.1}, None),
                                          ({"mean": 0.9, "std": -1}, {"value": 0.9, "std": None}),
                                          ({"mean": 0.9, "std": "x"}, {"value": 0.9, "std": None}),
                                          ({"mean": 0.9, "std": 0.02}, {"value": 0.9, "std": 0.02})])
def test_runs_lists_a_damaged_seeds_summary_without_a_false_score(score, shown, seeds_folder):
    from nnctl.sweep.listing import list_searches

    summary = json.loads((seeds_folder / "summary.json").read_text())
    summary["val_accuracy"] = score
    (seeds_folder / "summary.json").write_text(json.dumps(summary))
    [entry] = list_searches(seeds_folder.parent)
    said = entry["summary"]
    assert (said if said is None else {"value": said["value"], "std": said["std"]}) == shown
    result = cli("runs", seeds_folder.parent)
    assert result.exit_code == 0 and "True" not in result.stdout and "inf" not in result.stdout
