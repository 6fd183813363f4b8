"""One exception type for user mistakes.

Anything the user can fix (a bad file, row, field, flag or model name) raises `MedixError` with a
message that names what is wrong and where; the CLI prints it without a traceback.
"""


class MedixError(Exception):
    """A user-facing error: the message says what is wrong, where, and what to do next."""


def where(path: object, row: int | None = None, field: str | None = None) -> str:
    """Format a location as `file:row field` for error messages (row is 1-based)."""
    loc = str(path)
    if row is not None:
        loc += f", row {row}"
    if field is not None:
        loc += f", field '{field}'"
    return loc
