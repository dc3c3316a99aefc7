"""The store as a fallback where content is retrieved: named by a lock (``store = ...``) or ``--store``.

A clone of a dataset whose ``git-annex`` branch records the store enables it by itself
(``autoenable=true``). Not every clone's branch does: a copy published before ``keep`` ran,
or a store mounted elsewhere. :func:`use_store` makes the store usable in such a clone, as a
user would by hand: the store's ``remote.log``/``uuid.log`` lines on the clone's own branch (the
lines ``keep`` writes: for an S3 store its bucket, prefix and endpoint, never a credential),
the keys of the version the store really holds (its objects are checked, not the mirror's word)
recorded as present there, then ``git annex enableremote UUID FIELD=PLACE`` (the store's
``capabilities.enable_field``: ``directory=PATH``, ``bucket=BUCKET``, a packed store's ``url=``; by
UUID: a dataset kept into several stores records several remotes, each named ``neuromirror-store-<id>``,
and one made before stores had names of their own may record two under one name) and
(git-annex 10.2026+ uses a remote enabled by hand only once it is verified) ``git annex
verifyremote`` — the user named this store at this place, which is what that check asks.  Both run
without the store's credentials in their environment (``capabilities.secret_env``): git-annex would
cache them in the clone; its transfers read them from the reader's environment instead.
A store's cost (150) is below the web remote's: what it holds is read from it first, the
archive's URLs only for the rest (docs/keep.md, "A directory store is read first").

:func:`recorded_stores` is the other direction, for ``lock``: the stores a dataset's branch says
hold content of a version (``keep`` recorded them), so that the lock can name them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from neuromirror.annex.tree import iter_version, pinned_repositories
from neuromirror.errors import UserError
from neuromirror.pin.retrieve import RetrieveError, gist
from neuromirror.store.base import LEGACY_NAME, Store
from neuromirror.store.record import ensure_remote, present_in, record_present, store_uuids
from neuromirror.store.registry import recorded_url
from neuromirror.util import gitutil

#: a store ``--store`` or a lock can name for a clone that does not record it
Retrievable = Store  # one a clone enables at a place named here (capabilities.enable_field)


def _stores_on_branch(repo: Path) -> dict[str, str]:
    """{uuid: where} of the neuromirror stores the repository's git-annex branch records: a directory
    store's path, a packed store's ``pack+file://`` or ``pack+s3://`` URL, an S3 store's ``s3://`` URL."""
    out = {}
    for uuid, fields in store_uuids(repo).items():
        url = recorded_url(uuid, fields, {}) if str(fields.get("name", "")).startswith(LEGACY_NAME) else None
        if url:
            out[uuid] = url
    return out


def _branch_name(repo: Path, uuid: str) -> Optional[str]:
    """The remote name the branch's ``remote.log`` gives ``uuid`` (None: no line for it). Whatever
    the other fields: git-annex's ``enableremote`` rewrites the line without ``directory=``, which
    is fine for an enabled clone."""
    fields = store_uuids(repo).get(uuid)
    return None if fields is None else fields.get("name", "")


def configured_remote(repo: Path, uuid: str) -> Optional[str]:
    """The git remote of ``repo`` that is the special remote ``uuid`` (whatever it is called there)."""
    proc = gitutil.run(repo, "config", "--get-regexp", r"^remote\..*\.annex-uuid$", check=False)
    for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
        name, _, value = line.partition(" ")
        if value.strip() == uuid:
            return name[len("remote.") : -len(".annex-uuid")]
    return None


def recorded_stores(ds: Path, commit: str) -> list[str]:
    """The read locations of the stores a branch records as holding content of ``commit``'s files.

    ``keep`` keeps a whole version, recording each key on the branch of the repository whose
    tree holds it, so the first repository of the version with annexed files decides: the
    dataset itself, or (an AIND asset whose annexed content is all in its Zarr stores'
    datasets) its first such subdataset; the others are not read (a dandiset of 20,000 Zarrs)."""
    for repo, rcommit, _ in pinned_repositories(ds, commit):
        keys = [f.key for f in iter_version(repo, rcommit) if f.key]
        if not keys:
            continue
        return [d for uuid, d in _stores_on_branch(repo).items() if present_in(repo, uuid, keys)]
    return []


def store_for_retrieval(name: Optional[str], *, explicit: bool) -> tuple[Optional[Retrievable], Optional[str]]:
    """The store ``name`` names, if it can be read here: (store, None) or (None, a note why not).

    ``explicit`` (``--store``): a store that is not there is the user's mistake (``UserError``);
    otherwise (a lock's ``store``, ``NEUROMIRROR_STORE``) it is a note: the archive may still serve.
    """
    if not name:
        return None, None
    from neuromirror.store.location import open_store

    why, then = None, ""
    try:
        store = open_store(name)
        if store.capabilities.enable_field is None:
            # a kind git-annex has no remote for: a clone reads it only where its git-annex branch records it
            why = f"a {store.kind} store is used where the dataset records it; a clone cannot enable it by name"
        elif not store.exists():  # a remote store that does not answer raises: not reachable
            why, then = f"no neuromirror store at {store.url}", "; content comes from the archive only"
        else:
            _ = store.identity
    except UserError as exc:
        if explicit:
            raise
        return None, f"store {name} not used: {exc}"
    if why is None:
        return store, None
    if explicit:
        raise UserError(f"store {name}: {why}").at("store")
    return None, f"store {name} not used: {why}{then}"


def use_store(repo: Path, commit: str, store: Retrievable) -> int:
    """Make ``store`` a source of ``commit``'s content in the clone ``repo``; how many of its keys it holds.

    Writes only the clone's own git-annex branch and git config; nothing when the store holds
    none of the version's keys.  Idempotent: a second call records and enables nothing new.
    """
    keys = list(dict.fromkeys(f.key for f in iter_version(repo, commit) if f.key))
    held = [k for k in keys if store.has(k)]
    if not held:
        return 0
    ident = store.identity
    try:
        if _branch_name(repo, ident.uuid) != ident.name:  # unknown here, or under a name another store has
            ensure_remote(repo, store)
        if set(held) - present_in(repo, ident.uuid, held):  # a rerun in a reused clone writes nothing
            record_present(repo, store, held)
    except gitutil.GitError as exc:
        raise RetrieveError(f"recording the store {store} in {repo} failed: {gist(str(exc))}") from None
    name, enabled = _enable(repo, store)
    # enabled by UUID, git-annex leaves no annex-verified=manual mark, but still wants the check
    verified = gitutil.out(repo, "config", "--get", f"remote.{name}.annex-verified", check=False)
    if verified == "manual" or (enabled and verified != "verified"):
        _verify(repo, name, _no_secrets(store))
    return len(held)


def _enable(repo: Path, store: Retrievable) -> tuple[str, bool]:
    """``git annex enableremote UUID`` with the store's location, unless the clone has it enabled there
    already: the remote's name in the clone, and whether it was enabled now."""
    ident = store.identity
    name = configured_remote(repo, ident.uuid)
    field, where = store.capabilities.enable_field or ("directory", store.url)
    if field == "directory":  # git-annex's directory remote keeps its place in the clone's git config
        current = gitutil.out(repo, "config", "--get", f"remote.{name}.annex-directory", check=False) if name else ""
    else:  # an external remote reads its field from remote.log: the branch's line
        current = store_uuids(repo).get(ident.uuid, {}).get(field, "")
    stale = name is None or current != where
    if not stale:
        assert name is not None
        return name, False
    proc = gitutil.run(
        repo, "annex", "enableremote", ident.uuid, f"{field}={where}", check=False, env=_no_secrets(store)
    )
    if proc.returncode != 0:
        raise RetrieveError(
            f"git annex enableremote {ident.name} ({ident.uuid}) {field}={where} failed in {repo}: "
            f"{gist(proc.stderr.decode(errors='replace'))}"
        )
    return configured_remote(repo, ident.uuid) or ident.name, True


def _no_secrets(store: Retrievable) -> dict[str, None]:
    """The store's credential variables left out of git-annex's environment (its ``secret_env``)."""
    return dict.fromkeys(store.capabilities.secret_env)


def _verify(repo: Path, name: str, env: Optional[dict[str, None]] = None) -> None:
    """``git annex verifyremote NAME --safe ID``: the user named this store, at this path (the lock or
    ``--store``), so its configuration is the expected one; git-annex will not read an enabled
    remote's content before it is verified. The ID is the one git-annex shows for the check."""
    shown = gitutil.run(repo, "annex", "verifyremote", name, input=b"", check=False, env=env)
    m = re.search(r"--safe (\S+)", (shown.stdout + shown.stderr).decode(errors="replace"))
    if m is None:
        return  # a git-annex without verifyremote uses enabled remotes as they are
    proc = gitutil.run(repo, "annex", "verifyremote", name, "--safe", m.group(1), check=False, env=env)
    if proc.returncode != 0:
        raise RetrieveError(
            f"git annex verifyremote {name} failed in {repo}: {gist(proc.stderr.decode(errors='replace'))}"
        )
