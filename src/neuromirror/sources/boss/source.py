"""BOSS (bossdb / neurodata): experiments as OME-Zarr datasets, through ``intern``.

The BOSS holds volumes, not files, behind a token-protected cutout API.  Each
experiment ``COLL/EXP`` becomes the dataset ``boss/COLL/EXP``; each of its
channels an OME-Zarr (NGFF 0.4) multiscale image ``<channel>.ome.zarr/``:

* ``.zgroup``, ``.zattrs`` (multiscales: axes with the coordinate frame's
  units, one scale per level; ``boss``: provenance) and one ``<level>/.zarray``
  per resolution level, in git;
* one annexed file per chunk, ``<level>/<z>/<y>/<x>`` (``<level>/<t>/<z>/<y>/<x>``
  with a time range): the voxels of a chunk-sized box, uncompressed, C order,
  little-endian, padded with 0 where the box passes the volume's edge.  Its
  bytes depend on the data alone, so its SHA256E key can be checked anywhere.

A chunk's URL names the cutout that fills it::

    neuromirror+boss://HOST/COLL/EXP/CHAN/RES/X0:X1/Y0:Y1/Z0:Z1/[T0:T1/]?chunk=Z,Y,X&dtype=uint8

(``neuromirror+boss+http://`` for a plain-http BOSS).  The dataset's special
remote (``git-annex-remote-neuromirror``, :mod:`neuromirror.remotes.boss`)
claims these URLs and reads the cutout with intern at retrieval time, with the
token of whoever retrieves.  No token is ever written into a dataset, the
index or a log: it is read from ``INTERN_TOKEN`` or ``~/.intern/intern.cfg``
when needed, and scrubbed from every error text.

Keys: by default every chunk is read once and gets a SHA256E key (streamed,
cutouts run concurrently, progress in bytes).  Image channels are then only
compared by metadata (experiment, coordinate frame, channel, extents): a chunk
whose URL and channel metadata are unchanged keeps its key (cached per chunk,
forever).  Annotation channels (uint64) are edited upstream, so every sync
re-reads them; a changed chunk makes a new version.  ``--no-hash`` gives image
chunks VURL keys instead (no reading); the special remote records the sha256
on first retrieval in the clone and checks later ones against it.

Every sync that changed something is a ``snapshot`` labelled by its UTC time
(``2026-11-21T10-00-00Z``), committed and tagged; the BOSS has no versions of
its own, so an old version's annotation chunk that changed upstream can no
longer be fetched: the special remote says so rather than hand over other bytes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from neuromirror.annex.keys import sha256e_key
from neuromirror.records import (
    SHA256,
    VERIFY_ON_GET,
    AnnexEntry,
    ContentSink,
    Entry,
    GitEntry,
    ProgressCallback,
    Snapshot,
    SourceState,
    VersionKind,
)
from neuromirror.sources.base import Source
from neuromirror.sources.boss.api import make_remote, require_token, with_retries
from neuromirror.sources.boss.chunks import URL_PREFIX, Chunk, read_chunk
from neuromirror.sources.boss.keys import CacheWriter, decide, resolve
from neuromirror.sources.boss.layout import METADATA_FILE, git_files
from neuromirror.sources.boss.metadata import read_metadata
from neuromirror.sources.boss.options import BossSettings, add_options
from neuromirror.sources.boss.plan import ChannelPlan, plan_channels
from neuromirror.sources.boss.special_remote import enable_special_remote, git_output
from neuromirror.spec import Spec
from neuromirror.util.memory.spool import Spool

#: what the tool calls (``neuromirror.sources``, reindex): the source, its options, the archive's id of a file
__all__ = ["BossSource", "add_options", "expand", "remote_id_for"]

log = logging.getLogger("neuromirror.boss")

_STAMP = "%Y-%m-%dT%H-%M-%SZ"


class BossSource:
    """One experiment ``COLL/EXP``: the dataset ``boss/COLL/EXP``, one OME-Zarr image per channel."""

    archive = "boss"
    reserved: tuple[str, ...] = (METADATA_FILE,)

    def __init__(
        self,
        collection: str,
        experiment: str,
        settings: Optional[BossSettings] = None,
        *,
        token: Optional[str] = None,
        remote: Any = None,
    ):
        self.collection = collection
        self.experiment = experiment
        self.settings = settings or BossSettings()
        self._token = token
        self._remote = remote
        self.id = f"boss:{collection}/{experiment}"
        self.remote_id = f"{collection}/{experiment}"
        self.relpath = f"boss/{collection}/{experiment}"
        self._ds: Optional[Path] = None
        self._local = threading.local()

    def __repr__(self) -> str:  # never the token
        return f"<BossSource {self.id} at {self.settings.url}>"

    # -- plumbing -------------------------------------------------------
    @property
    def token(self) -> str:
        if not self._token:
            self._token = require_token()
        return self._token

    @property
    def remote(self) -> Any:
        if self._remote is None:
            self._remote = make_remote(self.settings.protocol, self.settings.host, self.token)
        return self._remote

    def _thread_remote(self) -> Any:
        rmt = getattr(self._local, "remote", None)
        if rmt is None:
            rmt = self._local.remote = make_remote(self.settings.protocol, self.settings.host, self.token)
        return rmt

    def call(self, what: str, fn: Any) -> Any:
        """``fn()`` against the BOSS: retried when transient, a one-line BossError (token scrubbed) when not."""
        return with_retries(fn, server=self.settings.url, what=what, token=self._token)

    def describe(self) -> str:
        return f"BOSS {self.collection}/{self.experiment} mirrored from {self.settings.url}"

    def check_access(self) -> None:
        """Read the experiment once: a missing token, a rejected one or a wrong name fails here."""
        self.call(f"experiment {self.remote_id}", lambda: self.remote.get_experiment(self.collection, self.experiment))

    # -- the dataset's special remote ------------------------------------
    def prepare_dataset(self, path: Path) -> dict[str, str]:
        """Make sure the dataset has the ``neuromirror`` special remote (autoenabled in clones).

        Its config holds the BOSS URL only; the token is read at retrieval time.
        """
        self._ds = Path(path)
        return {URL_PREFIX: enable_special_remote(path, self.settings.url)}

    # -- snapshots ------------------------------------------------------
    def snapshots(self, state: SourceState, progress: Optional[ProgressCallback] = None) -> Iterator[Snapshot]:
        info = read_metadata(self)
        warnings: list[str] = []
        plans = plan_channels(self, info, warnings)
        git_entries = git_files(self, info, plans)
        for plan in plans:
            plan.zattrs = next(e.read() for e in git_entries if e.path == f"{plan.root}/.zattrs")
        cache = CacheWriter(state)
        try:
            decided = decide(self, plans, state, cache)
            chunks = resolve(self, decided, cache, progress, getattr(state, "content_sink", None))
        finally:
            cache.flush()  # facts about chunk bytes hold whether or not this sync completes
        try:
            entries = lambda: self._entries(git_entries, chunks)  # noqa: E731
            if self._unchanged(entries(), state):
                log.info("%s: unchanged", self.id)
                return
            now = datetime.now(timezone.utc).replace(microsecond=0)
            label = self._label(now, state)
            date = datetime.strptime(label, _STAMP).replace(tzinfo=timezone.utc)
            remote_modified = self._remote_modified(git_entries, chunks)
            meta = self._meta(info, plans, chunks)
            snap = Snapshot(
                label=label,
                kind=VersionKind.SNAPSHOT,
                entries=entries(),
                date=date,
                message=f"BOSS {self.remote_id} snapshot {label}",
                tag=label,
                tag_message=self._tag_message(label, info, plans, meta),
                remote_modified=remote_modified,
                meta=meta,
                warnings=warnings,
            )
            yield snap
        finally:
            chunks.close()

    def hash_chunk(self, chunk: Chunk, sink: Optional[ContentSink] = None, path: str = "") -> str:
        """The sha256 of a chunk's bytes, read with this thread's own client; with a ``sink``
        (a store configured), the bytes are handed to it under their SHA256E key too."""
        data = read_chunk(self._thread_remote(), chunk, token=self._token)
        sha = hashlib.sha256(data).hexdigest()
        if sink is not None:
            sink.put(sha256e_key(sha, len(data), path), data)
        return sha

    def _entries(self, git_entries: list[GitEntry], chunks: Spool) -> Iterator[Entry]:
        yield from git_entries
        for r in chunks:
            yield AnnexEntry(r.path, r.key, r.size, (r.url,), r.kind, r.sha, r.remote_id)

    def _unchanged(self, entries: Iterable[Entry], state: SourceState) -> bool:
        n = 0
        for e in entries:
            prev = state.previous(e.path)
            if prev is None or prev.identity != e.identity:
                return False
            n += 1
        return n == sum(1 for _ in state.previous_files())

    def _remote_modified(self, git_entries: list[GitEntry], chunks: Spool) -> str:
        """A digest of the metadata and of every annotation chunk's sha256."""
        h = hashlib.sha256()
        for g in git_entries:
            h.update(g.path.encode() + b"\0" + g.checksum.encode() + b"\n")
        for r in chunks:
            if r.annotation:
                h.update(r.path.encode() + b"\0" + (r.sha or "").encode() + b"\n")
        return "sha256:" + h.hexdigest()

    def _label(self, now: datetime, state: SourceState) -> str:
        known = state.labels()
        while True:
            label = now.strftime(_STAMP)
            tag_taken = self._ds is not None and bool(
                git_output(self._ds, "rev-parse", "-q", "--verify", f"refs/tags/{label}", check=False)
            )
            if label not in known and not tag_taken:
                return label
            now += timedelta(seconds=1)

    def _meta(self, info: dict[str, Any], plans: list[ChannelPlan], chunks: Spool) -> dict[str, Any]:
        kinds: dict[str, set[str]] = {}
        counts: dict[str, int] = {}
        for r in chunks:
            name = r.path.split(".ome.zarr/", 1)[0]
            kinds.setdefault(name, set()).add(r.kind)
            counts[name] = counts.get(name, 0) + 1
        cf = info["coord_frame"]

        def keys_of(name: str) -> str:
            k = kinds.get(name, set())
            return k.pop() if len(k) == 1 else ("mixed" if k else "none")

        all_kinds = set().union(*kinds.values()) if kinds else set()
        return {
            "boss_url": self.settings.url,
            "collection": self.collection,
            "experiment": self.experiment,
            "coord_frame": cf.get("name"),
            "extent_xyz": [cf.get("x_stop"), cf.get("y_stop"), cf.get("z_stop")],
            "voxel_size_xyz": [cf.get("x_voxel_size"), cf.get("y_voxel_size"), cf.get("z_voxel_size")],
            "voxel_unit": cf.get("voxel_unit"),
            "keys": (VERIFY_ON_GET if all_kinds == {VERIFY_ON_GET} else "mixed" if len(all_kinds) > 1 else SHA256),
            "channels": {
                p.name: {
                    "type": p.type,
                    "datatype": p.datatype,
                    "resolutions": [lv.res for lv in p.levels],
                    "chunks": counts.get(p.name, 0),
                    "keys": keys_of(p.name),
                }
                for p in plans
            },
            "selection": self.settings.selection(),
        }

    def _tag_message(self, label: str, info: dict[str, Any], plans: list[ChannelPlan], meta: dict[str, Any]) -> str:
        exp = info["experiment"]
        lines = [f"BOSS {self.remote_id} snapshot {label}", ""]
        if exp.get("description"):
            lines.append(f"Description: {' '.join(str(exp['description']).split())}")
        for p in plans:
            m = meta["channels"][p.name]
            lines.append(
                f"Channel: {p.name} ({p.type}, {p.datatype}), resolutions "
                f"{', '.join(map(str, m['resolutions']))}, {m['chunks']} chunks, keys {m['keys']}"
            )
        lines.append(f"Source: {self.settings.url}/v1/collection/{self.collection}/experiment/{self.experiment}")
        lines.append("The BOSS keeps no history: chunks that changed upstream since this snapshot cannot be fetched.")
        return "\n".join(lines) + "\n"

    def __getstate__(self) -> dict:  # never pickle the token or clients
        d = dict(self.__dict__)
        d["_token"] = None
        d["_remote"] = None
        d["_local"] = None
        return d


def expand(spec: Spec, options: dict) -> Iterator[Source]:
    """``boss:COLL/EXP`` -> one source, ``boss:COLL`` -> one per experiment (globs allowed).

    The BOSS is asked before anything is written: a missing or rejected token,
    or an unknown collection or experiment, fails here.
    """
    settings = BossSettings.from_options(options)
    token = require_token()
    remote = make_remote(settings.protocol, settings.host, token)

    def call(what: str, fn: Any) -> Any:
        return with_retries(fn, server=settings.url, what=what, token=token)

    coll_pat, _, exp_pat = spec.name.partition("/")
    if any(ch in coll_pat for ch in "*?["):
        colls = sorted(
            n for n in call("the list of collections", remote.list_collections) if fnmatch.fnmatchcase(n, coll_pat)
        )
    else:
        colls = [coll_pat]
    for coll in colls:
        if exp_pat and not any(ch in exp_pat for ch in "*?["):
            src = BossSource(coll, exp_pat, settings, token=token, remote=remote)
            src.check_access()
            yield src
            continue
        exps = call(f"experiments of collection {coll}", lambda coll=coll: remote.list_experiments(coll))
        for exp in sorted(exps):
            if not exp_pat or fnmatch.fnmatchcase(exp, exp_pat):
                # each source makes its own client: sources are synced in parallel threads
                yield BossSource(coll, exp, settings, token=token)


def remote_id_for(path: str, key: Optional[str], urls: tuple[str, ...]) -> Optional[str]:
    """The cutout behind a chunk file, from its URL (used by reindex)."""
    for u in urls:
        u = u[1:] if u.startswith(":") else u
        if u.startswith(URL_PREFIX):
            try:
                return Chunk.parse(u).remote_id
            except ValueError:
                return None
    return None
