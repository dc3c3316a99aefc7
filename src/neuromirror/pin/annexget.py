"""``git annex get`` with byte progress in one repository, and what it did (:class:`GetReport`).

git-annex verifies every key's checksum as the bytes arrive (``annex.verify``)
and keeps nothing that does not match; what is asked for must be present
afterwards, whatever git-annex said, or it is reported as failed.  Subdatasets and
the commands' whole walks are :mod:`neuromirror.pin.fetch`'s.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Sequence, TypedDict, cast

from neuromirror.annex.tree import is_plumbing
from neuromirror.network import identity
from neuromirror.pin.retrieve import RetrieveError, fmt_bytes, gist
from neuromirror.util import gitutil
from neuromirror.util.dates import format_duration
from neuromirror.util.progress import ByteCalls, ByteCount

if TYPE_CHECKING:
    from neuromirror.records import ProgressCallback


@dataclass
class GetReport:
    wanted: int = 0  # annexed files asked for (unique keys)
    wanted_bytes: int = 0
    present: int = 0  # were there already
    fetched: int = 0
    fetched_bytes: int = 0
    git_files: int = 0  # files in git (their bytes came with the checkout)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    backends: set[str] = field(default_factory=set)
    seconds: float = 0.0
    subdatasets: int = 0

    def merge(self, other: GetReport, prefix: str) -> None:
        for name in ("wanted", "wanted_bytes", "present", "fetched", "fetched_bytes", "git_files", "subdatasets"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed += [(prefix + p, why) for p, why in other.failed]
        self.backends |= other.backends

    def line(self) -> str:
        kinds = "/".join(sorted(self.backends)) or "-"
        text = (
            f"fetched {self.fetched} file(s), {fmt_bytes(self.fetched_bytes)}, verified by git-annex ({kinds} keys)"
            f" in {format_duration(self.seconds, 'clock')}"
        )
        if self.present:
            text += f"; {self.present} already present"
        if self.git_files:
            text += f"; {self.git_files} file(s) in git"
        if self.subdatasets:
            text += f"; {self.subdatasets} subdataset(s)"
        if self.failed:
            text += f"; {len(self.failed)} FAILED"
        return text


def _annex_json_lines(repo: Path, args: Sequence[str]) -> Iterator[dict]:
    proc = subprocess.run(["git", "-C", str(repo), "annex", *args], capture_output=True, env=gitutil.git_env())
    for line in proc.stdout.decode(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue
    if proc.returncode != 0 and not proc.stdout.strip():
        raise RetrieveError(f"git annex {args[0]} failed in {repo}: {gist(proc.stderr.decode(errors='replace'))}")


class Missing(TypedDict):
    """An annexed file whose content is not here, as ``git annex find --json`` reports it."""

    file: str
    key: str
    bytesize: Optional[int]
    backend: Optional[str]


def missing_content(repo: Path, paths: Sequence[str]) -> list[Missing]:
    """Annexed files under ``paths`` whose content is not here: [{file, key, bytesize}], one per key."""
    seen: set[str] = set()
    out: list[Missing] = []
    for rec in _annex_json_lines(repo, ["find", "--not", "--in=here", "--json", "--", *(paths or ["."])]):
        key = rec.get("key")
        if not key or key in seen:
            continue
        seen.add(key)
        size = rec.get("bytesize")
        out.append(
            {
                "file": cast(str, rec.get("file")),  # git annex find names the file of each key it lists
                "key": key,
                "bytesize": int(str(size)) if str(size).isdigit() else None,
                "backend": rec.get("backend"),
            }
        )
    return out


def count_annexed(repo: Path, paths: Sequence[str]) -> tuple[int, set[str]]:
    """(unique keys, backends) of the annexed files under ``paths`` (present or not)."""
    keys: set[str] = set()
    backends: set[str] = set()
    for rec in _annex_json_lines(repo, ["find", "--include=*", "--json", "--", *(paths or ["."])]):
        if rec.get("key"):
            keys.add(rec["key"])
            if rec.get("backend"):
                backends.add(rec["backend"])
    return len(keys), backends


def annex_get(
    repo: Path,
    paths: Sequence[str],
    *,
    jobs: int = 4,
    progress: Optional[ProgressCallback] = None,
    label: str = "get",
) -> GetReport:
    """``git annex get``; git-annex verifies each key's checksum on arrival.  ``progress`` is told the files and
    bytes as git-annex reports them: ``("files LABEL", ...)`` and ``("get LABEL", done, total)``
    (:class:`~neuromirror.util.progress.ByteCalls`), over the files whose content is not here yet."""
    t0 = time.monotonic()
    report = GetReport()
    todo = missing_content(repo, paths)
    total_keys, report.backends = count_annexed(repo, paths)
    report.wanted = total_keys
    report.present = total_keys - len(todo)
    report.wanted_bytes = sum(t["bytesize"] or 0 for t in todo)
    if todo:
        sizes = {t["key"]: t["bytesize"] for t in todo}
        count = ByteCalls(progress, label, list(sizes.values())) if progress is not None else ByteCount(len(sizes))
        _get(repo, paths, jobs, sizes, report, count)
    _check_present(repo, paths, report)
    report.git_files = sum(
        1
        for mode, typ, _, path in gitutil.ls_tree(repo, "HEAD", paths)
        if typ == "blob" and mode != "120000" and not is_plumbing(path)
    )
    report.seconds = time.monotonic() - t0
    return report


def _get_command(repo: Path, paths: Sequence[str], jobs: int) -> list[str]:
    """``git annex get`` verifying every key, one JSON line per progress step and per file."""
    return [
        "git",
        "-C",
        str(repo),
        "-c",
        "annex.verify=true",
        "annex",
        "get",
        "--json",
        "--json-progress",
        "--json-error-messages",
        f"-J{max(1, jobs)}",
        "--",
        *(paths or ["."]),
    ]


def _get(
    repo: Path, paths: Sequence[str], jobs: int, sizes: dict[str, Optional[int]], report: GetReport, count: ByteCount
) -> None:
    """Run ``git annex get`` and read its lines as they come (``count`` moves with the bytes); ``sizes``: the
    keys asked for, each dropped once it arrived."""
    env = identity.git_env(gitutil.git_env())  # git-annex's downloads name the mirror (annex.http-headers)
    proc = subprocess.Popen(_get_command(repo, paths, jobs), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    errors: list[bytes] = []
    drain = threading.Thread(target=lambda: errors.append(proc.stderr.read() if proc.stderr else b""), daemon=True)
    drain.start()
    assert proc.stdout
    for raw in proc.stdout:
        _take_line(raw, sizes, report, count)
    proc.wait()
    drain.join(timeout=5)
    count.close()
    if proc.returncode != 0 and not report.failed:
        err = b"".join(errors).decode(errors="replace")
        report.failed.append(("?", gist(err) if err.strip() else f"git annex get exited {proc.returncode}"))


def _take_line(raw: bytes, sizes: dict[str, Optional[int]], report: GetReport, count: ByteCount) -> None:
    """One line of ``git annex get --json``: bytes of a key on its way, a key arrived, or a failure and why."""
    try:
        rec = json.loads(raw)
    except ValueError:
        return
    if "byte-progress" in rec:
        key = (rec.get("action") or {}).get("key")
        if key:
            count.update(key, int(rec.get("byte-progress") or 0))
        return
    key = rec.get("key")
    if not rec.get("success"):
        report.failed.append((rec.get("file") or key or "?", _why(rec)))
    elif key in sizes:
        report.fetched += 1
        report.fetched_bytes += sizes[key] or count.partial.get(key, 0)
        count.finish(key, sizes.pop(key))


def _why(rec: dict) -> str:
    """Why git-annex failed a file, in one line: its error messages, else its note."""
    why = "; ".join(m.strip() for m in rec.get("error-messages") or [] if m.strip()) or rec.get("note") or "failed"
    return " ".join(why.split())


def _check_present(repo: Path, paths: Sequence[str], report: GetReport) -> None:
    """Whatever git-annex said, the content must be here now: a file still missing is a failure."""
    still = missing_content(repo, paths)
    failed_paths = {p for p, _ in report.failed}
    for rec in still:
        if rec["file"] not in failed_paths:
            report.failed.append((rec["file"], "content is not present after get"))
