"""``publish SPEC... --to ria+file:///STORE`` (or ``ria+ssh://HOST/STORE``): datasets into a DataLad RIA store
anyone clones over HTTP.

Each dataset of the SPECs goes into the store by its DataLad id (:mod:`.layout`, :mod:`.put`),
its Zarr subdatasets first (each by its own id: a clone from ``ria+http://HOST/#~dandi/000027``
gets DataLad's ``datalad.get.subdataset-source-candidate-200origin = ria+http://HOST/#{id}`` and
installs them from the same store, using the ``datalad-id`` the dataset's ``.gitmodules``
records), then an alias per source (``alias/dandi/000027``, ``alias/aind/<asset>``,
``alias/boss/<coll>/<exp>``: the dataset's path in the mirror), moved only once the dataset's refs
are complete.  With ``--with-root`` the root superdataset follows, as a filtered commit
(:mod:`.root`) under the alias ``root``.  Content the lab kept in a directory store is linked
into the datasets' object trees and the store recorded as an ORA special remote (:mod:`.kept`).

Embargoed dandisets (the last sync saw ``embargo=...`` in the draft's stamp) are held back —
dataset, alias, root entry, kept content — unless ``include_embargoed``; the report says which
and why, and the first publish after the embargo is lifted (and synced) adds them.  Other sources
whose bytes only a credential reads (the BOSS: :mod:`neuromirror.publish.credentials`) are published
without their kept content unless ``include_embargoed`` (``content_held_back`` says how much and
why).  Nothing of the environment (DANDI key, S3 secrets, BOSS token) is read here, so none can reach the store.

The store is written through a :class:`.target.RiaTarget`: the local file system, or a host over
ssh (:mod:`.ssh`); both answer "what does the store hold?" from local files, so the decisions
here are one code path.

Each source's sync lock is held while it is published (and the root's lock for the root), so a
concurrent sync never publishes a half state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional
from urllib.parse import urlsplit

from neuromirror.dataset.light_dataset import dataset_id
from neuromirror.errors import BadInput, NeuromirrorError
from neuromirror.pin.published import record_ria_url
from neuromirror.publish.credentials import credential_needed, embargo_of
from neuromirror.publish.ria.kept import OraRemote, kept_content
from neuromirror.publish.ria.layout import ORA_NAME, RiaError, RiaStore
from neuromirror.publish.ria.put import RiaPushError, Wanted, refs_from_files, wanted_refs
from neuromirror.publish.ria.root import ROOT_ALIAS, filtered_commit, local_parent, root_entries
from neuromirror.publish.ria.target import RiaTarget, open_target
from neuromirror.publish.sibling import subdataset_paths
from neuromirror.store.record import ensure_remote, present_in, record_present
from neuromirror.util import disk, gitutil
from neuromirror.util.crashpoints import crashpoint


class RiaPublishError(NeuromirrorError, RuntimeError):
    """One dataset could not be published; the message says which and why."""


@dataclass
class RiaPublished:
    source: str
    relpath: str
    dsid: str
    alias: str
    url: str
    branch: str
    commit: str
    tags: int
    created: bool = False
    updated: list[str] = field(default_factory=list)
    subdatasets: int = 0
    kept_objects: int = 0
    alias_moved: bool = False
    clone_url: str = ""  # what ``datalad clone`` takes: ``ria+<public url>#~<alias>``, recorded in the dataset
    kept_held_back: int = 0  # kept objects left out: only a credential reads them (publish.credentials)

    def line(self) -> str:
        what = ", ".join(self.updated) if self.updated else "already up to date"
        made = " (created)" if self.created else ""
        subs = f", {self.subdatasets} subdataset(s)" if self.subdatasets else ""
        kept = f", {self.kept_objects} kept object(s)" if self.kept_objects else ""
        return (
            f"{self.source} -> {self.url}#~{self.alias} ({self.dsid}){made}: {self.branch} at {self.commit[:12]}, "
            f"{self.tags} tag(s){subs}{kept}; pushed: {what}"
        )


@dataclass
class HeldBack:
    source: str
    relpath: str
    why: str

    def line(self) -> str:
        return f"{self.source}: held back, {self.why}"


@dataclass
class RiaReport:
    store: str
    published: list[RiaPublished] = field(default_factory=list)
    held_back: list[HeldBack] = field(default_factory=list)
    #: published datasets whose kept content stayed out (only a credential reads it)
    content_held_back: list[HeldBack] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": not self.errors,
            "store": self.store,
            "published": [asdict(p) for p in self.published],
            "held_back": [asdict(h) for h in self.held_back],
            "content_held_back": [asdict(h) for h in self.content_held_back],
            "errors": self.errors,
            "notes": self.notes,
        }


def publish_to_ria(
    mirror: Any,
    sources: list[str],
    to: str,
    *,
    with_root: bool = False,
    include_embargoed: bool = False,
    force: bool = False,
    public_url: Optional[str] = None,
    min_free: object = None,
) -> RiaReport:
    """Publish ``sources`` into the store ``to``; ``public_url`` is where clones reach it (the ORA's url=)."""
    store = RiaStore.from_url(to)
    if not store.ssh:  # a store on this host: its disk must hold the push (util.disk)
        disk.check_free(store.path, f"publishing into {store.url}", option=min_free)
    report = RiaReport(store.url)
    ora_url_for(store, public_url)  # a bad URL is refused before anything is written
    target = open_target(store)
    try:
        _publish_all(mirror, target, store, sources, report, with_root, include_embargoed, force, public_url)
    finally:
        target.close()
    return report


def _publish_all(
    mirror: Any,
    target: RiaTarget,
    store: RiaStore,
    sources: list[str],
    report: RiaReport,
    with_root: bool,
    include_embargoed: bool,
    force: bool,
    public_url: Optional[str],
) -> None:
    try:
        target.ensure()
        ora_url = ora_url_for(store, target.public_url(public_url))
    except (RiaError, OSError) as exc:
        report.errors.append(f"store: {exc}")
        return
    for source in sources:
        relpath = mirror.index.source(source).dataset
        status = embargo_of(mirror.index, source)
        if status and not include_embargoed:
            why = f"embargoed ({status}) at the last sync; --include-embargoed publishes it"
            if target.alias_target(relpath):
                why += " (an earlier publish put it in the store: it stays there until removed by hand)"
            report.held_back.append(HeldBack(source, relpath, why))
            continue
        needs = credential_needed(mirror.index, source)
        try:
            # a credential's source: its kept content checked the long way (an earlier publish may have left it out)
            done = _publish_source(
                mirror,
                target,
                ora_url,
                source,
                relpath,
                force,
                content=include_embargoed or needs is None,
                fast=not needs,
            )
            report.published.append(done)
            if done.kept_held_back:
                why = (
                    f"{done.kept_held_back} kept object(s) not put in the store: {needs}; "
                    "--include-embargoed publishes them"
                )
                report.content_held_back.append(HeldBack(source, relpath, why))
        except (RiaPublishError, RiaPushError, RiaError, gitutil.GitError, OSError) as exc:
            report.errors.append(f"{source}: {exc}")
    if with_root and not report.errors:
        try:
            report.published.append(_publish_root(mirror, target, ora_url, report, include_embargoed, force))
        except (RiaPublishError, RiaPushError, RiaError, gitutil.GitError, OSError) as exc:
            report.errors.append(f"root: {exc}")


def ora_url_for(store: RiaStore, public_url: Optional[str]) -> str:
    """The ORA remote's ``url=``: where clones read the store.  git-annex (10.2026) uses a special
    remote whose url a clone changed locally only after ``git annex verifyremote``, which DataLad's
    RIA post-clone step does not run: so the url must already be the one clones use."""
    if not public_url:
        return store.url
    url = public_url.rstrip("/")
    if url.startswith(("http://", "https://")):
        url = "ria+" + url
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise BadInput("public_url: no credentials in the URL (it is written into every dataset)").at("public_url")
    if not url.startswith(("ria+http://", "ria+https://", "ria+file://", "ria+ssh://")) or "#" in url:
        raise BadInput(f"public_url {public_url}: give the store's URL as clones reach it, e.g. https://HOST/PATH").at(
            "public_url"
        )
    return url


def _put_dataset(
    target: RiaTarget, ora_url: str, repo: Any, dsid: str, force: bool, content: bool = True, fast: bool = True
) -> tuple[bool, list[str], Wanted]:
    """One dataset (a dandiset, a Zarr) by id, with its kept content (none unless ``content``); the ORA
    recorded first.

    An unchanged dataset without kept content is told from files alone (:func:`.put.unchanged`), unless
    not ``fast`` (kept content an earlier publish held back would pass for none)."""
    found = refs_from_files(repo)
    if fast and found is not None and target.unchanged(dsid, *found):
        return False, [], Wanted(repo, dsid, found[0], found[1])
    objects = kept_content(repo) if content else {}
    ora_uuid = None
    if objects:
        ora_uuid = target.ora_uuid()
        ora = OraRemote(ora_url, ora_uuid, dsid, ORA_NAME)
        # recorded already (a republish): no sync of the disk, no git-annex run
        if ensure_remote(repo, ora) or present_in(repo, ora_uuid, list(objects)) != set(objects):
            record_present(repo, ora, objects)
    # read after the ORA was recorded (a commit on the git-annex branch)
    head, refs = (ora_uuid is None and found) or refs_from_files(repo) or wanted_refs(repo)
    want = Wanted(repo, dsid, head, refs, objects, ora_uuid)
    created, updated = target.put(want, force)
    return created, updated, want


def _publish_source(
    mirror: Any,
    target: RiaTarget,
    ora_url: str,
    source: str,
    relpath: str,
    force: bool,
    content: bool = True,
    fast: bool = True,
) -> RiaPublished:
    """One source's dataset and subdatasets; without ``content``, their kept objects stay out (counted)."""
    ds = mirror.root / relpath
    if not (ds / ".git").exists():
        raise RiaPublishError(f"no dataset at {ds}")
    dsid = dataset_id(ds)
    if not dsid:
        raise RiaPublishError(f"{ds} has no DataLad id (.datalad/config): cannot place it in a RIA store")
    with mirror.lock(source, wait=True):
        kept = held = 0
        subs = subdataset_paths(ds)
        for sub in subs:
            sds = ds / sub
            sid = dataset_id(sds) if (sds / ".git").exists() else None
            if not sid:
                raise RiaPublishError(f"subdataset {sub} is not in the mirror with a DataLad id ({sds})")
            _, _, swant = _put_dataset(target, ora_url, sds, sid, force, content, fast)
            kept += len(swant.objects)
            held += 0 if content else len(kept_content(sds))
        created, updated, want = _put_dataset(target, ora_url, ds, dsid, force, content, fast)
        held += 0 if content else len(kept_content(ds))
        crashpoint("publish-ria:before-alias")
        moved = target.set_alias(relpath, dsid)
        # lock and cite name the store from now on (pin/published.py: published_url)
        clone_url = f"{ora_url}#~{relpath}"
        record_ria_url(ds, clone_url)
    return RiaPublished(
        source,
        relpath,
        dsid,
        relpath,
        target.url,
        want.head.replace("refs/heads/", ""),
        want.refs[want.head],
        sum(1 for r in want.refs if r.startswith("refs/tags/")),
        created,
        updated,
        len(subs),
        kept + len(want.objects),
        moved,
        clone_url,
        held,
    )


def _publish_root(
    mirror: Any, target: RiaTarget, ora_url: str, report: RiaReport, include_embargoed: bool, force: bool
) -> RiaPublished:
    root = mirror.root
    rootid = dataset_id(root)
    if not rootid:
        raise RiaPublishError(f"the root {root} has no DataLad id")
    held = {h.relpath for h in report.held_back}
    allowed = set()
    for row in mirror.index.sources():
        if row.dataset in held or (not include_embargoed and embargo_of(mirror.index, row.id)):
            held.add(row.dataset)
        else:
            allowed.add(row.dataset)
    with mirror.root_lock():
        head = gitutil.out(root, "symbolic-ref", "-q", "HEAD", check=False)
        if not head.startswith("refs/heads/"):
            raise RiaPublishError(f"the root {root}: HEAD is not on a branch")
        # the store's side read from ``view``: the store itself, or the skeleton of one over ssh
        keep, left_out = root_entries(root, target.view, allowed)
        parent, must_force = local_parent(root, target.view, rootid)
        commit = filtered_commit(root, target.view, keep, parent)
        want = Wanted(root, rootid, head, {head: commit})
        created, updated = target.put(want, force or must_force)
        crashpoint("publish-ria:before-alias")
        moved = target.set_alias(ROOT_ALIAS, rootid)
    if left_out:
        report.notes.append(
            f"the published root leaves out {len(left_out)} dataset(s) not in the store or held back "
            f"(e.g. {left_out[0]}); it names {len(keep)}"
        )
    res = RiaPublished(
        "(root superdataset)", ".", rootid, ROOT_ALIAS, target.url, head[len("refs/heads/") :], commit, 0
    )
    res.created, res.updated, res.subdatasets, res.alias_moved = created, updated, len(keep), moved
    res.clone_url = f"{ora_url}#~{ROOT_ALIAS}"
    return res
