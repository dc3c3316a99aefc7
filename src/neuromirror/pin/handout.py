"""What ``get`` and ``reproduce`` hand back, as results: a version cloned and fetched, a lock's datasets rebuilt.

:func:`~neuromirror.pin.fetch.get_version` and :func:`~neuromirror.pin.fetch.reproduce_dataset` do the work;
this module is what the API (``Mirror.get``, ``Mirror.reproduce``) wraps around them so that a script and the
command line read one record: :class:`Got` and :class:`Reproduced`, each a :class:`~neuromirror.results.Result`
whose ``to_json()`` is the command's ``--json`` and whose ``lines()`` is what it prints without.  Also the
steps that were the commands' own: which store a retrieval falls back to (its notes kept, not printed), the
version's record in the mirror, a reproduce's PATHs checked against the lock.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence, TextIO

from neuromirror.errors import BadInput, NoSuchPath, NotMirrored
from neuromirror.results import Item, Result, Status
from neuromirror.spec import Spec

if TYPE_CHECKING:
    from neuromirror.pin.fetch import GotVersion
    from neuromirror.pin.lockfile import Lock


def write_json(obj: Any, out: TextIO) -> None:
    """``obj`` as the commands print JSON (two-space indent, one newline after): the bytes of ``--json``."""
    json.dump(obj, out, indent=2, sort_keys=False, default=str)
    out.write("\n")


class Printed(Result):
    """A result whose JSON is written whole, as the commands print it."""

    def write_json(self, out: TextIO) -> None:
        """What the command's ``--json`` prints, to ``out``."""
        write_json(self.to_json(), out)


# -- where content comes from when the archive fails: the lab's store ------------------------------------------
def store_preparer(
    store: Optional[str], recorded: Sequence[str], notes: list[str]
) -> Optional[Callable[[Path, str], int]]:
    """``prepare`` for :func:`~neuromirror.pin.fetch.fetch`: the store named ``store`` (the user's: a store that
    is not there is a :class:`~neuromirror.errors.UserError`), else those ``recorded`` (a lock's), else
    ``$NEUROMIRROR_STORE``, each made usable in each clone; None without one.  Why a store was not used is
    appended to ``notes`` (the archive may still serve)."""
    from neuromirror.pin.stores import store_for_retrieval, use_store
    from neuromirror.store.location import STORE_ENV

    names = [store] if store else list(recorded) or [os.environ.get(STORE_ENV) or ""]
    stores = []
    for name in names:
        opened, note = store_for_retrieval(name or None, explicit=bool(store))
        if note:
            notes.append(note)
        if opened is not None:
            stores.append(opened)
    if not stores:
        return None
    return lambda repo, commit: sum(use_store(repo, commit, s) for s in stores)


def recorded_version(
    datasets: Any, spec: Spec, from_url: Optional[str]
) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """The version's record in the mirror (``datasets``: a ``dataset.mirror.Datasets``) and its dataset's path
    there; (None, None) when the mirror does not have the source and ``from_url`` says where to clone from
    (without it: :class:`~neuromirror.errors.NotMirrored`)."""
    from neuromirror.pin.record import pin_record

    here = datasets.index_path.exists()
    source = datasets.index.source(spec.source) if here else None
    if source is not None:
        return pin_record(datasets, spec), source.dataset
    if from_url:
        return None, None
    where = f"the mirror at {datasets.root}" if here else f"{datasets.root} (no mirror there)"
    raise NotMirrored(f"{spec.source} is not in {where}")


def check_version_paths(rec: dict[str, Any], paths: Sequence[str]) -> None:
    """``paths`` are in the recorded version (``rec``: its dataset in the mirror and commit), checked before a
    clone is made: :class:`~neuromirror.errors.NoSuchPath` naming one it lacks, as the clone's own check would."""
    from neuromirror.pin.clone import check_paths
    from neuromirror.pin.retrieve import RetrieveError

    try:
        check_paths(Path(rec["dataset"]), rec["commit"], paths)
    except RetrieveError as exc:
        raise NoSuchPath(str(exc)) from None


# -- get: a version cloned and fetched ---------------------------------------------------------------------------
@dataclass
class Got(Printed):
    """What ``get`` did: the clone (``dir``), where it came from, the version and what was fetched.

    ``items()``: the version (``ok``, or ``error`` when a file failed) and an ``error`` per file not fetched or
    not verified.  ``notes``: why a store was not used (the command prints them on stderr)."""

    spec: Spec
    got: GotVersion
    notes: list[str] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return self.got.dest

    @property
    def failed(self) -> list[tuple[str, str]]:
        """(path, why) of each file not fetched or not verified."""
        return self.got.report.failed

    def items(self) -> Iterable[Item]:
        what = f"{self.spec.source}@{self.got.rec['version']}"
        bad = len(self.failed)
        yield Item(Status.ERROR if bad else Status.OK, what, self.got.report.line())
        for path, why in self.failed:
            yield Item(Status.ERROR, path, why)

    def to_json(self) -> dict[str, Any]:
        rec, report = self.got.rec, self.got.report
        return {
            "source": self.spec.source,
            "version": rec["version"],
            "commit": self.got.commit,
            "tag": rec.get("tag"),
            "doi": rec.get("doi"),
            "dir": str(self.got.dest),
            "from": self.got.url,
            "reused": self.got.reused,
            "paths": self.got.paths or ["."],
            "fetched": report.fetched,
            "fetched_bytes": report.fetched_bytes,
            "present": report.present,
            "git_files": report.git_files,
            "subdatasets": report.subdatasets,
            "failed": [{"path": p, "error": e} for p, e in report.failed],
            "ok": not report.failed,
        }

    def lines(self) -> list[str]:
        """The line ``get`` prints: the version, its commit, where, and what was fetched."""
        rel = os.path.relpath(self.got.dest)
        where = rel if not rel.startswith("..") else str(self.got.dest)
        line = f"{self.spec.source}@{self.got.rec['version']} (commit {self.got.commit[:12]}) in {where}"
        return [f"{line}: {self.got.report.line()}"]

    def failure_lines(self) -> list[str]:
        """The failed files, as ``get`` prints them on stderr (a hint when the archive is on a private address)."""
        from neuromirror.pin.fetch import failure_lines

        head = f"neuromirror: get: {len(self.failed)} file(s) not fetched or not verified:"
        return [head, *failure_lines(self.got.report)] if self.failed else []


# -- reproduce: a lock's datasets rebuilt, or failed loudly -----------------------------------------------------
def lock_paths(given: Sequence[str], lock: Lock) -> list[str]:
    """The PATHs (relative to the directory rebuilt into), normalised and each in one of the lock's datasets
    ([]: all); one outside it, or in none of them, is :class:`~neuromirror.errors.BadInput`."""
    paths = [os.path.normpath(p).replace(os.sep, "/") for p in given]
    relpaths = [d.path for d in lock.datasets]
    for p in paths:
        if p.startswith("..") or os.path.isabs(p):
            raise BadInput(f"{p!r}: PATHs are relative to the directory rebuilt into, e.g. {relpaths[0]}/sub-01")
        if p != "." and not any(p == r or p.startswith(r + "/") or r.startswith(p + "/") for r in relpaths):
            raise BadInput(f"{p!r} is in none of the lock's datasets ({', '.join(relpaths)})")
    return [] if "." in paths else paths


@dataclass
class Reproduced(Printed):
    """What ``reproduce`` found per dataset of the lock: ``datasets`` are the records ``reproduce --json`` lists
    (``problems`` empty when the dataset matches the lock).  ``items()``: a dataset each, ``ok`` or ``error``
    naming its first problem; ``notes``: why a store was not used."""

    lock: str
    dir: Path
    datasets: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def items(self) -> Iterable[Item]:
        for r in self.datasets:
            what = f"{r['source']}@{r['version']}"
            problems = r["problems"]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            yield Item(Status.ERROR, what, problems[0] + more) if problems else Item(Status.OK, what, r["dir"])

    def to_json(self) -> dict[str, Any]:
        return {"lock": self.lock, "dir": str(self.dir), "ok": self.ok, "datasets": self.datasets}

    def lines(self) -> list[str]:
        """What ``reproduce`` prints: each dataset's verdict (a failed one's problems under it), then the total."""
        out = [line for r in self.datasets for line in _dataset_lines(r)]
        return out + ([f"reproduced {len(self.datasets)} dataset(s) of {self.lock} in {self.dir}"] if self.ok else [])

    def failure_line(self) -> str:
        """The one line on stderr when any dataset differs ("" when none does)."""
        bad = sum(1 for r in self.datasets if r["problems"])
        if not bad:
            return ""
        return f"neuromirror: REPRODUCTION FAILED: {bad} of {len(self.datasets)} dataset(s) differ from {self.lock}"


def _dataset_lines(r: dict[str, Any]) -> list[str]:
    from neuromirror.pin.retrieve import fmt_bytes

    head = f"{r['source']}@{r['version']} -> {r['dir']}"
    problems = r["problems"]
    if problems:
        out = [
            f"{head}: FAILED"
            + (" (clone removed; failed clones are kept only when asked to)" if r.get("removed") else "")
        ]
        out += [f"  {prob}" for prob in problems[:50]]
        return out + ([f"  ... and {len(problems) - 50} more"] if len(problems) > 50 else [])
    what = f"commit {r['commit'][:12]} and file list ({r.get('files')} files, {fmt_bytes(r.get('bytes'))}) match"
    if r.get("content"):
        what += f"; {r['content']}"
    return [f"{head}: {what}"]
