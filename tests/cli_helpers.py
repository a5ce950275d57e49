"""Run the real command line: in-process with typer's CliRunner, or as a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from nnctl.cli import app


def cli(*args, env=None):
    """CliRunner result with separate .stdout / .stderr."""
    runner = CliRunner()
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1", **(env or {})}, catch_exceptions=False)


def train_run(config, runs, *sets) -> Path:
    """`nnctl train CONFIG --runs-dir RUNS --quiet --set S...`, which must succeed: the run folder."""
    args = ["train", config, "--runs-dir", runs, "--quiet"]
    for s in sets:
        args += ["--set", s]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def subprocess_cli(*args, env=None, timeout=120, **kwargs):
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "nnctl", *[str(a) for a in args]], capture_output=True, text=True,
                          env=full_env, timeout=timeout, **kwargs)


def assert_clean_error(result, *fragments):
    """Exit 2; one `error:` line naming the culprit, last on stderr but for one hint line (progress
    lines may come before it); no traceback."""
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert code == 2, (code, result.stderr)
    lines = result.stderr.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert len(lines) - errors[0] <= 2, result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


def wait_until(condition, what: str, timeout: float = 120):
    """Poll `condition()` until it is true (its value is returned): tests wait on what they need,
    never for a guessed time, which a loaded machine overruns. Fails naming `what` after `timeout` s."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"waited {timeout:.0f} s for {what}")


def blocked_opening_a_fifo(pid: int) -> bool:
    """Whether a thread of process `pid` sleeps in open() of a FIFO, waiting for a writer (Linux)."""
    from pathlib import Path

    try:
        waits = {(task / "wchan").read_text() for task in Path(f"/proc/{pid}/task").iterdir()}
    except OSError:
        return False
    return bool(waits & {"wait_for_partner", "fifo_open"})
