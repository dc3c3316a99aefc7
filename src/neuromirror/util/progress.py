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


class Progress:
    """A ProgressCallback: a bar per stage (``listing``, ``pinning``...) of one source's sync."""

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
            self._bar = _bar(f"{self.label}: {stage}", total or None, every=self.every)
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


class ByteCount:
    """Bytes of many files at once, as threads report them: each file's bytes so far (``partial``, by key) and
    the files finished.  The subclasses show it (:class:`ByteProgress`) or tell it (:class:`ByteCalls`); this
    one only counts (what a fetch nobody watches still needs: the bytes of a key whose size is unknown)."""

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

    def finish(self, key: str, size: Optional[int]) -> None:
        with self._lock:
            self.done_bytes += size if size is not None else self.partial.get(key, 0)
            self.partial.pop(key, None)
            self.done_files += 1
            self._moved()

    def _moved(self) -> None:
        """The count changed (under the lock)."""

    def close(self) -> None:
        """The work is over: nothing more will be counted."""


class ByteBar:
    """One tqdm bar of bytes and files: ``get: 45%|...| 12.3M/45.6M [00:03<00:08, 4.1MB/s, 3/10 files]``."""

    def __init__(self, label: str, total_bytes: Optional[int], files: Optional[tuple[int, int]] = None) -> None:
        shown = f"{files[0]}/{files[1]} files" if files else None  # from the first line drawn
        self._bar = _bar(label, total_bytes or None, unit="B", unit_scale=True, unit_divisor=1024, postfix=shown)

    def files(self, done: int, total: int) -> None:
        """The files done, shown with the next bytes drawn."""
        self._bar.set_postfix_str(f"{done}/{total} files", refresh=False)

    def bytes(self, done: int, total: Optional[int]) -> None:
        if (total or None) != self._bar.total:
            self._bar.total = total or None
        self._bar.update(done - self._bar.n)

    def full(self) -> bool:
        """Every byte drawn (of a known total)."""
        return self._bar.total is not None and self._bar.n >= self._bar.total

    def close(self) -> None:
        _close(self._bar)


class ByteProgress(ByteCount):
    """Bytes of many files at once as a :class:`ByteBar` on stderr (``enabled``), counted as threads report them."""

    def __init__(self, total_bytes: int, total_files: int, *, enabled: bool = True, label: str = "get"):
        super().__init__(total_files)
        self.total_bytes = total_bytes
        self._bar: Optional[ByteBar] = ByteBar(label, total_bytes, (0, total_files)) if enabled else None
        self._moved()

    def _moved(self) -> None:
        if self._bar is not None:
            self._bar.files(self.done_files, self.total_files)
            self._bar.bytes(self.bytes_now, self.total_bytes)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class ByteCalls(ByteCount):
    """Bytes of many files at once told to a ``progress(stage, done, total)`` callback (a
    :data:`~neuromirror.records.ProgressCallback`) as they arrive: ``("files LABEL", files done, files)``, then
    ``("get LABEL", bytes done, bytes)``, each when it changed.  At once when made, then at most every
    :data:`CALL_EVERY` seconds, and once more when closed: the last of each has done == total when every file
    arrived (the bytes may get there first: a file is done once git-annex checked it).  The bytes told never
    go back (a file fetched again from its start does not move them backwards); ``total`` is None while a
    file's size is unknown, and the bytes that arrived when all did."""

    def __init__(self, progress: ProgressCallback, label: str, sizes: Sequence[Optional[int]]) -> None:
        super().__init__(len(sizes))
        self.progress = progress
        self.label = label
        self.total_bytes: Optional[int] = None if None in sizes else sum(s or 0 for s in sizes)
        self._told_at = -float("inf")
        self._told: Optional[tuple[int, int, Optional[int]]] = None  # (files, bytes, total) last told
        self._tell(held=False)

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
        done = max(self.bytes_now, self._told[1] if self._told else 0)
        total = self.total_bytes
        if total is not None:
            done = min(done, total)  # a file reported past its size must not take the bar past 100%
        if self.done_files == self.total_files:
            done = total = self.done_bytes if total is None else total
        told, before = (self.done_files, done, total), self._told or (-1, -1, -1)
        if told == before:
            return
        self._told_at, self._told = now, told
        if told[0] != before[0]:
            self.progress(f"{FILES_STAGE} {self.label}", self.done_files, self.total_files)
        if told[1:] != before[1:]:
            self.progress(f"{BYTES_STAGE} {self.label}", done, total)
