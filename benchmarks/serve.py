"""What `nnctl serve` costs over predicting in-process. Prints a table.

    python benchmarks/serve.py            # full size: 2,000 one-row and 200 thousand-row requests per cell
    python benchmarks/serve.py --quick    # a few requests per cell, to check it runs

Trains configs/iris.yaml into a temporary folder, starts `nnctl serve --port 0` on 127.0.0.1
(one worker), times its first request (2 rows), and drives it with asyncio and httpx: for
requests of 1 and 1,000 rows at concurrencies 1, 8 and 32, a fixed number of requests or a time
limit, whichever ends first.
Per cell: requests per second, p50 and p99 latency, errors (must be 0), and the overhead: the
wall time per request served (1 / requests per second) over the in-process `Model.predict` on the
same rows (a DataFrame already built), and the server's own p50 from its access log (the time
from the request's first byte to the answer's last) and CPU time per request (from /proc: what a
request costs the server however loaded the machine is). The client runs on the same machine as
the server, so the wall-clock figures include its share of the CPUs.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = (1, 1000)
CONCURRENCY = (1, 8, 32)


def train(folder: Path) -> Path:
    done = subprocess.run([sys.executable, "-m", "nnctl", "train", str(ROOT / "configs" / "iris.yaml"), "--runs-dir",
                           str(folder), "--quiet"], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return Path(done.stdout.strip().splitlines()[-1])


def start(run: Path, log: Path):
    err = open(log, "w")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "nnctl", "serve", str(run), "--port", "0"],
                            stdout=subprocess.DEVNULL, stderr=err, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("listening on "):
                return proc, line.split()[-1]
        if proc.poll() is not None:
            raise SystemExit(f"nnctl serve stopped: {log.read_text()}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("nnctl serve did not start in 120 s")


def rows_of(size: int) -> list[dict]:
    import pandas as pd

    frame = pd.read_csv(ROOT / "datasets" / "iris.csv").drop(columns="species")
    picked = frame.sample(n=size, replace=True, random_state=0)
    return picked.to_dict("records")


async def drive(url: str, body: dict, concurrency: int, requests: int, seconds: float):
    """(latencies in seconds, errors, wall seconds) of `requests` POSTs from `concurrency` clients."""
    import httpx

    latencies, errors = [], 0
    remaining = [requests]
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        async def one_client():
            nonlocal errors
            while remaining[0] > 0 and time.perf_counter() < deadline:
                remaining[0] -= 1
                start = time.perf_counter()
                try:
                    answer = await client.post(f"{url}/predict", json=body)
                    ok = answer.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

        for _ in range(3):  # warm the connections and the server's first-request paths
            await client.post(f"{url}/predict", json=body)
        began = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        wall = time.perf_counter() - began
    return np.array(latencies), errors, wall


def first_request(url: str, rows: list[dict], log: Path) -> tuple[float, float]:
    """Milliseconds of the first POST to a server just started (what lazy imports and first-call
    setup cost a client), at the client and in the server's access log."""
    import httpx

    with httpx.Client(timeout=60) as client:
        client.get(f"{url}/health")  # the connection, so that only the request is timed
        start = time.perf_counter()
        client.post(f"{url}/predict", json={"rows": rows}).raise_for_status()
        took = (time.perf_counter() - start) * 1000
    deadline = time.monotonic() + 5
    served, _ = server_times(log, 0)
    while not served and time.monotonic() < deadline:  # the access line may land just after the answer
        time.sleep(0.05)
        served, _ = server_times(log, 0)
    return took, served[0]


def in_process(run: Path, rows: list[dict], repeat: int) -> float:
    """Median seconds of Model.predict on the rows, as a DataFrame already built."""
    import pandas as pd

    from nnctl.runs.model import load_model

    model = load_model(run)
    frame = pd.DataFrame(rows)
    model.predict(frame)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        model.predict(frame)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def server_times(log: Path, seen: int) -> tuple[list, int]:
    """The milliseconds the server's access log gives the POSTs after the first `seen` lines
    (the time inside the server: body read, parse, predict, answer), and the lines now seen."""
    lines = log.read_text().splitlines()
    return [float(line.rsplit("ms=", 1)[1]) for line in lines[seen:] if " POST /predict " in line], len(lines)


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) a process has used so far: per request, the server's cost
    whatever else the machine's cores are doing, which its wall times are not (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few requests per cell")
    parser.add_argument("--seconds", type=float, default=30.0, help="time limit per cell")
    args = parser.parse_args()
    counts = {1: 40, 1000: 8} if args.quick else {1: 2000, 1000: 200}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run = train(folder / "runs")
        proc, url = start(run, folder / "serve.log")
        try:
            print(f"nnctl serve (1 worker) on {url}; client: asyncio + httpx on the same machine ({os.cpu_count()} CPUs)")
            first, served_first = first_request(url, rows_of(2), folder / "serve.log")
            print(f"first request to the fresh server (2 rows): {first:.1f} ms at the client, {served_first:.1f} ms "
                  "in the server")
            print("| rows/request | concurrency | requests | req/s | p50 ms | p99 ms | errors | server p50 ms "
                  "| server CPU ms/request | in-process ms | overhead x |")
            print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            seen = len((folder / "serve.log").read_text().splitlines())
            for size in SIZES:
                rows = rows_of(size)
                base = in_process(run, rows, 200 if size == 1 else 50)
                for concurrency in CONCURRENCY:
                    used = cpu_seconds(proc.pid)
                    latencies, errors, wall = asyncio.run(drive(url, {"rows": rows}, concurrency, counts[size],
                                                                args.seconds))
                    used = cpu_seconds(proc.pid) - used  # includes the 3 warming requests drive sends
                    rate = len(latencies) / wall
                    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
                    served, seen = server_times(folder / "serve.log", seen)
                    print(f"| {size:,} | {concurrency} | {len(latencies)} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | "
                          f"{errors} | {np.median(served):.2f} | {used * 1000 / (len(latencies) + 3):.2f} | "
                          f"{base * 1000:.3f} | {1 / rate / base:,.1f} |",
                          flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        print(f"server exit status after SIGTERM: {proc.returncode}")


if __name__ == "__main__":
    main()
