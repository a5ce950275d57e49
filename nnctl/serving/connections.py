"""What a client may hold open: uvicorn's HTTP protocol (httptools when installed, else h11, as
uvicorn's own `auto` picks) with the limits uvicorn lacks. Per connection:

- the request line and headers must all arrive within `read_timeout` seconds of the connection
  opening (or of the first byte of the next request on a kept-alive one), else 408 and closed:
  a client trickling half a header cannot hold a socket for good (the body's own timeout, a
  pause between two reads, is the app's: `app._read_body` answers 408);
- at most `max_connections` open at once per worker: one more is answered 503 and closed at
  once, before its headers are read;
- once shutdown begins (SIGTERM, Ctrl-C), a request still in flight after `shutdown_timeout`
  seconds has its connection closed, so a stalled upload or a client that never reads its
  answer cannot keep the server from exiting. Its handler sees the client gone (logged 499).

The settings travel in uvicorn's Config (`configure`), which worker processes get pickled, so
every worker applies the same limits."""
from __future__ import annotations

try:  # the same choice as uvicorn's http="auto"
    import httptools  # noqa: F401
except ImportError:
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base
else:  # pragma: no cover - depends on an optional package
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base

TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
BUSY = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"


def configure(config, read_timeout: float, max_connections: int, shutdown_timeout: float) -> None:
    """Make uvicorn's `config` serve through `LimitedProtocol` with these limits."""
    config.http = LimitedProtocol
    config.nnctl_limits = (float(read_timeout), int(max_connections), float(shutdown_timeout))


class LimitedProtocol(_Base):
    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self.read_timeout, self.max_connections, self.shutdown_timeout = config.nnctl_limits
        self._header_timer = None
        self._closing_timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(BUSY)
            transport.close()
            return
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_headers():
            self._arm_header_timer()
        else:
            self._cancel("_header_timer")

    def connection_lost(self, exc) -> None:
        self._cancel("_header_timer")
        self._cancel("_closing_timer")
        super().connection_lost(exc)

    def shutdown(self) -> None:
        super().shutdown()
        if not self.transport.is_closing() and self._closing_timer is None:
            self._closing_timer = self.loop.call_later(self.shutdown_timeout, self._close)

    def _waiting_for_headers(self) -> bool:
        # no request yet, or the last one answered: what arrives now is the next request's head
        return self.cycle is None or self.cycle.response_complete

    def _arm_header_timer(self) -> None:
        if self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.read_timeout, self._headers_timed_out)

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self._waiting_for_headers() and not self.transport.is_closing():
            self.transport.write(TIMED_OUT)
            self._close()

    def _close(self) -> None:
        self._closing_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _cancel(self, name: str) -> None:
        timer = getattr(self, name)
        if timer is not None:
            timer.cancel()
            setattr(self, name, None)
