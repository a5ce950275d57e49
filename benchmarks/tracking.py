"""What MLflow tracking costs: per logged epoch, and as a slowdown of the training loop on the
benchmark workloads W1-W3 (bench.py), against a `file:` store and a real `mlflow server` on a
loopback port (SQLite store; started here and stopped by its process group).

    python benchmarks/tracking.py                          # W1-W3, 3 repeats, file store and server
    python benchmarks/tracking.py --workloads W1 --repeat 1 --stores file

Per-epoch cost: the training thread's share (the callback appending one epoch to the buffer)
and the sender thread's (log_batch of buffered epochs, per epoch). Slowdown: the training
loop's seconds of 2E epochs (t(3E) - t(E), min over repeats, plain and tracked alternated in one
process, as bench.py measures), default logging (`log_every: auto`), tracked / plain. The run's
start (importing MLflow, opening the run) and end (copying the run folder in) are outside the
loop and printed apart.
"""
from __future__ import annotations

import argparse
import os
import sys

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "2")

import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def start_server(folder: Path):
    """(process, uri) of `mlflow server` on a free loopback port, once /health answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mlflow = Path(sys.executable).with_name("mlflow")
    process = subprocess.Popen([str(mlflow), "server", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
                                "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1",
                                "--port", str(port), "--workers", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=1):
                return process, uri
        except OSError:
            time.sleep(0.3)
    os.killpg(process.pid, signal.SIGKILL)
    raise SystemExit("mlflow server did not start in 300 s")


def loop_seconds(config: Path, epochs: int, uri: str | None) -> float:
    """Seconds of the training loop, plain (uri None) or with a LiveRun logging to `uri`."""
    from nnctl.config import load_config
    from nnctl.data import load_dataset
    from nnctl.tracking.client import Target
    from nnctl.tracking.live import LiveRun
    from nnctl.training import train
    from nnctl.training.build import build_network
    from nnctl.training.callbacks import Many
    from nnctl.ui.progress import PlainLines

    cfg = load_config(config, [f"training.iterations={epochs}"])
    dataset = load_dataset(cfg)
    network = build_network(cfg, dataset)
    live = LiveRun(Target(uri, "nnctl-benchmark")) if uri else None
    with open(os.devnull, "w") as devnull:
        start = time.perf_counter()
        train(network, dataset, cfg.training, seed=cfg.seed, callback=Many(PlainLines(devnull), live))
        seconds = time.perf_counter() - start
    if live is not None:
        live._stop_sender()  # the end of a run, outside the loop: see finish_seconds
        assert live.failure is None, live.failure
    return seconds


def per_epoch_costs(uri: str, epochs: int = 200) -> tuple[float, float]:
    """(µs the training thread spends per logged epoch, µs the sender spends per epoch), for
    `epochs` logged epochs: what `log_every: auto` keeps of a run."""
    from nnctl.tracking.client import Target
    from nnctl.tracking.live import LiveRun

    live = LiveRun(Target(uri, "nnctl-benchmark"), send_seconds=3600)  # nothing sent until asked
    row = {"epoch": 0, "train_loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.9, "learning_rate": 0.01, "seconds": 1.0}
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        live.on_epoch_end({**row, "epoch": epoch})
    callback = (time.perf_counter() - start) / epochs
    while live.run_id is None and live.failure is None:
        time.sleep(0.01)
    start = time.perf_counter()
    live._flush()
    sender = (time.perf_counter() - start) / epochs
    live._stop_sender()
    return callback * 1e6, sender * 1e6


def finish_seconds(uri: str, config: Path, runs: Path) -> tuple[float, float]:
    """(seconds to start tracking: import MLflow and open the run; seconds of the end: the run
    folder, the pyfunc model included, copied in), on a short run of `config`."""
    from nnctl.commands.train import RunOptions, plan_training, run_plan
    from nnctl.tracking.live import live_run

    start = time.perf_counter()
    plan, live = live_run(plan_training(config, overrides=["training.iterations=5"]), uri)
    opened = time.perf_counter() - start
    result = run_plan(plan, RunOptions(runs, plot=False, callback=live))
    start = time.perf_counter()
    warning = live.finish(result.run, result.status)
    assert warning is None, warning
    return opened, time.perf_counter() - start


def main() -> None:
    from bench import WORKLOADS, synthesize

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stores", nargs="+", default=["file", "server"], choices=["file", "server"])
    args = parser.parse_args()
    data = ROOT / "benchmarks" / "data"
    data.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nnctl-tracking-bench-") as tmp:
        tmp = Path(tmp)
        stores, server = {}, None
        if "file" in args.stores:
            stores["file"] = f"file:{tmp / 'mlruns'}"
        try:
            if "server" in args.stores:
                server, stores["server"] = start_server(tmp)
            for store, uri in stores.items():
                callback_us, sender_us = per_epoch_costs(uri)
                opened, finished = finish_seconds(uri, synthesize("W1", data)[1], tmp / "runs")
                print(f"{store:6s} per logged epoch: training thread {callback_us:.2f} µs, sender {sender_us:.1f} µs; "
                      f"start {opened:.2f} s, end (run folder + pyfunc copied in) {finished:.2f} s", flush=True)
            for name in args.workloads:
                config = synthesize(name, data)[1]
                epochs = WORKLOADS[name][-1]
                peers = {"plain": None, **stores}
                times = {peer: {1: [], 3: []} for peer in peers}
                for _ in range(args.repeat):
                    for factor in (1, 3):
                        for peer, uri in peers.items():
                            times[peer][factor].append(loop_seconds(config, epochs * factor, uri))
                loop = {peer: max(min(t[3]) - min(t[1]), 1e-9) for peer, t in times.items()}
                ratios = " · ".join(f"{peer} {loop[peer] / loop['plain']:.3f}x" for peer in stores)
                print(f"{name}: 2E={2 * epochs} epochs, plain {loop['plain']:.3f} s · tracked/plain: {ratios}",
                      flush=True)
        finally:
            if server is not None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)


if __name__ == "__main__":
    main()
