"""``git-annex-remote-neuromirror``: the special remote that fetches BOSS chunks.

A mirrored BOSS dataset registers each chunk file under a URL of its own
scheme (``neuromirror+boss://HOST/COLL/EXP/CHAN/RES/X0:X1/Y0:Y1/Z0:Z1/?chunk=Z,Y,X&dtype=D``,
see :mod:`neuromirror.sources.boss.chunks`).  The mirror initialises this remote in
the dataset with ``autoenable=true``, so ``datalad clone`` enables it
wherever neuromirror is installed; ``datalad get`` then asks it for chunks:

* ``CLAIMURL`` / ``CHECKURL``: it claims the URLs of its scheme;
* ``TRANSFER RETRIEVE``: it looks up the key's URLs, reads the cutout with
  intern (blosc), pads it to the chunk shape and writes exactly the chunk's
  bytes.  For a SHA256E key it checks the bytes itself first: the BOSS keeps
  no history, so an annotation edited since the version was mirrored gives
  other bytes, and the user is told that the upstream data changed instead
  of a bare checksum failure.  For a VURL key (``sync --no-hash``) it records
  the sha256 on the first retrieval (``SETSTATE``, on the clone's git-annex
  branch) and checks later retrievals against it; git-annex does no
  verification of its own for VURL keys fetched through a special remote.

The token is read at retrieval time from ``INTERN_TOKEN`` or
``~/.intern/intern.cfg`` (never from the dataset, never stored), and is sent
only to a BOSS host the user configured (the default BOSS, or the host of
``NEUROMIRROR_BOSS_URL``, ``INTERN_HOST`` or intern.cfg): datasets can come
from anywhere, and a chunk URL must not be able to lure the token elsewhere.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from typing import Any, Optional

from annexremote import Master, RemoteError, SpecialRemote

from neuromirror.annex.keys import parse_key
from neuromirror.sources.boss.api import NO_TOKEN, BossError, boss_url_of, find_token, make_remote, scrub, trusted_hosts
from neuromirror.sources.boss.chunks import SCHEME, SCHEME_HTTP, UPSTREAM_CHANGED, URL_PREFIX, Chunk, read_chunk

log = logging.getLogger("neuromirror.remotes.boss")


class NeuromirrorRemote(SpecialRemote):
    """Read-only: chunks come from the BOSS cutout service, nothing is stored there."""

    def __init__(self, annex: Any):
        super().__init__(annex)
        self.configs = {"url": "the BOSS API URL the dataset was mirrored from (no credentials)"}
        self.info = {"archive": "BOSS (cutouts read with intern)"}
        self._token: Optional[str] = None
        self._remotes: dict[tuple[str, str], Any] = {}

    # -- set-up ------------------------------------------------------------
    def initremote(self) -> None:
        url = self.annex.getconfig("url")
        if url and "@" in url.split("://", 1)[-1].split("/", 1)[0]:
            raise RemoteError("the url setting must not carry credentials; the token is read at retrieval time")

    def prepare(self) -> None:
        """Nothing to do: the token is needed only when a chunk is fetched."""

    # -- URLs --------------------------------------------------------------
    def claimurl(self, url: str) -> bool:
        return url.startswith((SCHEME + "://", SCHEME_HTTP + "://"))

    def checkurl(self, url: str) -> Any:
        try:
            chunk = Chunk.parse(url)
        except ValueError as exc:
            raise RemoteError(str(exc)) from None
        return [{"size": chunk.nbytes}]

    def whereis(self, key: str) -> str:
        urls = self._urls(key)
        return " ".join(urls)

    def getavailability(self) -> str:
        return "global"

    def getcost(self) -> int:
        return 200  # expensiveRemoteCost: a remote service

    # -- content -----------------------------------------------------------
    def transfer_store(self, key: str, local_file: str) -> None:
        raise RemoteError("the BOSS is read-only through neuromirror: chunks cannot be stored there")

    def remove(self, key: str) -> None:
        raise RemoteError("the BOSS is read-only through neuromirror: chunks cannot be removed there")

    def transfer_retrieve(self, key: str, local_file: str) -> None:
        data = self._fetch_verified(key)
        with open(local_file, "wb") as fh:
            fh.write(data)
        self.annex.progress(len(data))

    def checkpresent(self, key: str) -> bool:
        """Present when the BOSS serves the key's bytes now (a download: cutouts have no HEAD)."""
        try:
            self._fetch_verified(key)
        except RemoteError as exc:
            if UPSTREAM_CHANGED in str(exc):
                return False
            raise
        return True

    # -- internals ---------------------------------------------------------
    def _urls(self, key: str) -> list[str]:
        urls = self.annex.geturls(key, URL_PREFIX) or []
        return [u for u in urls if self.claimurl(u)]

    def _token_or_fail(self) -> str:
        if self._token is None:
            self._token = find_token()
        if not self._token:
            raise RemoteError(NO_TOKEN)
        return self._token

    def _remote_for(self, chunk: Chunk) -> Any:
        ident = (chunk.protocol, chunk.host)
        rmt = self._remotes.get(ident)
        if rmt is None:
            if chunk.host.lower() not in trusted_hosts():
                raise RemoteError(
                    f"refusing to send your BOSS token to {chunk.host}: not a BOSS host you configured "
                    f"(to trust it: export NEUROMIRROR_BOSS_URL={boss_url_of(chunk.protocol, chunk.host)})"
                )
            rmt = self._remotes[ident] = make_remote(chunk.protocol, chunk.host, self._token_or_fail())
        return rmt

    def _fetch_verified(self, key: str) -> bytes:
        urls = self._urls(key)
        if not urls:
            raise RemoteError(f"no BOSS chunk URL is recorded for {key}")
        try:
            info = parse_key(key)
        except ValueError:
            info = {"backend": "", "size": None, "checksum": None}
        errors: list[str] = []
        for url in urls:
            try:
                chunk = Chunk.parse(url)
            except ValueError as exc:
                errors.append(str(exc))
                continue
            self.annex.debug(f"reading cutout {chunk.where}")
            try:
                data = read_chunk(self._remote_for(chunk), chunk, token=self._token)
            except RemoteError as exc:
                errors.append(str(exc))
                continue
            except BossError as exc:
                errors.append(str(exc))
                if "rejected the token" in str(exc) or "no permission" in str(exc):
                    break  # another URL of the same server will not do better
                continue
            except Exception as exc:  # a bug or an unexpected answer: one line, no token
                errors.append(f"reading {chunk.where} failed: {type(exc).__name__}: {exc}")
                continue
            self._verify(key, info, chunk, data)
            return data
        message = "; ".join(dict.fromkeys(errors)) or "no usable BOSS chunk URL"
        raise RemoteError(scrub(" ".join(message.split()), self._token))

    def _verify(self, key: str, info: dict, chunk: Chunk, data: bytes) -> None:
        size = info.get("size")
        if size is not None and len(data) != size:
            raise RemoteError(
                f"{UPSTREAM_CHANGED}: BOSS now gives {len(data)} bytes for {chunk.where}, the key says {size}"
            )
        got = hashlib.sha256(data).hexdigest()
        backend = info.get("backend") or ""
        if backend.startswith("SHA256"):
            want = (info.get("checksum") or "").lower()
        else:
            want = (self.annex.getstate(key) or "").strip().lower()
            if not want:  # first retrieval of a verify-on-get key: remember what the BOSS served
                self.annex.setstate(key, got)
                return
        if got != want:
            raise RemoteError(
                f"{UPSTREAM_CHANGED}: BOSS now serves different bytes for {chunk.where} "
                f"(sha256 {got[:12]}..., this version has {want[:12]}...); the BOSS keeps no history, "
                "so this version's chunk can no longer be fetched (a newer version of the dataset has the new data)"
            )


def main() -> None:
    """Entry point of the ``git-annex-remote-neuromirror`` console script."""
    from neuromirror.util.toolpath import ensure_tools_on_path

    ensure_tools_on_path()  # git-annex started us by name; what we start finds the same install
    output = sys.stdout
    sys.stdout = sys.stderr  # nothing but the protocol may reach git-annex on stdout
    master = Master(output)
    remote = NeuromirrorRemote(master)
    master.LinkRemote(remote)
    master.Listen()


if __name__ == "__main__":  # pragma: no cover
    main()
