"""The command line: parse arguments, call the Python API, print. Nothing else lives here.

This module holds the typer app, the options every command shares and the one error policy
(`errors_handled`); the commands themselves are in the modules beside it, one per family.

Data and the run path go to stdout; progress, tables and messages to stderr. A user mistake is
one `error:` line (and a hint line) with exit 2; `--debug` shows the traceback instead.
Heavy modules are imported inside the commands, so `nnctl --help` starts fast.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager

import typer


def _arguments_as_written() -> None:
    """Usage lines read like the README's table (`nnctl train CONFIG`, `nnctl init [PATH]`,
    `nnctl plot RUN...`): typer would wrap each metavar again in {} or [] and add its type."""
    from typer.core import TyperArgument

    TyperArgument._usage_display_name = lambda self: self.metavar or self.name.upper()
    TyperArgument.display_type_rich = lambda self, ctx: None


_arguments_as_written()

app = typer.Typer(
    name="nnctl",
    help="Train multilayer perceptrons on CSV files from a YAML config, with NumPy backpropagation.\n\n"
    "Example: nnctl train configs/iris.yaml",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_BAD_INPUT = 2
EXIT_CHECK_FAILED = 1
EXIT_INTERRUPTED = 130

SetOption = typer.Option(None, "--set", "-s", metavar="KEY=VALUE", help="Override a config key (repeatable), e.g. training.learning_rate=0.1")
DebugOption = typer.Option(False, "--debug", help="Show the traceback of an error.")
NoCacheOption = typer.Option(False, "--no-cache", help="Parse the CSV again instead of using the dataset cache (~/.cache/nnctl, or $NNCTL_CACHE_DIR; at most $NNCTL_CACHE_LIMIT, default 2GB)")


def _version(value: bool):
    if value:
        from .. import __version__

        typer.echo(f"nnctl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version.")):
    pass


def fail(message: str, code: int = EXIT_BAD_INPUT):
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def errors_handled(command):
    """nnctl's one error policy, for every command: a user mistake (NnctlError), a machine
    that says no (memory, permissions, a full disk) or a bug each become one `error:` line and
    exit 2; Ctrl-C exits 130; a closed pipe ends quietly. With `--debug` the traceback shows."""
    import functools

    @functools.wraps(command)
    def run(*args, **kwargs):
        from ..errors import NnctlError, NothingTrained

        debug = kwargs.get("debug", False)
        try:
            with _stopped_by_signals():
                return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except NothingTrained as exc:
            sys.stderr.write(f"{exc}\n")
            raise typer.Exit(EXIT_INTERRUPTED)
        except KeyboardInterrupt:
            sys.stderr.write("aborted\n")
            raise typer.Exit(EXIT_INTERRUPTED)
        except BrokenPipeError:  # `nnctl predict ... | head`: the reader has all it wanted
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0)
        except Exception as exc:
            if debug:
                raise
            fail(_message(exc, NnctlError))

    return run


@contextmanager
def _stopped_by_signals():
    """SIGTERM stops a command as Ctrl-C does (KeyboardInterrupt: temporary files removed,
    workers stopped, a summary, exit 130) rather than killing it mid-write. A SIGINT that a
    non-interactive shell told a background job to ignore is heeded too: `kill -INT` is meant."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, interrupt)}
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _message(exc: Exception, user_error) -> str:
    if isinstance(exc, user_error):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "not enough memory for this data or model\nuse fewer rows, a smaller model, or float32 (training.dtype)"
    if isinstance(exc, OSError):  # the machine said no: permissions, a full disk, a vanished file
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return f"{exc.strerror or exc}{where}\ncheck the path, its permissions and the free disk space"
    return (f"unexpected {type(exc).__name__}: {exc}\n"
            "this is a bug in nnctl; rerun with --debug and report the traceback")


def parse_limits(flag: str, specs: list[str]) -> dict:
    """['accuracy=0.9'] -> {'accuracy': 0.9}; a malformed one is an NnctlError naming the flag."""
    from ..errors import NnctlError

    limits = {}
    for spec in specs:
        name, _, raw = spec.partition("=")
        try:
            limits[name.strip()] = float(raw)
        except ValueError:
            raise NnctlError(f"{flag} expects METRIC=NUMBER, got '{spec}'", flag, f"e.g. {flag} accuracy=0.9")
    return limits


def main():
    app(prog_name="nnctl")


# the commands register themselves on `app`, in the order --help lists them
from . import train, use, inspect, search, ship, files  # noqa: E402

COMMAND_MODULES = (train, use, inspect, search, ship, files)
