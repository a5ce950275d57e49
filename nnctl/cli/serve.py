"""`nnctl serve`: a model behind HTTP."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from . import app, errors_handled


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
):
    """Serve a model over HTTP (POST /predict, GET /model, GET /health); needs the serve extra.
    Prints `listening on http://HOST:PORT` on stderr once ready; Ctrl-C or SIGTERM lets requests
    in flight finish, then exits 0.

    Example: nnctl serve runs/iris-20250101-120000 --port 8000
    """
    from ..serving import require_extra

    require_extra()
    from ..serving.app import ServeSettings
    from ..serving.server import serve as run_server

    settings = ServeSettings(str(model), host, port, workers, max_rows, api_key_env, log_json)
    run_server(settings, on_ready=lambda url: _say(f"listening on {url}"), on_warning=lambda text: _say(f"warning: {text}"))


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
