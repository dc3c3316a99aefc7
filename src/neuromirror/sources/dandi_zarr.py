"""DANDI Zarr assets: each one a DataLad dataset of its own, a subdataset of its dandiset.

A Zarr asset is a tree of objects under ``zarr/<zarr_id>/`` in the archive's
bucket, changed in place (same asset and zarr id), with a tree checksum
``dandi:dandi-zarr-checksum`` (package ``zarr_checksum``) over the objects'
MD5s.  For each Zarr asset of a version the DANDI source calls
:func:`zarr_entry`, which

1. looks for a commit of the Zarr's dataset (``<dandiset dataset>/<asset
   path>``) already recording this zarr id, checksum and access (open or
   embargoed) — for the draft only the dataset's HEAD counts, for a published
   version any commit — and uses it: **an unchanged Zarr costs no listing**;
2. otherwise lists the Zarr — a versioned S3 listing (``list_object_versions``,
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
   ``-Zarr-Access``) and returns a :class:`SubdatasetEntry` (gitlink +
   .gitmodules section ``url = ./<path>``) for the dandiset's commit; a
   published version's tag then pins the Zarr at that commit, and the Zarr's
   dataset gets the same tag.

The Zarr's dataset is created with ``datalad create`` inside the dandiset's
dataset and excluded there (``.git/info/exclude``) until the dandiset commit
registers it, so crash recovery of the dandiset does not delete it.

Incremental syncs: the draft's ``remote_modified`` gains ``zarrs=<digest>``
(of the mirrored Zarrs' ids and checksums).  The archive does not always move
the draft's ``modified`` when a Zarr changes in place, so when that token is
present :func:`unchanged` asks for the draft's Zarr assets (one listing page,
``zarr=true``) and compares: an unchanged dandiset stays O(1) API calls.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Optional
from urllib.parse import quote, urlsplit

from .. import gitutil
from ..dates import parse_iso as _parse_time
from ..annex.keys import md5e_key, url_key
from ..annex.writer import Delete, Put, make_writer
from ..paths import check_path
from ..records import (
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
from ..trailers import format_trailers, parse_trailers
from .. import urlrule
from . import dandi_auth, s3urls

log = logging.getLogger("neuromirror.dandi")

CHECKSUM_FIELD = "dandi:dandi-zarr-checksum"
_CHECKSUM_RE = re.compile(r"^[0-9a-f]{32}-\d+--\d+$")
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
API_PAGE = 1000
_create_lock = threading.Lock()


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
def zarr_entry(source: Any, asset: dict, snap: Snapshot, state: SourceState) -> Optional[Entry]:
    """The subdataset entry for a Zarr asset of ``snap`` (syncing the Zarr's dataset first), or None."""
    path: str = asset["path"]
    zarr_id = str(asset.get("zarr"))
    asset_id = asset.get("asset_id")
    parent: Optional[Path] = getattr(source, "dataset_path", None)
    if parent is None:
        snap.pending.append(Pending(path, "Zarr asset: the dandiset's dataset is not known", asset_id))
        return None
    md = asset.get("metadata")
    if md is None:
        md = source._asset_metadata(asset_id)
    digest = md.get("digest") if isinstance(md, dict) else None
    checksum = digest.get(CHECKSUM_FIELD) if isinstance(digest, dict) else None
    if not isinstance(checksum, str) or not _CHECKSUM_RE.match(checksum):
        reason = ("Zarr asset: the archive has no checksum for it yet" if checksum is None
                  else f"Zarr asset: malformed checksum {str(checksum)[:80]!r}")
        snap.pending.append(Pending(path, reason + "; will be mirrored when it has one", asset_id))
        return _previous(state, parent, path)
    zds = parent / path
    embargoed = dandi_auth.is_embargoed(source)
    access = "embargoed" if embargoed else "open"
    commit = find_commit(zds, zarr_id, checksum, access, head_only=snap.kind != "published")
    if commit is None:
        try:
            commit, checksum, unpinned = sync_zarr(source, asset, md, zds, zarr_id, checksum, embargoed)
            if unpinned:
                snap.warnings.append(f"Zarr {path}: {unpinned} object(s) have no pinned URL (no S3 versionId): "
                                     "their bytes may change upstream, which the MD5E key's check then refuses")
        except ZarrMismatch as exc:
            kept = _previous(state, parent, path)
            tail = f"; kept the last verified state ({kept.commit[:10]})" if kept is not None else ""
            snap.refused.append(Refusal(path, f"refused: {exc}{tail}"))
            log.warning("DANDI:%s: Zarr %s: %s", source.identifier, path, exc)
            return kept
    if snap.tag:
        _tag(zds, snap.tag, commit, snap.tag_message or snap.message, snap.date)
    _index_gitlink(parent, path, commit)
    note_zarr(snap, path, zarr_id, checksum)
    return SubdatasetEntry(path, commit, "./" + path, datalad_id(zds))


def _index_gitlink(parent: Path, path: str, commit: str) -> None:
    """Where the dandiset's index still has a file (the asset was a blob before), put the gitlink.

    The writer's checkout then finds the index already as the new commit has it
    instead of a file that became a directory (which git refuses to merge).
    """
    staged = gitutil.out(parent, "ls-files", "-s", "--", path, check=False)
    if staged and not staged.startswith("160000 "):
        gitutil.run(parent, "update-index", "--add", "--cacheinfo", f"160000,{commit},{path}")


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
    zarrs = [t[len("zarrs="):] for t in tokens if t.startswith("zarrs=")]
    base = " ".join(t for t in tokens if not t.startswith("zarrs="))
    if base != stamp:
        return False
    if not zarrs:
        return True
    return current_digest(source) == zarrs[0]


def current_digest(source: Any) -> Optional[str]:
    """The digest of the draft's Zarr assets as the archive lists them now (one paged call)."""
    items: list[tuple[str, str, str]] = []
    try:
        for a in source.client.paginate(
            f"/dandisets/{source.identifier}/versions/draft/assets/", page_size=API_PAGE,
            params={"zarr": "true", "metadata": "1", "order": "path"},
        ):
            if not isinstance(a, dict) or not a.get("zarr") or check_path(a.get("path"), source.reserved):
                continue
            md = a.get("metadata")
            digest = md.get("digest") if isinstance(md, dict) else None
            checksum = digest.get(CHECKSUM_FIELD) if isinstance(digest, dict) else None
            if isinstance(checksum, str) and _CHECKSUM_RE.match(checksum):
                items.append((a["path"], str(a["zarr"]), checksum))
    except Exception as exc:  # then list the dandiset: correct, only slower
        log.info("DANDI:%s: cannot list its Zarr assets (%s): syncing the draft", source.identifier, exc)
        return None
    return _zarr_digest(items)


# -- the Zarr's dataset ---------------------------------------------------------------
def datalad_id(zds: Path) -> Optional[str]:
    cfg = zds / ".datalad" / "config"
    if not cfg.exists():
        return None
    out = gitutil.out(zds, "config", "-f", str(cfg), "--get", "datalad.dataset.id", check=False)
    return out or None


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


def _exclude(parent: Path, path: str) -> None:
    """Keep the not-yet-registered Zarr dataset out of the dandiset's status (and its crash recovery)."""
    exclude = parent / ".git" / "info" / "exclude"
    line = "/" + re.sub(r"([\\*?\[\]!# ])", r"\\\1", path)
    lines = exclude.read_text().splitlines() if exclude.exists() else []
    if line not in lines:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as fh:
            fh.write(("\n" if lines and lines[-1] else "") + line + "\n")


def ensure_zarr_dataset(parent: Path, path: str, description: str) -> Path:
    """The Zarr's dataset at ``parent/path``, created (MD5E keys) if needed; not registered here."""
    zds = parent / path
    if (zds / ".git").is_dir() and (zds / ".datalad" / "config").exists() and gitutil.rev_parse(zds, "HEAD") \
            and "* annex.backend=MD5E" in _read(zds / ".gitattributes"):
        return zds
    with _create_lock:
        _exclude(parent, path)
        if zds.exists() or zds.is_symlink():
            # debris of an interrupted creation (no mirror commit yet), or a file the archive replaced
            if (zds / ".git").exists() and gitutil.out(zds, "log", "-1", "--format=%H", "--grep=^Neuromirror-Zarr: ",
                                                       check=False):
                raise RuntimeError(f"{zds} holds mirror commits but is not a complete dataset: inspect it by hand")
            if zds.is_dir() and not zds.is_symlink():
                shutil.rmtree(zds)
            else:
                zds.unlink()
        zds.parent.mkdir(parents=True, exist_ok=True)
        from ..datalad_create import create

        # made beside its place and moved in: DataLad refuses to create where the
        # dandiset tracks a file (an asset that was a blob at this path before)
        tmp = Path(tempfile.mkdtemp(prefix=".neuromirror-new-", dir=zds.parent))
        try:
            create(tmp, force=True, description=description)
            attrs = tmp / ".gitattributes"
            lines = [ln for ln in _read(attrs).splitlines() if "annex.backend=" not in ln] + ["* annex.backend=MD5E"]
            attrs.write_text("\n".join(lines) + "\n")
            gitutil.run(tmp, "add", ".gitattributes")
            gitutil.run(tmp, "commit", "-q", "--no-verify", "-m", "[neuromirror] use MD5E keys (S3 ETags)")
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
    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=os.environ.get("NEUROMIRROR_DANDI_S3_REGION", "us-east-1"),
        config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path" if endpoint else "virtual"},
                      retries={"max_attempts": 8, "mode": "standard"}),
    )
    latest: dict[str, ZObject] = {}
    deleted: set[str] = set()  # keys whose latest version is a delete marker
    n = len(prefix)
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []) or []:
            key = v["Key"]
            if v.get("IsLatest") and len(key) > n:
                vid = v.get("VersionId")
                latest[key] = ZObject(key[n:], int(v.get("Size") or 0), str(v.get("ETag") or "").strip('"').lower(),
                                      vid if vid and vid != "null" else None, v.get("LastModified"))
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
            out.append(ZObject(str(f["Key"]), int(f.get("Size") or 0), str(f.get("ETag") or "").strip('"').lower(),
                               None, _parse_time(f.get("LastModified"))))
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
def checksum_of(entries: list[tuple[str, int, str]]) -> str:
    """The dandi-zarr-checksum of (path, size, md5/etag) leaves."""
    from zarr_checksum.tree import ZarrChecksumTree

    tree = ZarrChecksumTree()
    for rel, size, etag in entries:
        tree.add_leaf(path=PurePosixPath(rel), size=size, digest=etag)  # type: ignore[arg-type]
    return tree.process().digest


def object_entries(source: Any, zarr_id: str, objs: list[ZObject], s3_base: Optional[str], embargoed: bool,
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


def sync_zarr(source: Any, asset: dict, md: dict, zds: Path, zarr_id: str, checksum: str, embargoed: bool,
              ) -> tuple[str, str, int]:
    """List the Zarr, check it against ``checksum`` and commit its dataset.

    (commit, checksum, how many objects have no pinned URL: an embargoed Zarr's or
    one listed through the API, whose objects the archive can rewrite in place).
    """
    path = asset["path"]
    s3_base = source._s3_url(md)
    computed = ""
    refused: list[Refusal] = []
    entries: list[AnnexEntry] = []
    objs: list[ZObject] = []
    how = ""
    for attempt in range(2):
        objs, how = list_zarr(source, zarr_id, s3_base, embargoed)
        entries, leaves, refused = object_entries(source, zarr_id, objs, s3_base, embargoed)
        computed = checksum_of(leaves)
        if computed == checksum:
            break
        if attempt == 0:
            log.warning("DANDI:%s: Zarr %s: listing gives checksum %s, the archive says %s; listing again",
                        source.identifier, path, computed, checksum)
            checksum = _fresh_checksum(source, asset.get("asset_id")) or checksum
    else:
        detail = f"; {len(refused)} object(s) refused, e.g. {refused[0].path!r}: {refused[0].reason}" if refused else ""
        raise ZarrMismatch(
            f"Zarr checksum mismatch: the archive says {checksum}, the {len(objs)} objects listed "
            f"({how}, twice) give {computed}{detail}")
    description = f"DANDI:{source.identifier} Zarr {path} ({zarr_id}) mirrored from {source.api_url}"
    ensure_zarr_dataset(source.dataset_path, path, description)
    if embargoed:
        dandi_auth.ensure_remote(zds)
    unpinned = sum(1 for e in entries if not any(urlrule.is_stable(u) for u in e.urls))
    was_embargoed = not embargoed and _had_embargoed_state(zds)
    commit = _commit(source, zds, path, zarr_id, checksum, "embargoed" if embargoed else "open", how, entries,
                     objs, asset)
    if was_embargoed:
        # the embargo was lifted: the objects' special-remote URLs (the API route, which follows the
        # current object) now sit beside pinned S3 URLs, and the rule takes them back
        from ..repair import RepairReport, repair_dataset

        repair_dataset(zds, RepairReport())
    return commit, checksum, unpinned


def _had_embargoed_state(zds: Path) -> bool:
    if not gitutil.rev_parse(zds, "HEAD"):
        return False
    return bool(gitutil.out(zds, "log", "-1", "--format=%H", "--grep=^Neuromirror-Zarr-Access: embargoed",
                            check=False))


def _head_state(zds: Path) -> dict[str, tuple[Optional[str], frozenset[str]]]:
    """path -> (key, URLs registered for the key) at HEAD (identical objects share a key and its URLs)."""
    from ..reindex import tree_files

    with gitutil.CatFile(zds) as cat:
        return {f.path: (f.key, frozenset(f.urls)) for f in tree_files(zds, "HEAD", cat, {})}


def _commit(source: Any, zds: Path, path: str, zarr_id: str, checksum: str, access: str, how: str,
            entries: list[AnnexEntry], objs: list[ZObject], asset: dict) -> str:
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
        + format_trailers({
            "Neuromirror-Dandiset": source.identifier,
            "Neuromirror-Zarr": zarr_id,
            "Neuromirror-Zarr-Checksum": checksum,
            "Neuromirror-Zarr-Access": access,
            "Neuromirror-Zarr-Listing": how,
            "Neuromirror-Zarr-Files": str(len(entries)),
        })
    )
    engine = os.environ.get("NEUROMIRROR_ENGINE", "fast-import")
    writer = make_writer(engine, zds, url_remotes=dandi_auth.url_remotes())
    result = writer.commit(iter(changes), message=message, date=date)
    log.info("DANDI:%s: Zarr %s: %d objects, commit %s", source.identifier, path, len(entries), result.commit[:10])
    return result.commit
