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
from typing import Any, Optional, TextIO

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
    if isinstance(bar.fp, _Lines) and bar.fp.shown == (bar.n, bar.postfix):
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


class ByteProgress:
    """``get: 45%|...| 12.3M/45.6M [00:03<00:08, 4.1MB/s, 3/10 files]``: bytes of many files at once."""

    def __init__(self, total_bytes: int, total_files: int, *, enabled: bool = True, label: str = "get"):
        self.total_files = total_files
        self.done_bytes = 0  # of finished files
        self.done_files = 0
        self.partial: dict[str, int] = {}  # key -> bytes so far
        self._lock = threading.Lock()
        self._bar = _bar(label, total_bytes or None, unit="B", unit_scale=True, unit_divisor=1024) if enabled else None
        self._files()

    @property
    def bytes_now(self) -> int:
        return self.done_bytes + sum(self.partial.values())

    def update(self, key: str, nbytes: int) -> None:
        with self._lock:
            self.partial[key] = nbytes
            self._show()

    def finish(self, key: str, size: Optional[int]) -> None:
        with self._lock:
            self.done_bytes += size if size is not None else self.partial.get(key, 0)
            self.partial.pop(key, None)
            self.done_files += 1
            self._files()
            self._show()

    def _files(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.done_files}/{self.total_files} files", refresh=False)

    def _show(self) -> None:
        if self._bar is not None:
            self._bar.update(self.bytes_now - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            _close(self._bar)
            self._bar = None
