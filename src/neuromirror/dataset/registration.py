"""A subdataset's entry in the root superdataset, written as ``datalad create -d ROOT`` writes it.

``datalad create -d ROOT PATH`` leaves, besides the gitlink it commits, a section in the root's
``.gitmodules`` (``path``, ``url = ./PATH``, ``datalad-id``: what ``datalad subdatasets`` and
``datalad get -r`` of a clone read) and one in the root's ``.git/config`` (``active = true``,
``url``: what ``git submodule`` reads in the mirror itself).  The mirror makes its source
datasets directly (:mod:`.fast_init`), so it writes those sections itself, in text exactly as
DataLad's, without a child process: a cold ``sync 'dandi:*'`` registers thousands of them.

The caller holds the root lock (nothing else writes these files meanwhile).  The root's
``.git/config`` is written first and ``.gitmodules`` last, so that a kill between the two leaves
a dataset :func:`registered` does not yet see, and the next registration completes it.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Optional

from neuromirror.util import gitutil

GITMODULES = ".gitmodules"
#: a path written unquoted, as git config writes it (anything else is quoted)
_PLAIN = re.compile(r"[A-Za-z0-9_./+@:-]+")
_PATH_LINE = re.compile(r"^\s*path\s*=\s*(.*?)\s*$")

_cache: dict[Path, tuple[tuple[int, int, int], frozenset[str]]] = {}
_cache_lock = threading.Lock()


def _value(text: str) -> str:
    """A value as git config writes it: plain when it can be, else quoted."""
    return text if _PLAIN.fullmatch(text) else _value_quoted(text)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return text


def registered_paths(root: Path) -> frozenset[str]:
    """The ``path`` values of the root's ``.gitmodules`` work-tree file, read once per change of it.

    Every ``ensure_dataset`` asks this; at 2,000 sources the file is ~250 kB, so it is parsed
    again only when its size, mtime or inode moved.
    """
    file = root / GITMODULES
    try:
        st = os.stat(file)
    except FileNotFoundError:
        return frozenset()
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    with _cache_lock:
        hit = _cache.get(file)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    paths = set()
    for line in file.read_text(errors="surrogateescape").splitlines():
        m = _PATH_LINE.match(line)
        if m:
            paths.add(_unquote(m.group(1)))
    found = frozenset(paths)
    with _cache_lock:
        _cache[file] = (stamp, found)
    return found


def registered(root: Path, relpath: str) -> bool:
    return relpath in registered_paths(root)


def _section_name(root: Path, relpath: str) -> Optional[str]:
    """The name of the ``.gitmodules`` section whose ``path`` is ``relpath`` (None if there is none)."""
    out = gitutil.out(root, "config", "-f", GITMODULES, "-z", "--get-regexp", r"^submodule\..*\.path$", check=False)
    for item in out.split("\0"):
        key, _, value = item.partition("\n")
        if value == relpath and key.startswith("submodule.") and key.endswith(".path"):
            return key[len("submodule.") : -len(".path")]
    return None


def register(root: Path, relpath: str, dataset_id: Optional[str]) -> None:
    """Write ``relpath``'s sections in the root's ``.git/config`` and ``.gitmodules`` (the caller commits).

    A section already there for that path (a dataset discarded and made again after an
    interrupted creation) gets the new dataset's id.
    """
    url = "./" + relpath
    config = root / ".git" / "config"
    text = config.read_text(errors="surrogateescape")
    header = f"[submodule {_value_quoted(relpath)}]"
    if header not in text.splitlines():
        sep = "" if text.endswith("\n") else "\n"
        _replace(config, root, text + sep + f"{header}\n\tactive = true\n\turl = {_value(url)}\n")
    gm = root / GITMODULES
    if relpath in registered_paths(root):
        name = _section_name(root, relpath)
        if name is not None and dataset_id:
            gitutil.run(root, "config", "-f", GITMODULES, f"submodule.{name}.datalad-id", dataset_id)
        return
    current = gm.read_text(errors="surrogateescape") if gm.exists() else ""
    sep = "" if not current or current.endswith("\n") else "\n"
    section = f"{header}\n\tpath = {_value(relpath)}\n\turl = {_value(url)}\n"
    if dataset_id:
        section += f"\tdatalad-id = {dataset_id}\n"
    _replace(gm, root, current + sep + section)


def _replace(file: Path, root: Path, text: str) -> None:
    """Write ``file`` whole or not at all (a kill mid-write must not truncate the root's .gitmodules).

    The temporary file is in the root's ``.git``, where debris of a kill is nobody's concern.
    """
    tmp = root / ".git" / f"neuromirror-{file.name.lstrip('.')}.tmp"
    tmp.write_text(text, errors="surrogateescape")
    os.replace(tmp, file)


def _value_quoted(name: str) -> str:
    """A section's subsection name: always quoted (``[submodule "dandi/000027"]``)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
