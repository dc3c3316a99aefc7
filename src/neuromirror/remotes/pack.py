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

Where a store cannot be read, a clone must not try it key by key: git-annex tries every enabled remote that
the location log names for a key, and retries a failed download (``datalad get`` passes ``annex.retry=3``:
1 s, then 2 s, a key), whatever the remote answers.  So the remote refuses what it cannot read as git-annex's
``directory`` remote does: INITREMOTE (a clone's autoenable, ``git annex enableremote``) fails in one line
where the store's marker (``.neuromirror-store.json``, naming the remote's UUID) cannot be read, and the
store is simply not enabled there.  For a store that goes away after it was enabled (a disk unmounted, a
tape file system moved, a bucket deleted, a prefix emptied, an endpoint gone), enabling it also sets
``remote.NAME.annex-ignore-command``: git-annex runs it once per command that would use the store (a
``get`` of content not here, a ``drop``, ``sync``; not ``status``, ``whereis`` nor a ``get`` with
``--from``) and skips the store, unasked, where it fails; the store is used again once it is back.  A
``pack+file://`` store's test is ``test -r MARKER`` (as git-annex skips a directory remote that is not
mounted); a ``pack+s3://`` store's is this program with ``--reachable``: one read of the marker (a
Python start and one request, once per such command), and the one line on stderr where it is gone, so
that a ``datalad get`` reads the archive's URLs at once instead of 3 s of retries a key.  Asked all the
same (``get --from``, ``fsck --from``), PREPARE notes the store unreachable and each request answers at once
with the one line (TRANSFER-FAILURE, CHECKPRESENT-UNKNOWN; WHEREIS: nothing): a failed PREPARE would have
git-annex start the program again for every key.  git-annex's own retries of a failed get still apply there.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from typing import Any, Optional

from annexremote import Master, ProtocolError, RemoteError, SpecialRemote

from neuromirror.store.packs.layout import CONFIG as MARKER  # the store's marker: its UUID, pack size
from neuromirror.util.text import one_line

#: the console script git-annex runs this remote as (and a packed S3 store's ``annex-ignore-command``)
PROGRAM = "git-annex-remote-neuromirror-pack"
#: its option that tests a store's reachability instead of speaking the protocol
REACHABLE = "--reachable"


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
        self._unreachable = ""  # why the store cannot be read here (PREPARE found), or ""

    def initremote(self) -> None:
        """Enabling, in a clone (autoenable) or by ``git annex enableremote``: refused where the store is not
        reachable, so that git-annex never tries it there; the store is also skipped by git-annex wherever
        it goes away later (``annex-ignore-command``: :meth:`_gone_test`)."""
        url = self.annex.getconfig("url")
        if not url.startswith(("pack+file://", "pack+s3://")):
            raise RemoteError(f"url={url!r}: a packed store is pack+file:///PATH or pack+s3://BUCKET/PREFIX")
        self._skip_when_gone(self._gone_test(self._reachable_store()))

    def prepare(self) -> None:
        """The store opened; where it is not reachable, every request then answers at once with why (a
        PREPARE that failed would have git-annex start this program again for each key: a Python start each)."""
        try:
            self._store = self._reachable_store()
        except RemoteError as exc:
            self._unreachable = str(exc)
            return
        if self._store.backend.nearby:
            self._reader = self._store
        else:
            from neuromirror.store.packs.readahead import ReadAhead

            self._reader = ReadAhead(self._store)

    def _reachable_store(self) -> Any:
        """The store the remote's record names, once its marker was read and names this remote's UUID; a
        one-line :class:`RemoteError` where not (INITREMOTE-FAILURE; :meth:`prepare` keeps it for each request)."""
        from neuromirror.errors import NeuromirrorError

        try:
            store = open_packed(
                self.annex.getconfig("url"),
                endpoint=self.annex.getconfig("endpoint") or None,
                region=self.annex.getconfig("region") or None,
            )
        except NeuromirrorError as exc:
            raise RemoteError(str(exc)) from None
        why = unreachable(store, self.annex.getuuid())
        if why:
            raise RemoteError(why)
        return store

    def _reachable(self) -> None:
        """A request of a store PREPARE found unreachable: its one line, at once (TRANSFER-FAILURE,
        CHECKPRESENT-UNKNOWN)."""
        if self._unreachable:
            raise RemoteError(self._unreachable)

    def _gone_since(self) -> str:
        """Why the store went away since PREPARE (its marker read again), kept for the requests after; or "".
        Asked only where a key was not found: a vanished store must not answer "no copy of KEY" (git-annex
        would take the store's copy out of its record)."""
        self._unreachable = unreachable(self._store, self.annex.getuuid()) or ""
        return self._unreachable

    def _gone_test(self, store: Any) -> str:
        """The shell command that fails where the store is gone: a directory's marker readable, else one read
        of an S3 store's marker by this program (:func:`check_reachable`), the record's endpoint and region."""
        if store.path is not None:  # the shell's test, as cheap as git-annex's own of a directory remote
            said = shlex.quote(gone_line(_no_store(store)))
            return f"test -r {shlex.quote(os.path.join(store.path, MARKER))} || {{ echo {said} >&2; exit 1; }}"
        args = [PROGRAM, REACHABLE, self.annex.getuuid(), self.annex.getconfig("url")]
        for field in ("endpoint", "region"):
            value = self.annex.getconfig(field)
            if value:
                args.append(f"--{field}={value}")
        return shlex.join(args)

    def _skip_when_gone(self, test: str) -> None:
        """``remote.NAME.annex-ignore-command`` in the clone: ``test`` (a reader's own command kept)."""
        from neuromirror.util import gitutil

        try:
            name, gitdir = self.annex.getgitremotename(), self.annex.getgitdir()
        except ProtocolError:  # a git-annex without GETGITREMOTENAME: each request still says why, at once
            return
        option, here = f"remote.{name}.annex-ignore-command", os.getcwd()
        current = gitutil.out(here, f"--git-dir={gitdir}", "config", "--get", option, check=False)
        if current and MARKER not in current and PROGRAM not in current:
            return
        gitutil.run(here, f"--git-dir={gitdir}", "config", option, test, check=False)

    def getavailability(self) -> str:
        return "local" if self.annex.getconfig("url").startswith("pack+file:") else "global"

    def transfer_store(self, key: str, local_file: str) -> None:
        raise RemoteError("a packed store is written by `neuromirror keep --to STORE` only")

    def remove(self, key: str) -> None:
        raise RemoteError("a packed store's keys are dropped by neuromirror (verify --stores, prune) only")

    def checkpresent(self, key: str) -> bool:
        self._reachable()
        try:
            if self._store.keys.where(key) is not None:
                return True
        except OSError as exc:
            raise RemoteError(f"{self._store.url}: {exc}") from None
        if self._gone_since():
            raise RemoteError(self._unreachable)
        return False

    def whereis(self, key: str) -> str:
        if self._unreachable:
            return ""
        got = self._store.keys.where(key)
        return "" if got is None else f"pack {got[0]} bytes {got[1]}-{got[1] + got[2] - 1}"

    def transfer_retrieve(self, key: str, local_file: str) -> None:
        from neuromirror.store.packs.thaw import Frozen

        self._reachable()
        try:
            with self._reader.open_key(key) as src, open(local_file, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except Frozen as exc:
            raise RemoteError(f"{self._store.url}: {exc}") from None
        except FileNotFoundError:
            raise RemoteError(self._gone_since() or f"{self._store.url} holds no copy of {key}") from None
        except OSError as exc:
            raise RemoteError(f"reading {key} from {self._store.url}: {exc}") from None


def unreachable(store: Any, uuid: str) -> Optional[str]:
    """Why ``store`` cannot be read here (one line), or None: its marker is read (never written) and must
    name ``uuid``, the remote's (another store mounted at the same path is not this one)."""
    where = store.backend.where
    try:
        raw = store.backend.get(MARKER)
    except FileNotFoundError:
        return _no_store(store)
    except OSError as exc:
        return f"{store.url}: not reachable here: {one_line(exc, joined=True)}"
    try:
        found = json.loads(raw).get("uuid")
    except (ValueError, AttributeError):
        found = None
    if found != uuid:
        return f"{store.url}: not reachable here: {where} holds {found or 'no readable store marker'}, not store {uuid}"
    return None


def _no_store(store: Any) -> str:
    return f"{store.url}: not reachable here: no packed store at {store.backend.where} (unmounted, moved or deleted?)"


def open_packed(url: str, endpoint: Optional[str] = None, region: Optional[str] = None) -> Any:
    """The packed store ``url`` names, for reading (its endpoint: the environment's, else the record's)."""
    from neuromirror.store.location import open_store

    if url.startswith("pack+s3:"):
        if endpoint and not os.environ.get("NEUROMIRROR_STORE_ENDPOINT"):
            os.environ["NEUROMIRROR_STORE_ENDPOINT"] = endpoint
        if region and not os.environ.get("NEUROMIRROR_STORE_REGION"):
            os.environ["NEUROMIRROR_STORE_REGION"] = region
    return open_store(url)


def check_reachable(argv: list[str]) -> int:
    """``PROGRAM --reachable UUID URL [--endpoint=E] [--region=R]``, a packed S3 store's ``annex-ignore-command``:
    0 where its marker is read and names ``UUID``; else its one line on stderr and 1, and git-annex skips the
    store for the command (its copies are read from the other remotes, the archive's URLs)."""
    from neuromirror.errors import NeuromirrorError

    parser = argparse.ArgumentParser(prog=f"{PROGRAM} {REACHABLE}")
    parser.add_argument("uuid")
    parser.add_argument("url")
    parser.add_argument("--endpoint", default="")
    parser.add_argument("--region", default="")
    args = parser.parse_args(argv)
    try:
        why = unreachable(open_packed(args.url, args.endpoint or None, args.region or None), args.uuid)
    except NeuromirrorError as exc:
        why = str(exc)
    if not why:
        return 0
    print(gone_line(why), file=sys.stderr)
    return 1


def gone_line(why: str) -> str:
    """What a clone's user is told, once a command, of an enabled store that is gone: the one line."""
    return f"neuromirror: {why}: skipped, its copies read from elsewhere (asked again next time)"


def main() -> None:
    """Entry point of the ``git-annex-remote-neuromirror-pack`` console script."""
    from neuromirror.util.toolpath import ensure_tools_on_path

    if sys.argv[1:2] == [REACHABLE]:
        sys.exit(check_reachable(sys.argv[2:]))
    ensure_tools_on_path()
    output = sys.stdout
    sys.stdout = sys.stderr  # nothing but the protocol may reach git-annex on stdout
    master = Master(output)
    master.LinkRemote(PackRemote(master))
    master.Listen()


if __name__ == "__main__":  # pragma: no cover
    main()
