"""nnctl report: the page is written from the run folder alone, and opened in a real browser
(headless Chromium through Playwright) it loads offline, draws every chart, and is not blank."""
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def train(config, runs, *sets):
    args = ["train", CONFIGS / f"{config}.yaml", "--runs-dir", runs, "--quiet"]
    for s in sets:
        args += ["--set", s]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report-runs")
    return {name: train(name, folder) for name in ("iris", "breast_cancer", "diabetes")}


# --- what training leaves for the report ------------------------------------------------------------
def test_training_writes_diagnostics_in_long_format(runs):
    lines = (runs["iris"] / "diagnostics.csv").read_text().splitlines()
    assert lines[0] == "epoch,layer,grad_norm,weight_norm,update_ratio,dead_fraction,grad_norm_total"
    rows = [line.split(",") for line in lines[1:]]
    history = (runs["iris"] / "history.csv").read_text().splitlines()[1:]
    assert len(rows) == 3 * len(history)  # every logged epoch, every layer
    assert [r[1] for r in rows[:3]] == ["0", "1", "2"]
    assert rows[0][5] != "" and rows[2][5] == ""  # relu layers have a dead fraction, softmax none
    for r in rows:
        assert float(r[2]) > 0 and float(r[3]) > 0 and 0 < float(r[4]) < 1


def test_diagnostics_are_what_they_say(tmp_path):
    """grad_norm is a step's ‖∂L/∂W‖, update_ratio ‖ΔW‖/‖W‖ of that step: for SGD on one full
    batch (one step an epoch), ‖ΔW‖ = lr · ‖∂L/∂W‖ exactly."""
    run = train("xor", tmp_path, "training.optimizer=sgd", "training.learning_rate=0.5", "training.iterations=5",
                "training.log_every=1")
    rows = [line.split(",") for line in (run / "diagnostics.csv").read_text().splitlines()[1:]]
    for r in rows:
        grad, weight, ratio = float(r[2]), float(r[3]), float(r[4])
        assert ratio * weight == pytest.approx(0.5 * grad, rel=1e-4)


def test_diagnostics_average_the_epochs_steps_and_leave_out_a_short_last_batch(tmp_path, monkeypatch):
    from nnctl.nn.diagnostics import SAMPLED_STEPS, Diagnostics

    steps = Diagnostics.steps_to_measure(10, last_is_short=True)
    assert steps == frozenset(range(9))  # the short tenth batch is left out
    assert len(Diagnostics.steps_to_measure(300, last_is_short=False)) == SAMPLED_STEPS
    assert Diagnostics.steps_to_measure(1, last_is_short=True) == {0}
    seen = []
    original = Diagnostics.after_step

    def recording(self, before, total=None):
        s = self.slices[0]
        seen.append(float(np.linalg.norm(self.network.flat_grads[s])))
        original(self, before, total)

    monkeypatch.setattr(Diagnostics, "after_step", recording)
    # iris: 120 training rows in batches of 32 -> 3 full batches and one of 24
    run = train("iris", tmp_path, "training.batch_size=32", "training.iterations=1")
    rows = [line.split(",") for line in (run / "diagnostics.csv").read_text().splitlines()[1:]]
    assert len(seen) == 3
    assert float(rows[0][2]) == pytest.approx(np.mean(seen), rel=1e-6)


def test_dead_relus_are_counted_and_flagged(tmp_path):
    from nnctl.report.health import flags
    from nnctl.report.rundata import read_run

    source = train("iris", tmp_path / "a", "training.iterations=1")
    with np.load(source / "model.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["layers.0.b"][:12] = -100.0  # 12 of layer 0's 16 units below zero for any input: dead
    np.savez(tmp_path / "dying.npz", **arrays)
    run = train("iris", tmp_path / "b", f"model.init_from={tmp_path / 'dying.npz'}", "training.iterations=3")
    data = read_run(run)
    dead = [r["dead_fraction"] for r in data.diagnostics if r["layer"] == 0]
    assert len(dead) == 3 and all(0.75 <= d < 1 for d in dead)  # the 12 forced ones, and any others dead then
    assert any(s == "warning" and f"Dead units in layer 0: {dead[-1]:.0%}" in t for s, t in flags(data.diagnostics))


def test_the_health_flags_in_words():
    from nnctl.report.health import flags

    def rows(grads, ratio=1e-3, dead=None):
        return [{"epoch": e, "layer": i, "grad_norm": g, "weight_norm": 1.0, "update_ratio": ratio,
                 "dead_fraction": dead} for e, layer_grads in enumerate(grads, 1) for i, g in enumerate(layer_grads)]

    vanishing = flags(rows([[1e-6, 1e-2, 1.0]]))
    assert any("Vanishing gradients" in t for _, t in vanishing)
    exploding = flags(rows([[1.0, 1.0], [5e3, 1.0]]))
    assert any("Exploding gradients in layer 0" in t for _, t in exploding)
    assert any("Tiny updates" in t for _, t in flags(rows([[1.0, 1.0]], ratio=1e-7)))
    assert any("Large updates" in t for _, t in flags(rows([[1.0, 1.0]], ratio=0.5)))
    assert flags(rows([[0.5, 1.0], [0.4, 0.9]])) == [
        ("ok", "No sign of vanishing or exploding gradients, dead units or badly sized updates.")]


def test_validation_predictions_are_saved(runs):
    lines = (runs["iris"] / "validation.csv").read_text().splitlines()
    assert lines[0] == "target,prediction,p_setosa,p_versicolor,p_virginica,row" and len(lines) == 31
    lines = (runs["diabetes"] / "validation.csv").read_text().splitlines()
    assert lines[0] == "target,prediction,row" and len(lines) == 89
    assert 25 <= float(lines[1].split(",")[0]) <= 346  # in the target's units


# --- the page -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, sections", [
    ("iris", ["Summary", "Learning curves", "Final metrics", "Classification (validation part)", "Backprop health"]),
    ("breast_cancer", ["ROC curve", "precision-recall curve", "Backprop health"]),
    ("diabetes", ["Regression (validation part)", "predicted against actual", "residuals"]),
])
def test_the_page_has_every_section(runs, name, sections):
    result = cli("report", runs[name])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(runs[name] / "report.html")
    html = (runs[name] / "report.html").read_text()
    for section in sections:
        assert section in html, section
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html and len(html) < 5_000_000


def test_several_runs_make_one_comparison_page(runs, tmp_path):
    out = tmp_path / "compare.html"
    result = cli("report", runs["iris"], runs["breast_cancer"], "--output", out)
    assert result.exit_code == 0, result.stderr
    html = out.read_text()
    assert "Comparing 2 runs" in html and runs["iris"].name in html and runs["breast_cancer"].name in html
    assert_clean_error(cli("report", runs["iris"], runs["breast_cancer"]), "--output")


def test_bad_input_is_a_clean_error_and_old_runs_get_what_they_have(runs, tmp_path):
    assert_clean_error(cli("report", tmp_path / "nope"), "run folder not found")
    assert_clean_error(cli("report", tmp_path), "not a run folder: it has no metrics.json")
    old = tmp_path / "old-run"
    shutil.copytree(runs["iris"], old)
    (old / "diagnostics.csv").unlink()
    (old / "validation.csv").unlink()
    result = cli("report", old)
    assert result.exit_code == 0, result.stderr
    html = (old / "report.html").read_text()
    assert "has no diagnostics.csv" in html and "Learning curves" in html and "Backprop health" not in html


# --- in a real browser ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test the report in a browser: .ci/run installs Debian's chromium")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def _open(browser, path, **context):
    page = browser.new_context(**context).new_page()
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(Path(path).as_uri())
    page.wait_for_load_state("load")
    return page, errors, requests


def _not_blank(png: bytes) -> float:
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    return float(pixels[..., :3].std())


@pytest.mark.parametrize("name", ["iris", "breast_cancer", "diabetes"])
def test_in_a_browser_every_chart_is_drawn_offline(browser, runs, name):
    cli("report", runs[name])
    path = runs[name] / "report.html"
    page, errors, requests = _open(browser, path)
    assert errors == []
    assert requests == [path.as_uri()]  # the page itself, nothing else
    charts = page.locator("figure.chart")
    assert charts.count() >= 5
    for i in range(charts.count()):
        chart = charts.nth(i)
        marks = chart.locator(".mark")
        assert marks.count() > 0, chart.inner_text()
        box = marks.first.bounding_box()
        assert box is not None and (box["width"] > 0 or box["height"] > 0)
        svg = chart.locator("svg").first.bounding_box()
        assert svg["width"] > 200 and svg["height"] > 100
    assert _not_blank(page.screenshot(full_page=True)) > 0.05


def test_dark_mode_and_print(browser, runs):
    path = runs["iris"] / "report.html"
    page, errors, _ = _open(browser, path, color_scheme="dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(17, 20, 24)" and errors == []
    light, _, _ = _open(browser, path, color_scheme="light")
    assert light.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    pdf = light.pdf()
    assert pdf.startswith(b"%PDF") and len(pdf) > 20_000


def test_the_readme_screenshot_is_there_and_is_a_page(browser, runs):
    """The README shows docs/report-iris.png, made by the browser from configs/iris.yaml's report."""
    shot = (Path(__file__).resolve().parent.parent / "docs" / "report-iris.png").read_bytes()
    assert shot.startswith(b"\x89PNG") and _not_blank(shot) > 0.05


def test_train_can_write_the_report_with_the_run(tmp_path):
    result = cli("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path, "--quiet", "--report")
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip())
    assert "Backprop health" in (run / "report.html").read_text()
    plain = cli("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path, "--quiet").stdout.strip()
    assert not (Path(plain) / "report.html").exists()  # off by default
