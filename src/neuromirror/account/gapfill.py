"""Gap-fill's plan (``keep --covered-by LIST --order risk``): what another backup lacks, what is lost soonest first.

Every file of the versions to keep is placed at its archive key (:func:`neuromirror.restore.objects.place`: the
key its recorded S3 URL names) and looked up in the LIST (:mod:`.covered`): a key held there at the pinned size
(and ETag) is left out.  The rest is kept in phases, one pass of ``keep`` each, so that the store receives first
what the archive loses first:

1. objects only a noncurrent S3 version serves and no store holds, by the date the archive's lifecycle deletes
   them (a phase per day: :func:`neuromirror.account.backup.expiring_keys`);
2. content in no copy at all: not in the LIST and not in any of the lab's stores;
3. the rest (a copy in another of the lab's stores already).

``--order path`` keeps the uncovered files in one pass, the versions as named, each in path order.  The plan holds
keys as fingerprints (:class:`~neuromirror.keep.keyset.KeySet`): memory follows the few expiring keys, not 10^6.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Mapping, Optional, Sequence

from neuromirror.account.covered import CoverList, pinned_etag
from neuromirror.dataset.files import VersionFiles, annex_key, each_version_file
from neuromirror.index.store_checks import checks_of
from neuromirror.keep.keyset import KeySet
from neuromirror.records import VersionFile
from neuromirror.restore.objects import ArchiveObject, locator_for, place

if TYPE_CHECKING:
    from neuromirror.dataset.mirror import Datasets
    from neuromirror.index.rows import Version

ORDERS = ("risk", "path")
NO_COPY, ELSEWHERE = "in no copy", "in another of the lab's stores"
_BATCH = 5000


@dataclass
class PhaseCount:
    label: str
    files: int = 0
    bytes: int = 0

    def to_json(self) -> dict:
        return {"phase": self.label, "objects": self.files, "bytes": self.bytes}


@dataclass
class GapPlan:
    """Which keys a gap-fill keeps in which phase (:meth:`phase_of`), and the plan's counts."""

    order: str
    lists: list[str]
    phases: list[PhaseCount] = field(default_factory=list)
    covered: KeySet = field(default_factory=KeySet)  # annex keys the LIST holds: not kept
    covered_count: PhaseCount = field(default_factory=lambda: PhaseCount("covered"))
    differs: int = 0  # keys the LIST names at another size or ETag (kept: its copy is not this one)
    unplaced: int = 0  # files with no archive key recorded (kept: the LIST cannot hold them)
    soon: dict[str, int] = field(default_factory=dict)  # key -> its phase, of the expiring keys
    elsewhere: KeySet = field(default_factory=KeySet)  # keys another of the lab's stores holds
    seconds: float = 0.0

    def phase_of(self, f: VersionFile) -> Optional[int]:
        """The phase ``f`` is kept in; None: covered by the LIST, not kept."""
        key = annex_key(f)
        if key in self.covered:
            return None
        if self.order != "risk":
            return 0
        got = self.soon.get(key)
        if got is not None:
            return got
        return len(self.phases) - 1 if key in self.elsewhere else len(self.phases) - 2

    def to_json(self) -> dict:
        return {
            "order": self.order,
            "covered_by": self.lists,
            "covered": self.covered_count.to_json(),
            "differs": self.differs,
            "no_archive_key": self.unplaced,
            "phases": [p.to_json() for p in self.phases],
            "seconds": round(self.seconds, 3),
        }


def plan_gap(
    mirror: Datasets,
    targets: Sequence[Version],
    cover: CoverList,
    order: str = "risk",
    expire_after: Optional[Mapping[str, float]] = None,
) -> GapPlan:
    """The gap-fill of ``targets`` against ``cover``: each distinct key once, in the first version naming it."""
    started = time.monotonic()
    plan = GapPlan(order, list(cover.names))
    uncovered: list[tuple[str, int]] = []
    seen = KeySet()
    batch: list[tuple[VersionFile, object]] = []
    for target in targets:
        place_of = _placer(target)
        files = each_version_file(mirror.index, mirror.dataset_path(target.relpath), target.id, VersionFiles())
        for f in files:
            key = annex_key(f)
            if key in seen:
                continue
            seen.add(key)
            batch.append((f, place_of(f)))
            if len(batch) >= _BATCH:
                judge(plan, cover, batch, uncovered)
    judge(plan, cover, batch, uncovered)
    _phases(mirror, plan, uncovered, [t.source for t in targets], expire_after)
    plan.seconds = time.monotonic() - started
    return plan


def _placer(target: Version):  # noqa: ANN202 - a closure over one locator per version
    locator = locator_for(target.source)
    return lambda f: place(f, target.source, target.label, locator)


def judge(
    plan: GapPlan, cover: CoverList, batch: list[tuple[VersionFile, object]], uncovered: list[tuple[str, int]]
) -> None:
    """A batch of (file, its archive object or why none) against the LIST, in one lookup; emptied."""
    placed = [(f, o) for f, o in batch if isinstance(o, ArchiveObject)]
    verdicts = cover.match_many([(o.archive_key, f.size, pinned_etag(annex_key(f))) for f, o in placed])
    for f, o in batch:
        if not isinstance(o, ArchiveObject):
            plan.unplaced += 1
            uncovered.append((annex_key(f), f.size or 0))
    for (f, _), got in zip(placed, verdicts):
        key = annex_key(f)
        if got == "covered":
            plan.covered.add(key)
            plan.covered_count.files += 1
            plan.covered_count.bytes += f.size or 0
            continue
        plan.differs += got == "differs"
        uncovered.append((key, f.size or 0))
    batch.clear()


def _phases(
    mirror: Datasets,
    plan: GapPlan,
    uncovered: list[tuple[str, int]],
    sources: Iterable[str],
    expire_after: Optional[Mapping[str, float]],
) -> None:
    """The uncovered keys into phases: the expiring ones by day, then those in no copy, then the rest."""
    if plan.order != "risk":
        plan.phases = [PhaseCount("uncovered")]
        for _, size in uncovered:
            plan.phases[0].files += 1
            plan.phases[0].bytes += size
        return
    from neuromirror.account.backup import expiring_keys

    expiring = expiring_keys(mirror.index, sorted(set(sources)), expire_after=expire_after)
    days = sorted({expiring[k][:10] for k, _ in uncovered if k in expiring})
    plan.phases = [PhaseCount(f"noncurrent only, deleted by {d}") for d in days]
    plan.phases += [PhaseCount(NO_COPY), PhaseCount(ELSEWHERE)]
    day_phase = {d: i for i, d in enumerate(days)}
    for i in range(0, len(uncovered), _BATCH):
        part = uncovered[i : i + _BATCH]
        held = checks_of(mirror.index, [k for k, _ in part])
        for key, size in part:
            if key in expiring:
                phase = plan.soon[key] = day_phase[expiring[key][:10]]
            elif held.get(key):
                plan.elsewhere.add(key)
                phase = len(plan.phases) - 1
            else:
                phase = len(plan.phases) - 2
            plan.phases[phase].files += 1
            plan.phases[phase].bytes += size
