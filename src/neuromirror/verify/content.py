"""The content check of ``verify --content``: download each key's bytes from every URL and hash them.

Each (sampled) key is downloaded from *every* registered http(s) URL and
hashed; size and checksum must match the key (SHA256E/MD5E carry the
archive's checksum, XMPETAG its multipart ETag; VURL/URL keys only a size).  A URL serving other bytes
matters even when another URL is right: after a failed verification
git-annex does not try the next URL.  Keys only a special remote can fetch
(BOSS cutouts, embargoed DANDI) are fetched by git-annex itself, in a
scratch clone, so the mirror's repository is never written.
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional
from urllib.parse import urlsplit

from neuromirror.annex.keys import key_checksum, parse_key
from neuromirror.sources.urlrule import is_stable
from neuromirror.store.base import Store
from neuromirror.util.progress import ByteCalls
from neuromirror.util.text import one_line
from neuromirror.verify.annex_fetch import annex_check
from neuromirror.verify.lost_urls import GONE_STATUSES
from neuromirror.verify.report import VerifyReport
from neuromirror.verify.store_copies import StoreCopies

if TYPE_CHECKING:
    import requests

    from neuromirror.records import ProgressCallback

CHUNK = 1 << 20


def _hasher(key: str) -> tuple[Optional[Any], Optional[str], Optional[int]]:
    try:
        info = parse_key(key)
    except ValueError:
        return None, None, None
    named = key_checksum(key)
    if named is None:
        return None, None, info["size"]
    return named.new(), named.digest, info["size"]


class _Reading:
    """One copy's bytes as they stream by: counted, hashed for ``key``, shown on the bar; then judged."""

    def __init__(self, key: str, where: str, bar: Optional[_Told], *, stop_past_size: bool) -> None:
        self.h, self.checksum, self.size = _hasher(key)
        self.where, self.bar, self.token = where, bar, f"{key} {where}"
        self.stop_past_size = stop_past_size
        self.n = 0

    def read(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.n += len(chunk)
            if self.h is not None:
                self.h.update(chunk)
            if self.bar is not None:
                self.bar.read(self.token, self.n)
            if self.stop_past_size and self.size is not None and self.n > self.size:
                break

    def failed(self, exc: BaseException) -> tuple[Optional[str], Optional[str], int]:
        first = one_line(exc, 200) if str(exc).strip() else ""
        return "unreachable", f"{self.where}: {type(exc).__name__}: {first}", self.n

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.done(self.token, self.n)

    def verdict(self) -> tuple[Optional[str], Optional[str], int]:
        return _judge(self.where, self.h, self.checksum, self.size, self.n)


def check_url(
    key: str, url: str, session: requests.Session, timeout: float, bar: Optional[_Told]
) -> tuple[Optional[str], Optional[str], int]:
    """Download ``url`` and compare with ``key``: (kind, detail, bytes read); kind None when it matches."""
    import requests

    reading = _Reading(key, url, bar, stop_past_size=True)
    try:
        with session.get(url, stream=True, timeout=timeout, allow_redirects=True) as r:
            if r.status_code != 200:
                # 404/410: the bytes are gone; another 4xx: refused (the archive's download route
                # answers 403 once the blob is gone); both may mark the key (verify.lost_urls)
                kind = (
                    "gone"
                    if r.status_code in GONE_STATUSES
                    else "refused"
                    if 400 <= r.status_code < 500 and r.status_code not in (408, 429)
                    else "unreachable"
                )
                return kind, f"{url}: HTTP {r.status_code}", 0
            reading.read(r.iter_content(CHUNK))
    except requests.RequestException as exc:
        return reading.failed(exc)
    finally:
        reading.finish()
    return reading.verdict()


def _judge(
    where: str, h: Optional[Any], checksum: Optional[str], size: Optional[int], n: int
) -> tuple[Optional[str], Optional[str], int]:
    if size is not None and n != size:
        more = "more than" if n > size else f"{n} bytes, not"
        return "content", f"{where} serves {more} the key's {size} bytes", n
    if h is not None and checksum is not None and h.hexdigest().lower() != checksum.lower():
        return (
            "content",
            (f"{where} serves different bytes: {h.name} {h.hexdigest()[:16]}…, the key says {checksum[:16]}…"),
            n,
        )
    return None, None, n


def copy_location(store: Store, key: str) -> str:
    """Where the store keeps ``key`` (a path, or the S3 object's URL): how reports name the store's copy."""
    return store.copy_location(key)


#: what :func:`check_file` says of a store without a copy of the key: not a source of it (no finding)
ABSENT = "absent"


def check_file(key: str, store: Store, bar: Optional[_Told]) -> tuple[Optional[str], Optional[str], int]:
    """Hash the store's copy of ``key``: (kind, detail, bytes read), as :func:`check_url`; kind
    :data:`ABSENT` when the store has no copy under the key's name."""
    reading = _Reading(key, f"the store's copy {copy_location(store, key)}", bar, stop_past_size=False)
    try:
        with store.open_key(key) as fh:
            reading.read(iter(lambda: fh.read(CHUNK), b""))
    except FileNotFoundError:
        return ABSENT, None, 0
    except Exception as exc:  # noqa: BLE001 - a disk's or a bucket's error: this copy cannot serve the key
        return reading.failed(exc)
    finally:
        reading.finish()
    return reading.verdict()


def check_content(
    report: VerifyReport,
    keys: dict[str, str],
    urls_of: dict[str, list[str]],
    *,
    sample: Optional[int],
    seed: Optional[int],
    jobs: int,
    progress: Optional[ProgressCallback],
    timeout: float,
    label: str = "",
    cache: Optional[dict[tuple[str, str], tuple[Optional[str], Optional[str], int]]] = None,
    repo_of: Optional[dict[str, Path]] = None,
    allow_ip: Optional[str] = None,
    stores: Optional[StoreCopies] = None,
    located: Optional[dict[str, list[str]]] = None,
    urls: bool = True,
) -> None:
    """Check the content of ``keys`` (key -> a path holding it; a sample of them if asked) into ``report``.

    Every source of a key is tried: its http(s) URLs, the special remote through git-annex, and the
    copies of the lab's stores (``stores``: the named one and those the key's location log names,
    ``located``: key -> UUIDs; then, for a key nothing of that served, every other store the mirror
    knows) — ``urls=False``: the stores' copies only.  Per key: bytes that do not match the key from
    any source fail (``content``, "wrong bytes"); no source serving it fails (``lost``, with its
    size); a key that verifies while some of its URLs are dead is a warning (``dead-url``).
    ``cache`` holds (key, source) results already had in this run: another version sharing a key
    does not download it again.
    """
    report.content = True
    chosen = _sample(report, keys, sample, seed)
    checks = _Sources(report, {} if cache is None else cache, _session(jobs), jobs=jobs, timeout=timeout)
    for key in chosen:
        checks.from_urls(key, urls_of.get(key, []) if urls else [])
        if stores is not None:
            checks.from_stores(key, stores.first(key, (located or {}).get(key, ())), checks.todo)
    _note_size_only(report, chosen)
    _read(checks, progress, label)
    checks.via_annex(_special(chosen, urls_of) if urls else [], repo_of, allow_ip)
    if stores is not None:  # a key nothing served yet: every other store the mirror knows, before "lost"
        checks.other_stores(chosen, stores)
    for key in chosen:
        _settle(report, key, keys[key], checks.results.get(key, []))
        _web_verdict(report, key, urls_of.get(key, []) if urls else [], checks.results.get(key, []))
    report.content_keys = len(chosen)
    if report.repinnable:
        report.notes.append(
            f"{len(report.repinnable)} key(s) pinned to S3 versions that are gone: `neuromirror repin "
            f"{report.source}@{report.version}` looks for their bytes again (a moved bucket or prefix, a "
            "content-addressed key, a re-uploaded asset; docs/pin.md)"
        )


def _note_size_only(report: VerifyReport, chosen: list[str]) -> None:
    """Keys whose name carries no checksum are checked by size only: the report says how many."""
    size_only = sum(1 for key in chosen if _hasher(key)[0] is None)
    if size_only:
        report.notes.append(f"{size_only} key(s) carry no checksum (e.g. VURL): only their size was checked")


def _special(chosen: list[str], urls_of: dict[str, list[str]]) -> list[str]:
    """The keys with a URL only a special remote can fetch (not http(s)): git-annex's pass."""
    return [k for k in chosen if any(urlsplit(u).scheme.lower() not in ("http", "https") for u in urls_of.get(k, []))]


def _read(checks: _Sources, progress: Optional[ProgressCallback], label: str) -> None:
    """The first pass: every URL and first store's copy read on the threads, their bytes told to ``progress``
    (:class:`_Told`)."""
    told = _Told(progress, label, checks.todo) if progress is not None and checks.todo else None
    checks.run(checks.todo, checks.reused, told)
    if told is not None:
        told.close()


class _Told(ByteCalls):
    """The first pass's reads told as ``("verify LABEL", bytes hashed, bytes to hash)`` and ``("files LABEL",
    files, of)``: each copy read (a URL's, a store's) adds its bytes, a file is done when its last copy is."""

    def __init__(self, progress: ProgressCallback, label: str, todo: list[tuple[str, str]]) -> None:
        self.copies_left: dict[str, int] = {}  # key -> its copies not read yet
        for key, _ in todo:
            self.copies_left[key] = self.copies_left.get(key, 0) + 1
        sizes = [_hasher(key)[2] for key, _ in todo]
        super().__init__(progress, label, sizes, word="verify", files=len(self.copies_left))

    def read(self, token: str, nbytes: int) -> None:
        """A copy's bytes so far (``token``: ``KEY WHERE``, one per copy)."""
        self.update(token, nbytes)

    def done(self, token: str, nbytes: int) -> None:
        key = token.split(" ", 1)[0]
        with self._lock:
            self.copies_left[key] -= 1
            last = not self.copies_left[key]
        self.finish(token, nbytes, whole=last)


def _sample(report: VerifyReport, keys: dict[str, str], sample: Optional[int], seed: Optional[int]) -> list[str]:
    """The keys whose content is checked, sorted: all, or ``sample`` of them drawn with ``seed`` (said in a
    note, so a rerun with the seed checks the same keys)."""
    all_keys = sorted(keys)
    report.content_sampled_of = len(all_keys)
    chosen = all_keys
    if sample is not None and sample < len(all_keys):
        chosen = sorted(random.Random(seed).sample(all_keys, sample))
        report.notes.append(
            f"content of {sample} of {len(all_keys)} keys sampled" + (f" (seed {seed})" if seed is not None else "")
        )
    return chosen


def _session(jobs: int) -> requests.Session:
    """One HTTP session for every URL's download, its pool as large as the threads reading at once."""
    from neuromirror.network import identity

    return identity.session(maxsize=max(4, jobs), hosts=4)  # named: verify --content reads the archive


#: (source, kind, detail) of one source tried for a key; kind None when its bytes verify
_Tried = tuple[str, Optional[str], Optional[str]]


class _Sources:
    """The (key, source) pairs of one :func:`check_content` and what each said: the pairs to read, those
    ``cache`` already has (from another version in this run), the stores behind ``store:`` sources; the
    passes (URLs and the first stores, the special remotes, the other stores) add to the same results."""

    def __init__(
        self,
        report: VerifyReport,
        cache: dict[tuple[str, str], tuple[Optional[str], Optional[str], int]],
        session: requests.Session,
        *,
        jobs: int,
        timeout: float,
    ) -> None:
        self.report, self.cache, self.jobs, self.timeout = report, cache, jobs, timeout
        self.todo: list[tuple[str, str]] = []
        self.reused: list[tuple[str, str]] = []
        self.in_store: dict[tuple[str, str], Store] = {}  # (key, "store:" + where the store keeps it) -> the store
        self.asked: dict[str, list[Store]] = {}  # key -> the stores whose copy is hashed
        self.results: dict[str, list[_Tried]] = {}  # key -> (source, kind, detail)
        self.lock = threading.Lock()
        self.session = session

    def from_urls(self, key: str, urls: list[str]) -> None:
        """The key's http(s) URLs, to read or already read; other schemes are the special remotes' pass."""
        for u in urls:
            scheme = urlsplit(u).scheme.lower()
            if scheme in ("http", "https"):
                (self.reused if (key, u) in self.cache else self.todo).append((key, u))

    def from_stores(self, key: str, found: list[Store], todo: list[tuple[str, str]]) -> None:
        """The copies of ``found`` stores, to read (into ``todo``) or already read."""
        self.asked.setdefault(key, []).extend(found)
        for s in found:
            item = (key, "store:" + copy_location(s, key))
            self.in_store[item] = s
            (self.reused if item in self.cache else todo).append(item)

    def record(self, key: str, url: str, result: tuple[Optional[str], Optional[str], int], downloaded: bool) -> None:
        """One source's answer into the results and the report's counts (threads call it at once)."""
        kind, detail, n = result
        if kind == ABSENT:
            return  # a store without a copy: not a source of the key
        stored = (key, url) in self.in_store
        with self.lock:
            if stored:
                self.report.content_store += 1
            else:
                self.report.content_urls += 1
            if downloaded:
                self.report.content_bytes += n
            self.results.setdefault(key, []).append(
                (f"the store ({url[len('store:') :]})" if stored else url, kind, detail)
            )

    def run(self, todo: list[tuple[str, str]], again: list[tuple[str, str]], shown: Optional[_Told]) -> None:
        """Record ``again`` from the cache, then read ``todo`` on ``jobs`` threads, caching each answer."""

        def one(item: tuple[str, str]) -> None:
            key, url = item
            held = self.in_store.get(item)
            got = (
                check_file(key, held, shown)
                if held is not None
                else check_url(key, url, self.session, self.timeout, shown)
            )
            self.cache[item] = got
            self.record(key, url, got, True)

        for key, url in again:  # the same key and source in another version of this run: read once
            self.record(key, url, self.cache[(key, url)], False)
        with ThreadPoolExecutor(max(1, self.jobs)) as pool:
            list(pool.map(one, todo))

    def via_annex(self, special: list[str], repo_of: Optional[dict[str, Path]], allow_ip: Optional[str]) -> None:
        """URLs only a special remote can fetch (BOSS cutouts, embargoed DANDI): ask git-annex, in a scratch
        clone of each key's repository."""
        by_repo: dict[Path, list[str]] = {}
        for k in special:
            if repo_of and k in repo_of:
                by_repo.setdefault(repo_of[k], []).append(k)
        for repo, ks in by_repo.items():
            for key, kind, detail in annex_check(repo, ks, allow_ip=allow_ip):
                self.report.content_via_annex += 1
                self.results.setdefault(key, []).append(("git-annex (special remote)", kind, detail))

    def other_stores(self, chosen: list[str], stores: StoreCopies) -> None:
        """A key nothing served yet: the copies of every other store the mirror knows, before "lost"."""
        more: list[tuple[str, str]] = []
        self.reused = []
        for key in chosen:
            if not any(kind is None for _, kind, _ in self.results.get(key, ())):
                self.from_stores(key, stores.rest(self.asked.get(key, ())), more)
        self.run(more, self.reused, None)


def _web_verdict(
    report: VerifyReport, key: str, registered: list[str], tried: list[tuple[str, Optional[str], Optional[str]]]
) -> None:
    """Is ``key`` gone from the web, or served?

    Gone: every registered URL is an http(s) one, each was refused with a 4xx and at least one
    answered 404/410 (the pinned S3 URL of a deleted version; the archive's download route then
    answers 403).  A timeout, a 5xx or only 403s (an embargo) say nothing.  Only the web's own URLs
    count: a key with a special remote's URL is fetched that way, not by the web remote.  What is
    found goes to ``report.web_gone`` / ``report.web_serving``; the
    ``git-annex`` branch is written by :mod:`.lost_urls`, under the source's lock.
    """
    if not registered or any(urlsplit(u).scheme.lower() not in ("http", "https") for u in registered):
        return
    by_url = {s: k for s, k, _ in tried if s in registered}
    if any(by_url.get(u, "") is None for u in registered):
        report.web_serving.add(key)
    elif all(by_url.get(u) in ("gone", "refused") for u in registered) and "gone" in by_url.values():
        report.web_gone.add(key)
        if any("versionId=" in u for u in registered):  # a pin died: its bytes may live on elsewhere
            report.repinnable.add(key)


def _settle(report: VerifyReport, key: str, path: str, tried: list[tuple[str, Optional[str], Optional[str]]]) -> None:
    """One key's verdict from every source tried: wrong bytes, lost, a dead URL beside a good one, or fine.

    Other bytes behind a URL that may change (an unversioned bucket's plain URL) are an overwrite
    upstream, not corruption: that URL is dead for the key, like a 404 — when the store's copy
    verifies (git-annex tries the store after the web remote failed) or when no source does (the key
    is lost).  Beside another good *URL* they stay wrong bytes: git-annex's web remote does not try
    the next URL after a failed verification, so the overwritten one can fail a ``get``.  Other
    bytes from a pinned URL or the store are always wrong bytes.
    """
    tried = _overwrites(tried)
    wrong = [t for t in tried if t[1] == "content"]
    for source, _, detail in wrong:
        report.add("content", path, detail or "", key, source)
    if not wrong:
        _served_or_lost(report, key, path, tried)


def _served_or_lost(report: VerifyReport, key: str, path: str, tried: list[_Tried]) -> None:
    """No source served wrong bytes: the key is lost when none served it, else a warning names its dead URLs."""
    good = [t for t in tried if t[1] is None]
    dead = [t for t in tried if t[1] not in (None, "content")]
    _, _, size = _hasher(key)
    if not good:
        why = "; ".join(d or s for s, _, d in dead) if dead else "no URL is registered and no store has a copy"
        report.add("lost", path, f"no URL and no store serves its bytes ({why})", key, size=size)
    elif dead:
        report.warn(
            "dead-url",
            path,
            f"{len(dead)} dead URL(s) ({'; '.join(d or s for s, _, d in dead)}); the bytes still verify from "
            f"{good[0][0]}",
            key,
            [s for s, _, _ in dead],
            size,
        )


def _overwrites(tried: list[_Tried]) -> list[_Tried]:
    """Other bytes behind a mutable URL said as ``overwritten`` (a dead URL) when the store's copy verifies
    or no source does; beside another good URL they stay wrong bytes (see :func:`_settle`)."""
    store_ok = any(k is None and s.startswith("the store") for s, k, _ in tried)
    url_ok = any(k is None and not s.startswith("the store") for s, k, _ in tried)
    if url_ok and not store_ok:
        return tried
    return [(s, "overwritten", d) if k == "content" and _mutable_url(s) else (s, k, d) for s, k, d in tried]


def _mutable_url(source: str) -> bool:
    return source.startswith(("http://", "https://")) and not is_stable(source)
