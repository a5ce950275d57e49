"""The FastAPI app: GET /health, GET /model, POST /predict, and errors as `{"error", "row",
"column"}` with the status that says what went wrong (400 unreadable body, 401 key, 413 too
big, 415 content type, 422 bad rows or options). `create_app` is a plain function: tests call it
in-process, and each uvicorn worker calls `app_from_environment` to build its own."""
# no `from __future__ import annotations`: FastAPI reads the routes' annotations as objects
import hmac
import json
import os
import sys
from dataclasses import asdict, dataclass

from .. import __version__
from ..errors import NnctlError
from ..jsonfmt import dumps
from . import KEEP_ALIVE, MAX_CONNECTIONS, READ_TIMEOUT, SHUTDOWN_TIMEOUT
from .accesslog import WARM_UP
from .bodies import Refusal, csv_frame, json_request, query_target_values, refuse_unknown, request_options
from .describe import model_info, request_schemas, run_name

SETTINGS_ENV = "NNCTL_SERVE_SETTINGS"  # how the parent hands its settings to worker processes
PARENT_ENV = "NNCTL_SERVE_PARENT"  # and its process id, which they die with
DEFAULT_MAX_ROWS = 100_000
# bodies up to this size are answered in the event loop (a few ms of CPU); larger ones in a
# thread, so that one big request does not hold up /health and the small requests behind it
INLINE_BYTES = 1 << 20


@dataclass(frozen=True)
class ServeSettings:
    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_rows: int = DEFAULT_MAX_ROWS
    api_key_env: str | None = None
    log_json: bool = False
    read_timeout: float = READ_TIMEOUT
    keep_alive: int = KEEP_ALIVE
    max_connections: int = MAX_CONNECTIONS
    shutdown_timeout: float = SHUTDOWN_TIMEOUT
    unknown_category: str | None = None  # requests' default; None: the model's data.unknown_category

    def body_limit(self, model) -> int:
        """The largest body read, in bytes: room for --max-rows rows of generous width, so a body
        far over the row limit is refused from its Content-Length before it is read or parsed."""
        columns = len(model.encoder.features)
        return (1 << 20) + self.max_rows * max(1024, 128 * columns)


def api_key(settings: ServeSettings) -> str | None:
    """The key clients must send, read from the environment variable --api-key-env names."""
    if settings.api_key_env is None:
        return None
    key = os.environ.get(settings.api_key_env, "")
    if not key:
        raise NnctlError(f"the environment variable {settings.api_key_env} is unset or empty", "--api-key-env",
                         f"export {settings.api_key_env}=<a long random key> before nnctl serve")
    return key


def app_from_environment():
    """The app of one uvicorn worker: it loads the model itself (each worker holds its own).
    The worker gets SIGTERM when the `nnctl serve` that started it ends, kill -9 included, and
    shuts down as on Ctrl-C: no orphan goes on serving on the port."""
    import signal

    from ..resources import die_with_parent
    from ..runs.model import load_model

    die_with_parent(int(os.environ[PARENT_ENV]), signal.SIGTERM)
    settings = ServeSettings(**json.loads(os.environ[SETTINGS_ENV]))
    return create_app(load_model(settings.model), settings)


def create_app(model, settings: ServeSettings):
    from fastapi import Depends, FastAPI, Query, Request
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import Response

    from .accesslog import AccessLog

    import pandas  # noqa: F401  (imported now, not by the first request)

    key, limit = api_key(settings), settings.body_limit(model)
    # the schema lists the model's columns and categories: behind the key like /model, so the
    # default routes are replaced by ours. No redirect from /model/ to /model: Starlette builds
    # it from the Host header, which a client chooses
    app = FastAPI(title=f"nnctl serve: {run_name(model.path)}", version=__version__,
                  description="Predictions of one nnctl model. `GET /model` lists the columns a row needs.",
                  openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False)
    app.add_middleware(AccessLog, json_lines=settings.log_json)
    _error_handlers(app)
    info = model_info(model)

    async def authorized(request: Request) -> None:  # async: a sync dependency costs a thread hop per request
        if key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise Refusal(401, "missing or wrong API key", "send the header Authorization: Bearer <key>")

    def answer(payload: dict, status: int = 200) -> Response:
        try:
            text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError):  # NaN, inf or a NumPy number: the slower walk that makes strict JSON
            text = dumps(payload, separators=(",", ":"))
        return Response(text, status_code=status, media_type="application/json")

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/model", dependencies=[Depends(authorized)])
    def describe():
        return answer(info)

    @app.get("/openapi.json", dependencies=[Depends(authorized)], include_in_schema=False)
    def openapi():
        return answer(app.openapi())

    @app.get("/docs", dependencies=[Depends(authorized)], include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")

    @app.post("/predict", dependencies=[Depends(authorized)], openapi_extra=_predict_body(model))
    async def predict(request: Request,
                      proba: bool = Query(False, description="CSV bodies: add class probabilities"),
                      threshold: str | None = Query(None, description="CSV bodies: two-class threshold; "
                                                    "several targets: <target>=<number>[,...]"),
                      positive: str | None = Query(None, description="CSV bodies: the class threshold refers to; "
                                                   "several targets: <target>=<label>[,...]"),
                      keep: list[str] = Query([], description="CSV bodies: columns to echo back (repeatable)"),
                      interval: float | None = Query(None, description="CSV bodies, regression: add the "
                                                     "split-conformal interval at this level (lower, upper)"),
                      sets: float | None = Query(None, description="CSV bodies, classification: add the "
                                                 "split-conformal prediction set at this level"),
                      spread: bool = Query(False, description="CSV bodies, an ensemble: add the members' "
                                           "standard deviation per row"),
                      unknown_category: str | None = Query(None, description="CSV bodies: error | ignore, "
                                                           "what a category training never saw does")):
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if kind not in ("text/csv", "application/json", ""):
            raise Refusal(415, f"unsupported Content-Type '{kind}'", "send application/json or text/csv "
                          "(curl -d sends a form: add -H 'Content-Type: application/json')")
        if kind == "text/csv":
            refuse_unknown(request.query_params, "query parameter")
        elif request.query_params:
            raise Refusal(422, "options go in the JSON body with a JSON request, not in the query string",
                          'e.g. {"rows": [...], "proba": true}; query options are for CSV bodies')
        body = await _read_body(request, limit, settings.read_timeout)

        def respond() -> Response:
            if kind == "text/csv":
                options = request_options(proba, query_target_values(threshold, model, "threshold"),
                                          query_target_values(positive, model, "positive"), keep, interval, sets,
                                          spread, unknown_category, settings.unknown_category)
                frame, given = csv_frame(body, model, options, settings.max_rows), None
            else:
                given, frame, options = json_request(body, model, settings.max_rows, settings.unknown_category)
            request.state.rows = len(frame)
            return answer(predictions(model, frame, options, given))

        if len(body) <= INLINE_BYTES:
            return respond()
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(respond)

    app.openapi = lambda: _openapi(app, model, key is not None)
    warm_up(app, model, key)
    return app


def warm_up(app, model, key: str | None = None) -> None:
    """One JSON and one CSV request of a made-up row through the whole app before it serves, so
    that the first client does not pay for lazy imports and first-call setup (~100 ms). The
    access log leaves them out; an answer that is not 200 (a model no made-up row suits) is
    ignored, as that client's request would get the same answer. `key`: the API key, without
    which they would stop at 401 and warm nothing."""
    import asyncio
    import csv
    import io
    import threading

    row = warm_up_row(model)
    if row is None:
        return
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerows([list(row), list(row.values())])
    bodies = [(json.dumps({"rows": [row]}).encode(), b"application/json"), (text.getvalue().encode(), b"text/csv")]
    auth = [] if key is None else [(b"authorization", f"Bearer {key}".encode())]

    async def post(body: bytes, kind: bytes) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
                 "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
                 "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()), *auth],
                 "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0), WARM_UP: True}
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message):
            pass

        await app(scope, receive, send)

    async def both():
        for body, kind in bodies:
            await post(body, kind)

    failed = []

    def run() -> None:
        try:
            asyncio.run(both())
        except BaseException as exc:  # handed to the caller: a bug the made-up row hits stops the start
            failed.append(exc)

    # a thread of its own: uvicorn's worker processes build the app inside their running event loop
    worker = threading.Thread(target=run, name="nnctl-warm-up")
    worker.start()
    worker.join()
    if failed:
        raise failed[0]


def warm_up_row(model) -> dict | None:
    """A row every feature of the model accepts: the fill value, or the training part's least
    value (0 for a model without ranges), for numbers, so that no range warning is logged; the
    fill or first category for categories; None when a categorical column has no category."""
    encoder, row = model.encoder, {}
    for feature in encoder.features:
        fill = (encoder.fill or {}).get(feature)
        if feature in encoder.categories:
            if fill is None and not encoder.categories[feature]:
                return None
            row[feature] = fill if fill is not None else encoder.categories[feature][0]
        else:
            row[feature] = fill if fill is not None else (encoder.ranges.get(feature) or [0.0])[0]
    return row


async def _read_body(request, limit: int, read_timeout: float = READ_TIMEOUT) -> bytes:
    """The whole body, at most `limit` bytes, into one buffer. A pause of more than
    `read_timeout` seconds between two parts is a 408; a client gone before its body ends is
    `Gone` (logged 499: nobody is left to answer)."""
    import asyncio

    from starlette.requests import ClientDisconnect

    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise Refusal(413, f"the body is {int(length)} bytes, over this server's limit of {limit}",
                      "send the rows in smaller requests (the limit follows nnctl serve --max-rows)")
    body = bytearray()
    parts = request.stream().__aiter__()
    while True:
        try:
            part = await asyncio.wait_for(parts.__anext__(), read_timeout)
        except StopAsyncIteration:
            return bytes(body)
        except asyncio.TimeoutError:
            raise Refusal(408, f"the body stopped arriving: nothing for {read_timeout:g} s",
                          "send the whole body at once (nnctl serve --read-timeout)")
        except ClientDisconnect:
            raise Gone()
        body += part
        if len(body) > limit:
            raise Refusal(413, f"the body is over this server's limit of {limit} bytes",
                          "send the rows in smaller requests (the limit follows nnctl serve --max-rows)")


class Gone(Refusal):
    """The client closed its connection before its body ended: nginx's 499, for the log only."""

    def __init__(self):
        super().__init__(499, "the client closed the connection before sending its whole body")


def predictions(model, frame, options, given_rows=None) -> dict:
    """POST /predict's answer from the same prediction `nnctl predict` writes as CSV:
    `predictions`, `probabilities` ({label: p} per row) with proba, `kept` with keep, `lower` and
    `upper` with interval, `prediction_sets` (a list of labels per row) with sets, `warnings`
    (one line per column) when rows lie far outside what training saw (`data/ranges.py`). A model
    of several targets answers each row as {target: ...} (`multi_payload`)."""
    from ..commands.predict import check_options, prediction_columns, range_check

    ranges = range_check(model, "the request's rows")
    try:
        chosen = check_options(model, options)
        # predict_chunk's columns before they become a DataFrame: the answer is made of lists,
        # and a frame built only to be taken apart again cost more than the model on small requests
        columns = prediction_columns(model, frame, "the request's rows", options, chosen, ranges)
    except NnctlError as exc:
        raise Refusal.of(exc)
    keep = options.kept()
    payload = one_payload(model, columns, options) if model.targets is None else multi_payload(model, columns, options)
    warnings = ranges.warnings()  # rows far outside what training saw: said to the client and in the log
    if warnings:
        payload["warnings"] = warnings
        sys.stderr.write("".join(f"warning: POST /predict: {line}\n" for line in warnings))
    if keep:
        payload["kept"] = (given_rows.kept(keep) if given_rows is not None
                           else frame[keep].reset_index(drop=True).to_dict("records"))
    return payload


def one_payload(model, columns: dict, options) -> dict:
    """A model of one target: `predictions`, and `probabilities`, `lower`/`upper`, `spread`,
    `prediction_sets` as the options ask."""
    import numpy as np

    from ..commands.conformal import SEPARATOR
    from ..commands.predict import spread_names

    spreads = spread_names(model) if options.spread else []
    conformal = {"lower", "upper", "prediction_set", *spreads}
    predicted = [c for c in columns if c not in conformal]
    if model.task == "regression":
        values = np.column_stack([columns[c] for c in predicted]).astype(float)
        payload = {"predictions": (values[:, 0] if len(predicted) == 1 else values).tolist()}
    else:
        payload = {"predictions": columns["prediction"].tolist()}
        if options.proba:
            labels = [str(c) for c in model.classes]
            p = np.column_stack([columns[c] for c in predicted[1:]]).astype(float)
            payload["probabilities"] = [dict(zip(labels, row)) for row in p.tolist()]
    if options.interval is not None:  # an infinite bound (too few validation rows) is JSON's null
        for side in ("lower", "upper"):
            payload[side] = [v if np.isfinite(v) else None for v in np.asarray(columns[side], float).tolist()]
    if options.spread:  # the members' disagreement: a number per row, or {label: sd} per row
        values = np.column_stack([columns[c] for c in spreads]).astype(float)
        payload["spread"] = (values[:, 0].tolist() if model.task == "regression" and len(spreads) == 1 else
                             [dict(zip([str(c) for c in model.classes], row)) for row in values.tolist()]
                             if model.task == "classification" else values.tolist())
    if options.sets is not None:
        payload["prediction_sets"] = [text.split(SEPARATOR) if text else [] for text in columns["prediction_set"]]
    return payload


def multi_payload(model, columns: dict, options) -> dict:
    """A model of several targets: `predictions` holds each row as {target: label or value};
    with proba, `probabilities` each row as {target: {label: p}} of its classification targets;
    with interval, `lower` and `upper` each row as {target: bound} of its regression targets;
    with sets, `prediction_sets` each row as {target: [labels]} of its classification targets;
    with spread (an ensemble), `spread` each row as {target: sd or {label: sd}}."""
    import numpy as np

    names = [v.name for v in model.targets]
    values = [columns[n].tolist() for n in names]
    payload = {"predictions": [dict(zip(names, row)) for row in zip(*values)]}
    if options.proba:
        sorts = [v for v in model.targets if v.task == "classification"]
        each = []
        for view in sorts:
            labels = [str(c) for c in view.classes]
            p = np.column_stack([columns[f"p_{view.name}_{c}"] for c in view.classes]).astype(float)
            each.append([dict(zip(labels, row)) for row in p.tolist()])
        payload["probabilities"] = [dict(zip([v.name for v in sorts], row)) for row in zip(*each)]
    from ..commands.conformal import SEPARATOR

    for key, option, task in (("lower", options.interval, "regression"), ("upper", options.interval, "regression"),
                              ("prediction_sets", options.sets, "classification")):
        if option is None:
            continue
        views = [v.name for v in model.targets if v.task == task]
        if key == "prediction_sets":
            each = [[text.split(SEPARATOR) if text else [] for text in columns[f"{n}_set"]] for n in views]
        else:  # an infinite bound (too few validation rows) is JSON's null
            each = [[v if np.isfinite(v) else None for v in np.asarray(columns[f"{n}_{key}"], float).tolist()]
                    for n in views]
        payload[key] = [dict(zip(views, row)) for row in zip(*each)]
    if options.spread:  # each row {target: sd} of a regression target, {target: {label: sd}} of a classification one
        from ..commands.targets import spread_names

        each = []
        for view in model.targets:
            sds = np.column_stack([columns[c] for c in spread_names(view)]).astype(float)
            each.append(sds[:, 0].tolist() if view.task == "regression" else
                        [dict(zip([str(c) for c in view.classes], row)) for row in sds.tolist()])
        payload["spread"] = [dict(zip(names, row)) for row in zip(*each)]
    return payload


def _error_handlers(app) -> None:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def error(status: int, payload: dict, headers=None):
        return JSONResponse(payload, status_code=status, headers=headers)

    @app.exception_handler(Refusal)
    async def refused(request, exc: Refusal):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if exc.status in (408, 413):  # the body was not read to its end: the connection cannot carry another
            headers = {"Connection": "close"}
        return error(exc.status, exc.payload(), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
        return error(422, {"error": f"'{where}': {first.get('msg', 'is not valid')}", "row": None, "column": None})

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return error(exc.status_code, {"error": str(exc.detail), "row": None, "column": None}, exc.headers)

    @app.exception_handler(Exception)
    async def bug(request, exc: Exception):
        # the traceback goes to the server's log (uvicorn prints it), never to the client
        sys.stderr.write(f"internal error on {request.method} {request.url.path}: {type(exc).__name__}\n")
        return error(500, {"error": "internal error: see the server's log", "row": None, "column": None})


def _predict_body(model) -> dict:
    example = ",".join(model.encoder.features)
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}},
        "text/csv": {"schema": {"type": "string"}, "example": f"{example}\n..."}}}}


def _openapi(app, model, secured: bool) -> dict:
    from fastapi.openapi.utils import get_openapi

    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {}).setdefault("schemas", {}).update(request_schemas(model))
        if secured:
            schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for path in ("/predict", "/model"):
                for operation in schema["paths"][path].values():
                    operation["security"] = [{"bearer": []}]
        app.openapi_schema = schema
    return app.openapi_schema


def settings_environment(settings: ServeSettings) -> dict:
    return {SETTINGS_ENV: json.dumps(asdict(settings)), PARENT_ENV: str(os.getpid())}
