"""A DANDI archive wrong on purpose: one dandiset with every kind ``neuromirror audit`` covers, one clean.

The kinds only ``audit --recheck`` looks for are :data:`PLANTED_ON_RECHECK`: a Zarr whose published manifest
(:mod:`.zarr_manifests`) drifted from its objects.  The clean dandiset holds a Zarr the archive publishes no
manifest of: no finding, counted in the audit's coverage.

Shared by ``tests/test_audit.py`` and the bench's ``audit-scale`` (``bench/scenarios/beside/audit_rows.py``), so
that the findings the bench times are the ones the test checks.  :func:`plant` makes both dandisets;
:data:`PLANTED` is what the wrong one must yield once synced, then synced again after :func:`rewrite` (a Zarr
changed in place: the draft's ``modified`` does not move, the asset's does: dandi-archive PR #2720).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

ZARR = {
    ".zgroup": b'{"zarr_format": 2}',
    "0/.zarray": b'{"chunks": [4], "dtype": "<u1", "shape": [8], "zarr_format": 2}',
    "0/0": b"\x00\x01\x02\x03",
    "0/1": b"\x04\x05\x06\x07",
}
#: (kind, path) the wrong dandiset must yield; "" is a version's own finding
PLANTED = frozenset(
    {
        ("zarr-checksum-mismatch", "sub-0/bad.zarr"),
        ("zarr-no-checksum", "sub-0/pending.zarr"),
        ("digest-mismatch", "notes.txt"),
        ("blob-unpinned", "sub-0/nopin.nwb"),
        ("noncurrent-only", "sub-0/gone.nwb"),
        ("no-doi", ""),
        ("modified-unchanged", "sub-0/rewritten.zarr"),
    }
)

#: (kind, path) the wrong dandiset must yield besides with ``audit --recheck``: the drifted manifest's paths
PLANTED_ON_RECHECK = frozenset(
    {
        ("manifest-drift", "sub-0/drifted.zarr/0/0"),  # another size in the manifest
        ("manifest-drift", "sub-0/drifted.zarr/0/1"),  # missing from it
        ("manifest-drift", "sub-0/drifted.zarr/0/.zarray"),  # another versionId
        ("manifest-drift", "sub-0/drifted.zarr/0/2"),  # in it, no such object
    }
)
#: the clean dandiset's Zarr whose manifest the archive does not publish
UNPUBLISHED = "sub-0/unlisted.zarr"


class Planted(NamedTuple):
    wrong: str  # the dandiset ids
    clean: str
    rewritten: str  # the Zarr id :func:`rewrite` changes


def plant(archive: Any) -> Planted:
    """The wrong and the clean dandiset on ``archive`` (a :class:`~.server.DandiStandIn`)."""
    import requests

    a = archive
    wrong = a.create_dandiset(name="audit: wrong on purpose")
    a.put_asset(wrong, "sub-0/ok.nwb", b"o" * 300)
    a.corrupt_zarr_checksum(a.add_zarr_asset(wrong, "sub-0/bad.zarr", ZARR))
    pending = a.asset(a.add_zarr_asset(wrong, "sub-0/pending.zarr", ZARR)).zarr
    with a._lock:  # a Zarr the archive has no checksum for (its checksum task not run yet)
        pending.checksum, pending.rev = "", pending.rev + 1
    rewritten = a.asset(a.add_zarr_asset(wrong, "sub-0/rewritten.zarr", ZARR)).zarr.zarr_id
    a.put_asset(wrong, "sub-0/nopin.nwb", size=500, upload=False)  # no S3 object, no version of it
    gone = a.put_asset(wrong, "sub-0/gone.nwb", b"g" * 400)
    a.delete_blob_object(a.asset(gone).blob.blob_id)  # a delete marker: only the noncurrent version serves it
    notes = a.put_asset(wrong, "notes.txt", b"some notes\n")
    md = requests.get(f"{a.api_url}/assets/{notes}/", timeout=30).json()
    md["digest"]["dandi:sha2-256"] = "0" * 64  # the archive's digest is not the bytes'
    a.override_metadata(notes, json.dumps(md).encode())
    drifted = a.asset(a.add_zarr_asset(wrong, "sub-0/drifted.zarr", ZARR)).zarr.zarr_id
    a.drift_manifest(
        drifted, resize={"0/0": 5}, drop=["0/1"], version={"0/.zarray": "not-its-version"}, extra={"0/2": 4}
    )
    a.publish(wrong)
    with a._lock:  # a published version whose DOI was never minted
        version = a.dandiset(wrong).published[-1]
        version.doi = None
        version.metadata.pop("doi", None)
        version.rev = getattr(version, "rev", 0) + 1
    clean = a.create_dandiset(name="audit: clean")
    a.put_asset(clean, "sub-0/fine.nwb", b"f" * 300)
    a.add_zarr_asset(clean, "sub-0/fine.zarr", ZARR)
    a.withhold_manifest(a.asset(a.add_zarr_asset(clean, UNPUBLISHED, ZARR)).zarr.zarr_id)
    a.publish(clean)
    return Planted(wrong, clean, rewritten)


def rewrite(archive: Any, planted: Planted) -> None:
    """The wrong dandiset's Zarr changed in place: the draft's ``modified`` does not move (the asset's does)."""
    archive.modify_zarr(planted.rewritten, put={"0/1": b"\x09\x09\x09\x09"})
