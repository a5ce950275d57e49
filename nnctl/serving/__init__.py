"""`nnctl serve`: a saved model behind HTTP, on FastAPI and uvicorn (the `serve` extra).

    app = create_app(load_model(run), ServeSettings(run))   # a FastAPI app, for tests in-process
    serve(ServeSettings(run, port=0), on_ready=print)       # binds, serves until Ctrl-C / SIGTERM

`app.py` holds the routes, `bodies.py` turns a request's JSON or CSV body into a DataFrame,
`describe.py` says what the model takes (`GET /model` and the OpenAPI request schema),
`accesslog.py` writes one line per request, `connections.py` bounds what clients hold open and
`server.py` runs uvicorn. Predictions go through
`commands.predict.predict_chunk`, the same code as `nnctl predict`.
"""
from __future__ import annotations

from ..errors import NnctlError

# what a client may hold (connections.py; the flags of the same names): nginx's
# client_header_timeout and client_body_timeout are 60 s, Kubernetes' grace period for SIGTERM 30 s
READ_TIMEOUT = 30.0
KEEP_ALIVE = 5  # uvicorn's default
MAX_CONNECTIONS = 500  # per worker, below the usual limit of 1,024 open files
SHUTDOWN_TIMEOUT = 20.0


def require_extra() -> None:
    """FastAPI and uvicorn come with the `serve` extra; without them, say how to get them."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise NnctlError(f"nnctl serve needs FastAPI and uvicorn, which are not installed ({exc})", None,
                         'install them with: pip install "nnctl[serve]"')
