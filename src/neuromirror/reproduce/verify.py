"""Do the dataset, the index and the archive agree about a version?

Checks, for one version (the commit the index names):

1. *refs*: the commit exists in the dataset; the version's tag points at it.
2. *tree = index*: the same paths; per file the same key (annexed) or the
   same sha256 (in git), the same size; the key's checksum is the one the
   index recorded from the archive; the index's file/byte counts add up.
3. *URLs registered*: every URL the index holds for a key is live in the key's
   URL log on the ``git-annex`` branch, and the key's location log says some
   repository (the web, or a special remote) has it — otherwise a clone's
   ``git annex get`` has nowhere to go.
4. with ``archive=True``: the source module (the same code ``sync`` uses)
   lists the version at the archive again — a published version must list
   exactly the dataset's paths and keys, and its URLs must be registered; the
   latest draft/snapshot is compared with the archive's current state (a
   difference then means the archive moved on since the last sync).
5. with ``content=True``: each (sampled) key is downloaded from *every*
   registered http(s) URL and hashed; size and checksum must match the key
   (SHA256E/MD5E carry the archive's checksum; VURL/URL keys only a size).
   A URL serving other bytes matters even when another URL is right: after a
   failed verification git-annex does not try the next URL.

``git annex fsck --from web --fast`` would only send HEAD requests, so
content is checked here by downloading, never by trusting headers.
"""

from __future__ import annotations

import hashlib
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

from neuromirror.annex.keys import hashdir_lower, parse_key
from neuromirror.annex.logs import log_state, web_urls
from neuromirror.records import GIT, MD5, SHA256, SUBDATASET
from neuromirror.reproduce.retrieve import TreeFile, fmt_bytes, gitlinks, has_commit, remove_clone, tree_files
from neuromirror.util import gitutil
from neuromirror.util.progress import ByteProgress

try:  # git-annex's file name for a key (escapes "/" and friends in URL keys)
    from neuromirror.annex.keys import key_file
except ImportError:  # pragma: no cover - older keys.py

    def key_file(key: str) -> str:
        return key


WEB_UUID = "00000000-0000-0000-0000-000000000001"
HASHES = {
    "SHA256": "sha256",
    "SHA512": "sha512",
    "SHA384": "sha384",
    "SHA224": "sha224",
    "SHA1": "sha1",
    "MD5": "md5",
    "SHA3_256": "sha3_256",
    "SHA3_512": "sha3_512",
    "BLAKE2B512": "blake2b",
}
CHUNK = 1 << 20


@dataclass
class Mismatch:
    kind: str  # commit, tag, counts, only-in-dataset, only-in-index, key, size, checksum, stored,
    #            url-not-registered, no-location, content, unreachable
    path: Optional[str]
    detail: str
    key: Optional[str] = None
    url: Optional[str] = None

    def line(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"MISMATCH {self.kind}{where}: {self.detail}"


@dataclass
class VerifyReport:
    source: str
    version: str
    commit: str
    tag: Optional[str] = None
    files: int = 0
    bytes: int = 0
    keys: int = 0
    urls: int = 0
    content_keys: int = 0
    content_urls: int = 0
    content_bytes: int = 0
    content_sampled_of: int = 0
    content_via_annex: int = 0
    subdatasets: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    content: bool = False
    archive_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def add(
        self, kind: str, path: Optional[str], detail: str, key: Optional[str] = None, url: Optional[str] = None
    ) -> None:
        self.mismatches.append(Mismatch(kind, path, detail, key, url))

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "version": self.version,
            "commit": self.commit,
            "tag": self.tag,
            "ok": self.ok,
            "files": self.files,
            "bytes": self.bytes,
            "keys": self.keys,
            "urls": self.urls,
            "subdatasets": self.subdatasets,
            "content": {
                "checked": self.content,
                "keys": self.content_keys,
                "of_keys": self.content_sampled_of,
                "urls": self.content_urls,
                "bytes": self.content_bytes,
                "via_git_annex": self.content_via_annex,
            }
            if self.content
            else None,
            "archive": self.archive_checked,
            "mismatches": [m.__dict__ for m in self.mismatches],
            "notes": self.notes,
        }

    def lines(self, limit: int = 50) -> list[str]:
        head = f"{self.source}@{self.version} (commit {self.commit[:12]}" + (f", tag {self.tag})" if self.tag else ")")
        out = [head]
        bad_tree = {m.kind for m in self.mismatches} & {
            "commit",
            "only-in-dataset",
            "only-in-index",
            "key",
            "size",
            "checksum",
            "stored",
            "counts",
            "subdataset",
        }
        bad_urls = {m.kind for m in self.mismatches} & {"url-not-registered", "no-location"}
        out.append(
            f"  tree and index {'DISAGREE' if bad_tree else 'agree'}: {self.files} files, {fmt_bytes(self.bytes)}"
        )
        subs = f" (with {self.subdatasets} subdataset(s))" if self.subdatasets else ""
        out.append(
            f"  URLs {'NOT all registered' if bad_urls else 'registered'}: {self.keys} keys, {self.urls} URLs{subs}"
        )
        if self.archive_checked:
            bad = any(m.kind == "archive" for m in self.mismatches)
            out.append("  archive DISAGREES" if bad else "  archive agrees: listed again, same paths, keys and URLs")
        if self.content:
            bad = any(m.kind in ("content", "unreachable") for m in self.mismatches)
            via = f", {self.content_via_annex} key(s) through git-annex" if self.content_via_annex else ""
            out.append(
                f"  content {'DIFFERS' if bad else 'matches'}: {self.content_keys}/{self.content_sampled_of} keys, "
                f"{self.content_urls} URLs downloaded and hashed ({fmt_bytes(self.content_bytes)} this time){via}"
            )
        for m in self.mismatches[:limit]:
            out.append("  " + m.line())
        if len(self.mismatches) > limit:
            out.append(f"  ... and {len(self.mismatches) - limit} more mismatches (--json lists all)")
        for n in self.notes:
            out.append(f"  note: {n}")
        verdict = "OK" if self.ok else f"FAILED, {len(self.mismatches)} mismatch(es)"
        out.append(f"{self.source}@{self.version}: {verdict}")
        return out


# -- the git-annex branch ---------------------------------------------------------
class AnnexBranch:
    """Reads key logs from a fixed ``git-annex`` branch commit."""

    def __init__(self, repo: Path, cat: gitutil.CatFile):
        self.cat = cat
        self.ref = gitutil.ref_sha(repo, "refs/heads/git-annex")

    def _get(self, key: str, suffix: str) -> Optional[bytes]:
        if not self.ref:
            return None
        return self.cat.get(f"{self.ref}:{hashdir_lower(key)}{key_file(key)}{suffix}")

    def urls(self, key: str) -> list[str]:
        return list(web_urls(self._get(key, ".log.web")))

    def locations(self, key: str) -> list[str]:
        state = log_state(self._get(key, ".log"))
        return [u for u, live in state.items() if live]


# -- tree vs index ------------------------------------------------------------------
def _compare(report: VerifyReport, tree: dict[str, TreeFile], indexed: dict[str, Any]) -> None:
    for path in sorted(set(tree) - set(indexed)):
        report.add("only-in-dataset", path, "in the dataset's tree, not in the index", tree[path].key)
    for path in sorted(set(indexed) - set(tree)):
        report.add("only-in-index", path, "in the index, not in the dataset's tree", indexed[path].key)
    for path in sorted(set(tree) & set(indexed)):
        t, i = tree[path], indexed[path]
        if i.checksum_kind == SUBDATASET or t.is_subdataset:
            if not (i.checksum_kind == SUBDATASET and t.is_subdataset):
                report.add("stored", path, "a subdataset in one of the dataset and the index, a file in the other")
            elif (i.checksum or "") != t.commit:
                report.add(
                    "subdataset", path, f"the dataset pins commit {t.commit[:12]}, the index {(i.checksum or '-')[:12]}"
                )
            continue
        if i.checksum_kind == GIT or i.key is None:
            if not t.in_git:
                report.add("stored", path, f"the index has it in git, the dataset has annex key {t.key}", t.key)
                continue
            if i.checksum and t.sha256 != i.checksum.lower():
                report.add(
                    "checksum", path, f"bytes in git have sha256 {t.sha256[:16]}…, the index says {i.checksum[:16]}…"
                )
            if i.size is not None and t.size != i.size:
                report.add("size", path, f"{t.size} bytes in git, the index says {i.size}")
            continue
        if t.in_git:
            report.add("stored", path, f"the index has annex key {i.key}, the dataset has the file in git", i.key)
            continue
        if t.key != i.key:
            report.add("key", path, f"the dataset has {t.key}, the index {i.key}", t.key)
            continue
        if i.size is not None and t.size is not None and t.size != i.size:
            report.add("size", path, f"key size {t.size}, the index says {i.size}", t.key)
        if i.checksum_kind in (SHA256, MD5) and i.checksum:
            try:
                ck = parse_key(t.key or "")["checksum"]
            except ValueError:
                ck = None
            if ck and ck.lower() != i.checksum.lower():
                report.add(
                    "checksum", path, f"key checksum {ck[:16]}…, the archive's (index) {i.checksum[:16]}…", t.key
                )


# -- content -----------------------------------------------------------------------
def _hasher(key: str) -> tuple[Optional[Any], Optional[str], Optional[int]]:
    try:
        info = parse_key(key)
    except ValueError:
        return None, None, None
    backend = info["backend"]
    base = backend[:-1] if backend.endswith("E") and backend[:-1] in HASHES else backend
    name = HASHES.get(base)
    if name and info["checksum"] is None:
        info["checksum"] = key.split("--", 1)[1].split(".", 1)[0]
    return (hashlib.new(name) if name else None), (info["checksum"] if name else None), info["size"]


def check_url(
    key: str, url: str, session: Any, timeout: float, bar: Optional[ByteProgress]
) -> tuple[Optional[str], Optional[str], int]:
    """Download ``url`` and compare with ``key``: (kind, detail, bytes read); kind None when it matches."""
    import requests

    h, checksum, size = _hasher(key)
    n = 0
    token = f"{key} {url}"
    try:
        with session.get(url, stream=True, timeout=timeout, allow_redirects=True) as r:
            if r.status_code != 200:
                return "unreachable", f"{url}: HTTP {r.status_code}", 0
            for chunk in r.iter_content(CHUNK):
                n += len(chunk)
                if h is not None:
                    h.update(chunk)
                if bar is not None:
                    bar.update(token, n)
                if size is not None and n > size:
                    break
    except requests.RequestException as exc:
        return "unreachable", f"{url}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}", n
    finally:
        if bar is not None:
            bar.finish(token, n)
    if size is not None and n != size:
        more = "more than" if n > size else f"{n} bytes, not"
        return "content", f"{url} serves {more} the key's {size} bytes", n
    if h is not None and checksum is not None and h.hexdigest().lower() != checksum.lower():
        return (
            "content",
            (f"{url} serves different bytes: {h.name} {h.hexdigest()[:16]}…, the key says {checksum[:16]}…"),
            n,
        )
    return None, None, n


def _content(
    report: VerifyReport,
    keys: dict[str, str],
    urls_of: dict[str, list[str]],
    *,
    sample: Optional[int],
    seed: Optional[int],
    jobs: int,
    progress: bool,
    timeout: float,
    cache: Optional[dict[tuple[str, str], tuple[Optional[str], Optional[str], int]]] = None,
    repo_of: Optional[dict[str, Path]] = None,
    allow_ip: Optional[str] = None,
) -> None:
    import requests

    report.content = True
    all_keys = sorted(keys)
    report.content_sampled_of = len(all_keys)
    chosen = all_keys
    if sample is not None and sample < len(all_keys):
        chosen = sorted(random.Random(seed).sample(all_keys, sample))
        report.notes.append(
            f"content of {sample} of {len(all_keys)} keys sampled" + (f" (seed {seed})" if seed is not None else "")
        )
    cache = {} if cache is None else cache
    jobs_list: list[tuple[str, str]] = []
    reused: list[tuple[str, str]] = []
    size_only = 0
    for key in chosen:
        h, _, _ = _hasher(key)
        if h is None:
            size_only += 1
        for u in urls_of.get(key, []):
            scheme = urlsplit(u).scheme.lower()
            if scheme in ("http", "https"):
                (reused if (key, u) in cache else jobs_list).append((key, u))
    if size_only:
        report.notes.append(f"{size_only} key(s) carry no checksum (e.g. VURL): only their size was checked")
    special = [
        k for k in chosen if any(urlsplit(u).scheme.lower() not in ("http", "https") for u in urls_of.get(k, []))
    ]
    total = 0
    for key, _ in jobs_list:
        _, _, size = _hasher(key)
        total += size or 0
    bar = ByteProgress(total, len(jobs_list), enabled=progress and bool(jobs_list), label="verify")
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(4, jobs))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    lock = threading.Lock()

    def record(key: str, url: str, result: tuple[Optional[str], Optional[str], int], downloaded: bool) -> None:
        kind, detail, n = result
        with lock:
            report.content_urls += 1
            if downloaded:
                report.content_bytes += n
            if kind:
                report.add(kind, keys[key], detail or "", key, url)

    def one(item: tuple[str, str]) -> None:
        key, url = item
        result = check_url(key, url, session, timeout, bar)
        cache[item] = result
        record(key, url, result, True)

    for key, url in reused:  # the same key and URL in another version of this run: downloaded once
        record(key, url, cache[(key, url)], False)
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        list(pool.map(one, jobs_list))
    bar.close()
    # URLs only a special remote can fetch (BOSS cutouts, embargoed DANDI): ask git-annex, in a scratch clone
    by_repo: dict[Path, list[str]] = {}
    for k in special:
        if repo_of and k in repo_of:
            by_repo.setdefault(repo_of[k], []).append(k)
    for repo, ks in by_repo.items():
        for key, kind, detail in annex_check(repo, ks, allow_ip=allow_ip):
            report.content_via_annex += 1
            if kind:
                report.add(kind, keys[key], detail, key)
    report.content_keys = len(chosen)


def annex_check(repo: Path, keys: list[str], *, allow_ip: Optional[str] = None) -> list[tuple[str, Optional[str], str]]:
    """Fetch ``keys`` with ``git annex get --batch-keys`` in a throwaway clone of ``repo``; (key, kind, detail) each.

    git-annex (and the special remote) check the bytes against the key; the
    mirror's repository is only read (``git clone --shared``), never written.
    """
    import json
    import subprocess
    import tempfile

    out: list[tuple[str, Optional[str], str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="neuromirror-verify-"))
    scratch = tmp / "scratch"
    try:
        subprocess.run(
            ["git", "clone", "-q", "--shared", "--no-checkout", str(repo), str(scratch)],
            capture_output=True,
            check=True,
            env=gitutil.git_env(),
        )
        gitutil.run(scratch, "config", "remote.origin.annex-ignore", "true")
        if allow_ip:
            gitutil.run(scratch, "config", "annex.security.allowed-ip-addresses", allow_ip)
        init = gitutil.run(scratch, "annex", "init", "-q", "neuromirror verify scratch clone", check=False)
        if init.returncode != 0:
            why = init.stderr.decode(errors="replace").strip().splitlines()
            return [
                (k, "unreachable", f"git annex init failed in a scratch clone: {why[-1] if why else '?'}") for k in keys
            ]
        # one git-annex (and one special remote process) for all keys: --batch-keys
        proc = gitutil.run(
            scratch,
            "-c",
            "annex.verify=true",
            "annex",
            "get",
            "--batch-keys",
            "--json",
            "--json-error-messages",
            input=("\n".join(keys) + "\n").encode(),
            check=False,
        )
        results: dict[str, dict] = {}
        for line in proc.stdout.decode(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("key"):
                    results[rec["key"]] = rec
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        for key in keys:
            rec = results.get(key)
            if rec is not None and rec.get("success"):
                out.append((key, None, ""))
                continue
            msgs = " ".join(" ".join(m.split()) for m in (rec or {}).get("error-messages") or [] if m.strip())
            msgs = msgs or (rec or {}).get("note") or (err[-1] if err else "no answer from git-annex")
            low = msgs.lower()
            kind = "content" if ("verif" in low or "checksum" in low or "changed" in low) else "unreachable"
            out.append((key, kind, f"git annex get through the special remote failed: {msgs[:400]}"))
    except subprocess.CalledProcessError as exc:
        why = exc.stderr.decode(errors="replace").strip().splitlines() if exc.stderr else []
        return [(k, "unreachable", f"cannot make a scratch clone of {repo}: {why[-1] if why else exc}") for k in keys]
    finally:
        remove_clone(tmp)
    return out


# -- the archive, listed again ------------------------------------------------------------
class _ArchiveState:
    """A read-only SourceState that makes a source list exactly one recorded version again."""

    def __init__(self, index: Any, source: str, row: dict):
        self.index = index
        self._labels = {v["label"] for v in index.versions(source)} - {row["label"]}
        self._files = {f.path: f for f in index.version_files(row["id"])}
        self._cache: dict[tuple[str, str], str] = {}

    def labels(self) -> set[str]:
        return set(self._labels)

    def last_remote_modified(self, label: str) -> Optional[str]:
        return None  # never "unchanged": always list

    def previous(self, path: str) -> Any:
        return self._files.get(path)

    def previous_files(self) -> Any:
        return iter(self._files.values())

    def cache_get(self, namespace: str, key: str) -> Optional[str]:
        return self._cache.get((namespace, key)) or self.index.cache_get(namespace, key)

    def cache_put(self, namespace: str, key: str, value: str) -> None:
        self._cache[(namespace, key)] = value  # verify writes nothing


def _archive(
    report: VerifyReport,
    mirror: Any,
    source: str,
    row: dict,
    tree: dict[str, TreeFile],
    urls_of: dict[str, list[str]],
    options: dict,
) -> None:
    from neuromirror.sources import expand
    from neuromirror.spec import parse_spec

    try:
        found = list(expand(parse_spec(source, allow_version=False), options))
    except Exception as exc:  # an archive we cannot reach is a mismatch we must report, not a crash
        report.add("archive", None, f"cannot reach the archive: {str(exc).splitlines()[0][:300] if str(exc) else exc}")
        return
    if len(found) != 1:
        report.notes.append(f"the archive check needs exactly one source for {source}, got {len(found)}")
        return
    src = found[0]
    current = row.get("kind") != "published"
    if current:
        head = mirror.index.head_version(source)
        if head is not None and head["id"] != row["id"]:
            report.notes.append(
                f"{row['label']} is an older {row.get('kind')} state: the archive serves only its "
                "current state, so it was not compared with the archive"
            )
            return
    state = _ArchiveState(mirror.index, source, row)
    # the source code is the sync's: hold the source's lock so no sync runs alongside (a DANDI Zarr whose
    # state is new may be listed and committed to its own dataset, as the next sync would do anyway)
    with mirror.lock(source, wait=True):
        _compare_archive(report, src, state, row, tree, urls_of, current)


def _compare_archive(
    report: VerifyReport,
    src: Any,
    state: _ArchiveState,
    row: dict,
    tree: dict[str, TreeFile],
    urls_of: dict[str, list[str]],
    current: bool,
) -> None:
    gen = src.snapshots(state, None)
    try:
        snap = None
        for s in gen:
            if (s.kind != "published") if current else (s.label == row["label"]):
                snap = s
                break
        if snap is None:
            if current:
                # the source compared the archive with this state (our SourceState's previous files) and
                # found nothing new: the archive agrees
                report.archive_checked = True
                report.notes.append("the source found the archive unchanged since this state")
            else:
                report.add("archive", None, f"the archive no longer lists version {row['label']}")
            return
        report.archive_checked = True
        why = "the archive changed since the last sync (run: neuromirror sync)" if current else ""
        seen: set[str] = set()
        for e in snap.entries:
            seen.add(e.path)
            t = tree.get(e.path)
            if t is None:
                report.add("archive", e.path, "at the archive, not in the dataset" + (f"; {why}" if why else ""))
                continue
            if getattr(e, "checksum_kind", None) == SUBDATASET:
                if t.commit != e.checksum:
                    report.add(
                        "archive",
                        e.path,
                        f"the archive's state is subdataset commit {str(e.checksum)[:12]}, the "
                        f"dataset pins {(t.commit or 'no subdataset')[:12]}" + (f"; {why}" if why else ""),
                    )
                continue
            if e.key is not None:
                if t.key != e.key:
                    report.add(
                        "archive",
                        e.path,
                        f"the archive gives key {e.key}, the dataset has "
                        f"{t.key or 'the file in git'}" + (f"; {why}" if why else ""),
                        t.key,
                    )
                    continue
                registered = set(urls_of.get(e.key, ()))
                for u in e.urls:
                    if u not in registered:
                        report.add("archive", e.path, f"the archive's URL {u} is not registered for its key", e.key, u)
            else:
                if not t.in_git:
                    report.add(
                        "archive", e.path, f"the archive has a small file kept in git, the dataset has key {t.key}"
                    )
                elif e.checksum != t.sha256:
                    report.add(
                        "archive",
                        e.path,
                        f"the archive's bytes (sha256 {e.checksum[:16]}…) differ from the "
                        f"dataset's ({(t.sha256 or '')[:16]}…)" + (f"; {why}" if why else ""),
                    )
        skipped = {x.path for x in snap.refused} | {x.path for x in snap.pending}
        for path in sorted(set(tree) - seen - skipped):
            report.add(
                "archive", path, "in the dataset, not at the archive" + (f"; {why}" if why else ""), tree[path].key
            )
    finally:
        gen.close()


# -- the whole check -------------------------------------------------------------------
def verify_version(
    mirror: Any,
    source: str,
    row: dict,
    *,
    content: bool = False,
    sample: Optional[int] = None,
    seed: Optional[int] = None,
    jobs: int = 4,
    progress: bool = True,
    timeout: float = 60.0,
    archive: bool = False,
    options: Optional[dict] = None,
    content_cache: Optional[dict] = None,
    allow_ip: Optional[str] = None,
) -> VerifyReport:
    """Check one version (an index ``versions`` row); ``content_cache`` shares downloads between calls."""
    src = mirror.index.source(source)
    ds = mirror.root / src["dataset"]
    commit = row["commit"]
    report = VerifyReport(source, row["label"], commit, row.get("tag"))
    if not (ds / ".git").exists():
        report.add("commit", None, f"no dataset at {ds}")
        return report
    if not has_commit(ds, commit):
        report.add("commit", None, f"the index names commit {commit}, which {ds} does not have")
        return report
    if row.get("tag"):
        tagged = gitutil.rev_parse(ds, f"refs/tags/{row['tag']}")
        if tagged is None:
            report.add("tag", None, f"tag {row['tag']} is missing from the dataset")
        elif tagged != commit:
            report.add("tag", None, f"tag {row['tag']} points at {tagged[:12]}, the index says {commit[:12]}")
    tree = {f.path: f for f in tree_files(ds, commit)}
    indexed = {f.path: f for f in mirror.index.version_files(row["id"])}
    report.files = len(tree)
    report.bytes = sum(f.size or 0 for f in tree.values())
    if row.get("files") is not None and row["files"] != len(indexed):
        report.add("counts", None, f"the version row says {row['files']} files, its file list has {len(indexed)}")
    idx_bytes = sum(f.size or 0 for f in indexed.values())
    if row.get("bytes") is not None and row["bytes"] != idx_bytes:
        report.add("counts", None, f"the version row says {row['bytes']} bytes, its files add up to {idx_bytes}")
    _compare(report, tree, indexed)

    keys: dict[str, str] = {}  # key -> a path holding it (subdatasets' files under their path)
    repo_of: dict[str, Path] = {}  # key -> the repository whose git-annex branch knows it
    urls_of: dict[str, list[str]] = {}
    for repo, rcommit, prefix in _repositories(report, ds, commit, tree):
        files = tree.values() if repo == ds else tree_files(repo, rcommit)
        mine = {}
        for f in files:
            if f.key and f.key not in keys and f.key not in mine:
                mine[f.key] = prefix + f.path
        if not mine:
            continue
        with gitutil.CatFile(repo) as cat:
            branch = AnnexBranch(repo, cat)
            if branch.ref is None:
                report.add(
                    "no-location", prefix.rstrip("/") or None, f"{repo} has no git-annex branch: no key has a URL"
                )
                continue
            for key, path in mine.items():
                urls = branch.urls(key)
                urls_of[key] = urls
                report.urls += len(urls)
                if not branch.locations(key):
                    report.add(
                        "no-location",
                        path,
                        "no repository (web or special remote) is recorded as having "
                        "the content: git annex get has nowhere to fetch it from",
                        key,
                    )
                elif not urls:
                    report.notes.append(f"{path}: no URL registered; content only via a special remote")
        keys.update(mine)
        repo_of.update({k: repo for k in mine})
    report.keys = len(keys)
    for path, i in indexed.items():
        if i.key and path in tree and tree[path].key == i.key:
            registered = set(urls_of.get(i.key, ()))
            for u in i.urls:
                if u not in registered:
                    report.add(
                        "url-not-registered",
                        path,
                        f"{u} is in the index but not registered on the git-annex branch",
                        i.key,
                        u,
                    )
    if archive:
        _archive(report, mirror, source, row, tree, urls_of, options or {})
    if content:
        _content(
            report,
            keys,
            urls_of,
            sample=sample,
            seed=seed,
            jobs=jobs,
            progress=progress,
            timeout=timeout,
            cache=content_cache,
            repo_of=repo_of,
            allow_ip=allow_ip,
        )
    return report


def _repositories(
    report: VerifyReport, ds: Path, commit: str, tree: dict[str, TreeFile]
) -> list[tuple[Path, str, str]]:
    """(repository, commit, path prefix) of the dataset and, recursively, of the subdatasets it pins."""
    out = [(ds, commit, "")]
    todo = [(ds, "", [(f.path, f.commit) for f in tree.values() if f.commit])]
    while todo:
        repo, prefix, links = todo.pop()
        for path, sha in links:
            sub = repo / path
            if not (sub / ".git").exists() or not has_commit(sub, sha or ""):
                report.add(
                    "subdataset",
                    prefix + path,
                    f"the subdataset's repository {sub} lacks the pinned commit {(sha or '-')[:12]}",
                )
                continue
            report.subdatasets += 1
            out.append((sub, sha or "", prefix + path + "/"))
            todo.append((sub, prefix + path + "/", gitlinks(sub, sha or "")))
    return out
