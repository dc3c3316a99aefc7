"""Files the mirror keeps in git, as archive objects: DANDI's README.md, CHANGES... are blobs the archive
serves like any asset's, and a restore that left them out would leave ``dandi download`` failing on them.

Their archive URLs are on the git-annex branch under the key :func:`~neuromirror.annex.keys.git_file_key`
names from their sha256 and size (the sync registers them there; the index records none, so that it stays
rebuildable from the datasets), and the S3 one names the archive key.  Their bytes are in the dataset's
git: read with ``git cat-file`` at the version's commit and checked against that key, as a store's copy
is, before anything is written.  A file in git no URL names (``dandiset.yaml``: the mirror's own) is no
archive object.  Files in git inside a Zarr's dataset are not looked at here.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Iterator, cast

from neuromirror.annex.keys import git_file_key, key_checksum
from neuromirror.annex.logs import branch_logs, web_urls
from neuromirror.records import GIT, VersionFile
from neuromirror.restore.copies import SPOOL, NoGoodCopy, Verified, drain
from neuromirror.restore.objects import ArchiveObject, Unplaced, place_in_git
from neuromirror.sources import s3urls
from neuromirror.util.gitutil import git_env

if TYPE_CHECKING:
    from neuromirror.index.db import Index

#: files in git whose URL logs are read at once
BATCH = 5000


class GitRows:
    """The index as :func:`~neuromirror.dataset.files.each_version_file` reads it, noting on the way the files a
    version keeps in git (that listing counts them and goes on): one pass over the version's rows."""

    def __init__(self, index: Index):
        self._index = index
        self.files: list[VersionFile] = []

    def version_files(self, version_id: int) -> Iterator[VersionFile]:
        for f in self._index.version_files(version_id):
            if f.checksum_kind == GIT and f.checksum:
                self.files.append(f)
            yield f


def git_objects(
    repo: Path, commit: str, files: list[VersionFile], source: str, label: str, locator: s3urls.Locator
) -> Iterator[ArchiveObject | Unplaced]:
    """The archive objects of ``files`` (kept in git in ``repo`` at ``commit``), or why one has none."""
    for i in range(0, len(files), BATCH):
        chunk = files[i : i + BATCH]
        keys = [git_file_key(f.checksum or "", f.size or 0) for f in chunk]
        logs = branch_logs(repo, keys, ".log.web")
        for f, key in zip(chunk, keys):
            urls = web_urls(logs.get(key))
            got = place_in_git(f.path, key, f.size, urls, source, label, locator, str(repo), f"{commit}:{f.path}")
            if got is not None:
                yield got


def from_git(o: ArchiveObject) -> Verified:
    """``o``'s bytes from its dataset's git, checked against its key (size and SHA-256)."""
    checksum = key_checksum(o.key)
    if checksum is None:
        raise NoGoodCopy(f"{o.key}: no checksum to check the bytes in git against")
    proc = subprocess.Popen(
        ["git", "cat-file", "blob", o.git], cwd=o.repo, env=git_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL)
    digest, md5 = checksum.new(), hashlib.md5()
    try:
        got = drain(proc.stdout, (digest, md5), out.write)
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise NoGoodCopy(f"not in the dataset's git ({' '.join(err.split())[:200]})")
        if o.size is not None and got != o.size:
            raise NoGoodCopy(f"the blob in git has {got} bytes, the key says {o.size}")
        if digest.hexdigest() != checksum.digest:
            raise NoGoodCopy(f"the blob in git is not the bytes of {o.key}")
    except BaseException:
        out.close()
        raise
    finally:
        proc.stdout.close()
        proc.stderr.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out.seek(0)
    return Verified(o.key, cast(IO[bytes], out), got, md5.hexdigest(), f"git {o.repo}")
