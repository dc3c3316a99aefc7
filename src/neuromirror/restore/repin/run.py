"""A repin run: the named versions' pinned keys -> which pins died -> their bytes found again -> recorded.

Per batch of keys (their logs read once, their places listed together): a key is *pinned* when its
``.log.web`` on the git-annex branch holds a ``?versionId=`` URL of an S3 object (the datasets are the
truth; the index a view), and *dead* when S3 holds none of those versions any more.  Each dead key is
looked for (:mod:`.find`); one found gets, on its dataset's git-annex branch, the new pinned URL
(``registerurl``) and loses the dead ones (``unregisterurl`` from the web remote), its web mark set back
to present where ``verify --content`` had marked it gone — through the branch's one writer
(:mod:`neuromirror.annex.branch_writer`), under the source's lock — and the index's file states follow.
The git-annex branch is every clone's: a fresh ``datalad clone`` of an old tag and ``datalad get`` read
the new URL, no neuromirror needed.  A dry run decides the same and writes nothing.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Sequence
from urllib.parse import unquote

from neuromirror.annex.logs import branch_head, log_state, read_logs, web_urls
from neuromirror.dataset.files import VersionFiles, each_version_file
from neuromirror.index.version_rows import add_entry_urls, drop_entry_urls
from neuromirror.keep.inflight import batches
from neuromirror.restore.gitfiles import GitRows, git_objects
from neuromirror.restore.objects import ArchiveObject, Unplaced, locator_for, place
from neuromirror.restore.repin.find import Dead, Where, at_moved, elsewhere
from neuromirror.restore.repin.report import Pin, RepinReport
from neuromirror.restore.repin.s3 import Buckets
from neuromirror.util import gitutil

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets
    from neuromirror.index.rows import Version

#: keys looked at per batch: their logs, their places' listings, their records (bounded memory)
BATCH = 5000


@dataclass
class RepinOptions:
    where: Where
    dry_run: bool = False
    jobs: int = 8


def repin(mirror: Datasets, versions: Sequence[Version], options: RepinOptions, report: RepinReport) -> None:
    """Every pinned key of ``versions`` looked at, the dead ones found again and (unless a dry run) recorded."""
    start = time.monotonic()
    s3 = Buckets(options.jobs)
    try:
        for batch, _ in batches(_objects(mirror, versions, report), BATCH):
            _batch(mirror, batch, options, report, s3)
    finally:
        report.requests, report.bytes_read = s3.requests, s3.bytes_read
        report.seconds += time.monotonic() - start


def _objects(mirror: Datasets, versions: Sequence[Version], report: RepinReport) -> Iterator[ArchiveObject]:
    """Each (dataset, key) of the versions once, as the first file found holding it; files the archive never
    served from S3 are counted as unpinned."""
    seen: set[tuple[str, str]] = set()
    for v in versions:
        label, locate = f"{v.source}@{v.label}", locator_for(v.source)
        listing, in_git = VersionFiles(), GitRows(mirror.index)
        ds = mirror.dataset_path(v.relpath)
        annexed = (place(f, v.source, label, locate) for f in each_version_file(in_git, ds, v.id, listing))
        for got in chain(annexed, git_objects(ds, v.commit, in_git.files, v.source, label, locate)):
            if isinstance(got, Unplaced):
                report.unpinned += 1
            elif (got.repo, got.key) not in seen:
                seen.add((got.repo, got.key))
                yield got


def _batch(
    mirror: Datasets, batch: list[ArchiveObject], options: RepinOptions, report: RepinReport, s3: Buckets
) -> None:
    keys = _pinned(batch, report)
    report.keys += len(keys)
    alive = s3.alive((p, v) for d in keys for _, p, v, _ in d.pins)
    dead = [d for d in keys if not any((p, v) in alive for _, p, v, _ in d.pins)]
    report.serving += len(keys) - len(dead)
    _git_md5(dead)
    at_moved(dead, options.where, s3)
    rest = [d for d in dead if d.found is None]
    with ThreadPoolExecutor(max(1, options.jobs), thread_name_prefix="repin") as pool:
        list(pool.map(lambda d: elsewhere(d, options.where, s3), rest))
    found = [d for d in dead if d.found is not None]
    for d in dead:
        _tell(d, report)
    if found and not options.dry_run:
        report.retired += _record(mirror, found)


def _pinned(batch: list[ArchiveObject], report: RepinReport) -> list[Dead]:
    """The batch's keys with their pins (versioned S3 URLs on the branch); the others counted as unpinned."""
    by_repo: dict[str, list[ArchiveObject]] = {}
    for o in batch:
        by_repo.setdefault(o.repo, []).append(o)
    out = []
    for repo, objs in by_repo.items():
        logs = _web_logs(Path(repo), [o.key for o in objs])
        locate = locator_for(objs[0].source)
        for o in objs:
            pins = []
            for logged, live in log_state(logs.get(o.key)).items():
                url = logged[1:] if logged.startswith(":") else logged
                loc = locate(url) if live and "versionId=" in url else None
                vid = url.partition("versionId=")[2].split("&", 1)[0]
                if loc is not None and vid:
                    pins.append((url, loc, unquote(vid), logged.startswith(":")))
            if pins:
                out.append(Dead(o, web_urls(logs.get(o.key)), pins))
            else:
                report.unpinned += 1
    return out


def _web_logs(repo: Path, keys: list[str]) -> dict[str, Optional[bytes]]:
    """Each key's ``.log.web`` on the branch (the journal committed first): by blob id when many."""
    head = branch_head(repo)
    return dict(zip(keys, read_logs(repo, head, keys, ".log.web"))) if head else {}


def _git_md5(dead: list[Dead]) -> None:
    """The MD5 of each file the dataset keeps in git, read from git (its ETag match needs no download)."""
    for repo, group in _by(dead, lambda d: d.obj.repo if d.obj.git else "").items():
        if not repo:
            continue
        with gitutil.CatFile(Path(repo)) as cat:
            for d, data in zip(group, cat.get_many(d.obj.git for d in group)):
                if data is not None:
                    d.md5 = hashlib.md5(data).hexdigest()


def _by(items: list[Dead], key: Callable[[Dead], str]) -> dict[str, list[Dead]]:
    out: dict[str, list[Dead]] = {}
    for d in items:
        out.setdefault(key(d), []).append(d)
    return out


def _tell(d: Dead, report: RepinReport) -> None:
    o = d.obj
    pin = Pin(o.key, o.path, o.source, o.label.partition("@")[2], d.pins[0][0])
    if d.found is not None:
        url, how, why = d.found
        report.repinned.append(Pin(pin.key, pin.path, pin.source, pin.version, pin.old_url, url, how, why))
    elif d.differs:
        report.differs.append(Pin(pin.key, pin.path, pin.source, pin.version, pin.old_url, evidence=d.differs))
    elif d.unsure:
        report.unverifiable.append(Pin(pin.key, pin.path, pin.source, pin.version, pin.old_url, evidence=d.unsure))
    else:
        why = "not found at " + ", ".join(d.tried) if d.tried else "nowhere to look"
        report.not_found.append(Pin(pin.key, pin.path, pin.source, pin.version, pin.old_url, evidence=why))


def _location_logs(repo: Path, ref: str, keys: Sequence[str]) -> list[tuple[str, Optional[bytes]]]:
    return list(zip(keys, read_logs(repo, ref, keys)))


def _record(mirror: Datasets, found: list[Dead]) -> int:
    """The new pins registered and the dead ones retired on each dataset's git-annex branch (one commit a
    dataset, under its source's lock), the web saying it has each key (again, where ``verify --content`` had
    marked it gone); the index's recorded URLs after.  How many dead URLs were retired."""
    from neuromirror.annex.branch_writer import Batch, write
    from neuromirror.annex.contract import WEB_UUID

    retired = 0
    for repo, group in _by(found, lambda d: d.obj.repo).items():
        source = group[0].obj.source
        new = [(d.obj.key, d.found[0]) for d in group if d.found is not None]
        old = [(d.obj.key, url, claimed) for d in group for url, _, _, claimed in d.pins]
        batch = Batch().present(WEB_UUID, [k for k, _ in new])
        if any(claimed for _, _, claimed in old):  # a special remote's URL: git-annex says whose the new one is
            batch.register, batch.unregister = new, old
        else:  # the web remote's plain URLs: their .log.web lines written in the same commit
            for k, u in new:
                batch.web.setdefault(k, {})[u] = True
            for k, u, _ in old:
                batch.web.setdefault(k, {})[u] = False
        with mirror.lock(source):
            write(Path(repo), batch, read=partial(_location_logs, Path(repo)))
            conn = mirror.index.db.conn
            add_entry_urls(conn, source, new)
            drop_entry_urls(conn, source, [(k, u) for k, u, _ in old])
        retired += len(old)
    return retired
