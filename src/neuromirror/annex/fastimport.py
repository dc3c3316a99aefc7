"""The fast engine: one ``git fast-import`` stream per commit.

The stream carries the data commit (symlinks, git files, deletions relative
to HEAD) and a commit on the ``git-annex`` branch holding each new key's
location log (present in the web remote, or in the special remote that
claims the URL) and URL log, in the layout git-annex documents.  git-annex
notices that its branch moved (``.git/annex/index.lck`` records the sha its
own index reflects) and re-reads it, so later git-annex processes — fsck,
whereis, get in a clone — see exactly what ``registerurl`` would have written.

fast-import writes all objects into one pack and moves the refs only at the
end: a crash mid-stream leaves the repository as it was.
"""

from __future__ import annotations

import logging
import re
import subprocess
import time
from datetime import datetime
from typing import IO, Iterable, Optional

from .. import gitutil, timing
from ..crashpoints import crashpoint
from ..records import AnnexEntry, GitEntry, SubdatasetEntry
from . import gitmodules
from .keys import hashdir_lower, key_file, symlink_target, url_for_log
from .writer import AnnexWriter, Change, CommitResult, Delete, epoch, log_stamp


log = logging.getLogger("neuromirror.annex")

_PLAIN = re.compile(r'[\x00-\x1f\x7f"\\]')

#: glibc returns freed memory to the kernel whenever the heap top exceeds the trim threshold;
#: fast-import frees a large buffer (zlib state) after every object, so it ends up calling brk()
#: ~13 times per file and page-faulting the memory back in: 2/3 of its CPU time at 10^4 files.
#: A 64 MB threshold keeps the memory (fast-import's RSS stays ~17 MB either way).
FAST_IMPORT_ENV = {"MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


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


def _data(stream: IO[bytes], payload: bytes) -> None:
    stream.write(b"data %d\n" % len(payload))
    stream.write(payload)
    stream.write(b"\n")


class FastImportWriter(AnnexWriter):
    name = "fast-import"

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
        t0 = time.monotonic()
        self._flush_journal()
        parent = self.head()
        annex_parent = gitutil.ref_sha(self.repo, "refs/heads/git-annex")
        branch = self._branch()
        stamp = f"{epoch(date)} +0000"
        ident = f"{gitutil.IDENTITY['GIT_COMMITTER_NAME']} <{gitutil.IDENTITY['GIT_COMMITTER_EMAIL']}>"

        proc = subprocess.Popen(
            ["git", "-C", str(self.repo), "fast-import", "--quiet", "--done"],
            stdin=subprocess.PIPE,
            bufsize=1 << 20,
            stderr=subprocess.PIPE,
            env=gitutil.git_env(FAST_IMPORT_ENV),
        )
        assert proc.stdin
        s = proc.stdin
        written = deleted = 0
        new_keys: dict[str, list[str]] = {}
        # subdatasets: gitlinks in the tree, sections in .gitmodules (rewritten below when they change)
        modules = gitmodules.read(self.repo, parent)
        sub_puts: list[SubdatasetEntry] = []
        sub_deletes: list[str] = []
        module_paths = {m.get("path", n) for n, m in modules.items()}
        try:
            s.write(f"commit {branch}\nmark :1\n".encode())
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
                    s.write(f"M 160000 {entry.commit} ".encode() + quote_path(entry.path) + b"\n")
                    sub_puts.append(entry)
                elif isinstance(entry, GitEntry):
                    s.write(b"M 100644 inline " + quote_path(entry.path) + b"\n")
                    _data(s, entry.read())
                else:
                    assert isinstance(entry, AnnexEntry)
                    s.write(b"M 120000 inline " + quote_path(entry.path) + b"\n")
                    _data(s, symlink_target(entry.path, entry.key).encode())
                    urls = new_keys.setdefault(entry.key, [])
                    urls.extend(u for u in entry.urls if u not in urls)
                written += 1
                crashpoint("fast-import-stream")
            if (sub_puts or sub_deletes) and gitmodules.updated(modules, sub_puts, sub_deletes):
                if modules:
                    s.write(b"M 100644 inline " + quote_path(gitmodules.FILE) + b"\n")
                    _data(s, gitmodules.render(modules))
                else:
                    s.write(b"D " + quote_path(gitmodules.FILE) + b"\n")
            if new_keys:
                self._annex_commit(s, new_keys, annex_parent, ident)
            s.write(b"done\n")
            s.close()
        except BrokenPipeError:
            pass
        except BaseException:
            # fast-import moves refs only after "done": killing it keeps the repository as it was
            proc.kill()
            proc.wait()
            raise
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.wait() != 0:
            raise gitutil.GitError(f"git fast-import failed: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}")
        new_head = self.head()
        assert new_head
        crashpoint("before-checkout")
        self._checkout(parent, new_head)
        self._catch_up_git_annex()
        return CommitResult(new_head, written, deleted, len(new_keys), time.monotonic() - t0)

    def _catch_up_git_annex(self) -> None:
        """Let git-annex take in the commit now, while the index is unlocked, as if it had made it.

        git-annex keeps two caches of what fast-import wrote behind its back, and the
        first git-annex process to need them catches up with every file it has not seen:

        * its index of the git-annex branch (``.git/annex/index``): ~1-2 s per 10^5
          keys, at the first ``whereis``/``get``;
        * its keys database (``.git/annex/keysdb``, key -> paths), diffed against
          ``refs/annex/last-index``: ~150 us per file.  When the process that needs it is
          the clean filter run by ``git status`` (whenever a regular file such as
          dandiset.yaml is stat-dirty), git holds the index lock, git-annex cannot record
          its progress, and the whole diff is redone at every ``git status`` — 15 s per
          10^5 files, at the mirror's own next sync.

        ``git annex merge`` and ``git annex smudge --update`` (what git-annex's own
        post-checkout hook runs) do both here: O(N) once for a cold mirror, then O(changes).
        """
        with timing.phase("annex-catch-up"):
            for args in (("annex", "merge", "-q"), ("annex", "smudge", "--update")):
                proc = gitutil.run(self.repo, *args, check=False)
                if proc.returncode != 0:  # the commit stands; git-annex will catch up by itself later
                    err = proc.stderr.decode(errors="replace").strip().splitlines()
                    log.warning("git %s failed in %s: %s", " ".join(args[:2]), self.repo, err[-1] if err else proc.returncode)

    def _annex_commit(self, s: IO[bytes], new_keys: dict[str, list[str]], annex_parent: Optional[str], ident: str) -> None:
        now = time.time()
        ts = log_stamp(now)
        s.write(f"commit refs/heads/git-annex\ncommitter {ident} {int(now)} +0000\n".encode())
        _data(s, b"update")
        if annex_parent:
            s.write(f"from {annex_parent}\n".encode())
        existing = self._existing_logs(annex_parent, len(new_keys))
        with gitutil.CatFile(self.repo) as cat:

            def old(path: str) -> Optional[bytes]:
                if annex_parent is None or (existing is not None and path not in existing):
                    return None
                return cat.get(f"{annex_parent}:{path}")

            for key, urls in new_keys.items():
                base = hashdir_lower(key) + key_file(key)
                remotes = sorted({self.remote_for(u) for u in urls})
                loc = _merge_log(old(base + ".log"), ts, remotes)
                if loc is not None:
                    s.write(b"M 100644 inline " + quote_path(base + ".log") + b"\n")
                    _data(s, loc)
                web = _merge_log(old(base + ".log.web"), ts, [url_for_log(u) for u in urls])
                if web is not None:
                    s.write(b"M 100644 inline " + quote_path(base + ".log.web") + b"\n")
                    _data(s, web)

    def _existing_logs(self, annex_parent: Optional[str], n_keys: int) -> Optional[set[str]]:
        """For many keys, one listing of the branch beats a lookup per key; None: look each up."""
        if annex_parent is None or n_keys < 2000:
            return None
        listing = gitutil.run(self.repo, "ls-tree", "-r", "-z", "--name-only", annex_parent).stdout
        return set(listing.decode("utf-8", "surrogateescape").split("\0"))

    def _checkout(self, old: Optional[str], new: str) -> None:
        """Bring index and work tree from ``old`` to ``new``, touching only what changed."""
        if old:
            # parallel checkout writes many new files faster (git >= 2.32; ignored before)
            gitutil.run(self.repo, "-c", "checkout.workers=0", "read-tree", "-m", "-u", old, new)
        else:
            gitutil.run(self.repo, "read-tree", "-u", "--reset", new)


def _merge_log(existing: Optional[bytes], ts: str, values: list[str]) -> Optional[bytes]:
    """Add ``values`` as present (status 1) to a git-annex log; None when nothing changes."""
    lines = existing.decode().splitlines() if existing else []
    present = {}
    for line in lines:
        parts = line.split(" ", 2)
        if len(parts) == 3:
            present[parts[2]] = parts[1] == "1"
    todo = [v for v in values if not present.get(v)]
    if not todo:
        return None
    kept = [line for line in lines if line.split(" ", 2)[-1] not in todo]
    kept += [f"{ts} 1 {v}" for v in todo]
    return ("\n".join(kept) + "\n").encode()
