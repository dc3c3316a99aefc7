"""The fast engine: ``git fast-import`` streams instead of git-annex's per-file commands.

A first stream writes the data commit (symlinks, git files, deletions relative
to HEAD); then a commit on the ``git-annex`` branch holds each new key's location
log (present in the web remote, or in the special remote that claims the URL) and
URL log, in the layout git-annex documents (:mod:`.annexbranch`), while the work
tree is checked out.  git-annex notices that its branch moved
(``.git/annex/index.lck`` records the sha its own index reflects) and re-reads
it, so later git-annex processes — fsck, whereis, get in a clone — see exactly
what ``registerurl`` would have written.

fast-import writes its objects into one pack and moves refs only at its end,
and the checked-out branch moves last: a crash anywhere leaves the branch as
it was (``Mirror.recover`` resets index and work tree to it).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Optional, Union

from neuromirror.annex import annexbranch, gitmodules
from neuromirror.annex.contract import WEB_UUID, AnnexWriter, Change, CommitResult, Delete, epoch, log_stamp
from neuromirror.annex.keys import git_file_key, hashdir_lower, key_file, symlink_target, url_for_log
from neuromirror.annex.logs import add_present
from neuromirror.records import AnnexEntry, GitEntry, SubdatasetEntry
from neuromirror.util import gitutil, timing
from neuromirror.util.crashpoints import armed, crashpoint
from neuromirror.util.memory.spool import Spool

_PLAIN = re.compile(r'[\x00-\x1f\x7f"\\]')

#: glibc returns freed memory to the kernel whenever the heap top exceeds the trim threshold;
#: fast-import frees a large buffer (zlib state) after every object, so it ends up calling brk()
#: ~13 times per file and page-faulting the memory back in: 2/3 of its CPU time at 10^4 files.
#: A 64 MB threshold keeps the memory (fast-import's RSS stays ~17 MB either way).
FAST_IMPORT_ENV = {"MALLOC_TRIM_THRESHOLD_": str(64 << 20)}

#: fast-import's objects are stored, not deflated: a mirror's objects are ~100-byte symlinks,
#: logs and trees, which zlib barely shrinks (fast-import still deltas each against the last
#: one) but which cost fast-import half its CPU to deflate (4x10^5 logs: 4.3 s -> 2.1 s)
FAST_IMPORT_CONFIG = ("-c", "pack.compression=0")

#: the remotes of a key whose URLs no special remote claims
_WEB_ONLY = (WEB_UUID,)

#: where the data commit waits while its keys are registered; the branch moves after
STAGING_REF = "refs/neuromirror/staging"


def quote_path(path: str) -> bytes:
    """C-style quoting, which fast-import accepts for any path."""
    if not _PLAIN.search(path):
        return ('"' + path + '"').encode("utf-8", "surrogateescape")
    out = ['"']
    for ch in path:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out).encode("utf-8", "surrogateescape")


def _write_entry(s: IO[bytes], entry: Union[GitEntry, AnnexEntry], keys: _KeyLog) -> None:
    """One file of the data commit: a git file's bytes inline, an annexed file as its symlink to the key;
    the key and its URLs go to ``keys`` for the git-annex branch."""
    if isinstance(entry, GitEntry):
        s.write(b"M 100644 inline " + quote_path(entry.path) + b"\n")
        data = entry.read()
        _data(s, data)
        if entry.urls:  # the archive serves these bytes: its URLs, for ``urls``
            keys.record(git_file_key(hashlib.sha256(data).hexdigest(), len(data)), entry.urls)
    else:
        assert isinstance(entry, AnnexEntry)
        s.write(b"M 120000 inline " + quote_path(entry.path) + b"\n")
        _data(s, symlink_target(entry.path, entry.key).encode())
        keys.record(entry.key, entry.urls)


def _write_subdatasets(
    s: IO[bytes], modules: gitmodules.Modules, sub_puts: list[SubdatasetEntry], sub_deletes: list[str]
) -> None:
    """The subdatasets' gitlinks, written after the files (one may replace a directory whose files go in
    this commit), and .gitmodules rewritten (or removed) when its sections change."""
    for sub in sub_puts:
        s.write(f"M 160000 {sub.commit} ".encode() + quote_path(sub.path) + b"\n")
    if (sub_puts or sub_deletes) and gitmodules.updated(modules, sub_puts, sub_deletes):
        if modules:
            s.write(b"M 100644 inline " + quote_path(gitmodules.FILE) + b"\n")
            _data(s, gitmodules.render(modules))
        else:
            s.write(b"D " + quote_path(gitmodules.FILE) + b"\n")


def _data(stream: IO[bytes], payload: bytes) -> None:
    stream.write(b"data %d\n" % len(payload))
    stream.write(payload)
    stream.write(b"\n")


@dataclass(frozen=True)
class Turns:
    """The turns that large commits sharing a process take, so that memory stays bounded.

    A commit of 10^6 files costs git a few hundred MB twice: fast-import's object table
    while the tree is written (and again for the git-annex branch), and the index of the
    checkout.  ``writing`` is held from the data commit's fast-import through the
    git-annex branch's, ``checkout`` while ``read-tree -u`` runs.  One commit's checkout
    (annex symlinks: kernel time) then overlaps the next commit's fast-import (git's and
    Python's CPU) on another core, and at most one of each is under way: the peak is what
    one commit alone costs (its checkout beside its git-annex branch's fast-import).
    """

    writing: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(1))
    checkout: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(1))


class FastImportWriter(AnnexWriter):
    name = "fast-import"
    #: large commits of this process take turns (see :class:`Turns`); None: no turns
    turns: Optional[Turns] = None

    def _branch(self) -> str:
        ref = gitutil.out(self.repo, "symbolic-ref", "-q", "HEAD", check=False)
        return ref or "refs/heads/main"

    def _flush_journal(self) -> None:
        """Commit anything git-annex left in its journal so our branch commit builds on it."""
        journal = self.repo / ".git" / "annex" / "journal"
        if journal.is_dir() and any(journal.iterdir()):
            subprocess.run(
                ["git", "-C", str(self.repo), "annex", "merge", "-q"],
                check=True,
                capture_output=True,
                env=gitutil.git_env(),
            )

    def commit(self, changes: Iterable[Change], *, message: str, date: datetime) -> CommitResult:
        """Two fast-import runs and a checkout, the checkout overlapping the second run.

        1. the data commit, onto a staging ref (the branch does not move yet);
        2. the git-annex branch's logs for the new keys — while ``git read-tree``
           brings index and work tree to the staged commit in parallel (on this
           kind of file system, writing 10^5 annex symlinks is kernel time that
           varies 5x from minute to minute: it should not wait for the logs);
        3. the branch moves to the staged commit, only now that its keys are
           registered: a crash anywhere before leaves the branch where it was,
           and a rerun writes the same commit again.
        """
        clock = timing.Stopwatch()
        self.quiet_annex_filter()
        self._flush_journal()
        parent = self.head()
        annex_parent = gitutil.ref_sha(self.repo, "refs/heads/git-annex")
        branch = self._branch()
        stamp = f"{epoch(date)} +0000"
        ident = gitutil.COMMITTER
        turns = _TurnsHeld(self.turns)
        keys = _KeyLog()
        with keys, turns:
            turns.take("writing")
            counts: list[int] = []
            self._fast_import(
                lambda s: counts.extend(self._write_tree(s, changes, parent, message, ident, stamp, keys))
            )
            written, deleted = counts
            new_head = gitutil.ref_sha(self.repo, STAGING_REF)
            assert new_head
            crashpoint("before-checkout")
            turns.take("checkout")
            checkout = self._start_checkout(parent, new_head)
            try:
                if len(keys):
                    with timing.phase("annex-branch"):
                        self._annex_commit(keys, annex_parent, ident)
            finally:
                turns.give("writing")  # the next commit's fast-import may start beside this checkout
                self._finish_checkout(checkout)
                turns.give("checkout")
            crashpoint("before-branch-update")
            self._move_branch(branch, new_head, parent)
            return CommitResult(new_head, written, deleted, len(keys), clock.seconds())

    def _fast_import(self, write: Callable[[IO[bytes]], None]) -> None:
        run_fast_import(self.repo, write)

    def _write_tree(
        self,
        s: IO[bytes],
        changes: Iterable[Change],
        parent: Optional[str],
        message: str,
        ident: str,
        stamp: str,
        keys: _KeyLog,
    ) -> tuple[int, int]:
        """The data commit on the staging ref; each annexed file's key and URLs go to ``keys``."""
        written = deleted = 0
        # subdatasets: gitlinks in the tree, sections in .gitmodules (rewritten below when they change)
        modules = gitmodules.read(self.repo, parent)
        sub_puts: list[SubdatasetEntry] = []
        sub_deletes: list[str] = []
        module_paths = {m.get("path", n) for n, m in modules.items()}
        crash = armed("fast-import-stream")
        s.write(f"reset {STAGING_REF}\ncommit {STAGING_REF}\nmark :1\n".encode())
        s.write(f"author {ident} {stamp}\ncommitter {ident} {stamp}\n".encode())
        _data(s, message.encode())
        if parent:
            s.write(f"from {parent}\n".encode())
        for change in changes:
            if isinstance(change, Delete):
                s.write(b"D " + quote_path(change.path) + b"\n")
                deleted += 1
                if change.path in module_paths:
                    sub_deletes.append(change.path)
                continue
            entry = change.entry
            if entry.path in module_paths and not isinstance(entry, SubdatasetEntry):
                sub_deletes.append(entry.path)  # a file replaces a subdataset
            if isinstance(entry, SubdatasetEntry):
                sub_puts.append(entry)  # written last: it may replace a directory whose files go now
            else:
                _write_entry(s, entry, keys)
            written += 1
            if crash:
                crash()
        _write_subdatasets(s, modules, sub_puts, sub_deletes)
        return written, deleted

    def _start_checkout(self, old: Optional[str], new: str) -> subprocess.Popen:
        """Start bringing index and work tree from ``old`` to ``new``, touching only what changed."""
        if old:
            # parallel checkout writes many new regular files faster (git >= 2.32; ignored before)
            args = ["-c", "checkout.workers=0", "read-tree", "-m", "-u", old, new]
        else:
            args = ["read-tree", "-u", "--reset", new]
        return subprocess.Popen(
            ["git", "-C", str(self.repo), *args],
            stdout=subprocess.DEVNULL,
            stderr=tempfile.TemporaryFile(),
            env=gitutil.git_env(),
        )

    def _finish_checkout(self, proc: subprocess.Popen) -> None:
        with timing.phase("checkout-wait"):
            code = proc.wait()
        if code != 0:
            err = b""
            if proc.stderr is not None:
                proc.stderr.seek(0)
                err = proc.stderr.read()
            lines = err.decode(errors="replace").strip().splitlines()
            raise gitutil.GitError(f"git read-tree failed in {self.repo}: {lines[-1] if lines else code}")

    def _move_branch(self, branch: str, new: str, old: Optional[str]) -> None:
        """Compare-and-swap: the branch moves only from the commit the new one was built on."""
        gitutil.run(
            self.repo,
            "update-ref",
            "--stdin",
            input=f"update {branch} {new} {old or '0' * len(new)}\ndelete {STAGING_REF}\n".encode(),
        )

    def _annex_commit(self, keys: _KeyLog, annex_parent: Optional[str], ident: str) -> None:
        """The new keys' location and URL logs, merged with what the branch has, in one commit
        (:mod:`.annexbranch`: for many keys, a pack written here)."""
        now = time.time()
        ts = log_stamp(now)
        existing = self._existing_logs(annex_parent, len(keys))
        with gitutil.CatFile(self.repo) as cat:

            def old(path: str) -> Optional[bytes]:
                if annex_parent is None or (existing is not None and hash(path) not in existing):
                    return None
                return cat.get(f"{annex_parent}:{path}")

            # a new key's location log is one line per remote, the same for most keys: made once each
            new_locations: dict[tuple[str, ...], Optional[bytes]] = {}
            remote_for = self.remote_for if self.url_remotes else None

            def logs() -> Iterator[tuple[str, bytes]]:
                for key, urls in keys.merged():
                    base = hashdir_lower(key) + key_file(key)
                    remotes = tuple(sorted({remote_for(u) for u in urls})) if remote_for else _WEB_ONLY
                    before = old(base + ".log")
                    if before is None:
                        loc = new_locations.get(remotes)
                        if loc is None:
                            loc = new_locations[remotes] = add_present(None, ts, remotes)
                    else:
                        loc = add_present(before, ts, remotes)
                    if loc is not None:
                        yield base + ".log", loc
                    web = add_present(old(base + ".log.web"), ts, urls)
                    if web is not None:
                        yield base + ".log.web", web

            annexbranch.write_logs(
                self.repo, logs(), annex_parent, ident, f"{int(now)} +0000", self._fast_import, keys=len(keys), cat=cat
            )

    def _existing_logs(self, annex_parent: Optional[str], n_keys: int) -> Optional[set[int]]:
        """For many keys, one listing of the branch beats a lookup per key; None: look each up.

        Hashes, not paths: 10^5 log paths would hold ~20 MB; a false positive only
        costs one lookup that finds nothing.
        """
        if annex_parent is None or n_keys < 2000:
            return None
        listing = gitutil.run(self.repo, "ls-tree", "-r", "-z", "--name-only", annex_parent).stdout
        return {hash(p) for p in listing.decode("utf-8", "surrogateescape").split("\0")}


def run_fast_import(repo: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Run one fast-import stream; refs move only if the whole stream got through."""
    proc = subprocess.Popen(
        ["git", *FAST_IMPORT_CONFIG, "-C", str(repo), "fast-import", "--quiet", "--done", "--force"],
        stdin=subprocess.PIPE,
        bufsize=1 << 20,
        stderr=subprocess.PIPE,
        env=gitutil.git_env(FAST_IMPORT_ENV),
    )
    assert proc.stdin
    try:
        write(proc.stdin)
        proc.stdin.write(b"done\n")
        proc.stdin.close()
    except BrokenPipeError:
        pass
    except BaseException:
        # fast-import moves refs only after "done": killing it keeps the repository as it was
        proc.kill()
        proc.wait()
        raise
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.wait() != 0:
        raise gitutil.GitError(
            f"git fast-import failed: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}"
        )


class _TurnsHeld:
    """The :class:`Turns` one commit holds; whatever it still holds is given back on exit."""

    def __init__(self, turns: Optional[Turns]):
        self._turns = turns
        self._held: set[str] = set()

    def take(self, name: str) -> None:
        if self._turns is not None and name not in self._held:
            with timing.phase(f"turn-{name}"):
                getattr(self._turns, name).acquire()
            self._held.add(name)

    def give(self, name: str) -> None:
        if name in self._held:
            self._held.discard(name)
            assert self._turns is not None
            getattr(self._turns, name).release()

    def __enter__(self) -> _TurnsHeld:
        return self

    def __exit__(self, *exc: object) -> None:
        for name in list(self._held):
            self.give(name)


class _KeyLog(Spool):
    """The new keys and their URLs, spooled to disk until the git-annex branch is written.

    In memory only a hash per key, to find the few keys that more than one file
    uses (their URLs are merged).  Holding 10^5 keys with their URL lists in a
    dict was ~60 MB of the sync's peak memory.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()
        self.repeated: set[int] = set()

    def record(self, key: str, urls: Iterable[str]) -> None:
        # URLs go into the branch's .log.web one per line: whitespace is refused here,
        # before the data commit is complete, so that nothing is half-written
        checked = tuple(url_for_log(u) for u in urls)
        h = hash(key)
        if h in self.seen:
            self.repeated.add(h)
        else:
            self.seen.add(h)
        self.add((key, checked))

    def __len__(self) -> int:
        return len(self.seen)

    def merged(self) -> Iterator[tuple[str, list[str]]]:
        """Each key once, with the union of its URLs in the order first seen."""
        later: dict[str, list[str]] = {}
        for key, urls in self:
            if hash(key) in self.repeated:
                acc = later.setdefault(key, [])
                acc.extend(u for u in urls if u not in acc)
            else:
                yield key, list(dict.fromkeys(urls))
        yield from later.items()
