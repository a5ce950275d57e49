"""`nnctl serve`: a model behind HTTP."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..serving import KEEP_ALIVE, MAX_CONNECTIONS, READ_TIMEOUT, SHUTDOWN_TIMEOUT
from . import app, errors_handled, UnknownCategory


@app.command()
@errors_handled
def serve(
    model: Path = typer.Argument(..., metavar="MODEL", help="Run folder or its model.npz"),
    host: str = typer.Option("127.0.0.1", "--host", metavar="HOST", help="Address to listen on (default: this machine only; 0.0.0.0 for every interface)"),
    port: int = typer.Option(8000, "--port", min=0, max=65535, metavar="PORT", help="Port to listen on; 0 picks a free one (the URL printed says which)"),
    workers: int = typer.Option(1, "--workers", min=1, metavar="N", help="Worker processes, each with its own copy of the model"),
    max_rows: int = typer.Option(100_000, "--max-rows", min=1, metavar="N", help="Refuse requests of more rows than this (413)"),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", metavar="VAR", help="Require the header Authorization: Bearer <the value of environment variable VAR>"),
    log_json: bool = typer.Option(False, "--log-json", help="Write the access log as JSON lines"),
    unknown_category: Optional[UnknownCategory] = typer.Option(None, "--unknown-category", help="A category training never saw: error (422), or ignore (it adds nothing, as under data.unknown_category: ignore); a request's own unknown_category option wins. Default: the model's data.unknown_category"),
    read_timeout: float = typer.Option(READ_TIMEOUT, "--read-timeout", min=0.1, metavar="SECONDS", help="A request's headers must arrive within this, and its body may pause no longer than this (else 408)"),
    keep_alive: int = typer.Option(KEEP_ALIVE, "--keep-alive", min=1, metavar="SECONDS", help="Close a connection idle this long between requests"),
    max_connections: int = typer.Option(MAX_CONNECTIONS, "--max-connections", min=1, metavar="N", help="Open connections per worker; one more is answered 503 and closed"),
    shutdown_timeout: float = typer.Option(SHUTDOWN_TIMEOUT, "--shutdown-timeout", min=0.1, metavar="SECONDS", help="On Ctrl-C or SIGTERM, requests in flight get this long to finish; then their connections are closed and the server exits"),
):
    """Serve a model over HTTP (POST /predict, GET /model, GET /health); needs the serve extra.
    Prints `listening on http://HOST:PORT` on stderr once ready; Ctrl-C or SIGTERM lets requests
    in flight finish (for at most --shutdown-timeout seconds), then exits 0.

    Example: nnctl serve runs/iris-20250101-120000 --port 8000
    """
    from ..serving import require_extra

    require_extra()
    from ..serving.app import ServeSettings
    from ..serving.server import serve as run_server

    settings = ServeSettings(str(model), host, port, workers, max_rows, api_key_env, log_json, read_timeout,
                             keep_alive, max_connections, shutdown_timeout,
                             unknown_category and unknown_category.value)
    run_server(settings, on_ready=lambda url: _say(f"listening on {url}"), on_warning=lambda text: _say(f"warning: {text}"))


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
