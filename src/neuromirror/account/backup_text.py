"""The backup record as a person reads it: the lines ``status --backup`` prints (the ``/backup/`` page,
:mod:`neuromirror.service.pages.backup`, says the same in HTML with these words).

Both say per source, in words a reader new to neuromirror follows, what the archive holds, what the lab's
stores hold of it, what no store holds (lost if the archive loses it), what the archive's lifecycle deletes
soon that no store holds, and when each store was last re-read and what that found.
"""

from __future__ import annotations

from typing import Optional, Union

from neuromirror.account.backup_model import Backup, Count, Expiring, SourceBackup, Split, StoreBackup, Verification
from neuromirror.account.status import short_time
from neuromirror.util.sizes import human_bytes

#: a store's kind in words
KINDS = {"directory": "directory store", "S3": "S3 store", "pack": "packed store"}


def amount(c: Union[Count, Split]) -> str:
    return f"{c.objects} object{'' if c.objects == 1 else 's'} ({human_bytes(c.bytes)})"


def part_of(part: Count, whole: Count) -> str:
    return f"{part.objects} of {whole.objects} ({human_bytes(part.bytes)} of {human_bytes(whole.bytes)})"


def store_name(s: StoreBackup) -> str:
    return f"{s.url or s.name or s.uuid}" + (f" ({KINDS.get(s.kind, s.kind)})" if s.kind else "")


def state_words(s: StoreBackup) -> str:
    st = s.oldest_unkept
    if st is None:
        return "every recorded state is whole there" if not s.missing.objects else "?"
    what = "the newest draft" if st.version == "draft" else st.kind
    return f"{st.version} ({what}, commit {st.commit[:12]}, synced {short_time(st.synced_at)})"


def verification_words(s: StoreBackup) -> str:
    v = s.verification
    if v is None:
        last = f"; newest good check {short_time(s.newest_check)} (by keep or verify)" if s.newest_check else ""
        return f"never re-read (run `neuromirror verify --stores`){last}"
    result = "OK" if v.ok else "FAILED" if v.unresolved else "REPAIRED"
    found = f"{v.bad} bad, {v.missing} missing, {v.unreadable} unreadable"
    repaired = f", {v.repaired} re-kept" if v.repaired else ""
    return f"{result} at {short_time(v.at)}: {v.checked} cop(ies) re-read ({v.scope}), {found}{repaired}"


def check_class(v: Optional[Verification]) -> str:
    """The colour of a last verification: none yet, all right, repaired (amber), failed (red)."""
    return "note" if v is None else "good" if v.ok else "bad" if v.unresolved else "warn"


def expires_words(x: Expiring) -> str:
    return f"{'on' if x.expires_is == 'exact' else 'by'} {short_time(x.expires)}"


def _headline(b: SourceBackup) -> str:
    a = b.archive
    if b.verdict == "not synced yet":
        return f"{b.source}: NOT SYNCED YET: no state recorded (run `neuromirror sync {b.source}`)"
    return (
        f"{b.source}: {b.verdict.upper()}: the archive holds {amount(a)} in {b.versions} recorded state(s): "
        f"{amount(a.current)} in the newest, {amount(a.noncurrent)} only in older ones; in no store: "
        f"{amount(b.nowhere.current)} of the newest, {amount(b.nowhere.noncurrent)} of older ones"
    )


def source_lines(b: SourceBackup, most: int = 5) -> list[str]:
    lines = [_headline(b)]
    if b.unkept:
        named = ", ".join(f"{u.path} ({human_bytes(u.size)})" for u in b.unkept[:most])
        more = b.nowhere.current.objects - min(most, len(b.unkept))
        lines.append(f"  in no store: {named}" + (f" and {more} more" if more > 0 else ""))
    for s in b.stores:
        if s.unreachable_since is not None:
            lines.append(
                f"  store {store_name(s)} {s.name}: NOT REACHABLE since {s.unreachable_since} ({s.unreachable_why}): the "
                f"{amount(s.kept)} recorded there count as no copy"
            )
            continue
        lines.append(
            f"  store {store_name(s)}: holds {part_of(s.kept.current, b.archive.current)} of the newest state, "
            f"{part_of(s.kept.noncurrent, b.archive.noncurrent)} of older ones; lacks {amount(s.missing.current)} of the "
            f"newest, {amount(s.missing.noncurrent)} of older ones"
            + (f"; the oldest state not whole there: {state_words(s)}" if s.missing.objects else "")
        )
        lines.append(f"    last verification: {verification_words(s)}")
    if not b.stores and b.archive.objects:
        lines.append("  kept in no store (run `neuromirror keep SOURCE --to STORE`)")
    if b.expiring:
        lines.append(
            f"  EXPIRES UNKEPT within 30 days: {amount(b.expiring_count)}, the first {expires_words(b.expiring[0])}"
        )
        lines += [f"    {x.path} ({x.version}): {expires_words(x)}: {x.why}" for x in b.expiring[:most]]
        if len(b.expiring) > most:
            lines.append(
                f"    ... and {len(b.expiring) - most} more (run `neuromirror status --backup --json` to list them)"
            )
    if b.zarrs_uncounted:
        lines.append(
            f"  {b.zarrs_uncounted} Zarr state(s) not counted here (run `neuromirror status --copies` to count their objects)"
        )
    return lines


def as_text(backup: Backup) -> str:
    """What ``status --backup`` prints: per source its headline, each store's share, what expires unkept."""
    if not backup.sources:
        return "no sources in the index match"
    return "\n".join(line for b in backup.sources for line in source_lines(b))
