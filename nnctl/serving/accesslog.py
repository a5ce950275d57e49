"""One access-log line per request on stderr: method, path, status, rows predicted and
milliseconds; JSON lines with `--log-json`. A plain ASGI middleware, so that it times the whole
request (body read and answer written) and costs one write per request. Headers are never
logged: the API key stays out of the log. The path is the client's: escaped, never raw."""
from __future__ import annotations

import json
import sys
import time
from urllib.parse import quote

WARM_UP = "nnctl.warm_up"  # an ASGI scope key that only the app's own startup requests carry (app.warm_up)


class AccessLog:
    def __init__(self, app, json_lines: bool = False, stream=None):
        self.app, self.json_lines, self.stream = app, json_lines, stream

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get(WARM_UP):
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = [500]  # what the client gets when the app raises: the server's error middleware answers 500

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            ms = (time.perf_counter() - start) * 1000
            rows = (scope.get("state") or {}).get("rows")
            self.write(scope["method"], scope["path"], status[0], rows, ms)

    def write(self, method: str, path: str, status: int, rows, ms: float) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.json_lines:
            line = json.dumps({"time": stamp, "method": method, "path": path, "status": status, "rows": rows,
                               "ms": round(ms, 3)})
        else:
            line = f"{stamp} {method} {_escaped(path)} {status} rows={'-' if rows is None else rows} ms={ms:.1f}"
        stream = self.stream or sys.stderr
        stream.write(line + "\n")
        stream.flush()


def _escaped(path: str) -> str:
    """The path as a URL writes it (%0A, %1B, %20): the client chose it, and a raw newline or
    terminal escape in it would forge a log line or recolour the terminal."""
    return quote(path, safe="/!$&'()*+,;=:@-._~", errors="backslashreplace")
