"""The command line: parse arguments, call the Python API, print. Nothing else lives here.

This module holds the typer app, the options every command shares and the one error policy
(`errors_handled`); the commands themselves are in the modules beside it, one per family.

Data and the run path go to stdout; progress, tables and messages to stderr. A user mistake is
one `error:` line (and a hint line) with exit 2; `--debug` shows the traceback instead.
Heavy modules are imported inside the commands, so `nnctl --help` starts fast.
"""
from __future__ import annotations

import enum
import math
import sys
from contextlib import contextmanager

import typer
from typer.core import TyperCommand, TyperGroup


class UnknownCategory(str, enum.Enum):
    """predict's and serve's --unknown-category: what a category training never saw does."""
    error = "error"
    ignore = "ignore"


class ExitCode(enum.IntEnum):
    """What nnctl's exit status means, for scripts and CI (as httpie's ExitStatus)."""
    OK = 0
    CHECK_FAILED = 1  # evaluate missed a threshold, gradcheck failed, every sweep trial failed
    BAD_INPUT = 2  # a user's mistake or a usage error: one `error:` line says which
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


# the names the command modules used before ExitCode; kept so that code written against them works
EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_INTERRUPTED = ExitCode.BAD_INPUT, ExitCode.CHECK_FAILED, ExitCode.INTERRUPTED


class Command(TyperCommand):
    """A command whose usage line and help name each argument by its metavar alone, as
    docs/commands.md's table writes them (`nnctl train CONFIG`, `nnctl init [PATH]`, `nnctl plot RUN...`):
    typer would wrap it again in {} or [] and add its type."""

    def collect_usage_pieces(self, ctx):
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(param.metavar or param.name.upper())
            else:
                pieces += param.get_usage_pieces(ctx)
        return pieces

    def format_options(self, ctx, formatter):
        sections = {"argument": [], "option": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None and param.param_type_name in sections:
                name, text = record
                if param.param_type_name == "argument":
                    name = param.metavar or name
                sections[param.param_type_name].append((name, text))
        for title, kind in (("Arguments", "argument"), ("Options", "option")):
            if sections[kind]:
                with formatter.section(title):
                    formatter.write_dl(sections[kind])


class Group(TyperGroup):
    """nnctl itself: the parser's own usage errors (a missing argument, an unknown option, a
    value of the wrong type) are `error:` lines with exit 2, like every other mistake."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            sys.stderr.write("aborted\n")
            sys.exit(ExitCode.INTERRUPTED)
        except Exception as exc:
            if not _is_usage_error(exc):
                raise
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `nnctl` or `nnctl train`: the help
                exc.show()
                sys.exit(exc.exit_code)
            sys.stderr.write(usage_error_lines(exc))
            sys.exit(ExitCode.BAD_INPUT)
        sys.exit(code if isinstance(code, int) else ExitCode.OK)


def _is_usage_error(exc: Exception) -> bool:
    """Click's ClickException family, told by what it offers: typer keeps its classes private."""
    return callable(getattr(exc, "format_message", None)) and isinstance(getattr(exc, "exit_code", None), int)


def usage_error_lines(exc) -> str:
    """'Missing argument 'MODEL'.' -> 'error: missing argument 'MODEL' (nnctl predict)', and a
    line with the command's usage."""
    message = exc.format_message().strip().rstrip(".")
    message = message[:1].lower() + message[1:]
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return f"error: {message}\n"
    usage = ctx.get_usage().strip()
    usage = usage[len("Usage: "):] if usage.startswith("Usage: ") else usage
    return f"error: {message} ({ctx.command_path})\nusage: {usage}; see {ctx.command_path} --help\n"


class App(typer.Typer):
    """typer's app, with nnctl's Command for every command."""

    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or Command, **kwargs)


app = App(
    name="nnctl",
    cls=Group,
    help="Train multilayer perceptrons on CSV files from a YAML config, with NumPy backpropagation.\n\n"
    "Example: nnctl train configs/iris.yaml",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

SetOption = typer.Option(None, "--set", "-s", metavar="KEY=VALUE", help="Override a config key (repeatable), e.g. training.learning_rate=0.1")
DebugOption = typer.Option(False, "--debug", help="Show the traceback of an error.")
NoCacheOption = typer.Option(False, "--no-cache", help="Parse the CSV again instead of using the dataset cache (~/.cache/nnctl, or $NNCTL_CACHE_DIR; at most $NNCTL_CACHE_LIMIT, default 2GB)")

def said_credentials(ctx: typer.Context, param: typer.CallbackParam, value):
    """--track's and --uri's callback: credentials in the URI get one warning (they are used and never stored)."""
    if value is not None and not ctx.resilient_parsing:
        from ..tracking.uris import credentials_warning

        warn(credentials_warning(value, param.opts[0]))
    return value


TrackOption = typer.Option(None, "--track", metavar="URI", callback=said_credentials, help="Log to MLflow at URI (http://..., file:..., sqlite:...; env: $MLFLOW_TRACKING_URI), as tracking.uri; needs nnctl[mlflow]; credentials in MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN")


def warn(message: str | None) -> None:
    """One `warning:` line on stderr, for something that did not stop the command."""
    if message:
        sys.stderr.write(f"warning: {message}\n")


def tracking_ended(finish, *args) -> None:
    """`finish(*args)` of an MLflow tracker (a LiveRun's, a sweep's or cv's) with its warning
    shown; an interrupt while it logs shows the warning it carries (tracking.live.Interrupted:
    what to log later), then goes on."""
    try:
        warn(finish(*args))
    except KeyboardInterrupt as stopped:
        warn(getattr(stopped, "warning", None))
        raise


def _version(value: bool):
    if value:
        from .. import __version__

        typer.echo(f"nnctl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version.")):
    pass


def fail(message: str, code: int = ExitCode.BAD_INPUT):
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def errors_handled(command):
    """nnctl's one error policy, for every command: a user mistake (NnctlError), a machine
    that says no (memory, permissions, a full disk) or a bug each become one `error:` line and
    exit 2; Ctrl-C exits 130; a closed pipe ends quietly. It also gives the command its
    `--debug` option (the traceback instead of the error line), read here and nowhere else."""
    import functools
    import inspect  # here: at module level the name would hide the `inspect` command module

    signature = inspect.signature(command, eval_str=True)
    declared = "debug" in signature.parameters  # a command written before --debug was added here

    @functools.wraps(command)
    def run(*args, **kwargs):
        from ..errors import NnctlError, NothingTrained

        debug = kwargs.get("debug", False) if declared else kwargs.pop("debug", False)
        try:
            with _stopped_by_signals():
                return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except NothingTrained as exc:
            sys.stderr.write(f"{exc}\n")
            raise typer.Exit(ExitCode.INTERRUPTED)
        except KeyboardInterrupt:
            sys.stderr.write("aborted\n")
            raise typer.Exit(ExitCode.INTERRUPTED)
        except BrokenPipeError:  # `nnctl predict ... | head`: the reader has all it wanted
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(ExitCode.OK)
        except Exception as exc:
            if debug:
                raise
            fail(_message(exc, NnctlError))

    if not declared:
        debug = inspect.Parameter("debug", inspect.Parameter.KEYWORD_ONLY, default=DebugOption, annotation=bool)
        run.__signature__ = signature.replace(parameters=[*signature.parameters.values(), debug])
        run.__annotations__ = {**command.__annotations__, "debug": bool}
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
        name, _, raw = spec.rpartition("=")  # a class label may hold '=', a number never does
        try:
            limits[name.strip()] = float(raw)
        except ValueError:
            raise NnctlError(f"{flag} expects METRIC=NUMBER, got '{spec}'", flag, f"e.g. {flag} accuracy=0.9")
        if not math.isfinite(limits[name.strip()]):  # every comparison with nan is false: a gate that never holds
            raise NnctlError(f"{flag} needs a finite number, got '{spec}'", flag, f"e.g. {flag} accuracy=0.9")
    return limits


def main():
    app(prog_name="nnctl")


# the commands register themselves on `app`, in the order --help lists them
from . import (  # noqa: E402
    train_validate, predict_evaluate, gradcheck_trace_plot, sweep_cv, report_export, schema_init_runs, explain,
    serve, track,
)

COMMAND_MODULES = (
    train_validate, predict_evaluate, gradcheck_trace_plot, sweep_cv, report_export, schema_init_runs, explain,
    serve, track,
)
