"""Rebuild the index from the datasets, which are the truth.

Every commit a sync makes carries ``Neuromirror-*`` trailers (source, label,
kind, remote modification stamp, DOI); tags carry the citation; the tree
gives paths and keys; the git-annex branch gives the URLs.  That is all the
index holds about versions, so it can always be recomputed from git.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterator, Optional

from neuromirror.annex.keys import key_from_symlink, log_path, parse_key
from neuromirror.annex.logs import BRANCH, web_urls
from neuromirror.index import store_checks
from neuromirror.index.db import Index
from neuromirror.index.trailers import parse_trailers
from neuromirror.records import GIT, MD5, SHA256, SUBDATASET, VERIFY_ON_GET, PreviousFile
from neuromirror.util import gitutil

_KIND_BY_BACKEND = {"SHA256E": SHA256, "SHA256": SHA256, "MD5E": MD5, "MD5": MD5}


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


def tree_files(
    ds: Path, commit: str, cat: gitutil.CatFile, url_cache: dict[str, tuple[str, ...]]
) -> Iterator[PreviousFile]:
    for mode, typ, sha, path in gitutil.ls_tree(ds, commit):
        if typ == "commit":  # a subdataset (gitlink), e.g. a DANDI Zarr asset
            yield PreviousFile(path, None, None, SUBDATASET, sha, (), None)
            continue
        if typ != "blob" or path.startswith(".datalad/") or path in (".gitattributes", ".gitmodules"):
            continue
        data = cat.get(sha) or b""
        if mode == "120000":
            key = key_from_symlink(data.decode("utf-8", "surrogateescape"))
            if key:
                info = parse_key(key)
                if key not in url_cache:
                    url_cache[key] = _urls(cat, key)
                kind = _KIND_BY_BACKEND.get(info["backend"], VERIFY_ON_GET)
                yield PreviousFile(path, key, info["size"], kind, info["checksum"], url_cache[key], None)
                continue
        yield PreviousFile(path, None, len(data), GIT, hashlib.sha256(data).hexdigest(), (), None)


def _urls(cat: gitutil.CatFile, key: str) -> tuple[str, ...]:
    return web_urls(cat.get(web_log_spec(key)))


def web_log_spec(key: str) -> str:
    """``git cat-file`` spec of a key's URL log on the git-annex branch."""
    return f"{BRANCH}:{log_path(key, '.log.web')}"


def web_log_blobs(repo: Path) -> dict[str, str]:
    """Path -> blob id of every key's URL log on the git-annex branch (empty without the branch).

    One ``ls-tree``: reading the logs by blob id afterwards spares git a search of the
    branch's 4,096-entry trees per key, which a ``git-annex:<path>`` spec costs.
    """
    if gitutil.ref_sha(repo, BRANCH) is None:
        return {}
    return {
        path: sha for _, typ, sha, path in gitutil.ls_tree(repo, BRANCH) if typ == "blob" and path.endswith(".log.web")
    }


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
    url_cache: dict[str, tuple[str, ...]] = {}
    with gitutil.CatFile(ds) as cat:
        for commit, date, tr in version_commits(ds, source):
            files = list(tree_files(ds, commit, cat, url_cache))
            if remote_id_for is not None:
                files = [
                    PreviousFile(
                        f.path, f.key, f.size, f.checksum_kind, f.checksum, f.urls, remote_id_for(f.path, f.key, f.urls)
                    )
                    for f in files
                ]
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
                entries=iter(files),
                doi=tr.get("doi"),
                citation=_citation(tag_msg),
                meta=json.loads(tr["meta"]) if tr.get("meta") else None,
                synced_at=date,
            )
            n += 1
    return n


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
