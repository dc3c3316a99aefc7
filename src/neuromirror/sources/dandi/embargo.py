"""Embargoed dandisets: content that needs the retrieving user's DANDI API key.

An embargoed dandiset's blobs and Zarr files sit in a private bucket; only
the API's download routes reach them, with ``Authorization: token <key>``
(a 302 to a presigned S3 URL).  The mirror registers such content under URLs
of its own scheme, ``neuromirror+dandi:<API download URL>``, claimed by the
special remote ``git-annex-remote-neuromirror-dandi``
(:mod:`neuromirror.remotes.dandi`), which reads ``DANDI_API_KEY`` from the
environment of whoever runs ``datalad get`` — the key is never written into
a dataset, its git config, the index or a log.  The remote is initialised
(``autoenable=true``, no secret in its config) in a dataset the first time
that dataset gets an embargoed file, with a fixed UUID: it is the same
"remote" everywhere, like git-annex's web remote.

When the archive lifts the embargo, the draft's stamp (``remote_modified``)
changes (it carries ``embargo=<status>`` while embargoed), so the next sync
lists the dandiset again and registers the public S3 and API URLs; the
special remote's URLs stay as a second way in.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urljoin, urlsplit

import requests

from neuromirror.errors import NeuromirrorError
from neuromirror.network import identity
from neuromirror.records import SHA256, AnnexEntry, Entry
from neuromirror.util import gitutil

log = logging.getLogger("neuromirror.dandi")

#: URL prefix of content only the key opens; the rest is the API URL itself
PREFIX = "neuromirror+dandi:"
REMOTE_NAME = "neuromirror-dandi"
EXTERNAL_TYPE = "neuromirror-dandi"  # git-annex runs git-annex-remote-neuromirror-dandi
#: one fixed UUID: git-annex's location logs can name it before any dataset initialised it
REMOTE_UUID = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/neuromirror/remote/dandi"))
KEY_ENV = "DANDI_API_KEY"
OPEN = "OPEN"

_ready: set[str] = set()
_ready_lock = threading.Lock()


def url_remotes() -> dict[str, str]:
    """What ``prepare_dataset`` hands the writer: URLs of our scheme belong to the special remote."""
    return {PREFIX: REMOTE_UUID}


def prepare_dataset(source: Any, path: Path) -> dict[str, str]:
    """Remember the dandiset's dataset (zarr subdatasets live inside it); URL prefix -> remote uuid."""
    source.dataset_path = Path(path)
    return url_remotes()


def embargo_status(dandiset: Any) -> str:
    """OPEN / EMBARGOED / UNEMBARGOING of a ``RemoteDandiset`` (OPEN when the client cannot say)."""
    try:
        status = dandiset.embargo_status
    except Exception:
        return OPEN
    status = getattr(status, "value", status)
    return str(status).upper() if status else OPEN


def draft_stamp(source: Any, dandiset: Any, draft_modified: str) -> str:
    """The draft's ``remote_modified``: its modified time, plus the embargo while there is one.

    Also records the status on the source for the entries that follow.
    """
    status = embargo_status(dandiset)
    source.embargo_status = status
    return draft_modified if status == OPEN else f"{draft_modified} embargo={status}"


def is_embargoed(source: Any) -> bool:
    """Whether the dandiset's content needs the key (until the embargo is fully lifted)."""
    return getattr(source, "embargo_status", OPEN) != OPEN


def key_url(url: str) -> str:
    return PREFIX + url


def ensure_remote(ds: Path) -> None:
    """Initialise the key-reading special remote in ``ds`` once (no secret goes into its config)."""
    ds = Path(ds)
    with _ready_lock:
        if str(ds) in _ready:
            return
        have = gitutil.out(ds, "config", "--get", f"remote.{REMOTE_NAME}.annex-uuid", check=False)
        if have != REMOTE_UUID:
            proc = gitutil.run(
                ds,
                "annex",
                "initremote",
                REMOTE_NAME,
                "type=external",
                f"externaltype={EXTERNAL_TYPE}",
                "encryption=none",
                "autoenable=true",
                f"uuid={REMOTE_UUID}",
                check=False,
            )
            if proc.returncode != 0:
                err = proc.stderr.decode(errors="replace").strip().splitlines()
                raise RuntimeError(
                    f"cannot set up the DANDI special remote in {ds} (is git-annex-remote-neuromirror-dandi "
                    f"installed?): {err[-1] if err else proc.returncode}"
                )
        _ready.add(str(ds))


def embargoed_entry(source: Any, path: str, sha: str, size: int, api_download: str, asset_id: str) -> Entry:
    """An embargoed blob asset: annexed behind the special remote, small text files too.

    Text assets of open dandisets go into git; an embargoed one stays behind the
    key like the rest, so that a copy of the dataset does not carry embargoed
    content (the dandiset's metadata, dandiset.yaml, is in git all the same).
    When the embargo is lifted the next sync moves text files into git.
    """
    from neuromirror.annex.keys import sha256e_key

    ds = getattr(source, "dataset_path", None)
    if ds is not None:
        ensure_remote(ds)
    return AnnexEntry(path, sha256e_key(sha, size, path), size, (key_url(api_download),), SHA256, sha, asset_id)


class KeyMissing(NeuromirrorError, RuntimeError):
    """Embargoed content was asked for without DANDI_API_KEY in the environment."""


def api_key() -> Optional[str]:
    """The retrieving user's DANDI API key, from the environment (never stored)."""
    return os.environ.get(KEY_ENV) or None


def open_with_key(
    url: str,
    *,
    key: Optional[str] = None,
    stream: bool = False,
    timeout: float = 60.0,
    session: Optional[requests.Session] = None,
) -> requests.Response:
    """GET an API download URL with the key; follow its redirect *without* the key.

    The presigned S3 URL it redirects to must not get the header (S3 would
    refuse two authentications, and the key must not leave the API host).
    """
    s = session or requests
    key = key if key is not None else api_key()
    headers = {"Authorization": f"token {key}"} if key else {}
    named = identity.headers()  # the mirror's name, to the API and to S3 alike (never the key)
    headers.update(named)
    r = s.get(url, headers=headers, allow_redirects=False, timeout=timeout, stream=stream)
    hops = 0
    while r.status_code in (301, 302, 303, 307, 308) and hops < 5:
        target = urljoin(url, r.headers.get("Location", ""))
        r.close()
        same_host = urlsplit(target).netloc == urlsplit(url).netloc
        r = s.get(
            target, headers=headers if same_host else named, allow_redirects=False, timeout=timeout, stream=stream
        )
        url = target
        hops += 1
    if r.status_code in (401, 403):
        r.close()
        if not key:
            raise KeyMissing(f"embargoed DANDI content: set {KEY_ENV} to an API key with access (HTTP {r.status_code})")
        raise KeyMissing(
            f"the DANDI archive refused {KEY_ENV} (HTTP {r.status_code}): "
            "the key is invalid or has no access to this dandiset"
        )
    return r
