"""Progress on stderr for long work, drawn by tqdm: a live bar on a terminal, a line now and then off one.

On a terminal a bar redraws in place and vanishes when its work is done (the
command's own summary line follows).  Off a terminal (a log file, a CI job, a
pipe) the ``\\r`` redraws and space padding meant for a terminal would make a
mess: there each refresh becomes one clean line, at most every few seconds,
never the same line twice, and a job done within that time prints nothing.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Optional, Sequence, TextIO

if TYPE_CHECKING:
    from neuromirror.records import ProgressCallback

#: seconds between refreshes on a terminal / in a log
TTY_EVERY = 0.5
LOG_EVERY = 5.0


class _Lines:
    """A file for tqdm off a terminal: each refresh a line of its own, without ``\\r`` and padding."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.last: Optional[str] = None
        self.bar: Any = None
        #: (count, postfix) of the bar when it last printed: the final state printed only if it differs
        self.shown: Optional[tuple] = None

    def write(self, s: str) -> None:
        for part in s.replace("\r", "\n").split("\n"):
            text = part.rstrip()
            if text and text != self.last:
                self.stream.write(text + "\n")
                self.last = text
                if self.bar is not None:
                    self.shown = (self.bar.n, self.bar.postfix)

    def flush(self) -> None:
        self.stream.flush()


def _bar(desc: str, total: Optional[int], *, every: Optional[float] = None, **kwargs: Any) -> Any:
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    interval = every if every is not None else (TTY_EVERY if tty else LOG_EVERY)
    lines = None if tty else _Lines(sys.stderr)
    bar = tqdm(
        desc=desc,
        total=total,
        file=lines or sys.stderr,
        leave=not tty,
        mininterval=interval,
        maxinterval=max(interval, 10.0),
        delay=interval,
        dynamic_ncols=tty,
        ascii=None if tty else True,
        **kwargs,
    )
    if lines is not None:
        lines.bar = bar
    return bar


def _close(bar: Any) -> None:
    """Close a bar; off a terminal the final state is printed only if it was not the last line printed."""
    lines = getattr(bar.fp, "_wrapped", bar.fp)  # tqdm wraps the file it is given (DisableOnWriteError)
    if isinstance(lines, _Lines) and lines.shown == (bar.n, bar.postfix):
        bar.leave = False  # nothing new since the last line: no second copy of it
    bar.close()


#: a sync's stage whose counts are bytes ends so (``reading cutouts (bytes)``): drawn as bytes, as a ByteBar is
BYTES_SUFFIX = " (bytes)"


class Progress:
    """A ProgressCallback: a bar per stage (``listing``, ``pinning``...) of one source's sync; a stage named
    with :data:`BYTES_SUFFIX` a bar of bytes (``12.9MB/s``, not ``13522398.28it/s``)."""

    def __init__(self, label: str, *, enabled: bool = True, every: Optional[float] = None):
        self.label = label
        self.enabled = enabled
        self.every = every
        self._stage: Optional[str] = None
        self._bar: Any = None

    def __call__(self, stage: str, done: int, total: Optional[int]) -> None:
        if not self.enabled:
            return
        if stage != self._stage or self._bar is None or (total and self._bar.total != total):
            self.done()
            self._stage = stage
            units = BYTE_UNITS if stage.endswith(BYTES_SUFFIX) else {}
            self._bar = _bar(
                f"{self.label}: {stage.removesuffix(BYTES_SUFFIX)}", total or None, every=self.every, **units
            )
        self._bar.update(done - self._bar.n)

    def done(self) -> None:
        if self._bar is not None:
            _close(self._bar)
            self._bar = None
            self._stage = None


#: seconds between two calls of a :class:`ByteCalls` callback (the first and the last are never held back)
CALL_EVERY = 0.1
#: the first words of the stages a :class:`ByteCalls` tells: ``"get LABEL"`` bytes, ``"files LABEL"`` files
BYTES_STAGE = "get"
FILES_STAGE = "files"
#: every first word of a bytes stage (the verbs that move or read bytes) and of a count stage beside it: what
#: the command line's bars (``api.getting.Bars``) draw
BYTES_STAGES = (BYTES_STAGE, "keep", "verify", "restore")
COUNT_STAGES = (FILES_STAGE, "objects", "copies")


class ByteCount:
    """Bytes of many files at once, as threads report them: each file's bytes so far (``partial``, by key) and
    the files finished.  :class:`ByteCalls` tells it; this one only counts (what a fetch nobody watches still
    needs: the bytes of a key whose size is unknown)."""

    def __init__(self, total_files: int) -> None:
        self.total_files = total_files
        self.done_bytes = 0  # of finished files
        self.done_files = 0
        self.partial: dict[str, int] = {}  # key -> bytes so far
        self._lock = threading.Lock()

    @property
    def bytes_now(self) -> int:
        return self.done_bytes + sum(self.partial.values())

    def update(self, key: str, nbytes: int) -> None:
        with self._lock:
            self.partial[key] = nbytes
            self._moved()

    def finish(self, key: str, size: Optional[int], *, whole: bool = True) -> None:
        """``key``'s bytes are all read (``size``: None, those it reported); ``whole``: a file done with them
        (a file read from several places is done with its last)."""
        with self._lock:
            self.done_bytes += size if size is not None else self.partial.get(key, 0)
            self.partial.pop(key, None)
            self.done_files += whole
            self._moved()

    def _moved(self) -> None:
        """The count changed (under the lock)."""

    def close(self) -> None:
        """The work is over: nothing more will be counted."""


#: tqdm's settings of a bar of bytes (``12.3M/45.6M [..., 4.1MB/s]``)
BYTE_UNITS: dict[str, Any] = {"unit": "B", "unit_scale": True, "unit_divisor": 1024}


class ByteBar:
    """One tqdm bar of bytes and files: ``get: 45%|...| 12.3M/45.6M [00:03<00:08, 4.1MB/s, 3/10 files]``."""

    def __init__(
        self, label: str, total_bytes: Optional[int], files: Optional[tuple[int, int]] = None, unit: str = FILES_STAGE
    ) -> None:
        shown = f"{files[0]}/{files[1]} {unit}" if files else None  # from the first line drawn
        self._bar = _bar(label, total_bytes or None, postfix=shown, **BYTE_UNITS)

    def files(self, done: int, total: int, unit: str = FILES_STAGE) -> None:
        """The files (or objects, copies) done, shown with the next bytes drawn."""
        self._bar.set_postfix_str(f"{done}/{total} {unit}", refresh=False)

    def bytes(self, done: int, total: Optional[int]) -> None:
        if (total or None) != self._bar.total:
            self._bar.total = total or None
        self._bar.update(done - self._bar.n)

    def full(self) -> bool:
        """Every byte drawn (of a known total)."""
        return self._bar.total is not None and self._bar.n >= self._bar.total

    def close(self) -> None:
        _close(self._bar)


class ByteCalls(ByteCount):
    """Bytes of many files at once told to a ``progress(stage, done, total)`` callback (a
    :data:`~neuromirror.records.ProgressCallback`) as they arrive: ``("UNIT LABEL", files done, files)``, then
    ``("WORD LABEL", bytes done, bytes)`` (``get``: ``files``/``get``; ``keep``, ``verify`` and ``restore`` tell
    theirs), each when it changed.  At once when made, then at most every :data:`CALL_EVERY` seconds, and once
    more when closed: the last of each has done == total when every file arrived (the bytes may get there
    first: a file is done once it was checked).  The bytes told never go back (a file fetched again from its
    start does not move them backwards); ``total`` is None while a file's size is unknown, and the bytes
    that arrived when all did.  ``sizes``: each read's size (``files``: the files, when a file is read from
    several places); ``more``: files are still to be added (:meth:`add`), the totals None until the last."""

    def __init__(
        self,
        progress: ProgressCallback,
        label: str,
        sizes: Sequence[Optional[int]],
        *,
        word: str = BYTES_STAGE,
        unit: str = FILES_STAGE,
        files: Optional[int] = None,
        more: bool = False,
    ) -> None:
        super().__init__(len(sizes) if files is None else files)
        self.progress, self.label, self.word, self.unit = progress, label, word, unit
        self.total_bytes: Optional[int] = None if None in sizes else sum(s or 0 for s in sizes)
        self.more = more
        self._told_at = -float("inf")
        self._told: Optional[tuple[int, Optional[int], int, Optional[int]]] = None  # files, of, bytes, of
        self._tell(held=False)

    def add(self, sizes: Sequence[Optional[int]], *, last: bool) -> None:
        """More files to count (one a size); ``last``: the totals are known now."""
        with self._lock:
            self.total_files += len(sizes)
            if self.total_bytes is not None:
                self.total_bytes = None if None in sizes else self.total_bytes + sum(s or 0 for s in sizes)
            self.more = not last
            self._tell(held=not last)

    def _moved(self) -> None:
        self._tell(held=True)

    def close(self) -> None:
        with self._lock:
            self._tell(held=False)

    def _tell(self, *, held: bool) -> None:
        """The callback told the count now, unless ``held`` and it was told less than CALL_EVERY ago."""
        now = time.monotonic()
        if held and now - self._told_at < CALL_EVERY:
            return
        done = max(self.bytes_now, self._told[2] if self._told else 0)
        total = None if self.more else self.total_bytes
        if total is not None:
            done = min(done, total)  # a file reported past its size must not take the bar past 100%
        if not self.more and self.done_files == self.total_files:
            done = total = self.done_bytes if total is None else total
        told = (self.done_files, None if self.more else self.total_files, done, total)
        before = self._told or (-1, -1, -1, -1)
        if told == before:
            return
        self._told_at, self._told = now, told
        if told[:2] != before[:2]:
            self.progress(f"{self.unit} {self.label}", told[0], told[1])
        if told[2:] != before[2:]:
            self.progress(f"{self.word} {self.label}", done, total)
