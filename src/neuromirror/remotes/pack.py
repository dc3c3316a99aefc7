"""``git-annex-remote-neuromirror-pack``: how a clone reads a packed store (``pack+file://``, ``pack+s3://``).

A store ``keep`` fills records this external special remote on the datasets' git-annex branches
(``type=external externaltype=neuromirror-pack url=... autoenable=true cost=150``), so ``datalad clone``
enables it wherever neuromirror is installed, and ``datalad get`` reads a kept key with one ranged read
of its pack (before the archive: cost 150 is below the web's 200); from an S3 store, keys asked for in the
order they were packed are read a span of their pack at a time (:mod:`neuromirror.store.packs.readahead`).
git-annex checks the bytes against the key as it does any remote's.  An S3 store is read with the reader's own AWS credentials from the
environment, or anonymously where it has none (a public bucket); its endpoint and region come from the
record (``endpoint=``, ``region=``), ``NEUROMIRROR_STORE_ENDPOINT`` overriding.  Read-only: the store is
written by ``neuromirror keep`` alone.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any, Optional

from annexremote import Master, RemoteError, SpecialRemote


class PackRemote(SpecialRemote):
    def __init__(self, annex: Any):
        super().__init__(annex)
        self.configs = {
            "url": "the packed store: pack+file:///PATH or pack+s3://BUCKET/PREFIX",
            "endpoint": "an S3 store's endpoint (not AWS)",
            "region": "an S3 store's region",
            "publicurl": "an S3 store's public read URL",
        }
        self.info = {"store": "a neuromirror packed store"}
        self._store: Any = None
        self._reader: Any = None  # the store, or its readahead where the store is far (S3)

    def initremote(self) -> None:
        url = self.annex.getconfig("url")
        if not url.startswith(("pack+file://", "pack+s3://")):
            raise RemoteError(f"url={url!r}: a packed store is pack+file:///PATH or pack+s3://BUCKET/PREFIX")

    def prepare(self) -> None:
        self._store = open_packed(
            self.annex.getconfig("url"),
            endpoint=self.annex.getconfig("endpoint") or None,
            region=self.annex.getconfig("region") or None,
        )
        if self._store.backend.nearby:
            self._reader = self._store
        else:
            from neuromirror.store.packs.readahead import ReadAhead

            self._reader = ReadAhead(self._store)

    def getavailability(self) -> str:
        return "local" if self.annex.getconfig("url").startswith("pack+file:") else "global"

    def transfer_store(self, key: str, local_file: str) -> None:
        raise RemoteError("a packed store is written by `neuromirror keep --to STORE` only")

    def remove(self, key: str) -> None:
        raise RemoteError("a packed store's keys are dropped by neuromirror (verify --stores, prune) only")

    def checkpresent(self, key: str) -> bool:
        try:
            return self._store.keys.where(key) is not None
        except OSError as exc:
            raise RemoteError(f"{self._store.url}: {exc}") from None

    def whereis(self, key: str) -> str:
        got = self._store.keys.where(key)
        return "" if got is None else f"pack {got[0]} bytes {got[1]}-{got[1] + got[2] - 1}"

    def transfer_retrieve(self, key: str, local_file: str) -> None:
        from neuromirror.store.packs.thaw import Frozen

        try:
            with self._reader.open_key(key) as src, open(local_file, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except Frozen as exc:
            raise RemoteError(f"{self._store.url}: {exc}") from None
        except FileNotFoundError:
            raise RemoteError(f"{self._store.url} holds no copy of {key}") from None
        except OSError as exc:
            raise RemoteError(f"reading {key} from {self._store.url}: {exc}") from None


def open_packed(url: str, endpoint: Optional[str] = None, region: Optional[str] = None) -> Any:
    """The packed store ``url`` names, for reading (its endpoint: the environment's, else the record's)."""
    from neuromirror.store.location import open_store

    if url.startswith("pack+s3:"):
        if endpoint and not os.environ.get("NEUROMIRROR_STORE_ENDPOINT"):
            os.environ["NEUROMIRROR_STORE_ENDPOINT"] = endpoint
        if region and not os.environ.get("NEUROMIRROR_STORE_REGION"):
            os.environ["NEUROMIRROR_STORE_REGION"] = region
    return open_store(url)


def main() -> None:
    """Entry point of the ``git-annex-remote-neuromirror-pack`` console script."""
    from neuromirror.util.toolpath import ensure_tools_on_path

    ensure_tools_on_path()
    output = sys.stdout
    sys.stdout = sys.stderr  # nothing but the protocol may reach git-annex on stdout
    master = Master(output)
    master.LinkRemote(PackRemote(master))
    master.Listen()


if __name__ == "__main__":  # pragma: no cover
    main()
