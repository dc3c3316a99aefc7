"""The one exception every layer may raise for a mistake the user can fix.

It lives at the bottom so that the index, the engine and the service can raise it without
importing the command line; ``cli.main`` prints it as one line and exits 2.
"""


class UserError(Exception):
    """An error the user can fix; printed as one line, exit 2."""


class NoSuchPath(UserError):
    """A path asked of a version that the version does not have (never an empty answer)."""
