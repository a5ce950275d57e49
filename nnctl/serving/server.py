"""Running the app on uvicorn: the model is loaded and the port bound here, before any worker
starts, so a bad model or a taken port is an `error:` line and exit 2. One worker serves in this
process; several are uvicorn's worker processes sharing the one socket bound here (which is why
`--port 0` works with any number of workers: the port is chosen once, by this bind), each of
which dies with this process however it ends (`app.app_from_environment`). Ctrl-C and SIGTERM
stop accepting, let requests in flight finish for at most `--shutdown-timeout` seconds, and
return normally (exit 0). The limits on what clients may hold open are `connections.py`'s."""
from __future__ import annotations

import ipaddress
import os
import signal
import socket
from contextlib import contextmanager

from ..errors import NnctlError
from .app import ServeSettings, api_key, create_app, settings_environment
from .connections import configure

UVICORN = {"log_level": "warning", "access_log": False}  # one access line per request: ours
# uvicorn cancels what is still running this long after our own shutdown timeout has closed every
# connection: a last resort, for a request stuck in the model
SHUTDOWN_BACKSTOP_SECONDS = 2
WORKER_START_SECONDS = 120  # each worker imports the stack and loads the model: slow on a busy machine


def serve(settings: ServeSettings, on_ready=None, on_warning=None) -> None:
    """Serve until Ctrl-C or SIGTERM. `on_ready(url)` is called once requests are answered;
    `on_warning(text)` when the server is reachable beyond this machine."""
    import uvicorn

    from ..runs.model import load_model

    model = load_model(settings.model)
    api_key(settings)
    sock = bind(settings.host, settings.port)
    url = f"http://{_shown_host(settings.host)}:{sock.getsockname()[1]}"
    if not is_loopback(settings.host) and on_warning is not None:
        on_warning(f"listening beyond this machine ({settings.host}): put TLS and authentication in front of it")
    ready = (lambda: on_ready(url)) if on_ready is not None else (lambda: None)
    if settings.workers == 1:
        server = _ready_server(_config(uvicorn, settings, create_app(model, settings)), ready)
        with _signals_returned():
            server.run(sockets=[sock])
    else:
        os.environ.update(settings_environment(settings))
        config = _config(uvicorn, settings, "nnctl.serving.app:app_from_environment", factory=True,
                         workers=settings.workers)
        workers = _workers(config, sock, ready)
        workers.run()
        if not workers.started:
            raise NnctlError(f"the {settings.workers} workers did not all start within {WORKER_START_SECONDS} s",
                             "--workers", "see the lines above; a busy machine may need fewer workers")
    sock.close()


def _config(uvicorn, settings: ServeSettings, app, **more):
    config = uvicorn.Config(app, **UVICORN, **more, timeout_keep_alive=settings.keep_alive,
                            # uvicorn counts the asking connection too: ours is the limit that bites
                            limit_concurrency=settings.max_connections + 1,
                            timeout_graceful_shutdown=settings.shutdown_timeout + SHUTDOWN_BACKSTOP_SECONDS)
    configure(config, settings.read_timeout, settings.max_connections, settings.shutdown_timeout)
    return config


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: without it, a kept-alive connection's answer waits ~40 ms
    # for the client's delayed ACK (Nagle's algorithm holding the body behind the headers)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if isinstance(exc, socket.gaierror) or exc.errno == 99:  # EADDRNOTAVAIL: not this machine's address
            raise NnctlError(f"cannot listen on host '{host}': {exc.strerror}", "--host",
                             "use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)")
        raise NnctlError(f"cannot listen on {host}:{port}: {exc.strerror}", "--port",
                         "pick another port, or --port 0 for any free one")
    sock.set_inheritable(True)  # worker processes serve on this very socket
    return sock


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shown_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _ready_server(config, ready):
    import uvicorn

    class ReadyServer(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                ready()

    return ReadyServer(config)


def _workers(config, sock, ready):
    from uvicorn.supervisors.multiprocess import Multiprocess

    class Workers(Multiprocess):
        started = False

        def init_processes(self):
            super().init_processes()
            self.started = all(p.wait_until_ready(WORKER_START_SECONDS, self.should_exit) for p in self.processes)
            if self.started:
                ready()
            else:  # a worker that cannot start has said why on stderr; the others are stopped
                self.should_exit.set()

    return Workers(config, sockets=[sock])


@contextmanager
def _signals_returned():
    """uvicorn re-raises the Ctrl-C or SIGTERM it shut down for, once its own handlers are gone;
    handlers that do nothing meanwhile let serve() return, so the command exits 0."""
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
