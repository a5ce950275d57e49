"""A POST /predict body -> the rows as a DataFrame and the prediction's options, or a
`Refusal` saying which status to answer and why. JSON rows become a DataFrame whose cells look
as `nnctl predict`'s CSV reader would have read them; a CSV body goes through that reader
itself. Either way the model sees the rows through `commands.predict.predict_chunk`."""
from __future__ import annotations

import json
import math
import re

import numpy as np

from ..commands.predict import PredictOptions
from ..data.csvfile import COMPRESSIONS, NA_STRINGS
from ..errors import NnctlError, did_you_mean, plain, prefix

ROWS_WHERE = "the request's rows"
CSV_WHERE = "the request's CSV body"
OPTIONS = {"proba", "threshold", "positive", "keep", "interval", "sets", "spread", "unknown_category"}  # besides "rows"
UNKNOWN_CATEGORY = ("error", "ignore")
MESSAGE_CHARS = 2000
MISSING = frozenset(NA_STRINGS)
PLAIN = {int, float, bool, type(None)}
COMPRESSED = {**{magic: name for magic, (name, _) in COMPRESSIONS.items()}, b"PK\x03\x04": "zip"}
NUMBERS = {int, float, type(None)}  # not bool: true is refused where a number goes


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
        # a name or value from the request is cut to a prefix where the message quotes it; these
        # caps catch whatever else a client could make us echo
        column = prefix(self.column) if isinstance(self.column, str) else self.column
        body = {"error": prefix(self.error, MESSAGE_CHARS), "row": self.row, "column": column}
        return {**body, "hint": prefix(self.hint, MESSAGE_CHARS)} if self.hint else body


def too_many_rows(count, max_rows: int) -> Refusal:
    return Refusal(413, f"the request has {count} rows, over this server's limit of {max_rows}",
                   "send the rows in smaller requests (the limit is nnctl serve --max-rows)")


def json_request(body: bytes, model, max_rows: int, unknown_category: str | None = None):
    """(the rows as `JsonRows`, a DataFrame of the columns the model reads, PredictOptions);
    `unknown_category`: the server's default for the option of that name."""
    numeric = [c for c in model.encoder.features if c not in model.encoder.categories]
    try:
        fields, rows = _parsed(body, max_rows, numeric)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refusal(400, f"the body is not valid JSON: {prefix(str(exc), 200)}",
                      'send {"rows": [{"column": value, ...}]}, or a CSV with Content-Type: text/csv')
    except RecursionError:
        raise Refusal(400, "the JSON body nests too deep (arrays or objects inside each other, hundreds of levels)",
                      'send {"rows": [{"column": value, ...}]}: rows of plain values')
    if rows is None:
        raise Refusal(422, 'the body must be a JSON object with "rows": a list of rows',
                      'e.g. {"rows": [{"column": value, ...}], "proba": true}')
    refuse_unknown(fields, "field", "rows")
    given = {name: fields.get(name) for name in OPTIONS}  # null means the default, as leaving it out does
    options = request_options(False if given["proba"] is None else given["proba"], given["threshold"],
                              given["positive"], [] if given["keep"] is None else given["keep"],
                              given["interval"], given["sets"], False if given["spread"] is None else given["spread"],
                              given["unknown_category"], unknown_category)
    return rows, rows.frame(options.columns(model), numeric, model.encoder.features), options


ROWS_AT_ONCE = 4096  # JSON rows held as Python objects at a time, before they become columns
STREAMED_BYTES = 1 << 20  # bodies over this are parsed a row at a time (app.INLINE_BYTES: in a thread)
_SPACE = re.compile(r"[ \t\n\r]*")
WHITESPACE = frozenset(" \t\n\r")  # JSON's: a test before the regex, which compact JSON never needs


def _parsed(body: bytes, max_rows: int, numeric) -> tuple[dict, "JsonRows | None"]:
    """(the body's fields but "rows", its rows), parsed by the json module a value at a time:
    the rows become columns ROWS_AT_ONCE at a time, float arrays for the `numeric` ones, so a
    big body costs a few times its size, not the ten of a dict per row. (fields, None) when
    the body is not an object with a list of rows; ValueError (JSONDecodeError) where it is
    not JSON; a Refusal past `max_rows` rows."""
    if len(body) <= STREAMED_BYTES:  # json.loads is faster, and a small body's objects are few
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            return (data if isinstance(data, dict) else {}), None
        if len(data["rows"]) > max_rows:
            raise too_many_rows(len(data["rows"]), max_rows)
        return {k: v for k, v in data.items() if k != "rows"}, JsonRows.of(data["rows"], numeric)
    text = body.decode(json.detect_encoding(body))
    decoder, i = json.JSONDecoder(), _SPACE.match(text, 0).end()
    if text[i:i + 1] != "{":
        value = json.loads(text)  # not an object: JSON's own error, or a value of another kind
        return {"": value}, None
    fields, rows, i = {}, None, _SPACE.match(text, i + 1).end()
    if text[i:i + 1] == "}":
        i += 1
    else:
        while True:
            if text[i:i + 1] != '"':
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, i)
            key, i = decoder.raw_decode(text, i)
            i = _SPACE.match(text, i).end()
            if text[i:i + 1] != ":":
                raise json.JSONDecodeError("Expecting ':' delimiter", text, i)
            i = _SPACE.match(text, i + 1).end()
            if key == "rows" and text[i:i + 1] == "[":
                rows, i = _rows(text, i + 1, decoder, max_rows, numeric)
                fields.pop("rows", None)
            else:  # a later "rows" wins, as in json.loads
                fields[key], i = decoder.raw_decode(text, i)
                rows = None if key == "rows" else rows
            i = _SPACE.match(text, i).end()
            if text[i:i + 1] == "}":
                i += 1
                break
            if text[i:i + 1] != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
            i = _SPACE.match(text, i + 1).end()
    i = _SPACE.match(text, i).end()
    if i != len(text):
        raise json.JSONDecodeError("Extra data", text, i)
    return fields, rows


def _rows(text: str, i: int, decoder, max_rows: int, numeric) -> tuple["JsonRows", int]:
    """The rows of the list that starts after text[i - 1] ('['), and where it ends."""
    rows, chunk = JsonRows(numeric), []
    i = _SPACE.match(text, i).end()
    if text[i:i + 1] == "]":
        return rows, i + 1
    scan, space = decoder.scan_once, _SPACE.match  # raw_decode's own C scanner, without its Python wrapper
    while True:
        try:
            row, i = scan(text, i)
        except StopIteration as err:
            raise json.JSONDecodeError("Expecting value", text, err.value) from None
        if type(row) is not dict:
            raise Refusal(422, f"row {rows.count + len(chunk)} is not an object of column: value",
                          row=rows.count + len(chunk))
        chunk.append(row)
        if rows.count + len(chunk) > max_rows:
            raise too_many_rows(f"more than {max_rows}", max_rows)
        if len(chunk) == ROWS_AT_ONCE:
            rows.add(chunk)
            chunk = []
        after = text[i:i + 1]
        if after in WHITESPACE:
            i = space(text, i).end()
            after = text[i:i + 1]
        if after == "]":
            rows.add(chunk)
            return rows, i + 1
        if after != ",":
            raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
        i += 1
        if text[i:i + 1] in WHITESPACE:
            i = space(text, i).end()


class JsonRows:
    """JSON rows kept by column: {key: [(first row, that chunk's values)]}; a `numeric`
    column's chunk of numbers and nulls is a float64 array (NaN for null) at once."""

    def __init__(self, numeric=()):
        self.numeric, self.count, self.pieces = set(numeric), 0, {}

    @classmethod
    def of(cls, rows: list, numeric=()) -> "JsonRows":
        for i, row in enumerate(rows):
            if type(row) is not dict:
                raise Refusal(422, f"row {i} is not an object of column: value", row=i)
        made = cls(numeric)
        for start in range(0, len(rows), ROWS_AT_ONCE):
            made.add(rows[start:start + ROWS_AT_ONCE])
        return made

    def add(self, chunk: list) -> None:
        for key in {key for row in chunk for key in row}:
            values = [row.get(key) for row in chunk]
            if key in self.numeric and {type(v) for v in values} <= NUMBERS:
                try:
                    values = np.array(values, dtype=np.float64)
                except OverflowError:  # an int past float64: left to the encoder, which names the column
                    pass
            self.pieces.setdefault(key, []).append((self.count, values))
        self.count += len(chunk)

    def column(self, key) -> list | np.ndarray:
        """Every row's value of `key` (None where a row lacks it)."""
        pieces = self.pieces.get(key, [])
        if sum(len(values) for _, values in pieces) == self.count and all(isinstance(v, np.ndarray) for _, v in pieces):
            return np.concatenate([values for _, values in pieces]) if len(pieces) != 1 else pieces[0][1]
        cells = [None] * self.count
        for start, values in pieces:
            cells[start:start + len(values)] = [None if v != v else v for v in values.tolist()] \
                if isinstance(values, np.ndarray) else values
        return cells

    def kept(self, keep: list) -> list:
        """[{column: value as given}] of each row, for `keep`."""
        columns = [self.column(c) for c in keep]
        columns = [c.tolist() if isinstance(c, np.ndarray) else c for c in columns]
        return [dict(zip(keep, values)) for values in zip(*columns)]

    def frame(self, columns: list, numeric=(), features=None):
        """The rows' `columns` as a DataFrame (see `rows_frame`)."""
        import pandas as pd

        absent = [c for c in columns if c not in self.pieces]
        if self.count and absent:
            features = columns if features is None else features
            asked = "" if absent[0] in features else " (asked for in 'keep')"
            raise Refusal(422, f"column {plain(absent[0])}{asked} is in none of the rows"
                               f"{did_you_mean(absent[0], sorted(self.pieces))}",
                          f"the model's columns: {', '.join(features)}", column=absent[0])
        numeric = set(numeric)
        cells = []
        for c in columns:
            values = self.column(c)
            cells.append(values if isinstance(values, np.ndarray) else _cells(values, c, c in numeric))
        # column names as an object Index: pandas' default Arrow-backed one costs more per lookup
        # than the model takes to predict one row
        names = pd.Index(columns, dtype=object)
        if cells and all(isinstance(c, np.ndarray) for c in cells):  # all numbers: one block, nothing copied again
            return pd.DataFrame(np.column_stack(cells), columns=names, copy=False)
        return pd.DataFrame(dict(zip(columns, cells)), columns=names)


def refuse_unknown(given, what: str, *more) -> None:
    """A 422 for a name among `given` that is neither an option nor one of `more`."""
    known = sorted(OPTIONS | set(more))
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise Refusal(422, f"unknown {what} {plain(unknown[0])}{did_you_mean(unknown[0], known)}",
                      f"the {what}s: {', '.join(known)}")


def request_options(proba, threshold, positive, keep, interval=None, sets=None, spread=False,
                    unknown_category=None, default_unknown=None) -> PredictOptions:
    """The options as `nnctl predict` takes them; a value of the wrong kind is a 422 naming it.
    `unknown_category` null or absent is `default_unknown` (serve --unknown-category), and that
    None is the model's own `data.unknown_category`."""
    for name, flag in (("proba", proba), ("spread", spread)):
        if not isinstance(flag, bool):
            raise Refusal(422, f"'{name}' must be true or false, got {_shown(flag)}")
    # several targets: {target: value} objects, as `nnctl predict --threshold sold=0.3` names them
    if threshold is not None and not all(_is_number(t) for t in _values(threshold)):
        raise Refusal(422, f"'threshold' must be a number between 0 and 1 (several targets: an object of "
                      f"target: number), got {_shown(threshold)}")
    if positive is not None and not all(isinstance(p, (str, int, float)) for p in _values(positive)):
        raise Refusal(422, f"'positive' must be a class label (several targets: an object of target: label), "
                      f"got {_shown(positive)}")
    if not isinstance(keep, list) or not all(isinstance(c, str) for c in keep):
        raise Refusal(422, f"'keep' must be a list of column names, got {_shown(keep)}")
    for name, level in (("interval", interval), ("sets", sets)):
        if level is not None and (isinstance(level, bool) or not isinstance(level, (int, float))
                                  or not math.isfinite(level)):
            raise Refusal(422, f"'{name}' must be a coverage level between 0 and 1, got {_shown(level)}")
    if unknown_category is not None and unknown_category not in UNKNOWN_CATEGORY:
        raise Refusal(422, f"'unknown_category' must be \"error\" or \"ignore\", got {_shown(unknown_category)}",
                      "ignore: a category training never saw adds nothing (all-zero one-hot), as under "
                      "data.unknown_category: ignore")
    if isinstance(threshold, dict):
        threshold = {k: float(v) for k, v in threshold.items()}
    elif threshold is not None:
        threshold = float(threshold)
    if positive is not None:
        positive = {k: str(v) for k, v in positive.items()} if isinstance(positive, dict) else str(positive)
    return PredictOptions(proba, threshold, tuple(keep), positive,
                          None if interval is None else float(interval), None if sets is None else float(sets),
                          spread, unknown_category or default_unknown)


def _values(given) -> list:
    """An option's values: the one given, or each of an object's (several targets)."""
    return list(given.values()) if isinstance(given, dict) else [given]


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def query_target_values(text: str | None, model, name: str):
    """A CSV request's `threshold` or `positive` query parameter: `sold=0.3[,churn=0.7]` as
    {target: value} (a number for threshold), else the value itself (a number for threshold;
    for a model of one target, `positive` is a label, '=' and all)."""
    if text is None:
        return None
    if "=" in text and (name == "threshold" or model.targets is not None):
        parts = [p.partition("=") for p in text.split(",")]
        if any(not sep or not key.strip() for key, sep, _ in parts):
            raise Refusal(422, f"'{name}' must be <target>=<value>, several joined by commas, got {_shown(text)}")
        found = {key.strip(): value.strip() for key, _, value in parts}
        return {k: _query_number(v, name) for k, v in found.items()} if name == "threshold" else found
    return _query_number(text, name) if name == "threshold" else text


def _query_number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise Refusal(422, f"'{name}' must be a number between 0 and 1, got {_shown(text)}")
    return value


def _shown(value) -> str:
    """A value a client sent, as JSON, cut to a prefix: errors do not echo megabytes back."""
    try:
        return prefix(json.dumps(value), 100)
    except (TypeError, ValueError, RecursionError):
        return type(value).__name__


def rows_frame(rows: list, columns: list, numeric=(), features=None):
    """The rows' `columns` as a DataFrame, each cell as the CSV reader gives it: a missing key,
    null and the texts a CSV reads as missing ("", "NA", ...) are missing values; text is
    stripped. A column that no row has is an error, as a CSV without it would be. `numeric`
    columns (the model reads them as numbers) that hold only numbers and nulls become float64
    arrays at once, NaN for null, as the CSV reader would have parsed them."""
    return JsonRows.of(rows, numeric).frame(columns, numeric, features)


def _cells(values: list, column: str, numeric: bool = False):
    # most columns hold only numbers and nulls, which need no look at each cell; a float64
    # array of them spares pandas inferring a dtype from a list, its cost on small requests
    kinds = {type(v) for v in values}
    if numeric and bool in kinds:  # JSON tells true from 1: a boolean where a number goes is a mistake
        row = next(i for i, v in enumerate(values) if type(v) is bool)
        raise Refusal(422, f"column '{column}' holds {json.dumps(values[row])}, where the model takes a number",
                      "send 1 or 0: JSON's true and false are not numbers", row=row, column=column)
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
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # JSON's "\ud800": a lone half of a surrogate pair
                raise Refusal(422, f"column '{column}' holds a text that is not valid Unicode (a lone surrogate "
                                   "such as \\ud800)", "send UTF-8 text; an escaped character outside the basic "
                                   "plane is a pair such as \\ud83d\\ude00", row=row, column=column)
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
    for magic, compression in COMPRESSED.items():
        if body.startswith(magic):
            raise Refusal(415, f"the CSV body is {compression}-compressed", "send it uncompressed: a compressed body "
                          "could unpack to far more than this server's size limit")
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
