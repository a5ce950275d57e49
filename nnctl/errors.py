"""The one exception type for mistakes a user can make (bad config, bad data, bad model file)."""
from __future__ import annotations


class NnctlError(Exception):
    """A user-facing error: `message` says what is wrong, `where` names the file/key/column,
    `hint` (optional) says how to fix it. The CLI prints it as `error: ...` and exits 2."""

    def __init__(self, message: str, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = self.message if not self.where else f"{self.message} ({self.where})"
        return text if not self.hint else f"{text}\n{self.hint}"


def did_you_mean(name: str, choices) -> str:
    """' (did you mean 'x'?)' for a near miss among `choices`, else ''."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
