"""The one writer of a repository's ``git-annex`` branch outside the sync's commits (issue 51).

Every write a lab's command makes on the branch comes through here: a key present in a store or gone
from it, the web's mark (``web: 0`` once a key's archive URLs are gone, ``1`` when they serve again),
URLs registered for a key and taken back, and a store's ``remote.log`` / ``uuid.log`` lines.  One
:class:`Batch` is one write (:func:`write`): git-annex's journal flushed once, one commit on the branch
(two when a batch holds both URLs and lines: git-annex's, then this module's on top; no caller mixes them).

- location lines (present, absent, the web's marks) and the top-level files are written here, in
  git-annex's own format (``<stamp>s <1|0> <uuid>``, one line per value as git-annex compacts a log),
  as the sync writes its logs (:func:`.annexbranch.write_logs`, compare-and-swap of the branch).  A
  line is stamped past the value's newest one (:func:`.logs._after`): git-annex stamps in whole
  seconds, one on from a line of the same second, and its next index merge (a union) brings back the
  line dropped here.  Not git-annex itself: its start, its journal and a read-back cost ~0.1 s a call
  (issue 40);
- URLs go through git-annex (``registerurl`` / ``unregisterurl --batch``): which special remote claims
  a URL is git-annex's to say.  Each command leaves its lines in the journal
  (``annex.alwayscommit=false``); the batch's one flush commits them together.

The sync's own writer (:mod:`.writer`: :mod:`.fastimport`, :mod:`.batch`) is the other one, the hot
path: a version's tree and its keys' logs (the reference engine, :mod:`.batch`, registers its URLs through
:func:`annex_register` here).  ``tests/test_branch_writer.py`` holds git-annex's
subcommands that write the branch to these two modules.  The caller holds the source's lock: no sync
writes the branch meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Callable, Iterable, Optional, Sequence

from neuromirror.annex.annexbranch import write_logs
from neuromirror.annex.contract import WEB_UUID, log_stamp
from neuromirror.annex.fastimport import run_fast_import
from neuromirror.annex.keys import log_path
from neuromirror.annex.logs import BRANCH, _after, branch_logs, flush_journal, log_state, read_logs
from neuromirror.util import gitutil

#: a top-level file's new content from its old (None: unchanged)
TopEdit = Callable[[Optional[bytes]], Optional[bytes]]
#: (key, its location log at the ref, None without one) for the keys, read at a ref of the branch
LogReader = Callable[[str, Sequence[str]], Iterable[tuple[str, Optional[bytes]]]]


@dataclass
class Batch:
    """What one write puts on the branch; built by the callers, written by :func:`write`."""

    now: float = field(default_factory=time.time)
    #: key -> uuid -> present?: a line written only where the log says otherwise
    states: dict[str, dict[str, bool]] = field(default_factory=dict)
    #: (key, URL) to register
    register: list[tuple[str, str]] = field(default_factory=list)
    #: (key, URL, claimed) to unregister: claimed, the log holds the URL in a special remote's form (``:URL``)
    unregister: list[tuple[str, str, bool]] = field(default_factory=list)
    #: top-level file (``remote.log``, ``uuid.log``) -> its edit
    top: dict[str, TopEdit] = field(default_factory=dict)
    #: key -> URL -> registered?: lines of the key's ``.log.web`` written here, in git-annex's format (as the sync
    #: writes them), for plain URLs of the web remote only (``repin``: 10^4 keys' new pins in one commit, where
    #: ``registerurl`` / ``unregisterurl`` took ~5 ms a key); the caller says the web's presence in ``states``
    web: dict[str, dict[str, bool]] = field(default_factory=dict)

    def present(self, uuid: str, keys: Iterable[str]) -> Batch:
        for k in keys:
            self.states.setdefault(k, {})[uuid] = True
        return self

    def absent(self, uuid: str, keys: Iterable[str]) -> Batch:
        for k in keys:
            self.states.setdefault(k, {})[uuid] = False
        return self


@dataclass
class Written:
    """What :func:`write` changed: the keys whose location log changed, the top-level files rewritten."""

    keys: list[str] = field(default_factory=list)
    top: list[str] = field(default_factory=list)


def read_top(repo: Path, ref: str, name: str) -> Optional[bytes]:
    """A top-level file of the branch at ``ref`` (None without one)."""
    proc = gitutil.run(repo, "cat-file", "blob", f"{ref}:{name}", check=False)
    return proc.stdout if proc.returncode == 0 else None


def write(
    repo: Path,
    batch: Batch,
    *,
    read: Optional[LogReader] = None,
    before_commit: Optional[Callable[[], object]] = None,
) -> Written:
    """Write ``batch`` on ``repo``'s branch: URLs through git-annex's journal, flushed once; then the
    location lines and top-level files in one commit on top (none when nothing changes: a rerun is a
    no-op).  ``read``: how the keys' logs are read (default: by path); ``before_commit``: called once
    the logs are read, before the commit (a store's sync: the branch never claims bytes not on disk)."""
    _annex_urls(repo, batch.register, batch.unregister)
    flush_journal(repo)
    out = Written()
    if not batch.states and not batch.top and not batch.web:
        if before_commit is not None:
            before_commit()
        return out
    parent = gitutil.ref_sha(repo, BRANCH)
    if parent is None and batch.top:
        raise gitutil.GitError(f"{repo} has no git-annex branch: not a git-annex repository")
    keys = list(batch.states)
    existing = (read or partial(_by_path, repo))(parent, keys) if parent else [(k, None) for k in keys]
    logs = _changed_logs(existing, log_stamp(batch.now), batch.states, out)
    if batch.web:
        web_keys = list(batch.web)
        web = list(zip(web_keys, read_logs(repo, parent, web_keys, ".log.web") if parent else [None] * len(web_keys)))
        logs += _changed_logs(web, log_stamp(batch.now), batch.web, Written(), ".log.web")
    tops = _changed_tops(repo, parent, batch.top)
    out.top = list(tops)
    if before_commit is not None:
        before_commit()
    if logs or tops:
        _commit(repo, parent, tops, logs, batch.now)
    return out


def _changed_logs(
    existing: Iterable[tuple[str, Optional[bytes]]],
    stamp: str,
    states: dict[str, dict[str, bool]],
    out: Written,
    suffix: str = ".log",
) -> list[tuple[str, bytes]]:
    """The location logs that must change to say ``states`` (a key whose log says so already is left out:
    a rerun writes nothing); each changed key is noted in ``out``."""
    logs = []
    for k, old in existing:
        new = with_states(old, stamp, states[k])
        if new is not None:
            logs.append((log_path(k, suffix), new))
            out.keys.append(k)
    return logs


def _changed_tops(repo: Path, parent: Optional[str], top: dict[str, TopEdit]) -> dict[str, bytes]:
    """Each top-level file its edit changes, by name (an edit returning None leaves the file as it is)."""
    tops = {}
    for name, edit in sorted(top.items()):
        new = edit(read_top(repo, parent, name) if parent else None)
        if new is not None:
            tops[name] = new
    return tops


def _by_path(repo: Path, ref: str, keys: Sequence[str]) -> list[tuple[str, Optional[bytes]]]:
    with gitutil.CatFile(repo) as cat:
        return list(zip(keys, cat.get_many(f"{ref}:{log_path(k)}" for k in keys)))


def with_states(existing: Optional[bytes], stamp: str, wanted: dict[str, bool]) -> Optional[bytes]:
    """``existing`` with each value's line saying ``wanted`` (stamped past its newest line); None when the
    log says so already (a value it never names counts as absent)."""
    current = log_state(existing)
    todo = {v: s for v, s in wanted.items() if (current.get(v) is True) != s}
    if not todo:
        return None
    lines = existing.decode().splitlines() if existing else []
    kept = [line for line in lines if line.split(" ", 2)[-1] not in todo]
    kept += [f"{_after(lines, stamp, v)} {int(s)} {v}" for v, s in todo.items()]
    return ("\n".join(kept) + "\n").encode()


def _commit(
    repo: Path, parent: Optional[str], tops: dict[str, bytes], logs: list[tuple[str, bytes]], now: float
) -> None:
    """One commit on the branch: the logs alone as the sync writes them, with top-level files one
    fast-import stream (only the trees on the way to a changed file are written again)."""
    ident, stamp = gitutil.COMMITTER, f"{int(now)} +0000"
    if not tops:
        write_logs(repo, logs, parent, ident, stamp, partial(run_fast_import, repo), keys=len(logs))
        return

    def stream(s: IO[bytes]) -> None:
        s.write(f"commit {_STAGING}\ncommitter {ident} {stamp}\ndata 6\nupdate\n".encode())
        if parent:
            s.write(f"from {parent}\n".encode())
        for path, data in [*tops.items(), *logs]:
            if "\n" in path or path.startswith("/"):
                raise ValueError(f"not a path of the git-annex branch: {path!r}")
            s.write(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data))

    run_fast_import(repo, stream)
    # moved last, compare-and-swap (as write_logs): refused if the branch moved since ``parent`` was read
    new = gitutil.out(repo, "rev-parse", _STAGING)
    try:
        gitutil.run(repo, "update-ref", BRANCH, new, parent or "0" * 40)
    finally:
        gitutil.run(repo, "update-ref", "-d", _STAGING, check=False)


#: where a commit with top-level files is built before the branch is moved to it
_STAGING = "refs/neuromirror/branch-writer"


def commit_top_files(repo: Path, parent: str, files: dict[str, bytes]) -> None:
    """A commit on the branch at ``parent`` replacing top-level files with ``files``, as they are."""
    _commit(repo, parent, files, [], time.time())


def _annex_urls(repo: Path, register: Sequence[tuple[str, str]], unregister: Sequence[tuple[str, str, bool]]) -> None:
    """URLs registered, then taken back, by git-annex into its journal (committed by the caller's flush).

    A plainly logged URL is removed as the web remote's, even where a special remote would claim it
    now (git-annex would otherwise remove only the claimed form); a claimed one as its remote's.
    Raises :class:`~neuromirror.util.gitutil.GitError` with git-annex's own last line."""
    journal = ("-c", "annex.alwayscommit=false")
    annex_register(repo, register)
    for claimed in (False, True):
        batch = [(k, u) for k, u, c in unregister if c is claimed]
        if not batch:
            continue
        remote = [] if claimed else ["--remote", "web"]
        lines = "".join(f"{k} {u}\n" for k, u in batch).encode()
        gitutil.run(
            repo, "annex", "unregisterurl", "--batch", *remote, *journal, "-c", "annex.alwayscompact=false", input=lines
        )


def annex_register(repo: Path, pairs: Sequence[tuple[str, str]], *, compact: bool = True) -> None:
    """git-annex's ``registerurl`` of (key, URL) pairs into its journal, which the next git-annex command (or a
    flush) commits: :func:`write`'s URLs, and the sync's reference engine's (:mod:`.batch`, before its
    ``fromkey``; ``compact=False``: a new version's logs are appended, not rewritten, as it always ran).
    Raises :class:`~neuromirror.util.gitutil.GitError` with git-annex's own last line."""
    if pairs:
        lines = "".join(f"{k} {u}\n" for k, u in pairs).encode()
        gitutil.run(repo, *register_args(compact=compact), input=lines)


def register_args(*, compact: bool = True) -> list[str]:
    """git's arguments for :func:`annex_register`'s ``registerurl --batch`` (one ``KEY URL`` a line on its
    input), for a caller that times git-annex itself on the same command (the bench's anchor)."""
    config = ["-c", "annex.alwayscommit=false"] + ([] if compact else ["-c", "annex.alwayscompact=false"])
    return ["annex", "registerurl", "--batch", *config]


def register_urls(repo: Path, pairs: Iterable[tuple[str, str]]) -> None:
    """Register each (key, URL) on ``repo``'s branch (git-annex says which remote claims it): one commit."""
    write(repo, Batch(register=list(pairs)))


def unregister_urls(repo: Path, registrations: Iterable[tuple[str, str, bool]]) -> None:
    """Unregister each (key, URL, claimed) on ``repo``'s branch: one commit."""
    write(repo, Batch(unregister=list(registrations)))


def web_states(repo: Path, keys: Iterable[str]) -> dict[str, bool]:
    """key -> does its location log say the web has it? (keys whose log never names the web: absent)"""
    out: dict[str, bool] = {}
    for k, data in branch_logs(repo, keys).items():
        state = log_state(data)
        if WEB_UUID in state:
            out[k] = state[WEB_UUID]
    return out


def mark_web(repo: Path, gone: Iterable[str], serving: Iterable[str]) -> tuple[list[str], list[str]]:
    """Mark ``gone`` keys as not on the web and ``serving`` ones (marked before) as on it again: one commit.

    Returns (keys marked gone now, keys restored now): a key already in the wanted state is not
    written again, so a rerun is a no-op and the branch does not move.
    """
    gone, serving = list(dict.fromkeys(gone)), list(dict.fromkeys(serving))
    if not gone and not serving:
        return [], []
    flush_journal(repo)
    state = web_states(repo, gone + serving)
    to_mark = [k for k in gone if state.get(k) is True]
    to_restore = [k for k in serving if state.get(k) is False]
    if to_mark or to_restore:
        write(repo, Batch().absent(WEB_UUID, to_mark).present(WEB_UUID, to_restore))
    return to_mark, to_restore
