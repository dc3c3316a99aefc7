"""A DataLad RIA store on disk: its layout, dataset locations by id, aliases, and refs read locally.

The layout is DataLad's (``create-sibling-ria``, RIA layout version 1), so that ``datalad clone
'ria+http://HOST/PATH#~dandi/000027'`` and the ORA special remote read it unchanged:

* ``STORE/ria-layout-version`` (``1``: datasets at ``<id[:3]>/<id[3:]>``) and ``STORE/error_logs/``;
* ``STORE/<id[:3]>/<id[3:]>/``: a bare git repository, with its own ``ria-layout-version``
  (``2``: ``annex/objects`` in git-annex's *hashdirmixed* layout, as the ORA remote reads it);
* ``STORE/alias/<name>``: a relative symlink to a dataset.  DataLad resolves ``#~NAME`` by plain
  path concatenation (``alias/NAME``), so names with slashes (``dandi/000027``) work: the link
  sits in a subdirectory and its target climbs one level more.

Everything here is read from the file system (refs from ``packed-refs`` and loose ref files,
``info/refs`` as ``git update-server-info`` wrote it), so that a publish can tell an unchanged
dataset from a changed one without running git or touching the network.  A store on another host
(``ria+ssh://``, :mod:`.ssh`) is read the same way, from a local skeleton of those files.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import SplitResult, unquote, urlsplit

from neuromirror.errors import NeuromirrorError, UserError

STORE_VERSION = "1\n"
DATASET_VERSION = "2\n"
#: our file at the store root: the UUID of the ORA special remote that reads kept content from it
IDENTITY_FILE = ".neuromirror-ria.json"
ORA_NAME = "neuromirror-ria"


class RiaError(NeuromirrorError, RuntimeError):
    """The RIA store is not usable (not a store, a conflicting layout); one line says why."""


#: characters allowed in a ``ria+ssh://`` store path: it is passed to git's ssh transport and to the
#: remote shell, and recorded in every dataset's ORA remote, so nothing that needs escaping anywhere
_SSH_PATH = re.compile(r"^(/[A-Za-z0-9._+@,=~-]+)+/?$")
_SSH_HOST = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$|^\[[0-9A-Fa-f:.]+\]$")  # never an ssh option
_SSH_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class SshAddress:
    """Where a ``ria+ssh://[USER@]HOST[:PORT]/PATH`` store lives: checked, so it is safe on a command line."""

    host: str
    user: Optional[str] = None
    port: Optional[int] = None

    @property
    def destination(self) -> str:
        """What ssh takes as its host argument (``USER@HOST``)."""
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        return f"{self.user}@{host}" if self.user else host

    @property
    def netloc(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.host}{port}"


@dataclass(frozen=True)
class RiaStore:
    """A store by its path; ``ssh`` set: the path is on that host (written by :mod:`.ssh`, never here)."""

    path: Path
    ssh: Optional[SshAddress] = None

    @classmethod
    def from_url(cls, url: str) -> RiaStore:
        """``ria+file:///PATH`` or ``ria+ssh://[USER@]HOST[:PORT]/PATH``; anything else is one line of why not."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme in ("ria+http", "ria+https"):
            raise UserError(
                f"{url}: publishing to a RIA store over {scheme[4:]} is not supported; publish to "
                "ria+file:///PATH on the store's host (or ria+ssh://HOST/PATH) and serve that directory"
            )
        if parts.fragment or parts.query:
            raise UserError(f"{url}: name the store only (no #dataset, no ?query)")
        if scheme == "ria+ssh":
            return cls(Path(_ssh_path(url, parts.path)), _ssh_address(url, parts))
        if scheme != "ria+file" or parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise UserError(
                f"{url}: a RIA store to publish to is ria+file:///ABSOLUTE/PATH or ria+ssh://[USER@]HOST[:PORT]/PATH"
            )
        # not resolved: the path as given is what the datasets record (an ORA remote's url=), so a
        # store mounted through a symlink keeps the name its users know
        return cls(Path(os.path.normpath(unquote(parts.path))))

    @property
    def url(self) -> str:
        if self.ssh is not None:
            return f"ria+ssh://{self.ssh.netloc}{self.path}"
        return f"ria+file://{self.path}"

    def _local(self) -> None:
        """The methods below touch the local file system: never for a remote store's path."""
        if self.ssh is not None:
            raise RiaError(f"{self.url}: a remote store is written over ssh (publish/ria/ssh.py), not here")

    # -- the store -----------------------------------------------------------
    def ensure(self) -> None:
        """Create the store's top level, or check that a directory is one; writes nothing when it is."""
        self._local()
        version = self.path / "ria-layout-version"
        if version.is_file():
            found = version.read_text().split("|")[0].strip()
            if found != STORE_VERSION.strip():
                raise RiaError(f"{self.path}: RIA store layout version {found}, only {STORE_VERSION.strip()} is known")
        else:
            if self.path.is_dir() and any(self.path.iterdir()):
                raise RiaError(f"{self.path} exists, is not empty and is not a RIA store (no ria-layout-version)")
            self.path.mkdir(parents=True, exist_ok=True)
            _write_atomic(version, STORE_VERSION)
        for sub in ("error_logs", "alias"):
            if not (self.path / sub).is_dir():
                (self.path / sub).mkdir(exist_ok=True)

    def ora_uuid(self) -> str:
        """The store's ORA remote UUID, made on first use (the same in every dataset of the store)."""
        self._local()
        f = self.path / IDENTITY_FILE
        if not f.exists():
            tmp = f.with_name(f"{f.name}.{os.getpid()}")
            tmp.write_text(json.dumps({"ora-uuid": str(uuid.uuid4()), "name": ORA_NAME}, indent=2) + "\n")
            try:
                os.link(tmp, f)  # another publisher made it first: theirs wins
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        try:
            return str(uuid.UUID(self._identity()["ora-uuid"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise RiaError(f"{f}: not neuromirror's RIA identity file ({exc})") from None

    def _identity(self) -> dict:
        try:
            data = json.loads((self.path / IDENTITY_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise RiaError(f"{self.path / IDENTITY_FILE}: not neuromirror's RIA identity file ({exc})") from None
        if not isinstance(data, dict):
            raise RiaError(f"{self.path / IDENTITY_FILE}: not neuromirror's RIA identity file")
        return data

    def public_url(self, given: Optional[str]) -> Optional[str]:
        """Where clones reach the store: ``given`` (remembered in the identity file), else the one
        remembered by an earlier publish — so that a publish without ``--public-url`` does not undo it."""
        self._local()
        self.ora_uuid()
        data = self._identity()
        if given and data.get("public-url") != given:
            data["public-url"] = given
            _write_atomic(self.path / IDENTITY_FILE, json.dumps(data, indent=2) + "\n")
        url = given or data.get("public-url")
        return str(url) if url else None

    # -- datasets -------------------------------------------------------------
    def dataset_dir(self, dsid: str) -> Path:
        check_id(dsid)
        return self.path / dsid[:3] / dsid[3:]

    def alias_link(self, alias: str) -> Path:
        check_alias(alias)
        return self.path / "alias" / alias

    def alias_target(self, alias: str) -> Optional[str]:
        """The dataset id ``alias`` points at, or None."""
        link = self.alias_link(alias)
        try:
            target = os.readlink(link)
        except OSError:
            return None
        parts = Path(target).parts
        return parts[-2] + parts[-1] if len(parts) >= 2 else None

    def set_alias(self, alias: str, dsid: str) -> bool:
        """Point ``alias`` at dataset ``dsid`` atomically (a temp link renamed over it); True if it changed."""
        self._local()
        if self.alias_target(alias) == dsid:
            return False
        link = self.alias_link(alias)
        link.parent.mkdir(parents=True, exist_ok=True)
        up = "../" * (alias.count("/") + 1)
        tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        os.symlink(f"{up}{dsid[:3]}/{dsid[3:]}", tmp)
        os.replace(tmp, link)
        return True


def _ssh_path(url: str, path: str) -> str:
    path = os.path.normpath(unquote(path)) if path else ""
    if not _SSH_PATH.match(path) or any(p in (".", "..") for p in path.split("/")):
        raise UserError(
            f"{url}: the store's path on the host must be absolute and made of letters, digits and ._+@,=~- only"
        )
    return path


def _ssh_address(url: str, parts: SplitResult) -> SshAddress:
    netloc = parts.netloc
    user, at, hostport = netloc.rpartition("@")
    if ":" in user:
        raise UserError(f"{url}: no password in the URL (ssh asks, or use a key)")
    host, port = hostport, None
    m = re.match(r"^(\[[^]]*\]|[^:]*)(?::(\d*))?$", hostport)
    if m:
        host = m.group(1)
        port = int(m.group(2)) if m.group(2) else None
    if not host or not _SSH_HOST.match(host) or host.startswith("-") or (at and not _SSH_USER.match(user)):
        raise UserError(f"{url}: a RIA store over ssh is ria+ssh://[USER@]HOST[:PORT]/ABSOLUTE/PATH")
    if port is not None and not 0 < port < 65536:
        raise UserError(f"{url}: bad port {port}")
    return SshAddress(host, user if at else None, port)


def check_id(dsid: str) -> None:
    try:
        uuid.UUID(dsid)
    except ValueError:
        raise RiaError(f"{dsid!r} is not a DataLad dataset id") from None
    if dsid != dsid.lower() or len(dsid) != 36:
        raise RiaError(f"{dsid!r} is not a DataLad dataset id in its canonical form")


def check_alias(alias: str) -> None:
    parts = alias.split("/")
    if not alias or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise RiaError(f"{alias!r} cannot be an alias in a RIA store")


# -- refs, read from disk ---------------------------------------------------------
def read_refs(git_dir: Path) -> dict[str, str]:
    """ref -> sha of a (bare) repository, from ``packed-refs`` and loose ref files; loose ones win."""
    refs: dict[str, str] = {}
    try:
        packed = (git_dir / "packed-refs").read_text()
    except FileNotFoundError:
        packed = ""
    for line in packed.splitlines():
        if line and line[0] not in "#^":
            sha, _, name = line.partition(" ")
            refs[name] = sha
    base = git_dir / "refs"
    for dirpath, _, files in os.walk(base):
        for name in files:
            p = Path(dirpath) / name
            try:
                value = p.read_text().strip()
            except OSError:
                continue
            if len(value) == 40 and not name.endswith(".lock"):
                refs[str(p.relative_to(git_dir)).replace(os.sep, "/")] = value
    return refs


def served_refs(git_dir: Path) -> dict[str, str]:
    """ref -> sha as ``info/refs`` tells dumb HTTP clients (peeled tag lines left out)."""
    try:
        text = (git_dir / "info" / "refs").read_text()
    except FileNotFoundError:
        return {}
    refs: dict[str, str] = {}
    for line in text.splitlines():
        sha, _, name = line.partition("\t")
        if name and not name.endswith("^{}"):
            refs[name] = sha
    return refs


def head_ref(git_dir: Path) -> Optional[str]:
    try:
        text = (git_dir / "HEAD").read_text().strip()
    except FileNotFoundError:
        return None
    return text[len("ref: ") :] if text.startswith("ref: ") else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
