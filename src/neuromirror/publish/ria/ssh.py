"""``ria+ssh://[USER@]HOST[:PORT]/PATH``: the same RIA store as ``ria+file://``, written on a host over ssh.

What runs on the host: ``sh`` (POSIX), ``git`` (``git-receive-pack`` for the pushes, ``git init``,
``git update-server-info``, ``git config``), ``tar``, ``find``, ``mv`` (GNU ``-T`` or BSD ``-h``, to
replace an alias symlink without following it), ``ln``, ``mkdir``, ``cat``.  No neuromirror, no Python.

The ssh program is the one git uses: ``GIT_SSH_COMMAND`` (run by ``sh``, as git does), else
``GIT_SSH``, else ``ssh`` — so a user configures it once (a key, a port, a jump host) for git's
pushes and for our own remote commands alike.  A port in the URL is passed as ``-p PORT``
(OpenSSH's option).

Round trips: one to read the store (:meth:`SshTarget.snapshot`: the store's small files —
``ria-layout-version``, identity file, aliases, and each dataset's ``HEAD``, ``config``,
``packed-refs``, ``refs/``, ``info/refs`` — as one ``tar`` stream, preceded by the list of kept
objects' paths), written into a local skeleton (``view``) that :mod:`.put` and :mod:`.root`
read as they read a local store.  So a publish with nothing new is one ssh call and writes nothing
on the host.  A changed dataset costs at most two of our calls (objects + layout, as one ``tar``
stream into a hidden staging directory, moved into place file by file so no partial object ever
has a key's name; then ``update-server-info``, plus the rename for a new one) and git's push.

Crash safety as for ``ria+file://``: a new dataset is made in ``<id[:3]>/.<id[3:]>.tmp-PID``, pushed,
and renamed into place only after ``update-server-info``; an alias is a temp symlink renamed over
the old one, only after its dataset is complete.  Every argument reaches the remote shell through
:func:`shlex.quote`; store paths are checked (:func:`.ria.RiaStore.from_url`) and dataset paths are
made from checked ids only.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import IO, Optional

from neuromirror.publish.ria.kept import missing_objects, object_path, ora_config_ok
from neuromirror.publish.ria.layout import (
    DATASET_VERSION,
    IDENTITY_FILE,
    STORE_VERSION,
    RiaError,
    RiaStore,
    SshAddress,
    check_alias,
    head_ref,
    read_refs,
)
from neuromirror.publish.ria.put import Wanted, changed, is_current, label, push_refs, unchanged
from neuromirror.util.crashpoints import crashpoint

_TAR_MARK = b"--neuromirror-tar--\n"

#: the store's state, the kept objects' paths, then its small files as a tar stream (see the module)
_SNAPSHOT = r"""
cd -- "$1" 2>/dev/null || { echo absent; exit 0; }
if [ -f ria-layout-version ]; then s=store; elif [ -z "$(ls -A)" ]; then s=empty; else s=other; fi
[ -d error_logs ] && s="$s error_logs"
echo "$s"
find . -type d -path './???/*/objects' ! -path './???/*/annex/objects' -prune \
    -o -type f -path './???/*/annex/objects/*' -print
printf '%s\n' '--neuromirror-tar--'
set --
for f in ria-layout-version .neuromirror-ria.json alias ???/*/HEAD ???/*/config ???/*/packed-refs \
    ???/*/refs ???/*/info/refs ???/*/ria-layout-version; do
    if [ -e "$f" ] || [ -L "$f" ]; then set -- "$@" "$f"; fi
done
[ $# -eq 0 ] || printf '%s\n' "$@" | tar -cf - -T -
"""

_ENSURE = r"""
set -e
mkdir -p -- "$1/error_logs" "$1/alias"
[ -f "$1/ria-layout-version" ] || { printf '%s\n' "$2" > "$1/.ria-layout-version.tmp-$$"; mv -f -- "$1/.ria-layout-version.tmp-$$" "$1/ria-layout-version"; }
"""

#: the identity file: made only if absent (another publisher's wins), then printed
_IDENTITY_NEW = r"""
set -e
f="$1/.neuromirror-ria.json"
if [ -f "$f" ]; then cat > /dev/null; else cat > "$f.tmp-$$"; ln "$f.tmp-$$" "$f" 2>/dev/null || true; rm -f -- "$f.tmp-$$"; fi
cat -- "$f"
"""

_IDENTITY_SET = r"""
set -e
f="$1/.neuromirror-ria.json"
cat > "$f.tmp-$$"
mv -f -- "$f.tmp-$$" "$f"
"""

#: an alias: a temp symlink renamed over the old one without following it (GNU mv -T, BSD mv -h)
_ALIAS = r"""
set -e
cd -- "$1"
mkdir -p -- "$2"
cd -- "$2"
rm -f -- "$5"
ln -s -- "$4" "$5"
mv -T -- "$5" "$3" 2>/dev/null || mv -h -- "$5" "$3"
"""

#: a dataset's layout, HEAD and ORA uuid, and kept objects (a tar stream on stdin) via a staging directory
_STAGE = r"""
set -e
d=$1 new=$2 head=$3 ora=$4 objects=$5
if [ "$new" = 1 ]; then
    parent=${d%/*} base=${d##*/}
    mkdir -p -- "$parent"
    for stale in "$parent/${base%.tmp-*}".tmp-*; do
        if [ -e "$stale" ]; then rm -rf -- "$stale"; fi
    done
    git init -q --bare "$d"
    rm -f -- "$d/hooks/post-update.sample"
    mkdir -p -- "$d/annex/objects" "$d/archives"
fi
[ "$(cat -- "$d/ria-layout-version" 2>/dev/null || true)" = "$6" ] || printf '%s\n' "$6" > "$d/ria-layout-version"
[ "$(git --git-dir="$d" symbolic-ref -q HEAD || true)" = "$head" ] || git --git-dir="$d" symbolic-ref HEAD "$head"
if [ -n "$ora" ] && [ "$(git config --file "$d/config" datalad.ora-remote.uuid || true)" != "$ora" ]; then
    git config --file "$d/config" datalad.ora-remote.uuid "$ora"
fi
if [ "$objects" = 1 ]; then
    for stale in "$d"/.nm-incoming-*; do
        if [ -e "$stale" ]; then chmod -R u+w -- "$stale"; rm -rf -- "$stale"; fi
    done
    in="$d/.nm-incoming-$$"
    mkdir -- "$in"
    (cd -- "$in" && tar -xf -)
    (cd -- "$in" && find annex -type f) | while IFS= read -r f; do
        mkdir -p -- "$d/${f%/*}"
        mv -f -- "$in/$f" "$d/$f"
    done
    rm -rf -- "$in"
fi
"""

_SERVE = r"""git --git-dir="$1" update-server-info"""

#: a new dataset: served, then renamed into place complete
_FINISH = r"""
set -e
git --git-dir="$1" update-server-info
if [ -e "$2" ]; then echo "$2 appeared while publishing" >&2; exit 1; fi
mv -- "$1" "$2"
"""


class RiaSshError(RiaError):
    """The ssh program or a command on the host failed; one line says which and why."""


def ssh_argv(addr: SshAddress, remote_command: str) -> list[str]:
    """The ssh command line git would use: ``GIT_SSH_COMMAND`` (via ``sh``), else ``GIT_SSH``, else ``ssh``."""
    args = (["-p", str(addr.port)] if addr.port else []) + [addr.destination, remote_command]
    command = os.environ.get("GIT_SSH_COMMAND")
    if command:
        return ["sh", "-c", f'{command} "$@"', command, *args]
    return [os.environ.get("GIT_SSH") or "ssh", *args]


def run_remote(
    addr: SshAddress, what: str, script: str, *args: str, stdin: Optional[bytes] = None, stream: bool = False
) -> subprocess.Popen[bytes] | bytes:
    """``sh -c SCRIPT sh ARGS...`` on the host, every word quoted; its stdout (or, ``stream``, the running
    process, whose stdin the caller writes and then passes to :func:`finish`)."""
    remote = " ".join(shlex.quote(w) for w in ("sh", "-c", script, "sh", *args))
    argv = ssh_argv(addr, remote)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if (stream or stdin is not None) else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise RiaSshError(f"cannot run the ssh program {argv[0]!r}: {exc.strerror}") from None
    if stream:
        return proc
    return finish(addr, what, proc, stdin)


def finish(addr: SshAddress, what: str, proc: subprocess.Popen[bytes], stdin: Optional[bytes] = None) -> bytes:
    out, err = proc.communicate(stdin)
    if proc.returncode != 0:
        lines = [x.strip() for x in err.decode(errors="replace").splitlines() if x.strip()]
        why = lines[-1] if lines else f"exit {proc.returncode}"
        if proc.returncode == 255:  # ssh's own failure: no connection, no login
            raise RiaSshError(f"ssh {addr.destination}: {why}")
        raise RiaSshError(f"{what} on {addr.destination} failed: {why}")
    return out


class SshTarget:
    """A RIA store on a host over ssh (see the module); ``view`` is its local skeleton, read as a store."""

    def __init__(self, store: RiaStore):
        if store.ssh is None:
            raise RiaError(f"{store.url}: not a store over ssh")
        self.store = store
        self.addr: SshAddress = store.ssh
        self.root = str(store.path)
        self._tmp = tempfile.mkdtemp(prefix="neuromirror-ria-ssh-")
        self._view = RiaStore(Path(self._tmp) / "store")
        self._read = False

    @property
    def url(self) -> str:
        return self.store.url

    @property
    def view(self) -> RiaStore:
        return self._view

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _run(self, what: str, script: str, *args: str, stdin: Optional[bytes] = None) -> bytes:
        out = run_remote(self.addr, what, script, *args, stdin=stdin)
        assert isinstance(out, bytes)
        return out

    def git_url(self, path: str) -> str:
        """A remote path as git's ssh transport takes it (the same host, user and port)."""
        return f"ssh://{self.addr.netloc}{path}"

    # -- reading the store: one round trip ----------------------------------------------------------
    def snapshot(self) -> str:
        """Copy the store's small files into ``view`` (placeholders for kept objects); the store's state."""
        out = self._run("reading the store", _SNAPSHOT, self.root)
        head, _, rest = out.partition(b"\n")
        state = head.decode(errors="replace").split()
        listing, mark, tar = rest.partition(_TAR_MARK)
        if not state or (state[0] != "absent" and not mark):
            raise RiaSshError(f"reading the store on {self.addr.destination}: unexpected answer {head[:80]!r}")
        view = self._view.path
        shutil.rmtree(view, ignore_errors=True)
        view.mkdir(parents=True)
        if tar:
            try:
                with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as t:
                    t.extractall(view, filter="data")
            except (tarfile.TarError, OSError) as exc:
                raise RiaSshError(f"reading the store on {self.addr.destination}: {exc}") from None
        for line in listing.decode("utf-8", "surrogateescape").splitlines():
            rel = _inside(line)
            if rel is not None:
                (view / rel).parent.mkdir(parents=True, exist_ok=True)
                (view / rel).touch()
        self._read = True
        return " ".join(state)

    def ensure(self) -> None:
        """Read the store (or see there is none) and create its top level if missing; nothing written if present."""
        state = self.snapshot().split()
        if state[0] == "other":
            raise RiaError(f"{self.url} exists, is not empty and is not a RIA store (no ria-layout-version)")
        version = self._view.path / "ria-layout-version"
        if version.is_file():
            found = version.read_text().split("|")[0].strip()
            if found != STORE_VERSION.strip():
                raise RiaError(f"{self.url}: RIA store layout version {found}, only {STORE_VERSION.strip()} is known")
        if state[0] != "store" or "error_logs" not in state or not (self._view.path / "alias").is_dir():
            self._run("creating the store", _ENSURE, self.root, STORE_VERSION.strip())
        self._view.ensure()

    # -- the identity file ------------------------------------------------------------------------
    def ora_uuid(self) -> str:
        if not (self._view.path / IDENTITY_FILE).is_file():
            self._view.ora_uuid()  # made here, offered to the host; the host's wins if it has one
            mine = (self._view.path / IDENTITY_FILE).read_bytes()
            theirs = self._run("writing the store's identity", _IDENTITY_NEW, self.root, stdin=mine)
            (self._view.path / IDENTITY_FILE).write_bytes(theirs)
        return self._view.ora_uuid()

    def public_url(self, given: Optional[str]) -> Optional[str]:
        self.ora_uuid()
        f = self._view.path / IDENTITY_FILE
        before = f.read_bytes()
        url = self._view.public_url(given)
        if f.read_bytes() != before:
            self._run("writing the store's identity", _IDENTITY_SET, self.root, stdin=f.read_bytes())
        return url

    # -- aliases ----------------------------------------------------------------------------------
    def alias_target(self, alias: str) -> Optional[str]:
        return self._view.alias_target(alias)

    def set_alias(self, alias: str, dsid: str) -> bool:
        check_alias(alias)
        self._view.dataset_dir(dsid)  # checks the id
        if self._view.alias_target(alias) == dsid:
            return False
        parent, _, name = f"alias/{alias}".rpartition("/")
        target = "../" * (alias.count("/") + 1) + f"{dsid[:3]}/{dsid[3:]}"
        tmp = f".{name}.tmp-{os.getpid()}"
        self._run("moving an alias", _ALIAS, self.root, parent, name, target, tmp)
        return self._view.set_alias(alias, dsid)

    # -- datasets ---------------------------------------------------------------------------------
    def unchanged(self, dsid: str, head: str, refs: dict[str, str]) -> bool:
        return unchanged(self._view, dsid, head, refs)

    def put(self, want: Wanted, force: bool) -> tuple[bool, list[str]]:
        """As :func:`.put.put`, on the host: objects and layout, git's push, then served (and renamed)."""
        d = self._view.dataset_dir(want.dsid)
        final = f"{self.root}/{want.dsid[:3]}/{want.dsid[3:]}"
        if (d / "HEAD").is_file():
            if is_current(d, want):
                return False, []
            before = read_refs(d)
            missing = missing_objects(d, want.objects)
            ok = head_ref(d) == want.head and (d / "ria-layout-version").is_file()
            if missing or not ok or not ora_config_ok(d, want.ora_uuid):
                self._stage(final, want, missing, new=False)
            push_refs(want.repo, self.git_url(final), want.refs, force)
            crashpoint("publish-ria:pushed")
            self._run("git update-server-info", _SERVE, final)
            self._record(d, want, before)
            return False, changed(before, want.refs)
        tmp = f"{self.root}/{want.dsid[:3]}/.{want.dsid[3:]}.tmp-{os.getpid()}"
        self._stage(tmp, want, list(want.objects), new=True)
        push_refs(want.repo, self.git_url(tmp), want.refs, force)
        crashpoint("publish-ria:before-rename")
        self._run("making the dataset visible", _FINISH, tmp, final)
        self._record(d, want, {})
        return True, sorted(label(r) for r in want.refs)

    def _stage(self, path: str, want: Wanted, keys: list[str], *, new: bool) -> None:
        args = (
            path,
            "1" if new else "0",
            want.head,
            want.ora_uuid or "",
            "1" if keys else "0",
            DATASET_VERSION.strip(),
        )
        what = "preparing the dataset"
        if not keys:
            self._run(what, _STAGE, *args)
            return
        proc = run_remote(self.addr, what, _STAGE, *args, stream=True)
        assert isinstance(proc, subprocess.Popen) and proc.stdin is not None
        try:
            _write_objects(proc.stdin, want.objects, keys)  # finish() closes stdin: the end of the stream
        except BrokenPipeError:
            pass  # the host stopped reading: finish() says why
        finish(self.addr, what, proc)

    def _record(self, d: Path, want: Wanted, before: dict[str, str]) -> None:
        """What the host holds now, into the skeleton: later reads (the root's gitlinks, a rerun) see it."""
        refs = {**before, **want.refs}
        ora = want.ora_uuid or _ora_of(d)
        shutil.rmtree(d / "refs", ignore_errors=True)
        (d / "refs").mkdir(parents=True)
        (d / "info").mkdir(exist_ok=True)
        (d / "HEAD").write_text(f"ref: {want.head}\n")
        (d / "ria-layout-version").write_text(DATASET_VERSION)
        config = "[core]\n\tbare = true\n" + (f'[datalad "ora-remote"]\n\tuuid = {ora}\n' if ora else "")
        (d / "config").write_text(config)
        lines = sorted(refs.items())
        (d / "packed-refs").write_text("".join(f"{sha} {ref}\n" for ref, sha in lines))
        (d / "info" / "refs").write_text("".join(f"{sha}\t{ref}\n" for ref, sha in lines))
        for key in want.objects:
            p = object_path(d, key)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()


def _ora_of(d: Path) -> Optional[str]:
    from neuromirror.util.gitutil import config_file_value

    return config_file_value(d / "config", 'datalad"ora-remote"', "uuid")


def _write_objects(out: IO[bytes], objects: dict[str, Path], keys: list[str]) -> None:
    """A tar stream of ``annex/objects/<hashdirmixed>/<KEY>/<KEY>`` (read-only, as git-annex keeps them)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as t:
        for key in keys:
            src = objects[key]
            arc = str(object_path(Path("."), key))
            info = t.gettarinfo(str(src), arcname=arc)
            info.mode, info.uid, info.gid, info.uname, info.gname = 0o444, 0, 0, "", ""
            with open(src, "rb") as f:
                t.addfile(info, f)


def _inside(line: str) -> Optional[PurePosixPath]:
    """A kept object's path from the listing, relative to the store; None for a temp directory's or odd one."""
    p = PurePosixPath(line[2:] if line.startswith("./") else line)
    parts = p.parts
    if len(parts) < 6 or p.is_absolute() or any(x in ("", ".", "..") or x.startswith(".") for x in parts):
        return None
    if parts[2:4] != ("annex", "objects"):
        return None
    return p
