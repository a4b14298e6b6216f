"""Errors a user can fix. The CLI turns them into one line on stderr and an exit status."""


class DfkdError(Exception):
    """Bad input: unknown name, bad config key or value, missing file or dataset. Exit status 2."""

    exit_code = 2


class NonFiniteError(DfkdError):
    """A loss became NaN or infinite; the run stops before writing anything non-finite. Exit status 3."""

    exit_code = 3


def shown(value) -> str:
    """A user's string as an error shows it: quoted, with newlines and control characters escaped, so
    the message stays one line ('dfad' -> 'dfad', 'a\\nb' -> 'a\\\\nb')."""
    return repr(str(value))
