"""neuromirror's error vocabulary: one base, a few kinds a caller can tell apart.

It lives at the bottom so that every layer can raise these without importing the command line.
A script catches :class:`NeuromirrorError` for anything neuromirror raised on purpose, or one kind:
a mistake the user can mend (:class:`UserError`: a spec that names nothing mirrored, a version or a
path that is not there, a bad input) or a place that did not answer (:class:`Unavailable`: an
archive, a store, a lock another process holds).  The messages name the thing, so that they read
the same from the API as on the command line.  ``cli.main`` maps them in one place: each kind's
one line on stderr and its :attr:`~NeuromirrorError.exit_code` (2 for a mistake, 1 for the rest,
75 for "try again later": a cold pack thawing).  An error about one argument of a call says it
by the call's keyword (``pack_size 10: ...``); the command line says it as its option (``--pack-size 10: ...``).
"""

from __future__ import annotations

from typing import Optional, TypeVar

_E = TypeVar("_E", bound="NeuromirrorError")


class NeuromirrorError(Exception):
    """Anything neuromirror raises on purpose (not a bug): one line, and the exit code the CLI gives it."""

    exit_code = 1
    #: the API's keyword at fault (``pack_size``), the message's first word: a script reads the message as
    #: the call's own words; the command line says it as its option (:meth:`cli_line`: ``--pack-size``)
    argument: Optional[str] = None
    #: the command's option for it when not the keyword's own name (``stores`` is ``--from``)
    option: Optional[str] = None

    def at(self: _E, argument: str, option: Optional[str] = None) -> _E:
        """This error, about the call's ``argument`` (and the command's ``option`` for it)."""
        self.argument, self.option = argument, option
        return self

    def cli_line(self) -> str:
        """The message as the command line says it: the argument at fault named as its option."""
        text = str(self)
        if self.argument and text.startswith(self.argument):
            flag = self.option or self.argument
            flag = flag if flag.startswith("-") else "--" + flag.replace("_", "-")  # ``-J``: a short option as such
            return flag + text[len(self.argument) :]
        return text


class UserError(NeuromirrorError):
    """An error the user can fix; printed as one line, exit 2."""

    exit_code = 2


class BadInput(UserError):
    """An argument that cannot mean anything: a malformed spec, date, size or region."""


class NotMirrored(UserError):
    """A source this mirror does not hold (or a pattern that matches none)."""


class NoSuchVersion(UserError):
    """A version, or a commit, the source's records do not have."""


class NoSuchPath(UserError):
    """A path asked of a version that the version does not have (never an empty answer)."""


class Unavailable(NeuromirrorError):
    """A place that did not answer as it should: an archive, a store, another process's lock."""


class LockBusy(Unavailable, RuntimeError):
    """Another process (a service job or a one-off sync) holds the source (or the root, or the service's own
    lock).  Here, not beside the lock itself, so that the service and the API's callers catch it without
    reaching into the datasets' module."""


class ReadOnly(UserError):
    """The mirror (its root or its index) cannot be written here: a read-only mount, another user's root.

    Only a verb that must write raises it, before any work; every verb that reads works on such a mirror."""


class IndexDamaged(NeuromirrorError):
    """The index file is not a database the mirror can read (foreign bytes, truncated, emptied under a mirror
    that has datasets): ``reindex`` moves it aside and rebuilds it from the datasets, which are the truth."""


__all__ = [
    "BadInput",
    "IndexDamaged",
    "NeuromirrorError",
    "NoSuchPath",
    "NoSuchVersion",
    "NotMirrored",
    "ReadOnly",
    "Unavailable",
    "UserError",
]
