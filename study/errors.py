"""The one error type the CLI turns into a one-line message and exit status 2."""


class UsageError(Exception):
    """Bad input from the user: a config, a path, an address. The message names the fix."""
