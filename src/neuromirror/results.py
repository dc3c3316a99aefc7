"""One shape for what every verb returns, whoever calls it: the API, the command line or the service.

A verb that cannot start (a bad input, nothing mirrored, a store that does not answer) raises one of
:mod:`neuromirror.errors`.  Once started it returns a :class:`Result`: one :class:`Item` per thing it
acted on (a version, a file, a key, a store), each with a :class:`Status` as datalad's results have
(``ok``, ``notneeded``, ``impossible``, ``error``).  A failure cannot pass unseen: ``result.ok`` and
``bool(result)`` are False when any item is ``impossible`` or ``error``, and ``result.check()`` raises
:class:`Failed` naming them.  ``to_json()`` is what the command's ``--json`` prints, byte for byte;
``lines()`` what it prints without.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, Iterable, Iterator, Sequence, TypeVar, overload

from neuromirror.errors import NeuromirrorError

_R = TypeVar("_R", bound="Result")
_T = TypeVar("_T")


class Status(str, Enum):
    """How one item of a verb ended (datalad's result vocabulary)."""

    OK = "ok"  # done
    NOTNEEDED = "notneeded"  # already so: nothing to do
    IMPOSSIBLE = "impossible"  # refused: the item cannot be done as asked (a hostile path, a file over a limit)
    ERROR = "error"  # tried and failed (an archive or a store did not answer, a checksum did not match)

    def __str__(self) -> str:
        return self.value


#: the statuses that are not a failure
FINE = frozenset({Status.OK, Status.NOTNEEDED})


@dataclass(frozen=True)
class Item:
    """One thing a verb acted on: ``what`` names it (a spec, a path, a key, a store's URL)."""

    status: Status
    what: str
    message: str = ""

    def to_json(self) -> dict[str, str]:
        return {"status": self.status.value, "what": self.what, "message": self.message}

    def line(self) -> str:
        return f"{self.status.value}: {self.what}" + (f": {self.message}" if self.message else "")


class Failed(NeuromirrorError):
    """A verb ran and some of its items failed (:meth:`Result.check`); ``.result`` is the whole result."""

    def __init__(self, result: Result) -> None:
        self.result = result
        bad = result.failures()
        first = bad[0].line() if bad else "failed"
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        super().__init__(f"{type(result).__name__}: {first}{more}")


class Result:
    """The base of every verb's result.  A subclass says what its items are (:meth:`items`) and what its
    JSON is (:meth:`to_json`); the rest is here, the same for every verb."""

    def items(self) -> Iterable[Item]:
        """One item per thing the verb acted on (a result with none acted on nothing, and is ok)."""
        return ()

    def to_json(self) -> Any:
        return {"ok": self.ok, "items": [i.to_json() for i in self.items()]}

    def lines(self) -> list[str]:
        """What the command prints without ``--json``: a line per item."""
        return [i.line() for i in self.items()]

    def failures(self) -> list[Item]:
        return [i for i in self.items() if i.status not in FINE]

    @property
    def ok(self) -> bool:
        return not self.failures()

    def __bool__(self) -> bool:
        return self.ok

    def check(self: _R) -> _R:
        """This result, or :class:`Failed` when any item failed: ``m.keep(...).check()`` in a script that must
        stop on a failure."""
        if not self.ok:
            raise Failed(self)
        return self


class Listing(Result, Generic[_T]):
    """A result that is also the sequence of its records (``Versions``, ``Changes``, ``Forgot``): ``for r in
    res``, ``res[-1]``, ``len(res)``.  A subclass says which of its fields holds them (:meth:`records`).
    ``bool()`` stays ``.ok``, as for every result: ask ``len()`` whether there are any."""

    def records(self) -> Sequence[_T]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[_T]:
        return iter(self.records())

    def __len__(self) -> int:
        return len(self.records())

    @overload
    def __getitem__(self, i: int) -> _T: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[_T]: ...

    def __getitem__(self, i: int | slice) -> _T | Sequence[_T]:
        return self.records()[i]


__all__ = ["FINE", "Failed", "Item", "Listing", "Result", "Status"]
