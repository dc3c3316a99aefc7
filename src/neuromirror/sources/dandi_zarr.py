"""DANDI Zarr assets: each one a DataLad dataset of its own, a subdataset of its dandiset.

A Zarr asset is a tree of objects under ``zarr/<zarr_id>/`` in the archive's
bucket, changed in place (same asset and zarr id), with a tree checksum
``dandi:dandi-zarr-checksum`` (package ``zarr_checksum``) over the objects'
MD5s.  The DANDI source hands each page's Zarr assets to a :class:`ZarrRun`, which

1. looks for a commit of the Zarr's dataset (``<dandiset dataset>/<asset
   path>``) already recording this zarr id, checksum and access (open or
   embargoed) — in the index's cache ``dandi-zarr-commit``, else in the
   dataset's trailers; for the draft only the dataset's HEAD counts, for a
   published version any commit — and uses it: **an unchanged Zarr costs no
   listing and no git process**;
2. otherwise submits a :class:`.zarr_job.ZarrJob` to an executor; the job
   (:func:`.zarr_job.mirror_zarr`, steps 2-4, writing only the Zarr's dataset)
   lists the Zarr — a versioned S3 listing (``list_object_versions``,
   anonymous) under the asset's S3 URL, or the API's ``/zarr/{id}/files/``
   when the bucket cannot be listed (embargoed Zarrs: with the key) — and
   turns every object into an annexed file: an ``MD5E`` key from its ETag,
   URLs ``<S3 URL>?versionId=`` and the API's ``files/?prefix=&download=true``
   (embargoed: only ``neuromirror+dandi:`` + the latter, see
   :mod:`.dandi_auth`).  Nothing is downloaded;
3. computes the Zarr checksum from exactly those recorded keys and compares
   it with the archive's.  A mismatch re-lists once (and re-reads the
   archive's checksum); if it persists the asset is **refused** for this
   version with the reason, and no commit claims that state.  The last
   verified state of the path, if any, is kept in the version (said in the
   refusal), so that an archive in the middle of recomputing a checksum does
   not make a Zarr vanish from the mirror;
4. commits the Zarr's dataset (fast-import writer, dated with the newest
   object's LastModified, trailers ``Neuromirror-Zarr``, ``-Zarr-Checksum``,
   ``-Zarr-Access``) and returns a record; :meth:`ZarrRun.entries` turns the
   records into :class:`SubdatasetEntry` (gitlink + .gitmodules section
   ``url = ./<path>``) for the dandiset's one commit; a published version's tag
   then pins the Zarr at that commit, and the Zarr's dataset gets the same tag.

The Zarr's dataset is made with git and git-annex (:mod:`..light_dataset`)
inside the dandiset's dataset and excluded there (``.git/info/exclude``, written
by the caller before the jobs run) until the dandiset commit registers it, so
crash recovery of the dandiset does not delete it.

Incremental syncs: the draft's ``remote_modified`` gains ``zarrs=<digest>``
(of the mirrored Zarrs' ids and checksums).  The archive does not always move
the draft's ``modified`` when a Zarr changes in place, so when that token is
present :func:`unchanged` asks for the draft's Zarr assets (one listing page,
``zarr=true``) and compares: an unchanged dandiset stays O(1) API calls.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional
from urllib.parse import quote

from neuromirror.annex.keys import md5e_key, url_key
from neuromirror.annex.writer import Delete, Put, make_writer
from neuromirror.engine import urlrule
from neuromirror.index.trailers import format_trailers, parse_trailers
from neuromirror.records import (
    MD5,
    SUBDATASET,
    VERIFY_ON_GET,
    AnnexEntry,
    Entry,
    Pending,
    Refusal,
    Snapshot,
    SourceState,
    SubdatasetEntry,
)
from neuromirror.sources import dandi_auth, s3urls
from neuromirror.util import gitutil, timing
from neuromirror.util.dates import parse_iso as _parse_time
from neuromirror.util.paths import check_path

log = logging.getLogger("neuromirror.dandi")

CHECKSUM_FIELD = "dandi:dandi-zarr-checksum"
_CHECKSUM_RE = re.compile(r"^[0-9a-f]{32}-\d+--\d+$")
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
API_PAGE = 1000
#: Zarrs mirrored at once by the default executor (each: one S3 listing, then git children)
ZARR_WORKERS = max(1, int(os.environ.get("NEUROMIRROR_ZARR_WORKERS", "4")))
#: index cache: "<zarr id> <checksum> <access>" -> the Zarr dataset's commit of that state
COMMIT_CACHE = "dandi-zarr-commit"
_s3_clients = threading.local()


class ZarrMismatch(RuntimeError):
    """The listed objects do not add up to the archive's Zarr checksum."""


@dataclass(frozen=True, slots=True)
class ZObject:
    rel: str  # path inside the Zarr
    size: int
    etag: str  # MD5 of the content for single-part uploads
    version_id: Optional[str]
    modified: Optional[datetime]


# -- the hook the DANDI source calls --------------------------------------------------
def _key(zarr_id: str, checksum: str, access: str) -> str:
    return f"{zarr_id} {checksum} {access}"


def _checksum_of_md(md: Any) -> Any:
    digest = md.get("digest") if isinstance(md, dict) else None
    return digest.get(CHECKSUM_FIELD) if isinstance(digest, dict) else None


class ZarrRun:
    """The Zarr assets of one snapshot: planned here, mirrored by an executor, gathered here.

    :meth:`add` decides per asset, cheaply and in the caller's thread, whether the
    mirror already holds its state — the archive's checksum (from the asset's
    metadata, or from the draft's Zarr listing :func:`current_digest` made) looked
    up in the index's cache of Zarr commits, or in the Zarr dataset's history —
    and otherwise submits a :class:`.zarr_job.ZarrJob` to the executor.
    :meth:`entries` waits for the jobs and turns their records into subdataset
    entries for the dandiset's one commit; only here are the index (commit cache)
    and the dandiset's dataset (the index entry of a path that was a file) written.
    """

    def __init__(self, source: Any, snap: Snapshot, state: SourceState, executor: Any):
        self.source = source
        self.snap = snap
        self.state = state
        self.executor = executor
        self.parent: Optional[Path] = getattr(source, "dataset_path", None)
        self.embargoed = dandi_auth.is_embargoed(source)
        self.access = "embargoed" if self.embargoed else "open"
        self._slots: dict[str, Any] = {}  # asset path -> Entry | None | Future
        self._order: list[str] = []

    def add(self, assets: list[dict]) -> None:
        """Plan the assets' Zarrs; submit the ones the mirror does not hold yet."""
        from neuromirror.sources.zarr_job import ZarrJob, mirror_zarr

        if self.parent is None:
            for a in assets:
                self.snap.pending.append(
                    Pending(a["path"], "Zarr asset: the dandiset's dataset is not known", a.get("asset_id"))
                )
            return
        known = getattr(self.source, "zarr_checksums", None) or {}
        planned: list[tuple[dict, str, str]] = []
        for asset in assets:
            path: str = asset["path"]
            md = asset.get("metadata")
            checksum = _checksum_of_md(md) if md is not None else known.get(asset.get("asset_id"))
            if md is None and checksum is None:
                md = asset["metadata"] = self.source._asset_metadata(asset.get("asset_id"))
                checksum = _checksum_of_md(md)
            if not isinstance(checksum, str) or not _CHECKSUM_RE.match(checksum):
                reason = (
                    "Zarr asset: the archive has no checksum for it yet"
                    if checksum is None
                    else f"Zarr asset: malformed checksum {str(checksum)[:80]!r}"
                )
                self.snap.pending.append(
                    Pending(path, reason + "; will be mirrored when it has one", asset.get("asset_id"))
                )
                self._put(path, _previous(self.state, self.parent, path))
                continue
            planned.append((asset, str(asset.get("zarr")), checksum))
        cached = _cached_commits(self.state, [_key(z, c, self.access) for _, z, c in planned])
        jobs = []
        for asset, zarr_id, checksum in planned:
            path = asset["path"]
            zds = self.parent / path
            commit = self._held(zds, cached.get(_key(zarr_id, checksum, self.access)), zarr_id, checksum)
            if commit is not None:
                if self.snap.tag:
                    _tag(zds, self.snap.tag, commit, self.snap.tag_message or self.snap.message, self.snap.date)
                note_zarr(self.snap, path, zarr_id, checksum)
                self._put(path, SubdatasetEntry(path, commit, "./" + path, datalad_id(zds)))
                continue
            md = asset.get("metadata")
            if md is None:
                md = asset["metadata"] = self.source._asset_metadata(asset.get("asset_id"))
            jobs.append(
                (
                    path,
                    ZarrJob(
                        dandiset=self.source.identifier,
                        api_url=self.source.api_url,
                        path=path,
                        zarr_id=zarr_id,
                        asset_id=asset.get("asset_id"),
                        dataset=str(zds),
                        checksum=checksum,
                        s3_base=self.source._s3_url(md) if isinstance(md, dict) else None,
                        embargoed=self.embargoed,
                        modified=asset.get("modified"),
                        description=f"DANDI:{self.source.identifier} Zarr {path} ({zarr_id}) mirrored from "
                        f"{self.source.api_url}",
                        tag=self.snap.tag,
                        tag_message=self.snap.tag_message or self.snap.message,
                        tag_date=self.snap.date,
                    ),
                )
            )
        if jobs:
            # new Zarr datasets stay out of the dandiset's status (and its crash recovery)
            # until the dandiset's commit registers them
            _exclude(self.parent, [p for p, _ in jobs])
        for path, job in jobs:
            self._put(path, self.executor.submit(mirror_zarr, job))

    def _put(self, path: str, value: Any) -> None:
        if path not in self._slots:
            self._order.append(path)
        self._slots[path] = value

    def _held(self, zds: Path, cached: Optional[str], zarr_id: str, checksum: str) -> Optional[str]:
        """The Zarr dataset's commit of this state, if the mirror holds it (the draft: at HEAD)."""
        draft = self.snap.kind != "published"
        if cached is not None:
            if draft:
                return cached if _head_of(zds) == cached else None
            # a new published version (once per version): the commit must exist in this dataset
            # (an index older or newer than the dataset could name another one)
            if (zds / ".git").is_dir() and gitutil.run(
                zds, "cat-file", "-e", f"{cached}^{{commit}}", check=False
            ).returncode == 0:
                return cached
            return find_commit(zds, zarr_id, checksum, self.access, head_only=False)
        return find_commit(zds, zarr_id, checksum, self.access, head_only=draft)

    def entries(self) -> dict[str, Optional[Entry]]:
        """Asset path -> its entry (None: nothing for it in this version), once every job is done."""
        out: dict[str, Optional[Entry]] = {}
        learned: list[tuple[str, str]] = []
        spent = timing.current()
        t0 = time.perf_counter()
        for path in self._order:
            value = self._slots[path]
            if not hasattr(value, "result"):
                out[path] = value
                continue
            rec = value.result()
            for k, v in rec.timings.items():
                if spent is not None:
                    spent.add(f"zarr-{k}", v)
            out[path] = self._finish(rec, learned)
        if spent is not None:
            spent.add("zarr-wait", time.perf_counter() - t0)
        if learned:
            put_many = getattr(self.state, "cache_put_many", None)
            if put_many is not None:
                put_many(COMMIT_CACHE, learned)
            else:
                for k, v in learned:
                    self.state.cache_put(COMMIT_CACHE, k, v)
        assert self.parent is not None or not out
        if self.parent is not None:
            _index_gitlinks(self.parent, {p: e.commit for p, e in out.items() if isinstance(e, SubdatasetEntry)})
        self._slots.clear()
        self._order.clear()
        return out

    def _finish(self, rec: Any, learned: list[tuple[str, str]]) -> Optional[Entry]:
        assert self.parent is not None
        if rec.commit is None:
            kept = _previous(self.state, self.parent, rec.path)
            tail = f"; kept the last verified state ({kept.commit[:10]})" if kept is not None else ""
            self.snap.refused.append(Refusal(rec.path, f"refused: {rec.refused}{tail}"))
            log.warning("DANDI:%s: Zarr %s: %s", self.source.identifier, rec.path, rec.refused)
            return kept
        learned.append((_key(rec.zarr_id, rec.checksum, self.access), rec.commit))
        note_zarr(self.snap, rec.path, rec.zarr_id, rec.checksum)
        if rec.unpinned:
            self.snap.warnings.append(
                f"Zarr {rec.path}: {rec.unpinned} object(s) have no pinned URL (no S3 "
                "versionId): their bytes may change upstream, which the MD5E key's check "
                "then refuses"
            )
        log.info(
            "DANDI:%s: Zarr %s: %d objects, commit %s", self.source.identifier, rec.path, rec.objects, rec.commit[:10]
        )
        return SubdatasetEntry(rec.path, rec.commit, "./" + rec.path, rec.datalad_id)


def _cached_commits(state: SourceState, keys: list[str]) -> dict[str, str]:
    if not keys:
        return {}
    get_many = getattr(state, "cache_get_many", None)
    if get_many is not None:
        return dict(get_many(COMMIT_CACHE, keys))
    return {k: v for k in keys if (v := state.cache_get(COMMIT_CACHE, k)) is not None}


def _head_of(zds: Path) -> Optional[str]:
    """The dataset's HEAD commit, read from its files where they say it plainly (no git child)."""
    git_dir = zds / ".git"
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = git_dir / head[5:]
            if ref.is_file():
                return ref.read_text().strip() or None
        elif re.fullmatch(r"[0-9a-f]{40}", head):
            return head
    except OSError:
        return None
    return gitutil.rev_parse(zds, "HEAD") if git_dir.is_dir() else None  # a packed ref


def _index_gitlinks(parent: Path, commits: dict[str, str]) -> None:
    """Where the dandiset's index still has a file (the asset was a blob before), put the gitlink.

    The writer's checkout then finds the index already as the new commit has it
    instead of a file that became a directory (which git refuses to merge).  One
    ``git ls-files`` for all the paths.
    """
    if not commits:
        return
    staged = gitutil.out(parent, "ls-files", "-s", "-z", "--", *commits, check=False)
    for rec in staged.split("\0"):
        if not rec or rec.startswith("160000 ") or "\t" not in rec:
            continue
        path = rec.split("\t", 1)[1]
        if path in commits:
            gitutil.run(parent, "update-index", "--add", "--cacheinfo", f"160000,{commits[path]},{path}")


def _previous(state: SourceState, parent: Path, path: str) -> Optional[SubdatasetEntry]:
    prev = state.previous(path)
    if prev is None or prev.checksum_kind != SUBDATASET or not prev.checksum:
        return None
    return SubdatasetEntry(path, prev.checksum, "./" + path, datalad_id(parent / path))


# -- the draft's stamp: which Zarr states the mirror holds ---------------------------------
def _zarr_digest(items: list[tuple[str, str, str]]) -> str:
    h = hashlib.sha1()
    for path, zid, checksum in sorted(items):
        h.update(f"{path}\0{zid}\0{checksum}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def note_zarr(snap: Snapshot, path: str, zarr_id: str, checksum: str) -> None:
    """Add a mirrored Zarr to the snapshot's stamp (``... zarrs=<digest>``)."""
    seen: list[tuple[str, str, str]] = snap.__dict__.setdefault("_nm_zarrs", [])
    seen.append((path, zarr_id, checksum))
    base = " ".join(t for t in (snap.remote_modified or "").split(" ") if not t.startswith("zarrs="))
    snap.remote_modified = f"{base} zarrs={_zarr_digest(seen)}".strip()


def unchanged(source: Any, recorded: Optional[str], stamp: str) -> bool:
    """Whether the draft is as recorded: same stamp, and its Zarrs (if any) still at the recorded checksums."""
    if recorded is None:
        return False
    tokens = recorded.split(" ")
    zarrs = [t[len("zarrs=") :] for t in tokens if t.startswith("zarrs=")]
    base = " ".join(t for t in tokens if not t.startswith("zarrs="))
    if not zarrs:
        return base == stamp
    # listed even when the stamp moved: the Zarr assets' checksums then spare a resync one
    # metadata GET per unchanged Zarr asset (``source.zarr_checksums``)
    return current_digest(source) == zarrs[0] and base == stamp


def current_digest(source: Any) -> Optional[str]:
    """The digest of the draft's Zarr assets as the archive lists them now (one paged call)."""
    items: list[tuple[str, str, str]] = []
    # asset id -> checksum: a resync then needs no metadata GET for an unchanged Zarr asset
    known: dict[str, str] = {}
    source.zarr_checksums = known
    try:
        for a in source.client.paginate(
            f"/dandisets/{source.identifier}/versions/draft/assets/",
            page_size=API_PAGE,
            params={"zarr": "true", "metadata": "1", "order": "path"},
        ):
            if not isinstance(a, dict) or not a.get("zarr") or check_path(a.get("path"), source.reserved):
                continue
            md = a.get("metadata")
            digest = md.get("digest") if isinstance(md, dict) else None
            checksum = digest.get(CHECKSUM_FIELD) if isinstance(digest, dict) else None
            if isinstance(checksum, str) and _CHECKSUM_RE.match(checksum):
                items.append((a["path"], str(a["zarr"]), checksum))
                if isinstance(a.get("asset_id"), str):
                    known[a["asset_id"]] = checksum
    except Exception as exc:  # then list the dandiset: correct, only slower
        log.info("DANDI:%s: cannot list its Zarr assets (%s): syncing the draft", source.identifier, exc)
        return None
    return _zarr_digest(items)


# -- the Zarr's dataset ---------------------------------------------------------------
def datalad_id(zds: Path) -> Optional[str]:
    from neuromirror.dataset.light_dataset import dataset_id

    return dataset_id(zds)


def find_commit(zds: Path, zarr_id: str, checksum: str, access: str, *, head_only: bool) -> Optional[str]:
    """A commit of the Zarr's dataset recording exactly this state (HEAD only for the draft)."""
    if not (zds / ".git").exists() or not gitutil.rev_parse(zds, "HEAD"):
        return None
    if head_only:
        args = ["log", "-1", "--format=%H%x1f%B%x1e", "HEAD"]
    else:
        args = ["log", "--format=%H%x1f%B%x1e", "--fixed-strings", f"--grep={checksum}", "HEAD"]
    raw = gitutil.run(zds, *args, check=False).stdout.decode("utf-8", "replace")
    for rec in raw.split("\x1e"):
        rec = rec.strip("\n")
        if "\x1f" not in rec:
            continue
        commit, body = rec.split("\x1f", 1)
        tr = parse_trailers(body)
        if tr.get("zarr") == zarr_id and tr.get("zarr-checksum") == checksum and tr.get("zarr-access") == access:
            return commit
    return None


def _exclude(parent: Path, paths: list[str]) -> None:
    """Keep not-yet-registered Zarr datasets out of the dandiset's status (and its crash recovery)."""
    exclude = parent / ".git" / "info" / "exclude"
    lines = exclude.read_text().splitlines() if exclude.exists() else []
    have = set(lines)
    new = []
    for path in paths:
        line = "/" + re.sub(r"([\\*?\[\]!# ])", r"\\\1", path)
        if line not in have:
            have.add(line)
            new.append(line)
    if new:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as fh:
            fh.write(("\n" if lines and lines[-1] else "") + "\n".join(new) + "\n")


def ensure_zarr_dataset(zds: Path, description: str) -> Path:
    """The Zarr's dataset at ``zds``, created (MD5E keys) if needed; writes nothing outside it.

    Created with git and git-annex directly (:mod:`..light_dataset`: ~0.15 s, where a
    ``datalad create`` child took ~3 s), beside its place and moved in, so that an
    interrupted creation never looks like a dataset.
    """
    if (
        (zds / ".git").is_dir()
        and (zds / ".datalad" / "config").exists()
        and _head_of(zds)
        and "* annex.backend=MD5E" in _read(zds / ".gitattributes")
    ):
        return zds
    if zds.exists() or zds.is_symlink():
        # debris of an interrupted creation (no mirror commit yet), or a file the archive replaced
        if (zds / ".git").exists() and gitutil.out(
            zds, "log", "-1", "--format=%H", "--grep=^Neuromirror-Zarr: ", check=False
        ):
            raise RuntimeError(f"{zds} holds mirror commits but is not a complete dataset: inspect it by hand")
        if zds.is_dir() and not zds.is_symlink():
            shutil.rmtree(zds)
        else:
            zds.unlink()
    zds.parent.mkdir(parents=True, exist_ok=True)
    from neuromirror.dataset.light_dataset import init_dataset

    tmp = Path(tempfile.mkdtemp(prefix=".neuromirror-new-", dir=zds.parent))
    try:
        init_dataset(
            tmp,
            description=description,
            attributes=["* annex.backend=MD5E"],
            message="[neuromirror] new Zarr dataset (MD5E keys: S3 ETags)",
        )
        os.rename(tmp, zds)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return zds


def _read(p: Path) -> str:
    try:
        return p.read_text()
    except OSError:
        return ""


def _tag(zds: Path, name: str, commit: str, message: str, date: datetime) -> None:
    """The dandiset version's tag, on the Zarr's dataset too (left alone if it names another commit)."""
    existing = gitutil.ref_sha(zds, f"refs/tags/{name}^{{commit}}")
    if existing is None:
        make_writer("fast-import", zds).tag(name, commit, message, date)
    elif existing != commit:
        log.warning("Zarr dataset %s: tag %s already names %s, not %s", zds, name, existing[:10], commit[:10])


# -- listing ----------------------------------------------------------------------------
def _s3_location(base: str) -> tuple[Optional[str], str, str]:
    """(endpoint URL or None for AWS, bucket, key prefix) of a Zarr's S3 URL (path- or virtual-hosted style)."""
    loc = s3urls.locate(base, s3urls.endpoints_in_use(), archive_key=is_archive_key)
    if loc is None:
        raise ValueError(f"not an S3 URL: {base}")
    return loc.endpoint, loc.bucket, loc.key


#: the DANDI bucket's layout: blobs/<3>/<3>/<blob uuid>, zarr/<zarr id>/<object>
_ARCHIVE_KEY = re.compile(r"^(?:blobs/([0-9a-f]{3})/([0-9a-f]{3})/\1\2[0-9a-f-]{30}|zarr/[^/]+/.*)$")


def is_archive_key(key: str) -> bool:
    """Whether an S3 key has the shape of a DANDI blob or Zarr object (see :mod:`.s3urls`)."""
    return bool(_ARCHIVE_KEY.match(key))


def list_s3(base: str) -> list[ZObject]:
    """Every current object under the Zarr's S3 prefix, with its VersionId (anonymous requests)."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    endpoint, bucket, prefix = _s3_location(base)
    if not prefix.endswith("/"):
        prefix += "/"
    region = os.environ.get("NEUROMIRROR_DANDI_S3_REGION", "us-east-1")
    clients = _s3_clients.__dict__.setdefault("by_endpoint", {})  # one client per thread and endpoint:
    client = clients.get((endpoint, region))  # making one costs ~0.1 s of CPU, more than a small listing
    if client is None:
        client = clients[(endpoint, region)] = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            config=Config(
                signature_version=UNSIGNED,
                s3={"addressing_style": "path" if endpoint else "virtual"},
                retries={"max_attempts": 8, "mode": "standard"},
            ),
        )
    latest: dict[str, ZObject] = {}
    deleted: set[str] = set()  # keys whose latest version is a delete marker
    n = len(prefix)
    from neuromirror.sources.s3listing import paginate_versions  # botocore's parser: 25x the CPU

    for page in paginate_versions(client, Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []) or []:
            key = v["Key"]
            if v.get("IsLatest") and len(key) > n:
                vid = v.get("VersionId")
                latest[key] = ZObject(
                    key[n:],
                    int(v.get("Size") or 0),
                    str(v.get("ETag") or "").strip('"').lower(),
                    vid if vid and vid != "null" else None,
                    v.get("LastModified"),
                )
        for dm in page.get("DeleteMarkers", []) or []:
            if dm.get("IsLatest"):
                deleted.add(dm["Key"])
    return [o for k, o in latest.items() if k not in deleted]


def list_api(source: Any, zarr_id: str) -> list[ZObject]:
    """Every object of the Zarr as the API lists it (cursor paged; the client sends the key if any)."""
    out: list[ZObject] = []
    url: Optional[str] = f"/zarr/{zarr_id}/files/"
    params: Optional[dict] = {"limit": API_PAGE}
    while url:
        page = source.client.get(url, params=params)
        params = None
        for f in page.get("results") or []:
            out.append(
                ZObject(
                    str(f["Key"]),
                    int(f.get("Size") or 0),
                    str(f.get("ETag") or "").strip('"').lower(),
                    None,
                    _parse_time(f.get("LastModified")),
                )
            )
        url = page.get("next")
    return out


def list_zarr(source: Any, zarr_id: str, s3_base: Optional[str], embargoed: bool) -> tuple[list[ZObject], str]:
    if s3_base and not embargoed:
        try:
            return list_s3(s3_base), "s3-versions"
        except Exception as exc:  # a bucket that cannot be listed anonymously: the API lists it too
            log.info("DANDI:%s: Zarr %s: S3 listing failed (%s); using the API", source.identifier, zarr_id, exc)
    return list_api(source, zarr_id), "api"


# -- entries and checksum ----------------------------------------------------------------
def checksum_of(entries: Iterable[tuple[str, int, str]]) -> str:
    """The dandi-zarr-checksum of (path, size, md5/etag) leaves.

    The algorithm of ``zarr_checksum.tree.ZarrChecksumTree`` (each directory: the
    MD5 of the compact JSON ``{"directories": [...], "files": [...]}`` of its
    children's ``{"digest", "name", "size"}``, sorted by name; its digest
    ``<md5>-<count>--<size>``), written over plain tuples: the package's dataclasses
    and ``asdict`` cost ~150 us per object, most of a Zarr's CPU budget at
    5,000 objects/s.  tests/test_dandi_zarr_scale.py checks it against the package.
    """
    # directory -> (files, subdirectories), each a list of (name, digest, size, count)
    dirs: dict[str, tuple[list, list]] = {"": ([], [])}
    for rel, size, etag in entries:
        d, _, name = rel.rpartition("/")
        node = dirs.get(d)
        if node is None:
            node = dirs[d] = ([], [])
        node[0].append((name, etag, size, 1))
    for d in list(dirs):
        while d:
            d = d.rpartition("/")[0]
            if d in dirs:
                break
            dirs[d] = ([], [])

    def digest(files: list, subdirs: list) -> tuple[str, int, int]:
        files.sort(key=lambda t: t[0])
        subdirs.sort(key=lambda t: t[0])
        manifest = {
            "directories": [{"digest": g, "name": n, "size": s} for n, g, s, _ in subdirs],
            "files": [{"digest": g, "name": n, "size": s} for n, g, s, _ in files],
        }
        md5 = hashlib.md5(json.dumps(manifest, separators=(",", ":")).encode("utf-8")).hexdigest()
        count = len(files) + sum(c for *_, c in subdirs)
        size = sum(s for _, _, s, _ in files) + sum(s for _, _, s, _ in subdirs)
        return f"{md5}-{count}--{size}", count, size

    for d in sorted((d for d in dirs if d), key=lambda d: -d.count("/")):  # deepest first
        g, count, size = digest(*dirs.pop(d))
        parent, _, name = d.rpartition("/")
        dirs[parent][1].append((name, g, size, count))
    return digest(*dirs[""])[0]


def object_entries(
    source: Any,
    zarr_id: str,
    objs: list[ZObject],
    s3_base: Optional[str],
    embargoed: bool,
) -> tuple[list[AnnexEntry], list[tuple[str, int, str]], list[Refusal]]:
    """Annexed files for the objects (refusing unsafe paths), and the leaves the checksum is computed from."""
    entries: list[AnnexEntry] = []
    leaves: list[tuple[str, int, str]] = []
    refused: list[Refusal] = []
    names = {o.rel for o in objs}
    base = (s3_base or "").split("?", 1)[0]
    if base and not base.endswith("/"):
        base += "/"
    for o in sorted(objs, key=lambda o: o.rel):
        reason = check_path(o.rel)
        if reason is None:
            parts = o.rel.split("/")
            if any("/".join(parts[:i]) in names for i in range(1, len(parts))):
                reason = "a file and a directory of the same name"
        if reason is not None:
            refused.append(Refusal(o.rel, reason))
            continue
        # the API's route redirects to the *current* object: registered only where no
        # pinned URL exists (urlrule: never a mutable URL beside a pinned one)
        api = f"{source.api_url}/zarr/{zarr_id}/files/?prefix={quote(o.rel, safe='/~')}&download=true"
        if embargoed:
            urls: tuple[str, ...] = (dandi_auth.key_url(api),)
        else:
            s3 = base + quote(o.rel, safe="/~") if base else None
            if s3 and o.version_id:
                s3 += "?versionId=" + quote(o.version_id, safe="")
            urls, _ = urlrule.admissible(u for u in (s3, api) if u)
        if _MD5_RE.match(o.etag):
            key, kind, ck = md5e_key(o.etag, o.size, o.rel), MD5, o.etag
        else:  # multipart ETag: not a content hash; git-annex learns the checksum on first get
            key, kind, ck = url_key(urls[0], o.size), VERIFY_ON_GET, None
        entries.append(AnnexEntry(o.rel, key, o.size, urls, kind, ck, f"{zarr_id}/{o.rel}"))
        leaves.append((o.rel, o.size, o.etag))
    return entries, leaves, refused


def _fresh_checksum(source: Any, asset_id: Optional[str]) -> Optional[str]:
    if not asset_id:
        return None
    try:
        md = source._asset_metadata(asset_id)
        digest = md.get("digest") if isinstance(md, dict) else None
        ck = digest.get(CHECKSUM_FIELD) if isinstance(digest, dict) else None
        return ck if isinstance(ck, str) else None
    except Exception:
        return None


def _had_embargoed_state(zds: Path) -> bool:
    if not gitutil.rev_parse(zds, "HEAD"):
        return False
    return bool(gitutil.out(zds, "log", "-1", "--format=%H", "--grep=^Neuromirror-Zarr-Access: embargoed", check=False))


def _head_state(zds: Path) -> dict[str, tuple[Optional[str], frozenset[str]]]:
    """path -> (key, URLs registered for the key) of the annexed files at HEAD.

    One ``ls-tree`` and two pipelined ``cat-file`` passes (symlink targets, then the
    keys' URL logs): a Zarr of 5,000 objects changed in 3 costs ~0.3 s here, where a
    round trip per object cost 4 s on a busy machine.
    """
    from neuromirror.annex.keys import hashdir_lower, key_file, key_from_symlink
    from neuromirror.annex.logs import web_urls
    from neuromirror.index.reindex import web_log_blobs

    links = [(path, sha) for mode, _, sha, path in gitutil.ls_tree(zds, "HEAD") if mode == "120000"]
    logs = web_log_blobs(zds)  # the URL logs by blob id (~0.25 ms per key saved)
    with gitutil.CatFile(zds) as cat:
        keys = [
            key_from_symlink(t.decode("utf-8", "surrogateescape")) if t else None
            for t in cat.get_many(sha for _, sha in links)
        ]
        unique = [k for k in dict.fromkeys(k for k in keys if k)]
        found = [k for k in unique if f"{hashdir_lower(k)}{key_file(k)}.log.web" in logs]
        urls = {
            k: frozenset(web_urls(data))
            for k, data in zip(found, cat.get_many(logs[f"{hashdir_lower(k)}{key_file(k)}.log.web"] for k in found))
        }
    return {path: (key, urls.get(key, frozenset())) for (path, _), key in zip(links, keys) if key}


def _commit(
    source: Any,
    zds: Path,
    path: str,
    zarr_id: str,
    checksum: str,
    access: str,
    how: str,
    entries: list[AnnexEntry],
    objs: list[ZObject],
    asset: dict,
) -> str:
    current = _head_state(zds)
    changes: list[Any] = []
    added = changed = 0
    seen: set[str] = set()
    for e in entries:
        seen.add(e.path)
        old = current.get(e.path)
        if old is not None and old[0] == e.key and set(e.urls) <= old[1]:
            continue
        added += old is None
        changed += old is not None
        changes.append(Put(e))
    gone = [p for p in current if p not in seen]
    changes += [Delete(p) for p in gone]
    dates = [o.modified for o in objs if isinstance(o.modified, datetime)]
    date = max(dates) if dates else (_parse_time(asset.get("modified")) or datetime.now(timezone.utc))
    message = (
        f"[neuromirror] DANDI:{source.identifier} {path}: Zarr {zarr_id}: "
        f"{added} added, {len(gone)} removed, {changed} changed\n\n"
        + format_trailers(
            {
                "Neuromirror-Dandiset": source.identifier,
                "Neuromirror-Zarr": zarr_id,
                "Neuromirror-Zarr-Checksum": checksum,
                "Neuromirror-Zarr-Access": access,
                "Neuromirror-Zarr-Listing": how,
                "Neuromirror-Zarr-Files": str(len(entries)),
            }
        )
    )
    engine = os.environ.get("NEUROMIRROR_ENGINE", "fast-import")
    writer = make_writer(engine, zds, url_remotes=dandi_auth.url_remotes())
    return writer.commit(iter(changes), message=message, date=date).commit
