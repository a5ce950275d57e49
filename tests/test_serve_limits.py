"""`nnctl serve` against slow, stalled and vanishing clients, and its workers when the parent is
killed: the real command on a free loopback port, a few raw sockets, every wait bounded."""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .test_serve import httpx, serving  # noqa: F401  (httpx: skips without the serve extra)

CSV_HEAD = b"sepal_length,sepal_width,petal_length,petal_width\n"


def raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    return sock


def answer_of(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the socket's timeout)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:  # closed with our bytes unread: a reset, perhaps before its answer
            return data
        if not chunk:
            return data
        data += chunk


def upload_head(length: int) -> bytes:
    return (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def wait_for(condition, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"still not {what} after {timeout} s")


def assert_no_internal_error(log: Path):
    text = log.read_text()
    assert "internal error" not in text and "Traceback" not in text, text


def test_half_sent_headers_get_408_and_connections_past_the_limit_503(iris_run, tmp_path):
    log = tmp_path / "serve.log"
    with serving(iris_run, "--read-timeout", "1", "--max-connections", "4", log=log) as (url, _):
        socks = [raw(url) for _ in range(7)]
        for sock in socks:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")  # and never the rest
        answers = [answer_of(sock) for sock in socks]  # each ends: the server closed it
        for sock in socks:
            sock.close()
        firsts = [a.split(b"\r\n", 1)[0] for a in answers]
        busy = {b"HTTP/1.1 503 Service Unavailable", b""}  # b"": reset before the 503 was read
        assert set(firsts) <= {b"HTTP/1.1 408 Request Timeout"} | busy, firsts
        assert sum(first in busy for first in firsts) >= 3  # at most 4 held at once
        assert httpx.get(f"{url}/health").status_code == 200  # the server still answers
    assert_no_internal_error(log)


def test_a_stalled_upload_gets_408_and_a_vanished_client_is_logged_499(iris_run, tmp_path):
    log = tmp_path / "serve.log"
    with serving(iris_run, "--read-timeout", "1", log=log) as (url, _):
        with raw(url) as stalled:
            stalled.sendall(upload_head(1000) + CSV_HEAD)
            answer = answer_of(stalled)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"the body stopped arriving" in answer
        with raw(url) as gone:
            gone.sendall(upload_head(1000) + CSV_HEAD)
        wait_for(lambda: " POST /predict 499 " in log.read_text(), "logged 499")
        assert " POST /predict 408 " in log.read_text()
    assert_no_internal_error(log)


def test_sigterm_ends_the_server_within_its_shutdown_timeout_whatever_clients_do(iris_run, tmp_path):
    log = tmp_path / "serve.log"
    # a read timeout far beyond the test's waits: only the shutdown timeout can end these clients
    with serving(iris_run, "--read-timeout", "600", "--shutdown-timeout", "1", log=log) as (url, proc):
        stalled, half, idle = raw(url), raw(url), raw(url)
        stalled.sendall(upload_head(1000) + CSV_HEAD)
        half.sendall(b"GET /health HTTP/1.1\r\nHo")
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(65536).startswith(b"HTTP/1.1 200")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0  # without the shutdown timeout, the stalled upload holds it for good
        for sock in (stalled, half, idle):
            sock.close()
    assert " POST /predict 499 " in log.read_text()
    assert_no_internal_error(log)


def _children(pid: int) -> list:
    """The live (not zombie) processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_die_with_a_parent_killed_by_sigkill(iris_run, tmp_path):
    log = tmp_path / "serve.log"
    with serving(iris_run, "--workers", "2", "--shutdown-timeout", "1", log=log) as (url, proc):
        workers = [pid for pid in _children(proc.pid)
                   if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 2, workers
        proc.kill()
        proc.wait(30)
        try:
            wait_for(lambda: not any(_alive(pid) for pid in workers), "gone with the parent")
        finally:
            for pid in workers:  # the test never leaves one behind, whatever happened
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/health", timeout=5)


def test_the_limits_are_flags_with_their_defaults_in_the_help():
    result = subprocess.run([os.sys.executable, "-m", "nnctl", "serve", "--help"], capture_output=True, text=True)
    for flag in ("--read-timeout", "--keep-alive", "--max-connections", "--shutdown-timeout", "--unknown-category"):
        assert flag in result.stdout
