"""Where model.task auto's choice is a guess (numbers that may be a count, or labels), `train` says
which task it chose and why on stderr, even with --quiet, so that a count (goals 0-12) taken as
13 classes is not silent; stdout stays the run path alone."""
from pathlib import Path

import numpy as np
import pytest

from .cli_helpers import cli


def _table(tmp_path, target_values) -> Path:
    rng = np.random.default_rng(0)
    rows = len(target_values)
    lines = ["x,z,goals"] + [f"{a:.3f},{b:.3f},{t}" for a, b, t in zip(rng.normal(size=rows), rng.normal(size=rows),
                                                                         target_values)]
    path = tmp_path / "matches.csv"
    path.write_text("\n".join(lines) + "\n")
    config = tmp_path / "matches.yaml"
    config.write_text(f"data:\n  path: {path}\n  target: goals\ntraining:\n  iterations: 1\n")
    return config


DOUBTFUL = {
    "a count": (list(range(13)) * 20,
                "note: task classification (model.task: auto): target 'goals' has 13 distinct whole numbers, each "
                "taken as a class (auto takes up to 20); set model.task: regression if it is a count or an amount"),
    "many whole numbers": (list(range(40)) * 5,
                           "note: task regression (model.task: auto): target 'goals' has 40 distinct whole numbers, "
                           "more than the 20 auto takes as classes; set model.task: classification if they are labels"),
    "fractions": ([0.5, 1.25, 2.0, 3.5] * 50 + [0.75] * 10,
                  "note: task regression (model.task: auto): target 'goals' has numbers that are not all whole (5 "
                  "distinct values); set model.task: classification to treat them as classes"),
}
CLEAR = {  # no task note: nothing to doubt
    "text": ["win", "draw", "loss"] * 60,
    "0/1": [0, 1] * 90,
    "measurements": list(np.linspace(0, 10, 180).round(3)),
}


def _train(tmp_path, values, *options):
    result = cli("train", _table(tmp_path, values), "--runs-dir", tmp_path / "runs", *options)
    assert result.exit_code == 0, result.stderr
    [line] = result.stdout.strip().splitlines()  # the run path alone
    assert Path(line).is_dir()
    return result.stderr.strip().splitlines()


@pytest.mark.parametrize("case", sorted(DOUBTFUL))
@pytest.mark.parametrize("streaming", [False, True], ids=["in-memory", "streamed"])
def test_quiet_train_still_says_which_task_it_guessed_and_why(tmp_path, case, streaming):
    values, note = DOUBTFUL[case]
    assert _train(tmp_path, values, "--quiet", "--set", f"data.streaming={str(streaming).lower()}") == [note]


@pytest.mark.parametrize("case", sorted(CLEAR))
def test_a_choice_not_in_doubt_gets_no_note(tmp_path, case):
    assert _train(tmp_path, CLEAR[case], "--quiet") == []
    assert not any(line.startswith("note: task") for line in _train(tmp_path, CLEAR[case]))


@pytest.mark.parametrize("case", sorted(DOUBTFUL))
def test_validate_shows_the_note_too(tmp_path, case):
    values, note = DOUBTFUL[case]
    result = cli("validate", _table(tmp_path, values))
    assert result.exit_code == 0 and note in result.stderr.splitlines()


def test_a_task_set_in_the_config_gets_no_note(tmp_path):
    config = _table(tmp_path, list(range(13)) * 20)
    result = cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet", "--set", "model.task=regression")
    assert result.exit_code == 0, result.stderr
    assert "task" not in result.stderr


def test_the_note_comes_back_with_a_cached_dataset(tmp_path, monkeypatch):
    import nnctl.data.cache as cache

    monkeypatch.setattr(cache, "MIN_BYTES", 0)
    config = _table(tmp_path, list(range(13)) * 20)
    for _ in range(2):
        result = cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
        assert "note: task classification (model.task: auto)" in result.stderr
