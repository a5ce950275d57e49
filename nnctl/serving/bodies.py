"""A POST /predict body -> the rows as a DataFrame and the prediction's options, or a
`Refusal` saying which status to answer and why. JSON rows become a DataFrame whose cells look
as `nnctl predict`'s CSV reader would have read them; a CSV body goes through that reader
itself. Either way the model sees the rows through `commands.predict.predict_chunk`."""
from __future__ import annotations

import json
import math

import numpy as np

from ..commands.predict import PredictOptions
from ..data.csvfile import NA_STRINGS
from ..errors import NnctlError, did_you_mean

ROWS_WHERE = "the request's rows"
CSV_WHERE = "the request's CSV body"
OPTIONS = {"proba", "threshold", "positive", "keep", "interval", "sets", "spread"}  # besides "rows"
MISSING = frozenset(NA_STRINGS)
PLAIN = {int, float, bool, type(None)}
NUMBERS = {int, float, type(None)}  # booleans stay as given: pandas reads a column of them as bool


class Refusal(Exception):
    """A request answered with an error: `status` and the JSON body `{"error", "row", "column"}`
    (and `hint` where one helps). Never a traceback or a server path."""

    def __init__(self, status: int, error: str, hint: str | None = None, row: int | None = None,
                 column: str | None = None):
        super().__init__(error)
        self.status, self.error, self.hint, self.row, self.column = status, error, hint, row, column

    @classmethod
    def of(cls, exc: NnctlError, status: int = 422) -> "Refusal":
        # the message and hint only: `where` may be a path on the server (the model's file)
        return cls(status, exc.message, exc.hint, exc.row, exc.column)

    def payload(self) -> dict:
        body = {"error": self.error, "row": self.row, "column": self.column}
        return {**body, "hint": self.hint} if self.hint else body


def too_many_rows(count, max_rows: int) -> Refusal:
    return Refusal(413, f"the request has {count} rows, over this server's limit of {max_rows}",
                   "send the rows in smaller requests (the limit is nnctl serve --max-rows)")


def json_request(body: bytes, model, max_rows: int):
    """(rows as given, a DataFrame of the columns the model reads, PredictOptions)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refusal(400, f"the body is not valid JSON: {exc}",
                      'send {"rows": [{"column": value, ...}]}, or a CSV with Content-Type: text/csv')
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise Refusal(422, 'the body must be a JSON object with "rows": a list of rows',
                      'e.g. {"rows": [{"column": value, ...}], "proba": true}')
    unknown = sorted(set(data) - OPTIONS - {"rows"})
    if unknown:
        raise Refusal(422, f"unknown field '{unknown[0]}'{did_you_mean(unknown[0], sorted(OPTIONS))}",
                      f"the fields: rows, {', '.join(sorted(OPTIONS))}")
    given = {name: data.get(name) for name in OPTIONS}  # null means the default, as leaving it out does
    options = request_options(False if given["proba"] is None else given["proba"], given["threshold"],
                              given["positive"], [] if given["keep"] is None else given["keep"],
                              given["interval"], given["sets"], False if given["spread"] is None else given["spread"])
    rows = data["rows"]
    if len(rows) > max_rows:
        raise too_many_rows(len(rows), max_rows)
    numeric = [c for c in model.encoder.features if c not in model.encoder.categories]
    return rows, rows_frame(rows, options.columns(model), numeric), options


def request_options(proba, threshold, positive, keep, interval=None, sets=None, spread=False) -> PredictOptions:
    """The options as `nnctl predict` takes them; a value of the wrong kind is a 422 naming it."""
    for name, flag in (("proba", proba), ("spread", spread)):
        if not isinstance(flag, bool):
            raise Refusal(422, f"'{name}' must be true or false, got {json.dumps(flag)}")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not math.isfinite(threshold)):
        raise Refusal(422, f"'threshold' must be a number between 0 and 1, got {json.dumps(threshold)}")
    if positive is not None and not isinstance(positive, (str, int, float)):
        raise Refusal(422, f"'positive' must be a class label, got {json.dumps(positive)}")
    if not isinstance(keep, list) or not all(isinstance(c, str) for c in keep):
        raise Refusal(422, f"'keep' must be a list of column names, got {json.dumps(keep)}")
    for name, level in (("interval", interval), ("sets", sets)):
        if level is not None and (isinstance(level, bool) or not isinstance(level, (int, float))
                                  or not math.isfinite(level)):
            raise Refusal(422, f"'{name}' must be a coverage level between 0 and 1, got {json.dumps(level)}")
    return PredictOptions(proba, None if threshold is None else float(threshold),
                          tuple(keep), None if positive is None else str(positive),
                          None if interval is None else float(interval), None if sets is None else float(sets),
                          spread)


def rows_frame(rows: list, columns: list, numeric=()):
    """The rows' `columns` as a DataFrame, each cell as the CSV reader gives it: a missing key,
    null and the texts a CSV reads as missing ("", "NA", ...) are missing values; text is
    stripped. A column that no row has is an error, as a CSV without it would be. `numeric`
    columns (the model reads them as numbers) that hold only numbers and nulls become float64
    arrays at once, NaN for null, as the CSV reader would have parsed them."""
    import pandas as pd

    for i, row in enumerate(rows):
        if type(row) is not dict:
            raise Refusal(422, f"row {i} is not an object of column: value", row=i)
    absent = [c for c in columns if not any(c in row for row in rows)]
    if rows and absent:
        present = sorted({key for row in rows for key in row})
        raise Refusal(422, f"column '{absent[0]}' is in none of the rows{did_you_mean(absent[0], present)}",
                      f"the model's columns: {', '.join(columns)}", column=absent[0])
    numeric = set(numeric)
    cells = [_cells([row.get(c) for row in rows], c, c in numeric) for c in columns]
    # column names as an object Index: pandas' default Arrow-backed one costs more per lookup
    # than the model takes to predict one row
    names = pd.Index(columns, dtype=object)
    if cells and all(isinstance(c, np.ndarray) for c in cells):  # all numbers: one block, nothing copied again
        return pd.DataFrame(np.column_stack(cells), columns=names, copy=False)
    return pd.DataFrame(dict(zip(columns, cells)), columns=names)


def _cells(values: list, column: str, numeric: bool = False):
    # most columns hold only numbers and nulls, which need no look at each cell; a float64
    # array of them spares pandas inferring a dtype from a list, its cost on small requests
    kinds = {type(v) for v in values}
    if numeric and values and kinds <= NUMBERS:
        try:
            return np.array(values, dtype=np.float64)
        except OverflowError:  # an int past float64: left to the encoder, which names the column
            return values
    if kinds <= PLAIN:
        return values
    return [_cell(v, i, column) for i, v in enumerate(values)]


def _cell(value, row: int, column: str):
    if isinstance(value, str):
        value = value.strip()
        return None if value in MISSING else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise Refusal(422, f"column '{column}' holds {type(value).__name__ if not isinstance(value, list) else 'a list'}"
                       ", where a cell is a number, a text or null", row=row, column=column)


def csv_frame(body: bytes, model, options: PredictOptions, max_rows: int):
    """The CSV body's rows (the columns the model reads, and `keep` as written), read by the
    same reader as `nnctl predict DATA.csv`; parsing stops one row past `max_rows`."""
    import pandas as pd

    from ..data.csvfile import sniff_bytes
    from ..data.tables import read_table

    columns = options.columns(model)
    as_text = [c for c in options.kept() if c not in model.encoder.features]
    try:
        table = sniff_bytes(body, CSV_WHERE)
        chunks = read_table(table, columns=columns, chunksize=max_rows + 1, decimal=model.encoder.decimal,
                            as_text=as_text)
        frame = next(iter(chunks), None)
    except NnctlError as exc:
        raise Refusal.of(exc, 422 if exc.column is not None else 400)
    if frame is None:  # a header and no rows
        return pd.DataFrame({c: [] for c in columns})
    if len(frame) > max_rows:
        raise too_many_rows(f"more than {max_rows}", max_rows)
    return frame
