"""What ``neuromirror verify`` found for one version: the mismatches, the counts, and how it is shown.

Kept apart from the checks so that each check (tree vs index, the archive,
the content) only adds to a report, and ``--json`` and the text lines say the
same things.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from neuromirror.reproduce.retrieve import fmt_bytes


@dataclass
class Mismatch:
    kind: str  # commit, tag, counts, only-in-dataset, only-in-index, key, size, checksum, stored,
    #            url-not-registered, no-location, content, unreachable
    path: Optional[str]
    detail: str
    key: Optional[str] = None
    url: Optional[str] = None

    def line(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"MISMATCH {self.kind}{where}: {self.detail}"


@dataclass
class VerifyReport:
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
    subdatasets: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    content: bool = False
    archive_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def add(
        self, kind: str, path: Optional[str], detail: str, key: Optional[str] = None, url: Optional[str] = None
    ) -> None:
        self.mismatches.append(Mismatch(kind, path, detail, key, url))

    def to_json(self) -> dict:
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
            }
            if self.content
            else None,
            "archive": self.archive_checked,
            "mismatches": [m.__dict__ for m in self.mismatches],
            "notes": self.notes,
        }

    def lines(self, limit: int = 50) -> list[str]:
        head = f"{self.source}@{self.version} (commit {self.commit[:12]}" + (f", tag {self.tag})" if self.tag else ")")
        out = [head]
        bad_tree = {m.kind for m in self.mismatches} & {
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
        bad_urls = {m.kind for m in self.mismatches} & {"url-not-registered", "no-location"}
        out.append(
            f"  tree and index {'DISAGREE' if bad_tree else 'agree'}: {self.files} files, {fmt_bytes(self.bytes)}"
        )
        subs = f" (with {self.subdatasets} subdataset(s))" if self.subdatasets else ""
        out.append(
            f"  URLs {'NOT all registered' if bad_urls else 'registered'}: {self.keys} keys, {self.urls} URLs{subs}"
        )
        if self.archive_checked:
            bad = any(m.kind == "archive" for m in self.mismatches)
            out.append("  archive DISAGREES" if bad else "  archive agrees: listed again, same paths, keys and URLs")
        if self.content:
            bad = any(m.kind in ("content", "unreachable") for m in self.mismatches)
            via = f", {self.content_via_annex} key(s) through git-annex" if self.content_via_annex else ""
            out.append(
                f"  content {'DIFFERS' if bad else 'matches'}: {self.content_keys}/{self.content_sampled_of} keys, "
                f"{self.content_urls} URLs downloaded and hashed ({fmt_bytes(self.content_bytes)} this time){via}"
            )
        for m in self.mismatches[:limit]:
            out.append("  " + m.line())
        if len(self.mismatches) > limit:
            out.append(f"  ... and {len(self.mismatches) - limit} more mismatches (--json lists all)")
        for n in self.notes:
            out.append(f"  note: {n}")
        verdict = "OK" if self.ok else f"FAILED, {len(self.mismatches)} mismatch(es)"
        out.append(f"{self.source}@{self.version}: {verdict}")
        return out
