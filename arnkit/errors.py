"""The one exception type a user sees: it carries a one-line message that names the problem and the fix."""


class ArnkitError(Exception):
    """A user-facing error (bad input, missing data, unsafe file). The CLI prints it as one red line."""
