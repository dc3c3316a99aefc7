"""Fetching content into a clone: ``git annex get`` with byte progress, into subdatasets too, and its report.

git-annex verifies every key's checksum as the bytes arrive (``annex.verify``)
and keeps nothing that does not match; what is asked for must be present
afterwards, whatever git-annex said, or it is reported as failed.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, TypedDict, cast

from neuromirror.dataset.version import is_plumbing
from neuromirror.pin.clone import check_paths, install_subdataset, split_paths
from neuromirror.pin.retrieve import ALLOW_IP_ENV, RetrieveError, fmt_bytes, gist
from neuromirror.util import gitutil
from neuromirror.util.dates import format_duration
from neuromirror.util.progress import ByteProgress


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
    repo: Path, paths: Sequence[str], *, jobs: int = 4, progress: bool = True, label: str = "get"
) -> GetReport:
    """``git annex get`` with byte progress; git-annex verifies each key's checksum on arrival."""
    t0 = time.monotonic()
    report = GetReport()
    todo = missing_content(repo, paths)
    total_keys, report.backends = count_annexed(repo, paths)
    report.wanted = total_keys
    report.present = total_keys - len(todo)
    report.wanted_bytes = sum(t["bytesize"] or 0 for t in todo)
    sizes = {t["key"]: t["bytesize"] for t in todo}
    bar = ByteProgress(report.wanted_bytes, len(todo), enabled=progress and bool(todo), label=label)
    if todo:
        cmd = [
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
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=gitutil.git_env())
        errors: list[bytes] = []
        drain = threading.Thread(target=lambda: errors.append(proc.stderr.read() if proc.stderr else b""), daemon=True)
        drain.start()
        assert proc.stdout
        for raw in proc.stdout:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if "byte-progress" in rec:
                key = (rec.get("action") or {}).get("key")
                if key:
                    bar.update(key, int(rec.get("byte-progress") or 0))
                continue
            key = rec.get("key")
            if rec.get("success"):
                if key in sizes:
                    report.fetched += 1
                    report.fetched_bytes += sizes[key] or bar.partial.get(key, 0)
                    bar.finish(key, sizes.pop(key))
            else:
                why = (
                    "; ".join(m.strip() for m in rec.get("error-messages") or [] if m.strip())
                    or rec.get("note")
                    or "failed"
                )
                report.failed.append((rec.get("file") or key or "?", " ".join(why.split())))
        proc.wait()
        drain.join(timeout=5)
        bar.close()
        if proc.returncode != 0 and not report.failed:
            err = b"".join(errors).decode(errors="replace")
            report.failed.append(("?", gist(err) if err.strip() else f"git annex get exited {proc.returncode}"))
    # whatever git-annex said, the content must be here now
    still = missing_content(repo, paths)
    failed_paths = {p for p, _ in report.failed}
    for rec in still:
        if rec["file"] not in failed_paths:
            report.failed.append((rec["file"], "content is not present after get"))
    report.git_files = sum(
        1
        for mode, typ, _, path in gitutil.ls_tree(repo, "HEAD", paths)
        if typ == "blob" and mode != "120000" and not is_plumbing(path)
    )
    report.seconds = time.monotonic() - t0
    return report


def failure_lines(report: GetReport, limit: int = 20) -> list[str]:
    lines = [f"  {path}: {why}" for path, why in report.failed[:limit]]
    if len(report.failed) > limit:
        lines.append(f"  ... and {len(report.failed) - limit} more")
    if any("allowed-ip-addresses" in why for _, why in report.failed):
        lines.append(
            f"  hint: the archive is on a loopback/private address: pass --allow-ip all (or set {ALLOW_IP_ENV})"
            " to allow it in this clone"
        )
    return lines


def fetch(
    repo: Path,
    commit: str,
    paths: Sequence[str],
    *,
    jobs: int = 4,
    progress: bool = True,
    label: str = "get",
    allow_ip: Optional[str] = None,
    prepare: Optional[Callable[[Path, str], object]] = None,
) -> GetReport:
    """:func:`annex_get` in ``repo`` and, recursively, in the subdatasets the paths reach (installed as needed).

    ``prepare(repo, commit)`` runs in each repository before its content is fetched (the lab's
    store made usable there: :mod:`neuromirror.pin.stores`).
    """
    t0 = time.monotonic()
    mine, subs = split_paths(repo, commit, paths)
    if prepare is not None and mine is not None:
        prepare(repo, commit)
    report = annex_get(repo, mine, jobs=jobs, progress=progress, label=label) if mine is not None else GetReport()
    for path, (sha, sub_paths) in subs.items():
        try:
            sub = install_subdataset(repo, path, sha, allow_ip=allow_ip)
        except RetrieveError as exc:
            report.failed.append((path, str(exc)))
            continue
        sub_paths = check_paths(sub, sha, sub_paths)
        inner = fetch(
            sub,
            sha,
            sub_paths,
            jobs=jobs,
            progress=progress,
            label=f"{label} {path}",
            allow_ip=allow_ip,
            prepare=prepare,
        )
        inner.subdatasets += 1
        report.merge(inner, path + "/")
    report.seconds = time.monotonic() - t0
    return report
