"""Lock files: the exact data state a piece of work used, in a few readable lines.

A lock file is TOML (read with the standard library's ``tomllib``)::

    # neuromirror lock file ...
    lock-version = 1
    created = "2026-11-21T17:49:50Z"

    [[dataset]]
    source = "dandi:000027"
    version = "0.230629.1955"
    kind = "published"
    commit = "6770f5ea57738e0c1b98e756cf66baec5fe5fd9e"
    tag = "0.230629.1955"
    doi = "10.80507/dandi.000027/0.230629.1955"
    url = "https://gin.g-node.org/lab/dandi-000027"   # where to clone the dataset from
    path = "dandi/000027"                               # where it goes under reproduce --to DIR
    archive-url = "https://dandiarchive.org/dandiset/000027/0.230629.1955"
    files = 4
    bytes = 15500
    file-list-digest = "sha256:..."                     # see filelist.file_list_digest
    store = "/data/keep"                                # optional: the lab's store holding the content
    stores = ["/data/keep", "/backup/keep"]             # optional: every store, when it was kept into several
    file-list = [                                       # optional (lock --files)
      ["sub-01/sub-01_ecephys.nwb", "SHA256E-s9000--49b0....nwb"],
    ]

``neuromirror reproduce`` rebuilds each dataset under ``DIR/<path>`` and fails
when the commit, the file list or any content differs.  ``store`` (optional; lock files
without it stay valid) is the read location of the store ``neuromirror keep`` copied the
version's content into: ``reproduce`` enables it in each clone (also when the clone's
git-annex branch does not name it), so that content the archive lost comes from there.
``stores`` (written only when there are several; ``store`` is then its first) names them all.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from neuromirror.errors import NeuromirrorError
from neuromirror.results import Item, Result, Status
from neuromirror.util.dates import now_z

LOCK_VERSION = 1
_HEX = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class LockError(NeuromirrorError, ValueError):
    """A lock file that cannot be used; the message names the file and the field."""


@dataclass
class LockedDataset:
    source: str
    version: str
    commit: str
    url: str
    path: str
    file_list_digest: str
    files: int
    bytes: int
    kind: Optional[str] = None
    tag: Optional[str] = None
    doi: Optional[str] = None
    archive_url: Optional[str] = None
    file_list: Optional[list[tuple[str, str]]] = None
    store: Optional[str] = None  # the store's read location (a directory path), when the content is kept
    stores: tuple[str, ...] = ()  # every store's, when the content was kept into several (store: the first)

    @property
    def spec(self) -> str:
        return f"{self.source}@{self.version}"

    @property
    def all_stores(self) -> list[str]:
        """Every store the lock names for the dataset, ``store`` first."""
        return list(dict.fromkeys([*([self.store] if self.store else []), *self.stores]))


@dataclass
class Lock(Result):
    """A lock file's content (``neuromirror lock``, ``Mirror.lock``); ``notes``: what building it had to say
    (a dataset never published, a store not holding everything), never written into the file.  An ``ok`` item
    per dataset named (a state the lock cannot name raises); ``to_json()`` is the file's TOML as a dict."""

    datasets: list[LockedDataset]
    created: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def items(self) -> list[Item]:
        return [Item(Status.OK, d.spec, f"commit {d.commit}") for d in self.datasets]

    def __repr__(self) -> str:
        return f"<Lock {', '.join(f'{d.spec} {d.commit[:7]}' for d in self.datasets)}>"

    def to_json(self) -> dict[str, Any]:
        import tomllib

        loaded: dict[str, Any] = tomllib.loads(self.dumps())
        return loaded

    def dumps(self) -> str:
        """The TOML text of the lock file."""
        return dumps(self)

    def write(self, path: Path | str) -> None:
        """Write the lock file (``-``: stdout), atomically."""
        write(path, self)

    def lines(self) -> list[str]:
        """One line per dataset: what ``lock -o FILE`` says it wrote."""
        return [
            f"{d.source}@{d.version}: commit {d.commit[:12]}, {d.files} files, {d.file_list_digest[:19]}…  ({d.url})"
            + (f", kept in {' and '.join(d.all_stores)}" if d.all_stores else "")
            for d in self.datasets
        ]


# -- writing ------------------------------------------------------------------
def toml_str(value: str) -> str:
    """A TOML basic string (escapes every control character TOML forbids)."""
    out = ['"']
    for ch in value:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04X}")
        elif 0xD800 <= o <= 0xDFFF:  # surrogate-escaped bytes of a non-UTF-8 name
            out.append(f"\\u{0xFFFD:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def dumps(lock: Lock) -> str:
    created = lock.created or now_z()
    lines = [
        "# neuromirror lock file: the exact state of the data this work used.",
        "# Rebuild it anywhere with:  neuromirror reproduce THIS-FILE --to DIR",
        "# (each dataset is cloned to DIR/<path>; its commit, file list and every byte are checked)",
        f"lock-version = {LOCK_VERSION}",
        f"created = {toml_str(created)}",
    ]
    for d in lock.datasets:
        lines += ["", "[[dataset]]"]
        fields: list[tuple[str, Any]] = [
            ("source", d.source),
            ("version", d.version),
            ("kind", d.kind),
            ("commit", d.commit),
            ("tag", d.tag),
            ("doi", d.doi),
            ("url", d.url),
            ("path", d.path),
            ("archive-url", d.archive_url),
            ("files", d.files),
            ("bytes", d.bytes),
            ("file-list-digest", d.file_list_digest),
            ("store", d.store),
        ]
        for name, value in fields:
            if value is None:
                continue
            lines.append(f"{name} = {value}" if isinstance(value, int) else f"{name} = {toml_str(str(value))}")
        if len(d.all_stores) > 1:
            lines.append(f"stores = [{', '.join(toml_str(x) for x in d.all_stores)}]")
        if d.file_list is not None:
            lines.append("file-list = [")
            lines += [f"  [{toml_str(p)}, {toml_str(k)}]," for p, k in d.file_list]
            lines.append("]")
    return "\n".join(lines) + "\n"


def write(path: Path | str, lock: Lock) -> None:
    text = dumps(lock)
    if str(path) == "-":
        sys.stdout.write(text)
        return
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)


# -- reading ------------------------------------------------------------------
def loads(text: str, name: str = "lock file") -> Lock:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"{name} is not valid TOML: {exc}") from None
    version = data.get("lock-version")
    if version != LOCK_VERSION:
        raise LockError(f"{name}: lock-version {version!r} is not supported (this neuromirror reads {LOCK_VERSION})")
    raw = data.get("dataset")
    if not isinstance(raw, list) or not raw:
        raise LockError(f"{name} names no [[dataset]]")
    datasets = [_dataset(d, i, name) for i, d in enumerate(raw, 1)]
    paths = [d.path for d in datasets]
    for p in paths:
        if paths.count(p) > 1:
            raise LockError(f"{name}: two datasets with path {p!r}")
    return Lock(
        datasets,
        data.get("created"),
        {k: v for k, v in data.items() if k not in ("dataset", "lock-version", "created")},
    )


class _Table:
    """One ``[[dataset]]`` table read field by field: an error names the dataset and the field, and what it
    must be."""

    def __init__(self, d: dict[str, Any], where: str) -> None:
        self.d, self.where = d, where

    def req(self, key: str, kind: type = str) -> Any:
        if key not in self.d:
            raise LockError(f"{self.where}: missing {key!r}")
        v = self.d[key]
        if not isinstance(v, kind) or (kind is str and not v):
            raise LockError(f"{self.where}: {key!r} must be a non-empty {kind.__name__}")
        return v

    def opt(self, key: str) -> Optional[str]:
        v = self.d.get(key)
        if v is not None and not isinstance(v, str):
            raise LockError(f"{self.where}: {key!r} must be a string")
        return v


def _dataset(d: Any, i: int, name: str) -> LockedDataset:
    where = f"{name}, dataset #{i}"
    if not isinstance(d, dict):
        raise LockError(f"{where}: not a table")
    t = _Table(d, where)
    commit = t.req("commit").lower()
    if not _HEX.match(commit):
        raise LockError(f"{where}: commit {d['commit']!r} is not a full git commit id")
    digest = t.req("file-list-digest")
    if not _DIGEST.match(digest):
        raise LockError(f"{where}: file-list-digest {digest!r} is not sha256:<64 hex digits>")
    path = _relative_path(t)
    file_list = _file_list(t)
    files = t.req("files", int)
    nbytes = t.req("bytes", int)
    stores = d.get("stores", [])
    if not isinstance(stores, list) or not all(isinstance(x, str) and x for x in stores):
        raise LockError(f"{where}: stores must be a list of store locations")
    return LockedDataset(
        source=t.req("source"),
        version=t.req("version"),
        commit=commit,
        url=t.req("url"),
        path=path,
        file_list_digest=digest,
        files=files,
        bytes=nbytes,
        kind=t.opt("kind"),
        tag=t.opt("tag"),
        doi=t.opt("doi"),
        archive_url=t.opt("archive-url"),
        file_list=file_list,
        store=t.opt("store"),
        stores=tuple(stores),
    )


def _relative_path(t: _Table) -> str:
    """Where the dataset goes below the rebuilt tree: relative, and never out of it."""
    path = str(t.req("path"))
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in path:
        raise LockError(f"{t.where}: path {path!r} must be a relative path without '..'")
    return path


def _file_list(t: _Table) -> Optional[list[tuple[str, str]]]:
    """The optional ``file-list``: [path, key] pairs (None when the lock carries only the digest)."""
    if "file-list" not in t.d:
        return None
    fl = t.d["file-list"]
    if not isinstance(fl, list) or not all(
        isinstance(r, list) and len(r) == 2 and all(isinstance(x, str) for x in r) for r in fl
    ):
        raise LockError(f"{t.where}: file-list must be a list of [path, key] pairs")
    return [(r[0], r[1]) for r in fl]


def read(path: Path | str) -> Lock:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockError(f"no lock file at {p}") from None
    except UnicodeDecodeError:
        raise LockError(f"{p} is not UTF-8 text") from None
    return loads(text, str(p))


# -- building from the mirror ---------------------------------------------------
def lock_entry(
    mirror: Any,
    spec: Any,
    *,
    url_base: Optional[str] = None,
    remote: str = "published",
    with_files: bool = False,
    store: Optional[str] = None,
) -> tuple[LockedDataset, list[str]]:
    """The lock record of a SPEC[@VERSION] from the mirror, and notes for the user.

    ``store``: the read location of the store to record (``--store``); else the store the
    dataset's git-annex branch says holds content of the version (``keep`` recorded it), if any.
    """
    from neuromirror.pin.citation import citation_info
    from neuromirror.pin.filelist import file_list_digest, walk_files
    from neuromirror.pin.locations import is_local, is_ria, join_url, local_path, resolve_url
    from neuromirror.pin.published import published_url
    from neuromirror.pin.record import pin_record, state_row
    from neuromirror.pin.retrieve import RetrieveError
    from neuromirror.pin.stores import recorded_stores

    notes: list[str] = []
    rec = pin_record(mirror, spec)
    row = state_row(mirror, spec)  # an older draft state named by its commit: version = that commit
    relpath = mirror.index.source(spec.source).dataset
    ds = Path(rec["dataset"])
    if url_base and is_ria(url_base):
        url = resolve_url(url_base, relpath)  # ria+...#~<relpath>, checked: the store has the alias
    elif url_base:
        url = join_url(url_base, relpath)
        if is_local(url):
            p = local_path(url)
            if not (p / "HEAD").exists() and not (p / ".git").exists():
                raise RetrieveError(
                    f"{spec.source}: no repository at {url} (publish {spec.source} to {url_base} first)"
                )
    else:
        published = published_url(ds, remote)
        url = published if published is not None else str(ds)
        if published is None:
            notes.append(
                f"{spec.source}: the lock names the mirror's local path {ds}; for a lock others can use, "
                f"publish the dataset (neuromirror publish) or give the base url others clone from"
            )
    fl = file_list_digest(walk_files(ds, rec["commit"]), keep=with_files)
    kept = [] if store else recorded_stores(ds, rec["commit"])
    info = citation_info(mirror, spec)
    entry = LockedDataset(
        source=spec.source,
        version=rec["version"],
        commit=rec["commit"],
        url=url,
        path=relpath,
        file_list_digest=fl.digest,
        files=fl.files,
        bytes=fl.bytes,
        kind=row.kind if row else None,
        tag=rec["tag"],
        doi=rec["doi"],
        archive_url=info.url,
        file_list=fl.entries if with_files else None,
        store=store or (kept[0] if kept else None),
        stores=() if store else tuple(kept),
    )
    return entry, notes


def build(mirror: Any, specs: Sequence[Any], **kwargs: Any) -> tuple[Lock, list[str]]:
    entries: list[LockedDataset] = []
    notes: list[str] = []
    for spec in specs:
        e, n = lock_entry(mirror, spec, **kwargs)
        if any(x.path == e.path for x in entries):
            raise LockError(f"{spec.source} is named twice: a lock holds one version per dataset")
        entries.append(e)
        notes += n
    return Lock(entries, notes=notes), notes
