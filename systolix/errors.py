"""The one exception type for user errors (bad model, bad data, bad configuration).

The command-line interface prints its message as a single line and exits with code 2;
anything else escaping is a bug in systolix.
"""


class SystolixError(Exception):
    """A user-facing error: the message says what is wrong and, where possible, what would work."""

    exit_code = 2
