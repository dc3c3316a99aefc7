"""Progress on stderr for long work: a line now and then, never a flood."""

from __future__ import annotations

import sys
import time
from typing import Optional


def human_bytes(n: Optional[int], none: str = "-") -> str:
    """1536 -> '1.5 KiB'."""
    if n is None:
        return none
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class Progress:
    """A ProgressCallback printing ``stage: done/total (rate/s, ETA)`` at most every ``every`` seconds."""

    def __init__(self, label: str, *, enabled: bool = True, every: Optional[float] = None):
        self.label = label
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.every = every if every is not None else (0.5 if self.tty else 5.0)
        self.t0 = time.monotonic()
        self.last = 0.0

    def __call__(self, stage: str, done: int, total: Optional[int]) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < self.every and not (total and done >= total):
            return
        self.last = now
        elapsed = max(now - self.t0, 1e-6)
        rate = done / elapsed
        text = f"{self.label}: {stage} {done}"
        if total:
            text += f"/{total}"
            if rate > 0 and done < total:
                text += f" ETA {int((total - done) / rate)}s"
        text += f" ({rate:.0f}/s)"
        end = "\r" if self.tty else "\n"
        sys.stderr.write(text.ljust(70) + end)
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write(" " * 70 + "\r")
            sys.stderr.flush()
