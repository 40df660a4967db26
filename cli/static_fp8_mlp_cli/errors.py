"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class CliError(Exception):
    """A problem the user can fix; the message says what to do."""
