"""One git repository measured (loose objects, packs) and packed when worth it, never losing an object.

Thresholds are git's ``gc --auto`` idea (``gc.auto`` = 6,700 loose objects, ``gc.autoPackLimit`` =
50 packs) with far lower numbers: a dumb-HTTP client (a ``datalad clone`` of a RIA store behind a
static web server) fetches every loose object with a request of its own and every pack with two, and
asks for packed objects loose first (a 404 each): a work tree's repository is packed past
:data:`LOOSE_LIMIT` loose objects, a bare one (what is served) past :data:`SERVED_LOOSE_LIMIT` (none),
and kept in one pack; a work tree's past :data:`PACK_LIMIT` packs.  That keeps such a clone to a
dozen requests.

How it packs, and why nothing is ever lost:

* too many loose objects: ``git repack -d -l --geometric=2``.  The loose objects go into a new pack
  *whatever their reachability* (geometric repacking rolls up loose objects and small packs whole,
  ``--stdin-packs``), small packs are merged with it, and only then are the packs it replaced and
  the loose copies removed (``-d``: ``git prune-packed``, which deletes only objects a pack holds);
* too many packs: ``git repack -a -d -k -l``: everything in one pack, unreachable objects included
  (``-k``, ``--keep-unreachable``); no expiry, no ``git prune``.

git writes a pack to a temporary file and renames it (the ``.idx`` last) before deleting anything,
so a SIGKILL at any point leaves every object in a pack or loose, or both.  What a kill can leave
behind: temporary pack files (removed here once they are an hour old: no git still writes them) and,
in a bare repository served over dumb HTTP, an ``objects/info/packs`` that names packs no longer
there or misses the new one; it is compared with the packs on disk at every visit and rewritten
(``git update-server-info``) when it differs, so the next ``maintain`` repairs it even when there is
nothing to pack.

Reflogs: a sync moves ``master`` (and ``HEAD``) and ``git-annex`` forward and git logs each move, ~150
bytes a ref a sync, for ever (``gc --auto``, which would expire them, never runs): ~3.8 MB a year of
hourly syncs per dataset, more than a small dataset's whole clone.  Every entry a sync writes names a
commit its ref still reaches (the mirror's refs only move forward), so the reflog holds nothing the
history does not; it matters only for a commit no ref reaches any more (a branch moved back by hand).
Entries older than :data:`REFLOG_DAYS` (git's own ``gc.reflogExpireUnreachable``) are dropped with
``git reflog expire``, for reachable and unreachable entries alike, when the oldest entry of a reflog
is older than that (read from the files: a dataset with young reflogs costs no git child).  Objects
are not touched (no prune): an object only an expired entry named stays in its pack.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from neuromirror.util import gitutil
from neuromirror.util.crashpoints import crashpoint

#: more loose objects than this: pack them (git's gc.auto is 6,700)
LOOSE_LIMIT = 100
#: more packs than this: one pack (git's gc.autoPackLimit is 50)
PACK_LIMIT = 10
#: a bare repository (a RIA store's copy, a bare sibling: what dumb HTTP serves) is kept in one pack:
#: packed whenever it has a loose object or a second pack.  git's dumb-HTTP walker asks for every object
#: loose before looking in the packs, and it finds the packs one missing object at a time, so each loose
#: object and each extra pack costs requests (404s mostly).  Measured (2026-11-24, a RIA store of a
#: 1,000-file dandiset after 30 syncs, ``datalad clone`` over ``python -m http.server``): 22 loose
#: objects + 5 packs 99 requests, 0 loose + 3 packs (geometric) 46, one pack 10; at 10^4 files, 88 loose +
#: 6 packs 212 and 0 loose + 5 packs 694.  A publish pushes ~11 objects a sync, so a served repository is
#: repacked whole after each publish (``-a``, reusing deltas: ~1 s at 10^4 files).
SERVED_LOOSE_LIMIT = 0
#: a temporary pack file older than this is a killed git's: removed
STALE_TMP_SECONDS = 3600
#: reflog entries older than this many days are dropped (git's gc.reflogExpireUnreachable)
REFLOG_DAYS = 30


@dataclass
class Counts:
    """What ``git count-objects -v`` says, read from the object directory without a git child."""

    loose: int = 0
    loose_bytes: int = 0
    packs: int = 0
    pack_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _is_hex(name: str) -> bool:
    return all(c in "0123456789abcdef" for c in name)


def measure(git_dir: Path) -> Counts:
    """Loose objects and packs of ``git_dir`` (its ``objects/``): a few ``scandir`` calls.

    A packed repository has no fan-out directories left (``git prune-packed`` removes the empty
    ones), so a clean repository costs two directory reads, which matters for a dandiset of
    20,000 Zarr datasets."""
    c = Counts()
    objects = git_dir / "objects"
    try:
        top = list(os.scandir(objects))
    except FileNotFoundError:
        return c
    for entry in top:
        if len(entry.name) == 2 and _is_hex(entry.name) and entry.is_dir():
            for obj in os.scandir(entry.path):
                if len(obj.name) == 38 and _is_hex(obj.name):
                    c.loose += 1
                    c.loose_bytes += obj.stat().st_size
        elif entry.name == "pack" and entry.is_dir():
            for f in os.scandir(entry.path):
                if f.name.startswith("pack-") and f.name.endswith(".pack"):
                    c.packs += 1
                    c.pack_bytes += f.stat().st_size
    return c


def worth_it(c: Counts, *, loose_limit: int = LOOSE_LIMIT, pack_limit: int = PACK_LIMIT) -> Optional[str]:
    """Why the repository wants packing (one phrase), or None when it does not."""
    if c.packs > pack_limit:
        return f"{c.packs} packs > {pack_limit}"
    if c.loose > loose_limit:
        return f"{c.loose} loose objects > {loose_limit}"
    return None


def is_bare(git_dir: Path) -> bool:
    """A bare repository (a RIA store's dataset, a bare sibling): no ``.git`` directory name, no work tree."""
    if git_dir.name == ".git":
        return False
    value = gitutil.config_file_value(git_dir / "config", "core", "bare")
    return value is None or value.lower() == "true"


def served_packs_stale(git_dir: Path) -> bool:
    """A bare repository's ``objects/info/packs`` (what dumb-HTTP clients read) differs from its packs."""
    info = git_dir / "objects" / "info" / "packs"
    try:
        listed = {ln[2:].strip() for ln in info.read_text().splitlines() if ln.startswith("P ")}
    except FileNotFoundError:
        listed = set()
    pack_dir = git_dir / "objects" / "pack"
    try:
        have = {f.name for f in os.scandir(pack_dir) if f.name.startswith("pack-") and f.name.endswith(".pack")}
    except FileNotFoundError:
        have = set()
    return listed != have


def remove_stale_tmp(git_dir: Path, *, older_than: float = STALE_TMP_SECONDS) -> int:
    """Temporary pack files a killed git left (``tmp_pack_*``, ``tmp_idx_*``, ``.tmp-*-pack*``); how many."""
    pack_dir = git_dir / "objects" / "pack"
    removed = 0
    cutoff = time.time() - older_than
    try:
        entries = list(os.scandir(pack_dir))
    except FileNotFoundError:
        return 0
    for f in entries:
        if f.name.startswith(("tmp_", ".tmp-")) and f.is_file() and f.stat().st_mtime < cutoff:
            Path(f.path).unlink(missing_ok=True)
            removed += 1
    return removed


def _entry_time(line: bytes) -> Optional[float]:
    """The time of one reflog line (``OLD NEW Name <email> SECONDS TZ\tmessage``), or None."""
    head = line.split(b"\t", 1)[0].rsplit(b" ", 2)
    try:
        return float(head[-2])
    except (IndexError, ValueError):
        return None


def old_reflogs(git_dir: Path, *, days: float = REFLOG_DAYS, now: Optional[float] = None) -> bool:
    """Some reflog of ``git_dir`` begins with an entry older than ``days`` (entries are appended in time
    order, so the first line is the oldest): one small read per log file."""
    cutoff = (now if now is not None else time.time()) - days * 86400
    for dirpath, _, names in os.walk(git_dir / "logs"):
        for name in names:
            try:
                with open(os.path.join(dirpath, name), "rb") as fh:
                    when = _entry_time(fh.readline())
            except OSError:
                continue
            if when is not None and when < cutoff:
                return True
    return False


def reflog_entries(git_dir: Path) -> int:
    """Lines in every reflog of ``git_dir``."""
    total = 0
    for dirpath, _, names in os.walk(git_dir / "logs"):
        for name in names:
            try:
                with open(os.path.join(dirpath, name), "rb") as fh:
                    total += sum(1 for _ in fh)
            except OSError:
                pass
    return total


def expire_reflogs(git_dir: Path, *, days: float = REFLOG_DAYS) -> int:
    """Drop every reflog entry older than ``days`` (git's own ``reflog expire``); how many went."""
    before = reflog_entries(git_dir)
    when = f"{int(days * 86400)}.seconds.ago"
    gitutil.run(git_dir, "reflog", "expire", f"--expire={when}", f"--expire-unreachable={when}", "--all")
    return before - reflog_entries(git_dir)


@dataclass
class Outcome:
    """What was done to one repository: ``packed``, ``would pack``, ``served info rewritten`` or ``nothing``."""

    action: str
    why: Optional[str]
    before: Counts
    after: Optional[Counts] = None
    seconds: float = 0.0
    #: reflog entries dropped (older than :data:`REFLOG_DAYS`); ``None``: none were old enough to look
    reflog_dropped: Optional[int] = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "why": self.why,
            "before": self.before.as_dict(),
            "after": self.after.as_dict() if self.after else None,
            "seconds": round(self.seconds, 3),
            "reflog_dropped": self.reflog_dropped,
        }


def maintain_repo(
    git_dir: Path,
    *,
    dry_run: bool = False,
    force: bool = False,
    loose_limit: int = LOOSE_LIMIT,
    pack_limit: int = PACK_LIMIT,
) -> Outcome:
    """Pack ``git_dir`` when worth it (``force``: whenever anything is loose or split) and drop its old reflog
    entries; the caller holds the lock of whatever writes it (the source's sync lock, the root's lock)."""
    t0 = time.monotonic()
    outcome = _pack(git_dir, dry_run=dry_run, force=force, loose_limit=loose_limit, pack_limit=pack_limit)
    if old_reflogs(git_dir):
        if dry_run:
            if outcome.action == "nothing":
                outcome.action, outcome.why = "would trim reflogs", f"reflog entries older than {REFLOG_DAYS} days"
        else:
            outcome.reflog_dropped = expire_reflogs(git_dir)
            if outcome.action == "nothing":
                outcome.action, outcome.why = "reflogs trimmed", f"reflog entries older than {REFLOG_DAYS} days"
    outcome.seconds = time.monotonic() - t0
    return outcome


def _pack(git_dir: Path, *, dry_run: bool, force: bool, loose_limit: int, pack_limit: int) -> Outcome:
    t0 = time.monotonic()
    before = measure(git_dir)
    bare = is_bare(git_dir)
    why = _why_pack(before, bare, force=force, loose_limit=loose_limit, pack_limit=pack_limit)
    if why is None:
        return _served_info(git_dir, before, bare=bare, dry_run=dry_run)
    if dry_run:
        return Outcome("would pack", why, before)
    remove_stale_tmp(git_dir)
    all_in_one = bare or before.packs > pack_limit or why == "forced"
    args = ["-a", "-k"] if all_in_one else ["--geometric=2"]
    # -n: the server info is written below, and only for a bare repository (a work tree's is nobody's)
    gitutil.run(git_dir, "repack", "-d", "-l", "-q", "-n", *args)
    crashpoint("maintain:repacked")
    if bare:
        gitutil.run(git_dir, "update-server-info")
    return Outcome("packed", why, before, measure(git_dir), time.monotonic() - t0)


def _why_pack(before: Counts, bare: bool, *, force: bool, loose_limit: int, pack_limit: int) -> Optional[str]:
    """Why this repository is worth packing (a served one by stricter limits); ``forced``; None: it is not."""
    served_limit = min(loose_limit, SERVED_LOOSE_LIMIT) if bare else loose_limit
    why = worth_it(before, loose_limit=served_limit, pack_limit=1 if bare else pack_limit)
    if why is None and force and (before.loose or before.packs > 1):
        return "forced"
    return why


def _served_info(git_dir: Path, before: Counts, *, bare: bool, dry_run: bool) -> Outcome:
    """Nothing to pack: a served (bare) repository's ``objects/info/packs`` still rewritten when stale."""
    stale_info = bare and served_packs_stale(git_dir)
    if stale_info and not dry_run:
        gitutil.run(git_dir, "update-server-info")
        return Outcome("served info rewritten", "objects/info/packs was stale", before, measure(git_dir))
    return Outcome("would rewrite served info" if stale_info else "nothing", None, before)
