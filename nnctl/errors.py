"""The one exception type for mistakes a user can make (bad config, bad data, bad model file),
and the small helpers its messages share."""
from __future__ import annotations


class NnctlError(Exception):
    """A user-facing error: `message` says what is wrong, `where` names the file/key/column,
    `hint` (optional) says how to fix it. The CLI prints it as `error: ...` and exits 2."""

    def __init__(self, message: str, where: str | None = None, hint: str | None = None, *,
                 column: str | None = None, row: int | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint
        # a bad cell's column and 0-based row in the table, for callers that answer per row (serve)
        self.column = column
        self.row = row

    def __str__(self) -> str:
        text = self.message if not self.where else f"{self.message} ({self.where})"
        return text if not self.hint else f"{text}\n{self.hint}"


class NothingTrained(Exception):
    """Training was interrupted before its first epoch completed: there is nothing to save.
    The CLI says so and exits 130."""


def did_you_mean(name, choices) -> str:
    """' (did you mean 'x'?)' for a near miss among `choices`, else ''. Case does not matter
    ('Relu' -> 'relu'), and a prefix counts ('acc' -> 'accuracy')."""
    import difflib

    names = [str(c) for c in choices]
    text = str(name).strip().lower()
    if not text or len(text) > 100:  # a name sent by a client may be megabytes long: no search
        return ""
    lowered = {c.lower(): c for c in names}
    match = lowered.get(text)
    if match is None and len(text) >= 2:
        match = next((c for c in names if c.lower().startswith(text)), None)
    if match is None:
        close = difflib.get_close_matches(text, list(lowered), n=1, cutoff=0.6)
        match = lowered[close[0]] if close else None
    return f" (did you mean '{match}'?)" if match is not None and match != str(name) else ""


SHOWN_CHARS = 60  # of a value quoted in a message: a 5 MB cell is not echoed back whole


def plain(value) -> str:
    """A value as a person reads it in a message: NumPy scalars as plain numbers (3, not
    np.int64(3)), strings in quotes; a long value cut to its first SHOWN_CHARS characters."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    return prefix(value, quote="'") if isinstance(value, str) else prefix(str(value))


def prefix(text: str, chars: int = SHOWN_CHARS, quote: str = "") -> str:
    """`text` in `quote`s, or its first `chars` characters and how long it was."""
    if len(text) <= chars:
        return f"{quote}{text}{quote}"
    return f"{quote}{text[:chars]}{quote}... ({len(text):,} characters)"
