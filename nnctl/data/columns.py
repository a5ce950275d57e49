"""Which columns are used, and how: the features (an unnamed index column left out), which are
categorical, missing values, and the notes and warnings a careful user would want about them."""
from __future__ import annotations

import numpy as np

from ..errors import NnctlError, did_you_mean
from .encoding import is_number

MAX_AUTO_CLASSES = 20  # an integer target with at most this many values is taken as classes
ID_MIN_ROWS = 20  # a column unique per row in fewer rows than this is no sign of an ID
WIDE_ONE_HOT = 100  # one-hot columns beyond this many inputs are worth a warning
MANY_CLASSES = 100  # a target with more classes than this is worth a warning
DECIMAL_COMMA = r"^\s*[-+]?\d+,\d+\s*$"


def feature_columns(cfg_data, header: list[str], where: str, notes: list) -> list[str]:
    """The listed features, or every named column but the target. A first column without a
    name is the index pandas' to_csv() writes: it is left out with a note. Any other column
    used must have a name."""
    features = cfg_data.features
    if features:
        return features
    exclude = cfg_data.exclude or []
    for name in exclude:  # a typo would silently keep the column it meant to drop
        if name not in header:
            named = [h for h in header if h]
            raise NnctlError(f"data.exclude names '{name}', which is not a column of the file"
                             f"{did_you_mean(name, named)}", where,
                             f"its columns: {', '.join(named[:20])}{' ...' if len(named) > 20 else ''}")
    for i, name in enumerate(header):
        if name:
            continue
        if i == 0:
            notes.append(("note", "the first column has no name (an index written by pandas' to_csv()?); "
                                  "it is not used"))
        else:
            raise NnctlError(f"column {i + 1} of the header has no name", where,
                             "give it a name, or list the columns to use in data.features")
    targets = cfg_data.target if isinstance(cfg_data.target, (list, tuple)) else [cfg_data.target]
    return [c for c in header if c and c not in targets and c not in exclude]


def categorical_columns(df, features, setting, path) -> list[str]:
    import pandas as pd

    # a column without a value (Parquet's null type) is numbers all missing, as a CSV's empty column
    # reads and as the streamed pass takes it
    numeric = {c for c in features if pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])
               or not df[c].notna().any()}
    # before `auto` takes text columns as categories: numbers written with decimal commas are
    # text to the parser, and one-hot encoding them would silently make every value a category
    # (a column listed in data.categorical by name is the user's choice)
    listed = () if setting == "auto" else setting
    for col in features:
        if col not in numeric and col not in listed and looks_like_decimal_commas(df[col]):
            example = df[col].dropna().iloc[0]
            raise NnctlError(f"column '{col}' holds numbers written with a decimal comma (e.g. '{example}')",
                             str(path), "set data.decimal: \",\" to read them as numbers")
    if setting == "auto":
        return [c for c in features if c not in numeric]
    for col in setting:
        if col not in features:
            raise NnctlError(f"data.categorical names '{col}', which is not a feature column{did_you_mean(col, features)}",
                             str(path))
    for col in features:
        if col not in numeric and col not in setting:
            example = next((v for v in df[col].dropna() if not is_number(v)), df[col].dropna().iloc[0] if df[col].notna().any() else "")
            raise NnctlError(f"column '{col}' is not numeric (e.g. '{example}')", str(path),
                             "list it in data.categorical to one-hot encode it (or `categorical: auto`), "
                             f"or leave it out (data.exclude: [{col}], or drop it from data.features)")
    return list(setting)


def looks_like_decimal_commas(column) -> bool:
    """Most values read like '25,24': numbers from a locale that writes decimal commas."""
    values = column.dropna().astype(str).head(1000)
    return len(values) > 0 and values.str.match(DECIMAL_COMMA).mean() >= 0.9


def suspicious_columns(df, features, categorical, embedding=None) -> list:
    """Warnings for inputs that are rarely meant: an ID (a different value in every row), free
    text, or a one-hot encoding that adds very many inputs (an embedding adds few)."""
    import pandas as pd

    notes = []
    for col in features:
        integer = pd.api.types.is_integer_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col])
        notes += column_warnings(col, df[col].nunique(dropna=True), len(df), col in categorical, integer, embedding)
    return notes


def column_warnings(col, distinct: int, rows: int, categorical: bool, integer: bool, embedding=None,
                    checked_rows: int | None = None) -> list:
    """suspicious_columns' warnings for one column of `rows` rows with `distinct` values. A
    first pass over a large table checks an integer column for an ID over its first
    `checked_rows` rows only: the warning then says so."""
    from .encoding import AUTO_EMBEDDING_MIN, auto_width

    embedding = embedding or {}
    exclude = f"leave it out with data.exclude: [{col}]"
    embedded = col in embedding or (embedding == "auto" and distinct > AUTO_EMBEDDING_MIN)
    embed = f"data.embedding: {{{col}: {auto_width(distinct)}}} learns {auto_width(distinct)} numbers per category instead"
    if categorical:
        if rows >= ID_MIN_ROWS and distinct == rows:
            how = "its embedding" if embedded else f"one-hot encoding adds {distinct} inputs that"
            return [("warning", f"column '{col}' has a different value in every row (an ID or free text?): "
                                f"{how} cannot generalize; {exclude}")]
        if distinct > WIDE_ONE_HOT and not embedded:
            return [("warning", f"one-hot encoding column '{col}' adds {distinct} inputs; "
                                f"{embed}, or {exclude}, or group its rare values")]
    elif rows >= ID_MIN_ROWS and distinct == rows and integer:
        where = "every row" if checked_rows is None else f"each of its first {checked_rows} rows"
        return [("warning", f"column '{col}' has a different whole number in {where} (an ID?) and is "
                            f"used as a feature; {exclude}")]
    return []


TASK_NOTE = "task {} (model.task: auto): "  # how the note on the chosen task starts


def auto_task(kind: str, distinct: int | None) -> str:
    """model.task auto's choice from the target's kind (text | bool | int | float, as
    scanstats.TargetLabels.kind) and its number of distinct values (None: too many to count):
    text, booleans and whole numbers with few values are classes; other numbers a regression."""
    if kind in ("text", "bool") or (kind == "int" and distinct is not None and distinct <= MAX_AUTO_CLASSES):
        return "classification"
    return "regression"


def task_note(kind: str, distinct: int | None, target: str) -> list:
    """A note saying which task model.task auto chose and why, with how to choose the other,
    where the choice is a guess: numbers that may be a count taken as classes (goals 0-12 as 13
    classes is a wrong model, silently), or labels written as numbers taken as a regression.
    Text, true/false, 0/1 and many fractional values are not in doubt: no note."""
    task = auto_task(kind, distinct)
    if kind in ("text", "bool") or (kind == "int" and distinct is not None and distinct <= 2):
        return []
    if task == "classification":
        why = (f"target '{target}' has {distinct} distinct whole numbers, each taken as a class (auto takes up to "
               f"{MAX_AUTO_CLASSES}); set model.task: regression if it is a count or an amount")
    elif kind == "int":
        many = f"{distinct:,}" if distinct is not None else "very many"
        why = (f"target '{target}' has {many} distinct whole numbers, more than the {MAX_AUTO_CLASSES} auto takes as "
               "classes; set model.task: classification if they are labels")
    elif distinct is not None and distinct <= MAX_AUTO_CLASSES:
        why = (f"target '{target}' has numbers that are not all whole ({distinct} distinct values); "
               "set model.task: classification to treat them as classes")
    else:
        return []
    return [("note", TASK_NOTE.format(task) + why)]


def is_task_note(note) -> bool:
    """Whether `note` is task_note's: what train prints even with --quiet."""
    return note[0] == "note" and note[1].startswith(tuple(TASK_NOTE.format(t) for t in ("classification", "regression")))


def classes_note(classes, rows: int, target) -> list:
    """A warning for a target with very many classes: more often a number or an ID taken as
    labels than a real classification, and each class has few rows to learn from."""
    if len(classes) <= MANY_CLASSES:
        return []
    return [("warning", f"target '{target}' has {len(classes)} classes, about {rows / len(classes):.3g} rows each: "
                        "if it is a number to predict, set model.task: regression; the report summarizes a "
                        "confusion matrix this large")]


MISSING_HINT = "fill them in, or set data.missing: drop (drop those rows) or mean (fill with the training mean)"
# data.missing: mean fills features only: a row missing its target is left out under drop and mean alike
TARGET_MISSING_HINT = "fill them in, or set data.missing: drop (leave those rows out; a target is never filled in)"


def missing_error(col: str, row: int, where: str, count: int | None = None, target: bool = False,
                  hint: str | None = None, more: str = "") -> NnctlError:
    """The one error of a missing value under missing: error, alike whether the whole table was
    read (which knows `count`, the column's missing rows) or a chunk at a time (which stops at
    the first): the column, its first missing row (0-based `row`, as data rows are counted in
    the file) and the fix. `more`: other columns' counts, appended."""
    place = f"first in data row {row + 1}" + (f", {count} row{'s' if count != 1 else ''} in all" if count else "")
    what = f"target column '{col}' has missing values" if target else f"missing values in column '{col}'"
    return NnctlError(f"{what} ({place}){more}", str(where), hint or (TARGET_MISSING_HINT if target else MISSING_HINT))


def handle_missing(df, features, target, policy, path, keep_index: bool = False):
    """`df` with missing values handled by `policy`; its rows numbered afresh, or with
    `keep_index` still by their place in the file (for the row numbers of validation.csv)."""
    targets = list(target) if isinstance(target, (list, tuple)) else [target]
    used = list(dict.fromkeys(features + targets))
    counts = df[used].isna().sum()
    counts = counts[counts > 0]
    if len(counts) == 0:
        return df
    if policy == "error":  # the first column as the streamed pass names it, the others' counts after it
        col, *others = counts.index
        more = "; also in " + ", ".join(f"'{c}' ({counts[c]})" for c in others) if others else ""
        row = int(df.index[int(np.flatnonzero(df[col].isna().to_numpy())[0])])
        raise missing_error(col, row, path, int(counts[col]), target=col in targets, more=more)
    subset = used if policy == "drop" else targets
    kept = df.dropna(subset=subset)
    if len(kept) == 0:
        raise NnctlError("no rows left after dropping rows with missing values", str(path))
    return kept if keep_index else kept.reset_index(drop=True)
