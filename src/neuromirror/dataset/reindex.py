"""Rebuild the index from the datasets, which are the truth.

Every commit a sync makes carries ``Neuromirror-*`` trailers (source, label,
kind, remote modification stamp, DOI); tags carry the citation; the tree
gives paths and keys; the git-annex branch gives the URLs.  That is all the
index holds about versions, so it can always be recomputed from git.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional

from neuromirror.annex.tree import UrlLogs, iter_version
from neuromirror.errors import IndexDamaged
from neuromirror.index import store_checks
from neuromirror.index.connection import is_damage
from neuromirror.index.db import Index
from neuromirror.index.trailers import parse_trailers
from neuromirror.records import VersionFile
from neuromirror.util import gitutil

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets


def version_commits(ds: Path, source: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(commit, author date, trailers) of the sync commits, oldest first."""
    raw = gitutil.run(ds, "log", "--reverse", "--format=%H%x1f%aI%x1f%B%x1e", "HEAD").stdout.decode()
    for rec in raw.split("\x1e"):
        rec = rec.strip("\n")
        if not rec:
            continue
        commit, date, body = rec.split("\x1f", 2)
        tr = parse_trailers(body)
        if tr.get("source") == source:
            yield commit, date, tr


def tags_by_commit(ds: Path) -> dict[str, list[tuple[str, str]]]:
    """commit -> [(tag name, tag message)]."""
    out = gitutil.run(
        ds, "for-each-ref", "refs/tags", "--format=%(refname:short)%1f%(*objectname)%1f%(objectname)%1f%(contents)%1e"
    ).stdout.decode()
    res: dict[str, list[tuple[str, str]]] = {}
    for rec in out.split("\x1e"):
        rec = rec.strip("\n")
        if not rec:
            continue
        name, peeled, obj, contents = rec.split("\x1f", 3)
        res.setdefault(peeled or obj, []).append((name, contents))
    return res


def _row(f: VersionFile, remote_id_for: Optional[RemoteIdRule]) -> VersionFile:
    """What the index records of a file read from the tree: no repository or blob, the archive's id."""
    rid = remote_id_for(f.path, f.key, f.urls) if remote_id_for is not None else None
    return VersionFile(f.path, f.key, f.size, f.checksum_kind, f.checksum, f.urls, rid)


def _citation(tag_message: str) -> Optional[str]:
    for line in tag_message.splitlines():
        if line.startswith("Citation: "):
            return line[len("Citation: ") :].strip()
    return None


#: a source module's ``remote_id_for(path, key, urls)``: the archive's id of a file, from what git holds
RemoteIdRule = Callable[[str, Optional[str], tuple[str, ...]], Optional[str]]


def reindex_dataset(
    index: Index, source: str, ds: Path, relpath: str, remote_id_for: Optional[RemoteIdRule] = None
) -> int:
    """Replace the index rows of ``source`` by what its dataset says; return the version count."""
    import json

    archive, remote = source.split(":", 1)
    if remote_id_for is None:
        try:
            from neuromirror.sources import module_for

            remote_id_for = getattr(module_for(archive), "remote_id_for", None)
        except Exception:
            remote_id_for = None
    index.forget_source(source)
    store_checks.drop_marks(index, source)  # its versions get new rows: the next keep reads them in full
    index.ensure_source(source, archive, remote, relpath)
    tags = tags_by_commit(ds)
    n = 0
    logs = UrlLogs(ds, cache={})  # a key's URLs read once for all the versions
    for commit, date, tr in version_commits(ds, source):
        label = tr.get("label", "")
        tag_names = [t for t in tags.get(commit, []) if t[0] == label] or tags.get(commit, [])
        tag, tag_msg = tag_names[0] if tag_names else (None, "")
        if tr.get("kind", "snapshot") != "draft" and tag is None:
            # interrupted between commit and tag: not a finished version; the next sync tags it
            continue
        index.record_version(
            source,
            label=label,
            kind=tr.get("kind", "snapshot"),
            commit=commit,
            tag=tag if tr.get("kind") != "draft" else None,
            remote_modified=tr.get("remote-modified"),
            date=date,
            entries=(_row(f, remote_id_for) for f in iter_version(ds, commit, urls=logs)),
            doi=tr.get("doi"),
            citation=_citation(tag_msg),
            meta=json.loads(tr["meta"]) if tr.get("meta") else None,
            synced_at=date,
        )
        n += 1
    return n


def set_aside_damaged(datasets: Datasets) -> Optional[Path]:
    """The index moved aside when it is damaged, for ``reindex`` to build a new one: where it went, or None.

    Every page is read (``PRAGMA quick_check``): a rebuild reads every dataset anyway."""
    try:
        if datasets.index.db.conn.execute("PRAGMA quick_check").fetchone()[0] == "ok":
            return None
    except IndexDamaged:
        pass
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
    datasets.close()
    return set_aside(datasets.index_path)


def set_aside(index: Path) -> Path:
    """The damaged index file (and its ``-wal`` and ``-shm``) renamed ``index.sqlite.damaged-<UTC time>``, beside
    it: kept for whoever wants to look at it, out of the way of the index ``reindex`` builds."""
    import os
    import time

    aside = index.with_name(f"{index.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    for suffix in ("", "-wal", "-shm"):
        if os.path.lexists(f"{index}{suffix}"):
            os.replace(f"{index}{suffix}", f"{aside}{suffix}")
    return aside


def reindex_all(index: Index, root: Path, relpaths: list[str]) -> dict[str, int]:
    """Rebuild every source whose dataset is registered under ``root``."""
    counts: dict[str, int] = {}
    for rel in relpaths:
        ds = root / rel
        if not (ds / ".git").exists():
            continue
        out = gitutil.out(ds, "log", "-1", "--format=%B", "--grep=^Neuromirror-Source: ", check=False)
        source = parse_trailers(out).get("source")
        if source:
            counts[source] = reindex_dataset(index, source, ds, rel)
    return counts
