"""The one exception type for user errors (bad model, bad data, bad configuration).

The command-line interface prints its message as a single line and exits with code 2;
anything else escaping is a bug in systolix.
"""


class SystolixError(Exception):
    """A user-facing error: the message says what is wrong and, where possible, what would work."""

    exit_code = 2


def raised_in(exc: BaseException) -> str:
    """``module.function`` of the innermost frame of ``exc``'s traceback (where it was raised), or ``"?"``."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    frame = tb.tb_frame
    return f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_name}"
