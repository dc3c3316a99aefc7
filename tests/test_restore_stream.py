"""``restore --dry-run --json`` over many keys: the plan is an iterator over the version's rows and each
object it would write is written out and dropped, so that memory does not grow with the objects.

Why: a dry run over a DANDI dandiset of 10^6 Zarr chunks must say which keys it would write without
holding 10^6 objects (~600 bytes each, and their JSON) at once.  Here a version of 10^5 rows is fed
to the real plan (:func:`~neuromirror.restore.run.plan_iter`) and the real dry run
(:func:`~neuromirror.restore.run.restore_objects`, into an S3 target whose listings show it empty: the
path the bench's dry run over 10^6 keys takes), its entries to the real streamed writer
(:class:`~neuromirror.restore.report.StreamedJson`) over a sink that counts and drops them; only the
index, the stores and the bucket are stand-ins (rows generated one at a time, every key held, no request).

The bound: what stays per key is the plan's two hashes (archive key, git-annex key: ~115 bytes in a
dict, to keep one object per archive key), 10^5 x ~115 B ~ 11 MB; one batch of 5,000 objects is held
while it is looked at (~3 MB).  Holding the objects (~600 B each with their strings) or their JSON
lines (~500 B) as well would add >= 50 MB at 10^5, so a peak under 24 MB shows each is dropped once
written.  No timing is asserted.
"""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path
from typing import Iterator, Optional

from neuromirror.index.rows import Version
from neuromirror.records import VersionFile, VersionKind
from neuromirror.restore.objects import ArchiveObject
from neuromirror.restore.report import RestoreReport, StreamedJson
from neuromirror.restore.run import RestoreOptions, plan_iter, restore_objects
from neuromirror.restore.targets import DirTarget, S3Target

ROWS = 100_000
PEAK_BOUND = 24 << 20
STORE = "file:///stores/one"


def _row(i: int) -> VersionFile:
    h = f"{i:064x}"
    blob = f"blobs/{h[-3:]}/{h[-6:-3]}/{h[-8:]}-0000-4000-8000-{h[-12:]}"  # DANDI's layout: one key per row
    url = f"https://dandiarchive.s3.amazonaws.com/{blob}?versionId=v{i}"
    return VersionFile(f"sub-{i:06d}/ses-1_ecephys.nwb", f"SHA256E-s{1000 + i}--{h}.nwb", 1000 + i, "sha256", h, (url,))


class _Index:
    """A version's rows, generated one at a time as the index's paged query yields them."""

    def __init__(self, rows: int):
        self.rows = rows

    def version_files(self, version_id: int) -> Iterator[VersionFile]:
        return (_row(i) for i in range(self.rows))


class _Mirror:
    def __init__(self, rows: int, root: Path):
        self.index = _Index(rows)
        self.root = root

    def dataset_path(self, relpath: str) -> Path:
        return self.root / relpath


class _Copies:
    """Every key held by one store (a dry run asks, never reads)."""

    def prime(self, keys: list[str]) -> None:
        pass

    def drop(self, keys: list[str]) -> None:
        pass

    def holder(self, key: str) -> Optional[str]:
        return STORE

    #: the packs a dry run would thaw first: none, its store has no cold pack
    to_thaw: dict[str, int] = {}

    def note_thaw(self, key: str, url: str) -> None:
        pass


class _EmptyBucket(S3Target):
    """An S3 target whose listings show nothing (a dry run into an empty bucket): no request is made."""

    def prefetch(self, objs: list[ArchiveObject]) -> None:
        pass

    def listed_absent(self, obj: ArchiveObject) -> bool:
        return True


class _Sink(io.TextIOBase):
    """stdout that counts the entries written and keeps none of them (but the first, to look at)."""

    def __init__(self) -> None:
        self.entries = 0
        self.first = ""
        self.tail = ""

    def write(self, s: str) -> int:
        if s.startswith('{\n  "writes": [') or s.startswith(",\n    "):
            self.entries += 1
            self.first = self.first or s
        else:
            self.tail = s
        return len(s)


def _dry_run(rows: int, tmp_path: Path) -> tuple[RestoreReport, _Sink]:
    mirror = _Mirror(rows, tmp_path / "mirror")
    version = Version(1, "draft", VersionKind.DRAFT, "0" * 40, source="dandi:000001", relpath="dandi/000001")
    target = _EmptyBucket("restored")
    report = RestoreReport(target.url, dry_run=True)
    sink = _Sink()
    streamed = StreamedJson(sink)
    options = RestoreOptions(dry_run=True, jobs=4, each=streamed)
    objs = plan_iter(mirror, [version], report)  # type: ignore[arg-type]
    restore_objects(mirror, objs, target, options, report, _Copies())  # type: ignore[arg-type]
    streamed.close(report.to_json())
    return report, sink


def test_dry_run_json_names_each_key_in_one_document(tmp_path: Path) -> None:
    """A few rows: the whole document parses, each entry names its key, file, size and store."""
    mirror_out = io.StringIO()
    mirror = _Mirror(3, tmp_path / "mirror")
    version = Version(1, "draft", VersionKind.DRAFT, "0" * 40, source="dandi:000001", relpath="dandi/000001")
    report = RestoreReport(str(tmp_path / "out"), dry_run=True)
    streamed = StreamedJson(mirror_out)
    objs = plan_iter(mirror, [version], report)  # type: ignore[arg-type]
    options = RestoreOptions(dry_run=True, each=streamed)
    restore_objects(mirror, objs, DirTarget(tmp_path / "out"), options, report, _Copies())  # type: ignore[arg-type]
    streamed.close(report.to_json())
    doc = json.loads(mirror_out.getvalue())
    assert doc["would_write"] == {"objects": 3, "bytes": 1000 + 1001 + 1002} and doc["ok"]
    first = doc["writes"][0]
    assert (
        first["archive_key"] == "blobs/000/000/00000000-0000-4000-8000-000000000000"
        and first["path"] == "sub-000000/ses-1_ecephys.nwb"
    )
    assert (first["size"], first["from"], first["store"], first["git"]) == (1000, "store", STORE, None)
    assert first["to"] == str(tmp_path / "out" / first["archive_key"]) and first["version"] == "dandi:000001@draft"
    # one entry per line: a reader of lines needs no JSON parser for the whole document
    lines = mirror_out.getvalue().splitlines()
    assert [json.loads(line.strip().rstrip(","))["path"] for line in lines[2:5]] == [w["path"] for w in doc["writes"]]

    empty = io.StringIO()
    StreamedJson(empty).close({"objects": 0})
    assert json.loads(empty.getvalue()) == {"writes": [], "objects": 0}


def test_dry_run_over_1e5_rows_holds_no_list_of_them(tmp_path: Path) -> None:
    tracemalloc.start()
    try:
        report, sink = _dry_run(ROWS, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.objects == ROWS and report.would_write == ROWS and report.failed == []
    assert sink.entries == ROWS and '"would_write"' in sink.tail
    assert peak < PEAK_BOUND, f"peak {peak / 2**20:.1f} MB over {ROWS} rows"
