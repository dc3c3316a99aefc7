"""Getting a pinned version out of the mirror: clone, check out, fetch, verify.

Used by ``neuromirror get`` and ``neuromirror reproduce`` (and, for the file
lists, by ``lock`` and ``verify``).  The steps are DataLad/git-annex ones a
user could type by hand, so a retrieved copy is an ordinary DataLad dataset:

1. ``datalad clone URL DIR`` — the mirror's dataset (a local path) or a
   published sibling (any git URL; see :mod:`neuromirror.reproduce.publish`);
2. ``git checkout --detach COMMIT`` — the version's commit (fetched by id if
   the clone's branches do not contain it);
3. ``git annex get -J N --json-progress PATH...`` — content from the URLs the
   mirror registered; git-annex checks every byte against the key
   (SHA256E/MD5E: the archive's own checksum) before it lands in the
   dataset, and a file that does not match is not kept.

Loopback or private archives (the stand-ins) need
``annex.security.allowed-ip-addresses``: :func:`clone` sets it, when asked,
in the clone it creates and nowhere else.

A version's *file list* is its data files (the dataset's ``.datalad/`` and
``.gitattributes`` plumbing excluded) with, per file, its git-annex key — or,
for a file stored in git, ``GIT-SHA256-s<size>--<sha256>`` of its bytes.
:func:`file_list_digest` hashes it so that a lock file can say "this exact
list" in one line and a reproduction can check it against any clone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from neuromirror.annex.keys import key_from_symlink, parse_key
from neuromirror.util import gitutil
from neuromirror.util.progress import ByteProgress, human_bytes

#: env var holding the default for ``--allow-ip`` (e.g. "all" for loopback stand-ins)
ALLOW_IP_ENV = "NEUROMIRROR_ALLOW_IP"
ALLOW_IP_KEY = "annex.security.allowed-ip-addresses"
GIT_PREFIX = "GIT-SHA256"


class RetrieveError(RuntimeError):
    """Retrieval failed; the message says what and where, in a line or a few."""


# -- formatting -----------------------------------------------------------
def fmt_bytes(n: Optional[int]) -> str:
    return human_bytes(n, none="?")


def fmt_duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


# -- the file list of a version -------------------------------------------
@dataclass(frozen=True)
class TreeFile:
    """A data file of a version as the dataset's tree holds it (or a subdataset: ``commit`` set)."""

    path: str
    key: Optional[str]  # git-annex key; None for a file stored in git
    size: Optional[int]
    sha256: Optional[str] = None  # files in git: sha256 of the bytes
    commit: Optional[str] = None  # a subdataset (gitlink, e.g. a DANDI Zarr asset): its commit

    @property
    def ident(self) -> str:
        """What the file list digest records for this file."""
        if self.key:
            return self.key
        if self.commit:
            return f"SUBDATASET--{self.commit}"
        return f"{GIT_PREFIX}-s{self.size}--{self.sha256}"

    @property
    def in_git(self) -> bool:
        return self.key is None and self.commit is None

    @property
    def is_subdataset(self) -> bool:
        return self.commit is not None


def is_plumbing(path: str) -> bool:
    """Files every DataLad dataset has that are not the archive's data."""
    return path.startswith(".datalad/") or path in (".gitattributes", ".gitmodules")


def _pointer_key(data: bytes) -> Optional[str]:
    """The key of an unlocked annexed file's pointer blob, if ``data`` is one."""
    if len(data) < 512 and data.startswith(b"/annex/objects/"):
        return key_from_symlink(data.decode("utf-8", "surrogateescape").strip())
    return None


def tree_files(repo: Path | str, commit: str, paths: Sequence[str] = ()) -> Iterator[TreeFile]:
    """The data files of ``commit`` (in git's path order), keys read from the symlinks; subdatasets as such."""
    with gitutil.CatFile(repo) as cat:
        for mode, typ, sha, path in gitutil.ls_tree(repo, commit, paths):
            if typ == "commit":
                yield TreeFile(path, None, None, commit=sha)
                continue
            if typ != "blob" or is_plumbing(path):
                continue
            data = cat.get(sha) or b""
            key = key_from_symlink(data.decode("utf-8", "surrogateescape")) if mode == "120000" else _pointer_key(data)
            if key:
                try:
                    size = parse_key(key)["size"]
                except ValueError:
                    size = None
                yield TreeFile(path, key, size)
            else:
                yield TreeFile(path, None, len(data), hashlib.sha256(data).hexdigest())


def walk_files(repo: Path | str, commit: str, prefix: str = "") -> Iterator[TreeFile]:
    """The data files of ``commit`` *including those of its subdatasets* at their recorded commits.

    A subdataset must be present (installed, with that commit) below ``repo``:
    the mirror has them all; a clone gets them with :func:`install_subdatasets`.
    """
    for f in tree_files(repo, commit):
        if f.commit:
            sub = Path(repo) / f.path
            if not (sub / ".git").exists() or not has_commit(sub, f.commit):
                raise RetrieveError(
                    f"subdataset {prefix}{f.path} (commit {f.commit[:12]}) is not installed in "
                    f"{repo}: its files cannot be listed"
                )
            yield from walk_files(sub, f.commit, f"{prefix}{f.path}/")
        else:
            yield TreeFile(prefix + f.path, f.key, f.size, f.sha256)


def gitlinks(repo: Path | str, commit: str) -> list[tuple[str, str]]:
    """(path, commit) of the subdatasets recorded in ``commit``."""
    return [(path, sha) for _, typ, sha, path in gitutil.ls_tree(repo, commit) if typ == "commit"]


def _sort_key(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


@dataclass
class FileList:
    digest: str
    files: int
    bytes: int
    entries: list[tuple[str, str]] = field(default_factory=list)  # (path, ident), sorted


def file_list_digest(files: Iterable[TreeFile], keep: bool = False) -> FileList:
    """``sha256:<hex>`` of the lines ``PATH<TAB>KEY\\n`` sorted by path (UTF-8 bytes).

    KEY is the git-annex key, or ``GIT-SHA256-s<size>--<sha256>`` for a file
    stored in git.  Give it :func:`walk_files` (subdatasets' files are then
    listed under their path, like any file) and it is independent of git's
    object ids: two mirrors built independently from the same archive state
    give the same digest.
    """
    rows = sorted(((f.path, f.ident, f.size or 0) for f in files), key=lambda r: _sort_key(r[0]))
    pairs = [(p, i) for p, i, _ in rows]
    return FileList(digest_pairs(pairs, presorted=True), len(rows), sum(r[2] for r in rows), pairs if keep else [])


def digest_pairs(pairs: Iterable[tuple[str, str]], presorted: bool = False) -> str:
    """The file list digest of (path, key) pairs."""
    items = pairs if presorted else sorted(pairs, key=lambda r: _sort_key(r[0]))
    h = hashlib.sha256()
    for path, ident in items:
        h.update(path.encode("utf-8", "surrogateescape") + b"\t" + ident.encode() + b"\n")
    return "sha256:" + h.hexdigest()


# -- where to clone from ------------------------------------------------------
def is_local(url: str) -> bool:
    """A plain path (or file:// URL) rather than a network URL."""
    if url.startswith("file://"):
        return True
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        return False
    # scp-like ssh syntax: user@host:path or host:path (not a Windows drive)
    if re.match(r"^[^/]+:", url) and not re.match(r"^[A-Za-z]:[\\/]", url):
        return False
    return True


def local_path(url: str) -> Path:
    return Path(url[len("file://") :] if url.startswith("file://") else url).expanduser().absolute()


def join_url(base: str, relpath: str) -> str:
    """``base`` + ``/relpath``, for paths, URLs and scp-like ssh addresses alike."""
    if is_local(base) and not base.startswith("file://"):
        return str(local_path(base) / relpath)
    return base.rstrip("/") + "/" + relpath


def is_repository(url: str) -> bool:
    """Whether git can talk to a repository at ``url`` (cheap: ``git ls-remote``)."""
    if is_local(url) and not local_path(url).exists():
        return False
    proc = subprocess.run(
        ["git", "ls-remote", "-q", "--heads", url],
        capture_output=True,
        env=gitutil.git_env({"GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")}),
        timeout=120,
    )
    return proc.returncode == 0


def resolve_url(base: str, relpath: str) -> str:
    """The clone URL of dataset ``relpath`` at ``base``: ``base/relpath`` if a repository is there, else ``base``.

    ``base`` is either where ``neuromirror publish --to BASE`` put the
    datasets, or the URL of one dataset itself.
    """
    for candidate in (join_url(base, relpath), base):
        if is_repository(candidate):
            return candidate
    raise RetrieveError(f"no git repository at {join_url(base, relpath)} nor at {base}")


# -- clone / checkout -------------------------------------------------------------
def allow_ip_default(value: Optional[str]) -> Optional[str]:
    return value if value is not None else (os.environ.get(ALLOW_IP_ENV) or None)


def clone(url: str, dest: Path, *, allow_ip: Optional[str] = None) -> tuple[Path, bool]:
    """``datalad clone url dest``; reuse ``dest`` if it already is a clone. Return (path, reused)."""
    dest = Path(dest).absolute()
    reused = False
    if (dest / ".git").exists():
        reused = True
        origin = gitutil.out(dest, "config", "--get", "remote.origin.url", check=False)
        if origin and _same_url(origin, url):
            gitutil.run(dest, "fetch", "-q", "--tags", "origin", check=False)
            gitutil.run(dest, "fetch", "-q", "origin", "git-annex", check=False)
        elif origin:
            raise RetrieveError(f"{dest} is a clone of {origin}, not of {url}: choose another --to directory")
    elif dest.exists() and any(dest.iterdir()):
        raise RetrieveError(f"{dest} exists and is not empty: choose a new --to directory")
    else:
        # a plain clone: annex.supportunlocked=false at the clone's init made it 7x slower at 10^5
        # files (34.8 s vs 5.2 s, docs/performance.md), and the first get no faster
        _datalad_clone(url, dest)
    if allow_ip:
        # this clone only: never the user's or the system's git config
        gitutil.run(dest, "config", "--local", ALLOW_IP_KEY, allow_ip)
    return dest, reused


def remove_clone(path: Path) -> None:
    """Delete a clone this run created (git-annex keeps its objects read-only)."""
    import shutil
    import stat

    def writable(func, p, _exc):  # noqa: ANN001
        parent = os.path.dirname(p)
        for q in (parent, p):
            try:
                os.chmod(q, os.stat(q).st_mode | stat.S_IWUSR | stat.S_IXUSR | stat.S_IRUSR)
            except OSError:
                pass
        func(p)

    shutil.rmtree(path, onerror=writable)


def _same_url(a: str, b: str) -> bool:
    if is_local(a) and is_local(b):
        return local_path(a).resolve() == local_path(b).resolve()
    return a.rstrip("/") == b.rstrip("/")


def _datalad_clone(url: str, dest: Path) -> None:
    from datalad.api import clone as dl_clone

    from neuromirror.util.quiet import quiet_env

    dest.parent.mkdir(parents=True, exist_ok=True)
    with quiet_env():
        try:
            results = dl_clone(
                source=url,
                path=str(dest),
                result_renderer="disabled",
                on_failure="ignore",
                result_xfm=None,
                return_type="list",
            )
        except Exception as exc:  # IncompleteResultsError and friends
            raise RetrieveError(f"datalad clone {url} failed: {_gist(str(exc))}") from None
    bad = [r for r in results if r.get("status") not in ("ok", "notneeded")]
    if bad or not (dest / ".git").exists():
        msg = bad[0].get("message") if bad else "no dataset was created"
        if isinstance(msg, (list, tuple)):
            try:
                msg = msg[0] % tuple(msg[1:])
            except Exception:
                msg = " ".join(map(str, msg))
        raise RetrieveError(f"datalad clone {url} failed: {_gist(str(msg))}")


def _gist(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[0] if lines else "unknown error")[:400]


def has_commit(repo: Path, commit: str) -> bool:
    return gitutil.run(repo, "cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode == 0


def ensure_commit(repo: Path, commit: str, url: str) -> None:
    """Make ``commit`` available in ``repo``: fetch it by id from origin if the branches lack it."""
    if has_commit(repo, commit):
        return
    gitutil.run(repo, "fetch", "-q", "origin", commit, check=False)
    if not has_commit(repo, commit):
        raise RetrieveError(
            f"commit {commit} is not in {url}: that state was never published there, or the history was rewritten"
        )


def checkout(repo: Path, commit: str) -> None:
    """Detach HEAD at ``commit`` (refusing to overwrite local changes)."""
    head = gitutil.rev_parse(repo, "HEAD")
    if head == commit:
        return
    if not gitutil.is_clean(repo):
        raise RetrieveError(f"{repo} has local changes: refusing to check out {commit[:12]} over them")
    proc = gitutil.run(repo, "checkout", "-q", "--detach", commit, check=False)
    if proc.returncode != 0:
        raise RetrieveError(
            f"git checkout {commit[:12]} failed in {repo}: {_gist(proc.stderr.decode(errors='replace'))}"
        )


def tag_commit(repo: Path, tag: str) -> Optional[str]:
    return gitutil.rev_parse(repo, f"refs/tags/{tag}")


def resolve_version_in_clone(repo: Path, source: str, version: Optional[str]) -> dict:
    """Find a version in a clone (no index at hand): by tag, else by the commit trailers.

    Returns a pin-like record {source, version, commit, tag, doi, kind}.
    """
    from neuromirror.index.trailers import parse_trailers

    def record(commit: str) -> dict:
        body = gitutil.out(repo, "log", "-1", "--format=%B", commit)
        tr = parse_trailers(body)
        if tr.get("source") and tr["source"] != source:
            raise RetrieveError(f"the dataset at {repo} holds {tr['source']}, not {source}")
        label = tr.get("label") or version or ""
        tag = label if label and tag_commit(repo, label) == commit else None
        return {
            "source": source,
            "version": label,
            "commit": commit,
            "tag": tag,
            "doi": tr.get("doi"),
            "kind": tr.get("kind"),
        }

    refs = ["HEAD", "--tags"]
    if version is None:
        found = gitutil.out(repo, "log", "-1", "--format=%H", "--grep=^Neuromirror-Label: ", "HEAD", check=False)
        if not found:
            raise RetrieveError(f"no neuromirror version in {repo}")
        return record(found)
    by_tag = tag_commit(repo, version)
    if by_tag:
        return record(by_tag)
    pattern = "^Neuromirror-Label: " + re.escape(version) + "$"
    found = gitutil.out(repo, "log", "-1", "--format=%H", "-E", f"--grep={pattern}", *refs, check=False)
    if not found:
        raise RetrieveError(f"{source} has no version {version!r} in {repo}")
    return record(found)


def check_paths(repo: Path, commit: str, paths: Sequence[str]) -> list[str]:
    """Normalise user paths (relative to the dataset) and refuse those the version lacks.

    Paths inside a subdataset are accepted here (checked when it is installed).
    """
    out: list[str] = []
    links = [g for g, _ in gitlinks(repo, commit)]
    for p in paths:
        norm = os.path.normpath(p).replace(os.sep, "/")
        if norm in (".", ""):
            return []
        if norm.startswith("../") or norm == ".." or os.path.isabs(norm):
            raise RetrieveError(f"{p!r} is not a path inside the dataset")
        inside = any(norm.startswith(g + "/") for g in links)
        found = inside or gitutil.out(repo, "ls-tree", "--name-only", commit, "--", norm.rstrip("/"), check=False)
        if not found:
            raise RetrieveError(f"{p!r} is not in this version (commit {commit[:12]})")
        out.append(norm)
    return out


def split_paths(
    repo: Path, commit: str, paths: Sequence[str]
) -> tuple[Optional[list[str]], dict[str, tuple[str, list[str]]]]:
    """Route user paths: (paths for ``repo`` itself or None, {subdataset: (commit, its own paths)}).

    ``[]`` means everything; a subdataset is included when a path is in it or above it.
    """
    links = gitlinks(repo, commit)
    if not paths:
        return [], {g: (sha, []) for g, sha in links}
    mine: list[str] = []
    subs: dict[str, tuple[str, list[str]]] = {}
    for p in paths:
        owner = next(((g, sha) for g, sha in links if p == g or p.startswith(g + "/")), None)
        if owner is None:
            mine.append(p)
            subs.update({g: (sha, []) for g, sha in links if g.startswith(p.rstrip("/") + "/")})
            continue
        g, sha = owner
        rest = p[len(g) + 1 :]  # "" when the path is the subdataset itself
        if g not in subs:
            subs[g] = (sha, [rest] if rest else [])
        elif subs[g][1]:  # so far only parts of it
            subs[g] = (sha, subs[g][1] + [rest] if rest else [])
    return (mine or None), subs


def install_subdataset(parent: Path, path: str, commit: str, *, allow_ip: Optional[str] = None) -> Path:
    """Install subdataset ``path`` of a clone (``datalad get -n``) and check out ``commit`` in it."""
    sub = parent / path
    if not (sub / ".git").exists():
        from datalad.api import get as dl_get

        from neuromirror.util.quiet import quiet_env

        with quiet_env():
            try:
                results = dl_get(
                    path=str(sub),
                    dataset=str(parent),
                    get_data=False,
                    result_renderer="disabled",
                    on_failure="ignore",
                    result_xfm=None,
                    return_type="list",
                )
            except Exception as exc:
                raise RetrieveError(f"subdataset {path} could not be installed: {_gist(str(exc))}") from None
        bad = [r for r in results if r.get("status") not in ("ok", "notneeded")]
        if bad or not (sub / ".git").exists():
            msg = bad[0].get("message") if bad else "nothing was installed"
            if isinstance(msg, (list, tuple)):
                msg = " ".join(map(str, msg))
            raise RetrieveError(
                f"subdataset {path} could not be installed (its URL in .gitmodules resolves against "
                f"{gitutil.out(parent, 'config', '--get', 'remote.origin.url', check=False)}): "
                f"{_gist(str(msg))}"
            )
    if allow_ip:
        gitutil.run(sub, "config", "--local", ALLOW_IP_KEY, allow_ip)
    ensure_commit(sub, commit, gitutil.out(sub, "config", "--get", "remote.origin.url", check=False) or str(sub))
    checkout(sub, commit)
    return sub


def install_subdatasets(repo: Path, commit: str, *, allow_ip: Optional[str] = None) -> int:
    """Install every subdataset (recursively) at its recorded commit; return how many."""
    n = 0
    for path, sha in gitlinks(repo, commit):
        sub = install_subdataset(repo, path, sha, allow_ip=allow_ip)
        n += 1 + install_subdatasets(sub, sha, allow_ip=allow_ip)
    return n


# -- fetching content ---------------------------------------------------------
@dataclass
class GetReport:
    wanted: int = 0  # annexed files asked for (unique keys)
    wanted_bytes: int = 0
    present: int = 0  # were there already
    fetched: int = 0
    fetched_bytes: int = 0
    git_files: int = 0  # files in git (their bytes came with the checkout)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    backends: set[str] = field(default_factory=set)
    seconds: float = 0.0
    subdatasets: int = 0

    def merge(self, other: GetReport, prefix: str) -> None:
        for name in ("wanted", "wanted_bytes", "present", "fetched", "fetched_bytes", "git_files", "subdatasets"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed += [(prefix + p, why) for p, why in other.failed]
        self.backends |= other.backends

    def line(self) -> str:
        kinds = "/".join(sorted(self.backends)) or "-"
        text = (
            f"fetched {self.fetched} file(s), {fmt_bytes(self.fetched_bytes)}, verified by git-annex ({kinds} keys)"
            f" in {fmt_duration(self.seconds)}"
        )
        if self.present:
            text += f"; {self.present} already present"
        if self.git_files:
            text += f"; {self.git_files} file(s) in git"
        if self.subdatasets:
            text += f"; {self.subdatasets} subdataset(s)"
        if self.failed:
            text += f"; {len(self.failed)} FAILED"
        return text


def _annex_json_lines(repo: Path, args: Sequence[str]) -> Iterator[dict]:
    proc = subprocess.run(["git", "-C", str(repo), "annex", *args], capture_output=True, env=gitutil.git_env())
    for line in proc.stdout.decode(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue
    if proc.returncode != 0 and not proc.stdout.strip():
        raise RetrieveError(f"git annex {args[0]} failed in {repo}: {_gist(proc.stderr.decode(errors='replace'))}")


def missing_content(repo: Path, paths: Sequence[str]) -> list[dict]:
    """Annexed files under ``paths`` whose content is not here: [{file, key, bytesize}], one per key."""
    seen: set[str] = set()
    out: list[dict] = []
    for rec in _annex_json_lines(repo, ["find", "--not", "--in=here", "--json", "--", *(paths or ["."])]):
        key = rec.get("key")
        if not key or key in seen:
            continue
        seen.add(key)
        size = rec.get("bytesize")
        out.append(
            {
                "file": rec.get("file"),
                "key": key,
                "bytesize": int(size) if str(size).isdigit() else None,
                "backend": rec.get("backend"),
            }
        )
    return out


def count_annexed(repo: Path, paths: Sequence[str]) -> tuple[int, set[str]]:
    """(unique keys, backends) of the annexed files under ``paths`` (present or not)."""
    keys: set[str] = set()
    backends: set[str] = set()
    for rec in _annex_json_lines(repo, ["find", "--include=*", "--json", "--", *(paths or ["."])]):
        if rec.get("key"):
            keys.add(rec["key"])
            if rec.get("backend"):
                backends.add(rec["backend"])
    return len(keys), backends


def annex_get(
    repo: Path, paths: Sequence[str], *, jobs: int = 4, progress: bool = True, label: str = "get"
) -> GetReport:
    """``git annex get`` with byte progress; git-annex verifies each key's checksum on arrival."""
    t0 = time.monotonic()
    report = GetReport()
    todo = missing_content(repo, paths)
    total_keys, report.backends = count_annexed(repo, paths)
    report.wanted = total_keys
    report.present = total_keys - len(todo)
    report.wanted_bytes = sum(t["bytesize"] or 0 for t in todo)
    sizes = {t["key"]: t["bytesize"] for t in todo}
    bar = ByteProgress(report.wanted_bytes, len(todo), enabled=progress and bool(todo), label=label)
    if todo:
        cmd = [
            "git",
            "-C",
            str(repo),
            "-c",
            "annex.verify=true",
            "annex",
            "get",
            "--json",
            "--json-progress",
            "--json-error-messages",
            f"-J{max(1, jobs)}",
            "--",
            *(paths or ["."]),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=gitutil.git_env())
        errors: list[bytes] = []
        drain = threading.Thread(target=lambda: errors.append(proc.stderr.read() if proc.stderr else b""), daemon=True)
        drain.start()
        assert proc.stdout
        for raw in proc.stdout:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if "byte-progress" in rec:
                key = (rec.get("action") or {}).get("key")
                if key:
                    bar.update(key, int(rec.get("byte-progress") or 0))
                continue
            key = rec.get("key")
            if rec.get("success"):
                if key in sizes:
                    report.fetched += 1
                    report.fetched_bytes += sizes[key] or bar.partial.get(key, 0)
                    bar.finish(key, sizes.pop(key))
            else:
                why = (
                    "; ".join(m.strip() for m in rec.get("error-messages") or [] if m.strip())
                    or rec.get("note")
                    or "failed"
                )
                report.failed.append((rec.get("file") or key or "?", " ".join(why.split())))
        proc.wait()
        drain.join(timeout=5)
        bar.close()
        if proc.returncode != 0 and not report.failed:
            err = b"".join(errors).decode(errors="replace")
            report.failed.append(("?", _gist(err) if err.strip() else f"git annex get exited {proc.returncode}"))
    # whatever git-annex said, the content must be here now
    still = missing_content(repo, paths)
    failed_paths = {p for p, _ in report.failed}
    for rec in still:
        if rec["file"] not in failed_paths:
            report.failed.append((rec["file"], "content is not present after get"))
    report.git_files = sum(
        1
        for mode, typ, _, path in gitutil.ls_tree(repo, "HEAD", paths)
        if typ == "blob" and mode != "120000" and not is_plumbing(path)
    )
    report.seconds = time.monotonic() - t0
    return report


def failure_lines(report: GetReport, limit: int = 20) -> list[str]:
    lines = [f"  {path}: {why}" for path, why in report.failed[:limit]]
    if len(report.failed) > limit:
        lines.append(f"  ... and {len(report.failed) - limit} more")
    if any("allowed-ip-addresses" in why for _, why in report.failed):
        lines.append(
            f"  hint: the archive is on a loopback/private address: pass --allow-ip all (or set {ALLOW_IP_ENV})"
            " to allow it in this clone"
        )
    return lines


def fetch(
    repo: Path,
    commit: str,
    paths: Sequence[str],
    *,
    jobs: int = 4,
    progress: bool = True,
    label: str = "get",
    allow_ip: Optional[str] = None,
) -> GetReport:
    """:func:`annex_get` in ``repo`` and, recursively, in the subdatasets the paths reach (installed as needed)."""
    t0 = time.monotonic()
    mine, subs = split_paths(repo, commit, paths)
    report = annex_get(repo, mine, jobs=jobs, progress=progress, label=label) if mine is not None else GetReport()
    for path, (sha, sub_paths) in subs.items():
        try:
            sub = install_subdataset(repo, path, sha, allow_ip=allow_ip)
        except RetrieveError as exc:
            report.failed.append((path, str(exc)))
            continue
        sub_paths = check_paths(sub, sha, sub_paths)
        inner = fetch(sub, sha, sub_paths, jobs=jobs, progress=progress, label=f"{label} {path}", allow_ip=allow_ip)
        inner.subdatasets += 1
        report.merge(inner, path + "/")
    report.seconds = time.monotonic() - t0
    return report
