import pytest
import yaml

from nnctl.config import dump_config, load_config, resolve
from nnctl.config.yamlfile import parse_override
from nnctl.errors import NnctlError

from .conftest import DATASETS

MINIMAL = "data:\n  path: data.csv\n  target: y\n"


def error_of(path, overrides=()):
    with pytest.raises(NnctlError) as info:
        load_config(path, overrides)
    return str(info.value)


def test_defaults_are_filled_and_paths_resolved_against_the_config_folder(write_config, tmp_path):
    cfg = load_config(write_config(MINIMAL))
    assert cfg.data.path == str(tmp_path / "data.csv")
    assert cfg.seed == 42
    assert cfg.model.layers == [16, 16]
    assert cfg.training.learning_rate == 0.01
    assert cfg.training.batch_size == 32
    assert cfg.training.schedule == {"name": "constant"}
    assert cfg.training.early_stopping is None


def test_resolved_config_dumps_and_loads_to_the_same(write_config, tmp_path):
    cfg = load_config(write_config(MINIMAL + "training:\n  schedule: cosine\n  early_stopping: {patience: 5}\n"))
    again = resolve(yaml.safe_load(dump_config(cfg)), tmp_path)
    assert again == cfg


def test_config_runs_from_any_working_directory(write_config, tmp_path, monkeypatch):
    path = write_config(MINIMAL)
    monkeypatch.chdir("/")
    assert load_config(path).data.path == str(tmp_path / "data.csv")


@pytest.mark.parametrize(
    "extra, message",
    [
        ("training:\n  learning_rate: -1\n", "training.learning_rate must be > 0, got -1"),
        ("training:\n  learnin_rate: 0.1\n", "did you mean 'learning_rate'"),
        ("modle:\n  layers: [3]\n", "did you mean 'model'"),
        ("training:\n  optimizer: adma\n", "did you mean 'adam'"),
        ("model:\n  activation: rellu\n", "did you mean 'relu'"),
        ("model:\n  layers: [16, 0]\n", "model.layers sizes must be integers >= 1"),
        ("model:\n  layers: [4, 4]\n  activation: [relu]\n", "lists 1 activations for 2 hidden layers"),
        ("data:\n  path: d.csv\n  target: y\n  validation_split: 1.0\n", "data.validation_split must be < 1"),
        ("training:\n  iterations: 2.5\n", "training.iterations must be an integer"),
        ("training:\n  shuffle: maybe\n", "training.shuffle must be true or false"),
        ("training:\n  schedule: {name: step, gama: 0.5}\n", "did you mean 'gamma'"),
        ("training:\n  early_stopping: {patience: 0}\n", "training.early_stopping.patience must be >= 1"),
        ("training:\n  loss: crossentropy\n", "did you mean 'cross_entropy'"),
        # found by the fuzzer: lists where a name belongs
        ("data:\n  path: d.csv\n  target: y\n  delimiter: []\n", "data.delimiter must be one character"),
        ("training:\n  schedule: {name: [step]}\n", "training.schedule.name must be one of"),
    ],
)
def test_errors_name_the_key_path(write_config, extra, message):
    text = extra if extra.startswith("data:") else MINIMAL + extra
    assert message in error_of(write_config(text))


def test_error_names_the_line(write_config):
    text = MINIMAL + "training:\n  iterations: 10\n  learning_rate: 0\n"
    assert "line 6" in error_of(write_config(text))


def test_allowed_names_come_from_the_math_tables(write_config):
    from nnctl.nn.activations import ACTIVATIONS

    message = error_of(write_config(MINIMAL + "model:\n  activation: nope\n"))
    for name in ACTIVATIONS:
        assert name in message


def test_required_keys(write_config):
    assert "data.target is required" in error_of(write_config("data:\n  path: x.csv\n"))
    assert "data.path is required" in error_of(write_config("seed: 1\n"))


def test_overrides_are_yaml_scalars_and_flow_lists(write_config, tmp_path):
    path = write_config(MINIMAL)
    cfg = load_config(path, ["training.learning_rate=0.1", "model.layers=[32,16]", "model.activation=tanh",
                             "training.early_stopping.patience=3", "training.schedule=cosine",
                             "training.batch_size=0"])
    assert cfg.training.learning_rate == 0.1
    assert cfg.model.layers == [32, 16]
    assert cfg.model.activation == "tanh"
    assert cfg.training.early_stopping.patience == 3
    assert cfg.training.schedule == {"name": "cosine", "min_learning_rate": 0.0, "decay_epochs": None}
    assert cfg.training.batch_size is None


def test_override_errors_name_the_flag(write_config):
    path = write_config(MINIMAL)
    assert "(--set model.layrs)" in error_of(path, ["model.layrs=3"])
    assert "did you mean 'layers'" in error_of(path, ["model.layrs=3"])
    assert "KEY=VALUE" in error_of(path, ["model.layers"])
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])


def test_yaml_problems(write_config):
    assert "line 2, column 10" in error_of(write_config("data:\n  path: a: b\n"))
    assert "empty" in error_of(write_config(""))
    assert "mapping" in error_of(write_config("- a\n- b\n"))
    assert "not allowed" in error_of(write_config("!!python/object/apply:os.system ['echo hi']\n"))
    assert "not found" in error_of(write_config(MINIMAL).parent / "missing.yaml")


def test_cross_key_rules(write_config):
    text = MINIMAL.replace("target: y", "target: y\n  validation_split: 0") + "training:\n  early_stopping: {}\n"
    assert "needs a validation part" in error_of(write_config(text))
    text = MINIMAL + "  features: [a, y]\n"
    assert "includes the target" in error_of(write_config(text))


def test_bundled_configs_are_valid():
    from .conftest import CONFIGS

    for path in sorted(CONFIGS.glob("*.yaml")):
        if "sweep" in path.stem:  # a sweep file: test_sweep checks it
            continue
        cfg = load_config(path)
        assert cfg.data.path.startswith(str(DATASETS))


def test_scientific_notation_without_a_dot_is_a_number(write_config):
    # YAML 1.1 reads `1e-3` as a string; nnctl takes it as the number the user meant
    cfg = load_config(write_config(MINIMAL + "training:\n  learning_rate: 1e-3\n  l2: 5E-4\n"), ["training.eps=1e-7"])
    assert cfg.training.learning_rate == 0.001
    assert cfg.training.l2 == 0.0005 and cfg.training.eps == 1e-7
