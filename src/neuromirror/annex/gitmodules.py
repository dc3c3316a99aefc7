"""The ``.gitmodules`` file of a dataset with subdatasets, as the writers keep it.

A subdataset is a gitlink (mode 160000) in the tree plus a section in
``.gitmodules`` naming its path, its URL (relative, ``./<path>``, so that it
resolves against whatever a clone was cloned from) and its DataLad id.  The
writers build commits without a work tree, so they compute the new file from
the parent commit's one and the subdatasets that were put or deleted.  The
section name is the path, as DataLad names them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from neuromirror.records import SubdatasetEntry
from neuromirror.util import gitutil

FILE = ".gitmodules"

Modules = dict[str, dict[str, str]]


def read(repo: Path, rev: Optional[str]) -> Modules:
    """name -> {key: value} of the ``.gitmodules`` in ``rev`` (empty when there is none)."""
    if not rev:
        return {}
    proc = gitutil.run(repo, "config", "--blob", f"{rev}:{FILE}", "-z", "--list", check=False)
    if proc.returncode != 0:
        return {}
    mods: Modules = {}
    for item in proc.stdout.decode("utf-8", "surrogateescape").split("\0"):
        if not item or "\n" not in item:
            continue
        name, value = item.split("\n", 1)
        if not name.startswith("submodule.") or "." not in name[len("submodule.") :]:
            continue
        sub, key = name[len("submodule.") :].rsplit(".", 1)
        mods.setdefault(sub, {})[key] = value
    return mods


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(mods: Modules) -> bytes:
    out: list[str] = []
    for name in sorted(mods):
        out.append(f"[submodule {_quote(name)}]")
        for key, value in mods[name].items():
            out.append(f"\t{key} = {_quote(value)}")
    return ("\n".join(out) + "\n").encode("utf-8", "surrogateescape") if out else b""


def updated(mods: Modules, puts: Iterable[SubdatasetEntry], deleted: Iterable[str]) -> bool:
    """Apply subdatasets put (``SubdatasetEntry``) and paths deleted to ``mods``; True if it changed."""
    before = {k: dict(v) for k, v in mods.items()}
    gone = set(deleted)
    if gone:
        for name in [n for n, m in mods.items() if m.get("path", n) in gone]:
            del mods[name]
    for e in puts:
        path = e.path
        for name in [n for n, m in mods.items() if m.get("path", n) == path and n != path]:
            del mods[name]
        section = {"path": path, "url": e.url}
        if e.datalad_id:
            section["datalad-id"] = e.datalad_id
        mods[path] = section
    return mods != before
