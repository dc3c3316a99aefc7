"""This process's C heap bounded for a long keep: glibc's arenas and thresholds set, its free pages given back.

A keep of 10^6 Zarr chunks grew ~460 bytes a key in a process whose Python objects were a tenth of that:
the rest was free chunks glibc kept (read with gdb off the running keep), see :func:`bound_heap`.
"""

from __future__ import annotations

from typing import Any

#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_libc: Any = None


def _glibc() -> Any:
    """The C library's malloc controls, where they are glibc's (None elsewhere: nothing to bound)."""
    global _libc
    if _libc is None:
        import ctypes

        try:
            lib = ctypes.CDLL(None)
            _libc = lib if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim") else False
        except OSError:
            _libc = False
    return _libc or None


def bound_heap() -> bool:
    """This process's C heap held free memory to the end of a long keep: a keep of 10^6 Zarr chunks grew
    ~460 bytes a key, the Python objects it held a tenth of that; the rest free chunks glibc kept, most in
    the arenas of the ``-J`` threads (one each), among the buffers of 10^6 downloads.  From here on: two
    arenas for all threads (their free chunks reused by any), and fixed thresholds, so that a large block
    freed goes back to the system and the heap's free top is returned past 4 MiB (glibc's dynamic
    thresholds had grown with the largest blocks freed).  True where applied (glibc)."""
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(_M_ARENA_MAX, 2)
    ok &= libc.mallopt(_M_MMAP_THRESHOLD, 256 << 10)
    ok &= libc.mallopt(_M_TRIM_THRESHOLD, 4 << 20)
    return bool(ok)


def trim_heap() -> None:
    """Free pages inside the C heap's free chunks given back to the system (glibc's ``malloc_trim``)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
