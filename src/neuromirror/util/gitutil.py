"""Thin helpers to run git and git-annex with a fixed identity.

Mirror commits are made by the mirror, not by whoever runs it: a fixed
identity and commit dates taken from the archive make reruns produce the
very same commit ids, which is what crash recovery and reproducibility rely on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional, Sequence

from neuromirror.errors import NeuromirrorError, UserError

IDENTITY = {
    "GIT_AUTHOR_NAME": "neuromirror",
    "GIT_AUTHOR_EMAIL": "neuromirror@localhost",
    "GIT_COMMITTER_NAME": "neuromirror",
    "GIT_COMMITTER_EMAIL": "neuromirror@localhost",
}
#: the mirror's commits' ``Name <email>``, as commits written without ``git commit`` name it
COMMITTER = f"{IDENTITY['GIT_COMMITTER_NAME']} <{IDENTITY['GIT_COMMITTER_EMAIL']}>"
#: a commit id as a ref file names it (a symbolic ref's ``ref: ...`` is not one)
_SHA = re.compile(r"[0-9a-f]{40}")


#: what the long readers (``cat-file --batch``, ``ls-tree``) map and cache at most inside :func:`lean_readers`:
#: a keep of one Zarr of 10^6 chunks reads its repository's 10^6 location and URL logs, and one cat-file held
#: 259 MB of its 471 MB of packs (git's delta base cache, 96 MB by default, and every pack page it touched);
#: with these ~40 MB, its reads ~1.5-2x as long, a small part of a keep's time
LEAN_READER = (
    "-c",
    "core.deltaBaseCacheLimit=4m",
    "-c",
    "core.packedGitWindowSize=1m",
    "-c",
    "core.packedGitLimit=16m",
)
#: readers started in this context (this thread, and what it runs) use LEAN_READER: a count, for nesting
_lean: ContextVar[int] = ContextVar("neuromirror_lean_readers", default=0)


@contextmanager
def lean_readers() -> Iterator[None]:
    """The readers this thread starts meanwhile use :data:`LEAN_READER`: keep's and ``status --copies``',
    whose memory the archives' size sets.  Another thread's readers keep git's defaults: a sync beside a keep
    in the service's process (its readers' time is its targets'); a context variable, not a global."""
    token = _lean.set(_lean.get() + 1)
    try:
        yield
    finally:
        _lean.reset(token)


def _reader_config() -> tuple[str, ...]:
    return LEAN_READER if _lean.get() else ()


class GitError(NeuromirrorError, RuntimeError):
    """A git or git-annex command failed; the message is its stderr's gist."""


def untrusted(repo: Path | str) -> UserError:
    """Git's refusal of a repository another user owns (a lab's mirror read by a member): a run that went on
    would read its trees and logs as empty (``urls`` said "0 file(s)", ``verify`` a mismatch per file)."""
    return UserError(
        f"git refuses {repo}: it is owned by another user (git's dubious ownership check); to read this mirror, "
        "add it (or '*') to git's safe.directory setting in your global git configuration"
    )


def config_file_value(path: Path, section: str, key: str) -> Optional[str]:
    """The first value of ``key`` in ``[section]`` of a git config file, read without a ``git config`` child.

    ``section`` as its header reads without spaces, lowercased (``neuromirror``,
    ``datalad"dataset"``).  None when the file, the section or the key is missing;
    callers that must see git's full semantics (includes, last value wins) ask git then.
    """
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return None
    found = config_values(text, section, key)
    return found[0] if found else None


def config_values(text: str, section: str, key: str) -> list[str]:
    """Every value of ``key`` in ``[section]`` of a git config file's ``text``, in order (``section`` as for
    :func:`config_file_value`; ``key`` compared case-blind, as git does)."""
    header = f"[{section}]"
    inside, out = False, []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            inside = line.replace(" ", "").lower() == header
        elif inside and "=" in line:
            name, value = (part.strip() for part in line.split("=", 1))
            if name.lower() == key.lower():
                out.append(value.strip('"'))
    return out


def git_env(extra: Optional[dict] = None) -> dict:
    """The environment git runs in: the process's, the mirror's committer, ``extra`` over them (a value of None:
    that variable left out, as a secret git-annex would otherwise write into the repository's own files)."""
    env = dict(os.environ)
    env.update(IDENTITY)
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    if extra:
        env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def run(
    repo: Path | str,
    *args: str,
    input: Optional[bytes] = None,
    check: bool = True,
    env: Optional[dict] = None,
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=input,
        capture_output=True,
        env=git_env(env),
    )
    if proc.returncode != 0 and b"dubious ownership" in proc.stderr:
        raise untrusted(repo)  # whatever the caller would make of an empty answer, it would be wrong
    if check and proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        gist = err[-1] if err else f"exit {proc.returncode}"
        raise GitError(f"git {' '.join(args[:2])} failed in {repo}: {gist}")
    return proc


def out(repo: Path | str, *args: str, check: bool = True) -> str:
    return run(repo, *args, check=check).stdout.decode().strip()


def git_dir(repo: Path) -> Optional[Path]:
    """The git directory of a work tree, read from the file system (no git child): ``.git``, or where a
    submodule's ``gitdir:`` file points; None when neither is there."""
    dot = repo / ".git"
    if dot.is_dir():
        return dot
    try:
        text = dot.read_text().strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    target = Path(text[len("gitdir:") :].strip())
    return target if target.is_absolute() else (repo / target).resolve()


def rev_parse(repo: Path | str, rev: str) -> Optional[str]:
    proc = run(repo, "rev-parse", "--verify", "-q", rev + "^{commit}", check=False)
    return proc.stdout.decode().strip() or None


def ref_sha(repo: Path | str, ref: str) -> Optional[str]:
    proc = run(repo, "rev-parse", "--verify", "-q", ref, check=False)
    return proc.stdout.decode().strip() or None


def branch_sha(repo: Path | str, ref: str) -> Optional[str]:
    """``ref``'s commit (a full ref name: ``refs/heads/git-annex``) read from the ref files where they name it
    plainly, else asked of git: keep and the counts read a branch head per Zarr dataset, 20,000 in a dandiset,
    and a ``git rev-parse`` costs ~2 ms where the files cost ~20 us (a loose ref in a ``.git`` directory: one
    ``open``, :func:`loose_ref`)."""
    sha = loose_ref(os.path.join(repo, ".git"), ref)
    if sha is not None:
        return sha
    where = git_dir(Path(repo))
    sha = ref_from_files(where, ref) if where is not None else None
    return sha if sha and _SHA.fullmatch(sha) else ref_sha(repo, ref)


def loose_ref(git_dir: str, ref: str) -> Optional[str]:
    """``ref``'s commit from its loose ref file under ``git_dir`` (a plain string path: one ``open``, no
    ``pathlib``); None when that file is not there or does not hold a commit id (the caller asks
    :func:`branch_sha`).  Why: a keep's no-op rerun reads a branch head per Zarr dataset twice, 40,000
    reads in a dandiset of 20,000 Zarrs, where each ``Path`` step cost more than the read."""
    try:
        with open(os.path.join(git_dir, ref), "rb") as f:
            sha = f.read(64).strip().decode("ascii", "replace")
    except OSError:
        return None
    return sha if _SHA.fullmatch(sha) else None


def head_from_files(repo: Path | str) -> Optional[str]:
    """The repository's HEAD commit, read from its files where they say it plainly (no git child;
    a packed or symbolic ref further on asks git)."""
    git_dir = Path(repo) / ".git"
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            found = ref_from_files(git_dir, head[5:])  # a new dataset's refs are packed (fast_init)
            if found:
                return found
        elif re.fullmatch(r"[0-9a-f]{40}", head):
            return head
    except OSError:
        return None
    return rev_parse(repo, "HEAD") if git_dir.is_dir() else None


def checked_out(repo: Path | str) -> Optional[str]:
    """The commit checked out in ``repo`` where its files say it plainly (a detached HEAD, or a branch's loose
    or packed ref); None otherwise, never a git child: a cheap first answer for callers that ask git after."""
    where = git_dir(Path(repo))
    try:
        head = (where / "HEAD").read_text().strip() if where is not None else ""
    except OSError:
        return None
    sha = ref_from_files(where, head[5:]) if head.startswith("ref: ") and where is not None else head
    return sha if sha and _SHA.fullmatch(sha) else None


def ref_from_files(git_dir: Path, ref: str) -> Optional[str]:
    """``ref``'s commit read from the repository's files (its loose ref, else ``packed-refs``): no git
    process; None when neither names it or a file cannot be read (callers that must know ask git)."""
    try:
        return (git_dir / ref).read_text().strip() or None
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        packed = (git_dir / "packed-refs").read_text()
    except OSError:
        return None
    for line in packed.splitlines():
        sha, _, name = line.partition(" ")
        if name == ref:
            return sha
    return None


def is_clean(repo: Path | str) -> bool:
    return out(repo, "status", "--porcelain", "--ignore-submodules=all") == ""


#: requests of at most this many bytes may be written to a ``cat-file`` without a writer thread
FEW_BYTES = 16 << 10


def read_answers(out: IO[bytes], count: int) -> Iterator[Optional[bytes]]:
    """``count`` answers of ``git cat-file --batch`` from its stdout: each object's bytes, None for a missing one."""
    for _ in range(count):
        header = out.readline().split()
        if len(header) < 3 or header[1] == b"missing":
            yield None
            continue
        data = out.read(int(header[2]))
        out.read(1)
        yield data


def cat_buffered(repo: Path | str, specs: Sequence[str]) -> list[Optional[bytes]]:
    """Many objects at once: a ``cat-file --batch --buffer`` of its own, given every request and then the
    end of its input, writes its answers in large blocks instead of flushing after each object (10^4 of
    a Zarr's symlinks: ~0.08 s against ~0.18 s through :meth:`CatFile.get_many`)."""
    import threading

    proc = subprocess.Popen(
        ["git", "-C", str(repo), "cat-file", "--batch", "--buffer"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=git_env(),
        bufsize=1 << 20,
    )
    assert proc.stdin and proc.stdout
    stdin = proc.stdin

    def write() -> None:
        try:
            stdin.write("".join(s + "\n" for s in specs).encode("utf-8", "surrogateescape"))
        except (BrokenPipeError, ValueError):
            pass
        finally:
            stdin.close()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        return list(read_answers(proc.stdout, len(specs)))
    finally:
        writer.join()
        proc.stdout.close()
        proc.wait()


class CatFile:
    """A long-running ``git cat-file --batch`` for many small reads."""

    def __init__(self, repo: Path | str, *, lean: bool = False):
        """``lean``: with :data:`LEAN_READER` whoever runs it (a reader of 10^6 small logs: the caches would
        hold the repository's packs, and the small blobs gain little by them)."""
        config = LEAN_READER if lean else _reader_config()
        self.proc = subprocess.Popen(
            ["git", *config, "-C", str(repo), "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=git_env(),
        )

    def get(self, spec: str) -> Optional[bytes]:
        return self.get_few([spec])[0]

    def get_few(self, specs: Sequence[str]) -> list[Optional[bytes]]:
        """Each object (None: missing), the requests written at once and no thread: keep them small
        (:data:`FEW_BYTES`), so that they fit the pipe and git never waits on a full stdout meanwhile."""
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("".join(s + "\n" for s in specs).encode("utf-8", "surrogateescape"))
        self.proc.stdin.flush()
        return list(read_answers(self.proc.stdout, len(specs)))

    def get_many(self, specs: Iterable[str]) -> Iterator[Optional[bytes]]:
        """Each spec's content (None: missing), in order, the requests written by a thread.

        One round trip per object (:meth:`get`) costs ~0.1-0.4 ms of waiting on a busy
        machine: 10^4 reads of a Zarr dataset's symlinks and URL logs took 4 s.  Here git
        answers while the requests are still being written.
        """
        import threading

        assert self.proc.stdin and self.proc.stdout
        todo = list(specs)
        stdin = self.proc.stdin

        def write() -> None:
            try:
                for spec in todo:
                    stdin.write(spec.encode("utf-8", "surrogateescape") + b"\n")
                stdin.flush()
            except (BrokenPipeError, ValueError):
                pass

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        try:
            yield from read_answers(self.proc.stdout, len(todo))
        finally:
            writer.join()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()

    def __enter__(self) -> CatFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ls_tree(repo: Path | str, rev: str, paths: Sequence[str] = ()) -> Iterable[tuple[str, str, str, str]]:
    """(mode, type, sha, path) of every file in ``rev``, streamed."""
    proc = subprocess.Popen(
        ["git", *_reader_config(), "-C", str(repo), "ls-tree", "-r", "-z", "--full-tree", rev, "--", *paths],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=git_env(),
    )
    assert proc.stdout and proc.stderr
    buf = b""
    while True:
        chunk = proc.stdout.read(1 << 16)
        if not chunk:
            break
        buf += chunk
        *records, buf = buf.split(b"\0")
        for rec in records:
            meta, path = rec.split(b"\t", 1)
            mode, typ, sha = meta.decode().split()
            yield mode, typ, sha, path.decode("utf-8", "surrogateescape")
    err = proc.stderr.read()  # a few lines at most: git has written its stdout whole by now
    if proc.wait() != 0 and b"dubious ownership" in err:
        raise untrusted(repo)  # not an empty tree
    if err:
        sys.stderr.write(err.decode(errors="replace"))  # git's own words, as when they went straight there


def ref_label(ref: str) -> str:
    """How a message names a ref: a branch by its name, a tag as ``tag NAME``."""
    return ref.replace("refs/heads/", "").replace("refs/tags/", "tag ")


@dataclass(frozen=True)
class Pushed:
    """What ``git push --porcelain`` did, ref by ref (labels as :func:`ref_label` gives them)."""

    updated: list[str]
    rejected: list[str]  # "LABEL (git's reason)"
    error: Optional[str]  # git's last error line when it failed for another reason; None: it did not
    #: every ref the target reported holding after the push (up to date ones too): full ref -> the push's source
    #: of it (a local ref, or a commit id); the target's own report-status, read with no second connection
    held: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.rejected and self.error is None


def push(repo: Path | str, target: str, refspecs: Sequence[str], env: Optional[dict] = None) -> Pushed:
    """``git push --porcelain TARGET REFSPEC...``, its per-ref lines read once for every publisher."""
    proc = run(repo, "push", "--porcelain", target, *refspecs, check=False, env=env)
    updated: list[str] = []
    rejected: list[str] = []
    held: dict[str, str] = {}
    for line in proc.stdout.decode(errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and len(parts[0]) == 1:
            flag, (src, _, ref) = parts[0], parts[1].rpartition(":")
            dst = ref_label(ref)
            if flag == "!":
                rejected.append(f"{dst} ({parts[2]})")
                continue
            held[ref] = src
            if flag != "=":
                updated.append(dst)
    error = None
    if proc.returncode != 0 and not rejected:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        error = err[-1] if err else f"exit {proc.returncode}"
    return Pushed(updated, rejected, error, held)
