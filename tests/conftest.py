import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT / "datasets"
CONFIGS = ROOT / "configs"


def load_benchmark(name: str):
    """benchmarks/<name>.py imported as a module. A benchmark pins BLAS and thread counts in
    os.environ for its own runs at import; the test process keeps its own environment."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_bench", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    environ = dict(os.environ)
    try:
        spec.loader.exec_module(module)
    finally:
        os.environ.clear()
        os.environ.update(environ)
    return module


# Plain output in every test, whatever terminal pytest runs in.
os.environ.setdefault("NO_COLOR", "1")


def pytest_collection_modifyitems(items):
    """Files whose tests are all `slow` run first, then files with some, each file's tests in their
    own order: under CI's `pytest -n 2 --dist loadfile --no-loadscope-reorder` the long files start
    at once instead of ending the run alone."""
    slow, fast = set(), set()
    for item in items:
        (slow if item.get_closest_marker("slow") else fast).add(item.path)
    items.sort(key=lambda item: (item.path in fast) + (item.path not in slow))


# The key table's defaults before they became the tabular recipe (docs/config.md, "Defaults
# changed"). Tests written under them keep their meaning and their speed: each test sees these
# in-process unless marked `new_defaults`; a test that runs nnctl in another process writes the
# ones it needs (`old_defaults_yaml`).
OLD_DEFAULTS = {
    ("data", "scale"): "standard",
    ("data", "embedding"): {},
    ("model", "layers"): [16, 16],
    ("model", "numeric_embedding"): "none",
    ("training", "learning_rate"): 0.01,
    ("training", "batch_size"): 32,
    ("training", "optimizer"): "sgd",
    ("training", "l2"): 0.0,
    ("training", "schedule"): {"name": "constant"},
    ("training", "warmup"): 0,
    ("training", "early_stopping"): None,
    ("training", "early_stopping", "patience"): 20,
}


def _old_spec() -> dict:
    from dataclasses import replace

    from nnctl.config.spec import spec

    table = {section: dict(entry) if isinstance(entry, dict) else entry for section, entry in spec().items()}
    for path, value in OLD_DEFAULTS.items():
        if len(path) == 2:
            table[path[0]][path[1]] = replace(table[path[0]][path[1]], default=value)
    stop = table["training"]["early_stopping"]
    table["training"]["early_stopping"] = replace(stop, sub={**stop.sub, "patience": replace(
        stop.sub["patience"], default=OLD_DEFAULTS[("training", "early_stopping", "patience")])})
    return table


def old_defaults_yaml(extra: str = "") -> str:
    """The old model and training defaults as config sections (model:, training:), for a test
    that runs nnctl in another process; `extra` lines go under training:."""
    import yaml

    model = {k: v for (s, k, *rest), v in OLD_DEFAULTS.items() if s == "model" and not rest}
    training = {k: v for (s, k, *rest), v in OLD_DEFAULTS.items() if s == "training" and not rest}
    return yaml.safe_dump({"model": model, "training": training}, default_flow_style=None, sort_keys=False) + extra


_OLD_SPEC = None
_REAL_SPEC = None


@pytest.fixture(scope="session", autouse=True)
def _old_defaults_session():
    """The old defaults (OLD_DEFAULTS) for the whole session, module and session fixtures
    included (they are made before any function-scoped fixture)."""
    import nnctl.config.spec as spec_module

    global _OLD_SPEC, _REAL_SPEC
    _REAL_SPEC = spec_module.spec()
    _OLD_SPEC = _old_spec()
    spec_module._SPEC = _OLD_SPEC
    yield
    spec_module._SPEC = _REAL_SPEC


@pytest.fixture(autouse=True)
def _old_defaults(request, monkeypatch, _old_defaults_session):
    """A test marked `new_defaults` sees the key table's own defaults."""
    if request.node.get_closest_marker("new_defaults"):
        import nnctl.config.spec as spec_module

        monkeypatch.setattr(spec_module, "_SPEC", _REAL_SPEC)


@pytest.fixture(autouse=True)
def _no_loss_png(request, monkeypatch):
    """An in-process train skips drawing loss.png, which costs about three times a small run's
    training (matplotlib's layout and PNG), unless the test is marked `plots`; nnctl run in a
    subprocess always draws it."""
    if not request.node.get_closest_marker("plots"):
        import nnctl.commands.train

        monkeypatch.setattr(nnctl.commands.train, "try_plot_run", lambda folder, history, label: False)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own dataset cache folder, never the user's."""
    monkeypatch.setenv("NNCTL_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def _file_writer(tmp_path, default_name):
    def write(text: str, name: str = default_name) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def write_config(tmp_path):
    """write_config(text, name='config.yaml') -> path of a config file in a temp folder."""
    return _file_writer(tmp_path, "config.yaml")


@pytest.fixture
def write_csv(tmp_path):
    """write_csv(text, name='data.csv') -> path of a CSV file in a temp folder."""
    return _file_writer(tmp_path, "data.csv")


@pytest.fixture
def iris_config(write_config):
    def make(extra: str = "") -> Path:
        return write_config(f"data:\n  path: {DATASETS / 'iris.csv'}\n  target: species\n{extra}")

    return make


@pytest.fixture(scope="session")
def iris_run(tmp_path_factory):
    """A run folder (Path) trained by the command line on configs/iris.yaml, shared by every
    test that only reads it."""
    from .cli_helpers import cli

    runs = tmp_path_factory.mktemp("iris-runs")
    result = cli("train", CONFIGS / "iris.yaml", "--runs-dir", runs, "--quiet")
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip())


def central_differences(f, z: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """∂f/∂z by central differences, one entry of z at a time: (f(z + h) − f(z − h)) / 2h."""
    numeric = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (f(up) - f(down)) / (2 * h)
    return numeric


def loss_targets(loss: str, rng, rows: int, outputs: int) -> np.ndarray:
    """Random targets (rows, outputs) in the form `loss` takes: one-hot rows for cross_entropy,
    a 0/1 column for binary_cross_entropy, normal values for regression losses."""
    if loss == "cross_entropy":
        return np.eye(outputs)[rng.integers(0, outputs, size=rows)]
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, size=(rows, 1)).astype(np.float64)
    return rng.normal(size=(rows, outputs))


def hide_package(monkeypatch, package: str) -> None:
    """Make `import package` (and its submodules) fail, as on a machine without that extra."""
    import builtins

    real_import = builtins.__import__

    def without(name, *args, **kwargs):
        if name == package or name.startswith(package + "."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
