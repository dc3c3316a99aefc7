"""What ``neuromirror verify`` found for one version: the mismatches, the counts, and how it is shown.

Kept apart from the checks so that each check (tree vs index, the archive,
the content) only adds to a report, and ``--json`` and the text lines say the
same things.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from neuromirror.pin.retrieve import fmt_bytes
from neuromirror.results import Item, Result, Status

#: what the content check can find, as ``--json`` names it: a failure, a failure, a warning
PROBLEM_KINDS = {"content": "wrong-bytes", "lost": "lost", "dead-url": "dead-url"}


@dataclass
class Mismatch:
    kind: str  # commit, tag, counts, only-in-dataset, only-in-index, key, size, checksum, stored,
    #            url-not-registered, no-location, content (wrong bytes), lost, not-kept, copies (fewer than
    #            wanted); warnings: dead-url
    path: Optional[str]
    detail: str
    key: Optional[str] = None
    url: Optional[str] = None
    size: Optional[int] = None
    urls: Optional[list[str]] = None  # a dead-url warning's dead URLs

    def line(self, label: str = "MISMATCH") -> str:
        if self.kind in ("lost", "not-kept"):
            size = f" ({self.size} bytes)" if self.size is not None else ""
            return f"{label} {self.kind}: {self.path}{size}: {self.detail}"
        where = f" {self.path}" if self.path else ""
        return f"{label} {self.kind}{where}: {self.detail}"

    def problem(self) -> dict[str, Any]:
        """As ``--json``'s ``problems`` lists it: wrong-bytes, lost or dead-url."""
        return {
            "kind": PROBLEM_KINDS[self.kind],
            "path": self.path,
            "key": self.key,
            "size": self.size,
            "urls": self.urls if self.urls is not None else ([self.url] if self.url else []),
            "detail": self.detail,
        }


@dataclass(repr=False)
class VerifyReport(Result):
    """One version checked (``Mirror.verify``, ``verify --json``): an ``error`` item per mismatch, a warning an
    ``ok`` item unless ``strict`` (then ``error``), and one ``ok`` item for the version when nothing is wrong."""

    source: str
    version: str
    commit: str
    tag: Optional[str] = None
    files: int = 0
    bytes: int = 0
    keys: int = 0
    urls: int = 0
    content_keys: int = 0
    content_urls: int = 0
    content_bytes: int = 0
    content_sampled_of: int = 0
    content_via_annex: int = 0
    content_store: int = 0
    subdatasets: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    warnings: list[Mismatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    content: bool = False
    archive_checked: bool = False
    strict: bool = False  # warnings fail too
    risk: Optional[Any] = None  # a verify.risk.Risk
    store: Optional[str] = None  # the store counted as a source / checked by --kept
    kept_checked: bool = False
    web_gone: set[str] = field(default_factory=set)  # keys whose every URL answered 404/410 (--content)
    web_serving: set[str] = field(default_factory=set)  # keys a URL served with the key's bytes
    web_marked: list[str] = field(default_factory=list)  # keys marked now: the web no longer has them
    web_restored: list[str] = field(default_factory=list)  # keys marked before whose URL serves again
    #: keys gone from the web whose URLs pinned an S3 version: what ``repin`` may find again (--content)
    repinnable: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not (self.strict and self.warnings)

    def items(self) -> list[Item]:
        label = f"{self.source}@{self.version}"
        warned = Status.ERROR if self.strict else Status.OK
        out = [Item(Status.ERROR, m.path or label, m.line()) for m in self.mismatches]
        out += [Item(warned, m.path or label, m.line("WARNING")) for m in self.warnings]
        return out or [Item(Status.OK, label, "verified")]

    def __repr__(self) -> str:
        verdict = "ok" if self.ok else f"FAILED {len(self.mismatches)} mismatch(es)"
        return f"<VerifyReport {self.source}@{self.version} {self.commit[:7]} {verdict}>"

    def add(
        self,
        kind: str,
        path: Optional[str],
        detail: str,
        key: Optional[str] = None,
        url: Optional[str] = None,
        size: Optional[int] = None,
    ) -> None:
        self.mismatches.append(Mismatch(kind, path, detail, key, url, size))

    def warn(
        self,
        kind: str,
        path: Optional[str],
        detail: str,
        key: Optional[str] = None,
        urls: Optional[list[str]] = None,
        size: Optional[int] = None,
    ) -> None:
        self.warnings.append(Mismatch(kind, path, detail, key, None, size, urls))

    def problems(self) -> list[dict[str, Any]]:
        return [m.problem() for m in self.mismatches + self.warnings if m.kind in PROBLEM_KINDS]

    def to_json(self) -> dict[str, Any]:
        problems = self.problems()
        return {
            "source": self.source,
            "version": self.version,
            "commit": self.commit,
            "tag": self.tag,
            "ok": self.ok,
            "files": self.files,
            "bytes": self.bytes,
            "keys": self.keys,
            "urls": self.urls,
            "subdatasets": self.subdatasets,
            "content": {
                "checked": self.content,
                "keys": self.content_keys,
                "of_keys": self.content_sampled_of,
                "urls": self.content_urls,
                "bytes": self.content_bytes,
                "via_git_annex": self.content_via_annex,
                "store_copies": self.content_store,
            }
            if self.content
            else None,
            "archive": self.archive_checked,
            "mismatches": [m.__dict__ for m in self.mismatches],
            "warnings": [m.__dict__ for m in self.warnings],
            "problems": problems,
            "problem_counts": {k: sum(p["kind"] == k for p in problems) for k in PROBLEM_KINDS.values()},
            "store": self.store,
            "kept_checked": self.kept_checked,
            "at_risk": self.risk.to_json() if self.risk is not None else None,
            "urls_gone": {"marked": self.web_marked, "restored": self.web_restored} if self.content else None,
            "repinnable": sorted(self.repinnable) if self.content else None,
            "notes": self.notes,
        }

    def lines(self, limit: int = 50) -> list[str]:
        head = f"{self.source}@{self.version} (commit {self.commit[:12]}" + (f", tag {self.tag})" if self.tag else ")")
        out = [head, *self._agreement_lines(), *self._content_lines()]
        out += self._listed([m.line() for m in self.mismatches], limit, "mismatches")
        out += self._listed([m.line("WARNING") for m in self.warnings], limit, "warnings")
        out += [f"  note: {n}" for n in self.notes]
        warned = f", {len(self.warnings)} warning(s)" if self.warnings else ""
        strict = " (strict: warnings fail)" if self.strict and self.warnings and not self.mismatches else ""
        verdict = "OK" + warned if self.ok else f"FAILED{strict}, {len(self.mismatches)} mismatch(es){warned}"
        out.append(f"{self.source}@{self.version}: {verdict}")
        return out

    def _agreement_lines(self) -> list[str]:
        """Checks 1-4 in a line each: tree and index, the URLs registered, the archive listed again."""
        kinds = {m.kind for m in self.mismatches}
        bad_tree = kinds & {
            "commit",
            "only-in-dataset",
            "only-in-index",
            "key",
            "size",
            "checksum",
            "stored",
            "counts",
            "subdataset",
        }
        bad_urls = kinds & {"url-not-registered", "no-location"}
        subs = f" (with {self.subdatasets} subdataset(s))" if self.subdatasets else ""
        out = [
            f"  tree and index {'DISAGREE' if bad_tree else 'agree'}: {self.files} files, {fmt_bytes(self.bytes)}",
            f"  URLs {'NOT all registered' if bad_urls else 'registered'}: {self.keys} keys, {self.urls} URLs{subs}",
        ]
        if self.archive_checked:
            bad = "archive" in kinds
            out.append("  archive DISAGREES" if bad else "  archive agrees: listed again, same paths, keys and URLs")
        return out

    def _content_lines(self) -> list[str]:
        """The optional checks' lines: the bytes hashed, the store's copies (--kept), what is at risk."""
        out = []
        if self.content:
            kinds = {m.kind for m in self.mismatches}
            verdict = "DIFFERS" if kinds & {"content", "unreachable"} else ("LOST" if "lost" in kinds else "matches")
            via = f", {self.content_via_annex} key(s) through git-annex" if self.content_via_annex else ""
            copies = self.content_store
            via += f", {copies} store cop{'y' if copies == 1 else 'ies'} hashed" if copies else ""
            out.append(
                f"  content {verdict}: {self.content_keys}/{self.content_sampled_of} keys, "
                f"{self.content_urls} URLs downloaded and hashed ({fmt_bytes(self.content_bytes)} this time){via}"
            )
        if self.kept_checked:
            missing = sum(m.kind == "not-kept" for m in self.mismatches)
            out.append(
                f"  kept in {self.store}: " + (f"{missing} file(s) NOT in the store" if missing else "every file")
            )
        if self.risk is not None:
            out.append(f"  at risk: {self.risk.line(fmt_bytes)}")
        return out

    @staticmethod
    def _listed(lines: list[str], limit: int, what: str) -> list[str]:
        """The first ``limit`` lines, indented, and how many more ``--json`` lists."""
        out = ["  " + line for line in lines[:limit]]
        if len(lines) > limit:
            out.append(f"  ... and {len(lines) - limit} more {what} (the JSON lists all)")
        return out


@dataclass(repr=False)
class Verified(Result):
    """Several versions checked (``Mirror.verify_versions``, ``verify SPEC...``): each one's report, its items
    theirs.  ``to_json()`` is ``verify --json``: one version's report, or the list of several."""

    reports: list[VerifyReport] = field(default_factory=list)

    def items(self) -> list[Item]:
        return [i for r in self.reports for i in r.items()]

    def to_json(self) -> Any:
        if len(self.reports) == 1:
            return self.reports[0].to_json()
        return [r.to_json() for r in self.reports]

    def lines(self) -> list[str]:
        return [line for r in self.reports for line in r.lines()] + self.count_lines()

    def count_lines(self) -> list[str]:
        """The count of several versions (none for one)."""
        if len(self.reports) < 2:
            return []
        bad = sum(not r.ok for r in self.reports)
        return [f"{len(self.reports)} version(s) verified: {len(self.reports) - bad} OK, {bad} FAILED"]

    def __repr__(self) -> str:
        bad = sum(not r.ok for r in self.reports)
        return f"<Verified {len(self.reports)} version(s), {bad} FAILED>"
