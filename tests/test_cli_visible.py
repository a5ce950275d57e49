"""gradcheck, trace and plot: backpropagation made visible."""
import json

import numpy as np
import pytest

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "softplus", "identity"])
def test_gradcheck_passes_for_every_activation(activation):
    result = cli("gradcheck", CONFIGS / "iris.yaml", "--set", f"model.activation={activation}", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0, report
    assert report["passed"] and [p["name"] for p in report["parameters"]] == [
        "layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b", "layers.4.W", "layers.4.b"]


@pytest.mark.parametrize("config, sets", [
    ("xor.yaml", []),
    ("breast_cancer.yaml", []),
    ("diabetes.yaml", ["training.loss=mae"]),
    ("diabetes.yaml", ["training.loss=huber", "model.activation=tanh"]),
])
def test_gradcheck_passes_for_every_task_and_loss(config, sets):
    args = [a for s in sets for a in ("--set", s)]
    result = cli("gradcheck", CONFIGS / config, *args)
    assert result.exit_code == 0, result.stdout
    assert "all gradients match" in result.stdout


def test_gradcheck_fails_with_exit_1_on_a_wrong_derivative(monkeypatch):
    import nnctl.nn.activations as acts

    def wrong_backward(delta, z, a, saved=None):
        delta *= 1 - a  # the true derivative of tanh is 1 - a**2

    monkeypatch.setitem(acts.ACTIVATIONS, "tanh", acts.Activation(acts.tanh, wrong_backward, "xavier"))
    result = cli("gradcheck", CONFIGS / "iris.yaml", "--set", "model.activation=tanh")
    assert result.exit_code == 1
    assert "FAIL" in result.stdout and "FAILED: layers.0.W, layers.0.b, layers.2.W, layers.2.b" in result.stdout


def test_gradcheck_on_an_init_from_model(tmp_path):
    run = cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--quiet", "--set", "training.iterations=5").stdout.strip()
    result = cli("gradcheck", CONFIGS / "iris.yaml", "--set", f"model.init_from={run}", "--rows", "8")
    assert result.exit_code == 0


def _hand_config(tmp_path, write_config):
    """A 2-2-1 regression network with known weights, saved as a model to start from."""
    from nnctl.runs.model import load_model, save_model

    data = tmp_path / "tiny.csv"
    data.write_text("x1,x2,y\n1,2,0.5\n0.5,-1,1.0\n")
    cfg = write_config(f"data:\n  path: {data}\n  target: y\n  validation_split: 0\n  scale: none\n"
                       "  scale_target: false\nmodel:\n  task: regression\n  layers: [2]\n  activation: sigmoid\n"
                       "training:\n  optimizer: sgd\n  learning_rate: 0.5\n  iterations: 1\n  shuffle: false\n")
    run = cli("train", cfg, "--runs-dir", tmp_path / "runs", "--quiet").stdout.strip()
    model = load_model(run)
    net = model.network.astype(np.float64)
    first, last = net.layers[0], net.layers[2]
    first.W[:] = [[0.1, -0.2], [0.3, 0.4]]
    first.b[:] = [0.05, -0.05]
    last.W[:] = [[0.7], [-0.6]]
    last.b[:] = [0.2]
    save_model(tmp_path / "known.npz", net, model.meta)
    return cfg, tmp_path / "known.npz"


def test_trace_json_equals_the_numbers_worked_by_hand(tmp_path, write_config):
    cfg, known = _hand_config(tmp_path, write_config)
    result = cli("trace", cfg, "--set", f"model.init_from={known}", "--rows", "2", "--json")
    assert result.exit_code == 0, result.stderr
    t = json.loads(result.stdout)
    step = t["steps"][0]
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    # forward, row 1 by hand: z0 = [1*0.1 + 2*0.3 + 0.05, 1*-0.2 + 2*0.4 - 0.05] = [0.75, 0.55]
    z0 = np.array([[0.75, 0.55], [0.5 * 0.1 - 1 * 0.3 + 0.05, 0.5 * -0.2 - 1 * 0.4 - 0.05]])
    a0 = sig(z0)
    z1 = a0 @ np.array([[0.7], [-0.6]]) + 0.2
    assert [(f["layer"], f["name"]) for f in step["forward"]] == [(0, "dense 2"), (1, "sigmoid"), (2, "dense 1")]
    np.testing.assert_allclose(step["forward"][0]["output"], z0, rtol=1e-12)
    np.testing.assert_allclose(step["forward"][1]["output"], a0, rtol=1e-12)
    np.testing.assert_allclose(step["forward"][2]["output"], z1, rtol=1e-12)
    np.testing.assert_allclose(step["output"], z1, rtol=1e-12)  # identity head
    y = np.array([[0.5], [1.0]])
    assert step["loss"] == pytest.approx(np.mean((z1 - y) ** 2), rel=1e-12)
    # backward: MSE delta = 2 (a1 - y) / n; hidden delta = (delta1 · W1ᵀ) ⊙ a0 (1 - a0)
    delta1 = 2 * (z1 - y) / 2
    delta0 = (delta1 @ np.array([[0.7, -0.6]])) * a0 * (1 - a0)
    # the delta arriving at each layer is ∂L/∂(its output), last layer first
    assert [b["layer"] for b in step["backward"]] == [2, 1, 0]
    back = {b["layer"]: b for b in step["backward"]}
    np.testing.assert_allclose(back[2]["delta"], delta1, rtol=1e-12)
    np.testing.assert_allclose(back[1]["delta"], delta1 @ np.array([[0.7, -0.6]]), rtol=1e-12)
    np.testing.assert_allclose(back[0]["delta"], delta0, rtol=1e-12)
    assert back[1]["grads"] == {}
    np.testing.assert_allclose(back[2]["grads"]["W"], a0.T @ delta1, rtol=1e-12)
    np.testing.assert_allclose(back[0]["grads"]["W"], np.array([[1, 2], [0.5, -1]]).T @ delta0, rtol=1e-12)
    np.testing.assert_allclose(back[0]["grads"]["b"], delta0.sum(axis=0), rtol=1e-12)
    # update: W ← W − 0.5 · ∂L/∂W
    assert [u["layer"] for u in step["update"]] == [0, 2]
    np.testing.assert_allclose(step["update"][1]["before"]["W"], [[0.7], [-0.6]], rtol=1e-12)
    np.testing.assert_allclose(step["update"][1]["after"]["W"], np.array([[0.7], [-0.6]]) - 0.5 * a0.T @ delta1,
                               rtol=1e-12)
    assert [s["step"] for s in t["steps"]] == [1]


def test_trace_steps_lower_the_loss_and_show_panels(tmp_path, write_config):
    cfg, known = _hand_config(tmp_path, write_config)
    t = json.loads(cli("trace", cfg, "--set", f"model.init_from={known}", "--steps", "3", "--json").stdout)
    losses = [s["loss"] for s in t["steps"]]
    assert len(losses) == 3 and losses[2] < losses[0]
    text = cli("trace", CONFIGS / "iris.yaml", "--rows", "3").stdout
    for part in ("1. initialize", "2. forward propagation", "3. loss", "4. back-propagate", "5. update"):
        assert part in text
    assert "layer 1 (relu): out1 = relu(out0)" in text
    assert "delta0 = delta1 ⊙ relu'(out0)" in text
    assert "delta1 = delta2 · Wᵀ" in text
    assert "delta4 = ∂L/∂out4 (the output delta, fused softmax + cross_entropy)" in text
    # layers.0.W (4×16, 64 values) is too large to print whole: its shape and norm stand in for it
    initial = json.loads(cli("trace", CONFIGS / "iris.yaml", "--rows", "3", "--json").stdout)["initial"]
    norm = np.linalg.norm(initial[0]["params"]["W"])
    assert f"shape 4×16, ‖·‖ = {norm:.4g}, first values:" in text
    # layers.0.b (16 values, zero at the start) is printed whole
    assert "layers.0.b = [0. 0. 0. 0. 0. 0. 0. 0. 0. 0. 0. 0. 0. 0. 0. 0.]" in text


def test_trace_never_shows_negative_zero():
    # ReLU computes z * mask, which gives -0.0 for negative z; the trace shows plain 0
    result = cli("trace", CONFIGS / "xor.yaml", "--set", "model.activation=relu")
    assert result.exit_code == 0
    assert "-0. " not in result.stdout and "-0.]" not in result.stdout
    t = json.loads(cli("trace", CONFIGS / "xor.yaml", "--set", "model.activation=relu", "--json").stdout)
    a0 = np.array(t["steps"][0]["forward"][1]["output"])
    assert (a0 == 0).any() and not np.signbit(a0).any()


def _png_loads(path):
    mpimg = pytest.importorskip("matplotlib.image")
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100


@pytest.mark.plots
def test_runs_get_a_loss_png_and_plot_compares_runs(tmp_path):
    pytest.importorskip("matplotlib")
    runs = [cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--quiet", "--name", f"lr{lr}",
                "--set", f"training.learning_rate={lr}", "--set", "training.iterations=10").stdout.strip()
            for lr in (0.01, 0.05)]
    from pathlib import Path

    _png_loads(Path(runs[0]) / "loss.png")
    out = tmp_path / "compare.png"
    result = cli("plot", *runs, "--output", out)
    assert result.exit_code == 0 and result.stdout.strip() == str(out)
    _png_loads(out)


@pytest.mark.plots
def test_without_matplotlib_plot_says_how_to_install_and_train_still_works(tmp_path, monkeypatch):
    import nnctl.commands.plot

    monkeypatch.setattr(nnctl.commands.plot, "have_matplotlib", lambda: False)
    run = cli("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path, "--quiet", "--set", "training.iterations=2").stdout.strip()
    from pathlib import Path

    assert not (Path(run) / "loss.png").exists()
    assert_clean_error(cli("plot", run), "matplotlib", "pip install 'nnctl[plot]'")


def test_plot_of_a_folder_that_is_not_a_run(tmp_path):
    assert_clean_error(cli("plot", tmp_path), "no history.csv")
