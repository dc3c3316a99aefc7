"""Which paths from a remote archive may become files in a dataset.

A path is data from the internet.  Anything that could escape the dataset,
reach into ``.git``/``.datalad``, or change how git treats other files is
refused with a reason, never "fixed": a mirror that silently renames would
lie about what the archive holds.
"""

from __future__ import annotations

import functools
import re
from typing import Optional

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096
_GIT_SPECIAL = {".gitattributes", ".gitmodules", ".gitignore"}
#: one scan instead of a Python loop over characters: it runs twice per entry, 10^5 times a sync
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_path(path: object, reserved: tuple[str, ...] = ()) -> Optional[str]:
    """Return why ``path`` is refused, or None when it is safe to write."""
    if not isinstance(path, str) or not path:
        return "empty or non-text path"
    if _CONTROL.search(path):
        return "control character in path"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return "absolute path"
    if "\\" in path:
        return "backslash in path"
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return "path is not valid UTF-8"
    if len(encoded) > MAX_PATH_BYTES:
        return f"path longer than {MAX_PATH_BYTES} bytes"
    cut = path.rfind("/")
    if cut >= 0:
        reason = _check_dir(path[:cut])
        if reason:
            return reason
    elif path == ".datalad":
        return "path inside .datalad"
    reason = _check_part(path[cut + 1 :])
    if reason:
        return reason
    if path in reserved:
        return f"path is reserved for the mirror's own metadata ({path})"
    return None


@functools.lru_cache(maxsize=4096)
def _check_dir(directory: str) -> Optional[str]:
    """The verdict on a file's directory, asked once for all its files (a listing goes folder by folder)."""
    parts = directory.split("/")
    for part in parts:
        reason = _check_part(part)
        if reason:
            return reason
    if parts[0] == ".datalad":
        return "path inside .datalad"
    return None


def _check_part(part: str) -> Optional[str]:
    if part in ("", ".", ".."):
        return "path escapes its dataset ('..', '.' or empty component)"
    if len(part) * 4 > MAX_COMPONENT_BYTES and len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
        return f"path component longer than {MAX_COMPONENT_BYTES} bytes"
    if part.lower() == ".git" or part.lower().startswith(".git/"):
        return "path inside .git"
    if part in _GIT_SPECIAL:
        return f"path would change git's behaviour ({part})"
    return None
