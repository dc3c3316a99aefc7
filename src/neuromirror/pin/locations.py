"""Where a dataset can be cloned from: a local path, a ``file://`` URL, a network URL or an scp-like address.

``get --from``, ``reproduce`` and ``lock --url`` take the base where
``neuromirror publish --to BASE`` put the datasets (or one dataset's own
URL); ``publish`` takes the same kind of base.  Paths and URLs join
differently, and a local path must not be mistaken for an ``ssh`` host.

A DataLad RIA store (``ria+http://HOST/PATH``, ``ria+file:///PATH``; what
``publish --to ria+file://`` writes) names a dataset by alias, not by path:
``ria+http://HOST/PATH#~dandi/000027``.  git cannot talk to such a URL, DataLad
can: the clone goes through ``datalad clone``, and the checks here look at the
git repository the alias points at (``HOST/PATH/alias/dandi/000027``).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from neuromirror.pin.retrieve import RetrieveError
from neuromirror.util import gitutil


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


def is_ria(url: str) -> bool:
    return url.startswith("ria+")


def ria_clone_url(base: str, alias: str) -> str:
    """``base#~alias`` for a store's URL; a URL that already names a dataset (``#~x``, ``#<id>``) as is."""
    if "#" in base:
        return base
    return f"{base.rstrip('/')}#~{alias}"


def ria_git_url(url: str) -> str:
    """The git URL of a RIA clone URL's dataset (DataLad's own mapping): ``#~NAME`` is ``alias/NAME``,
    ``#ID`` is ``ID[:3]/ID[3:]``; ``@VERSION`` is left to the caller."""
    store, _, frag = url[len("ria+") :].partition("#")
    frag = frag.split("@", 1)[0]
    rel = f"alias/{frag[1:]}" if frag.startswith("~") else f"{frag[:3]}/{frag[3:]}" if frag else ""
    store = store[len("file://") :] if store.startswith("file://") else store
    return join_url(store, rel) if rel else store


def ria_store_of(url: str) -> str:
    """The store's git-side base of a RIA URL (``http://HOST/PATH``), where every dataset of it lives."""
    store = url[len("ria+") :].split("#", 1)[0].rstrip("/")
    return store[len("file://") :] if store.startswith("file://") else store


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
    datasets, or the URL of one dataset itself; for a RIA store, ``base#~relpath``
    (the alias ``publish --to ria+file://`` made) unless ``base`` names a dataset.
    """
    if is_ria(base):
        url = ria_clone_url(base, relpath)
        if not is_repository(ria_git_url(url)):
            what = f"no dataset {url.split('#', 1)[1]}" if "#" in base else f"no alias {relpath}"
            raise RetrieveError(f"{what} in the RIA store {base.split('#', 1)[0]} ({ria_git_url(url)})")
        return url
    for candidate in (join_url(base, relpath), base):
        if is_repository(candidate):
            return candidate
    raise RetrieveError(f"no git repository at {join_url(base, relpath)} nor at {base}")


def same_url(a: str, b: str) -> bool:
    """Whether clone URL ``a`` (a clone's origin) and ``b`` name the same repository; for a RIA URL ``b``,
    any dataset of its store counts (DataLad records the dataset's place by id, not the alias)."""
    if is_ria(b) and not is_ria(a):
        store = ria_store_of(b)
        if is_local(a) and is_local(store):
            return local_path(a).resolve().is_relative_to(local_path(store).resolve())
        return a.rstrip("/").startswith(store + "/")
    if is_local(a) and is_local(b):
        return local_path(a).resolve() == local_path(b).resolve()
    return a.rstrip("/") == b.rstrip("/")
