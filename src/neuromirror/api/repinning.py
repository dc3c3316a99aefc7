"""The API's verb that makes dead pins follow their bytes: ``repin`` (docs/pin.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Union

from neuromirror.api.inputs import jobs_of, specs_of
from neuromirror.api.reading import Reading
from neuromirror.dataset.versions import select_versions
from neuromirror.spec import Spec

if TYPE_CHECKING:
    from neuromirror.restore.repin import RepinReport


class Repinning(Reading):
    """``repin``: a pinned key whose recorded versionId URLs no longer serve its bytes, found again and recorded."""

    def repin(
        self,
        specs: Union[str, Spec, Sequence[Union[str, Spec]]],
        *,
        bucket: Optional[str] = None,
        prefix: str = "",
        from_prefix: str = "",
        manifest: Optional[str] = None,
        dry_run: bool = False,
        jobs: int = 8,
    ) -> RepinReport:
        """For every pinned key of the versions ``specs`` name whose pins S3 no longer holds, find the bytes again:
        moved (``bucket``/``prefix``: where the same key, ``from_prefix`` taken off it, is now; default the pin's own
        place), at the content-addressed key ``manifest`` (a path or URL) names, or by the archive's record of the
        file; matched by size and ETag (S3's SHA-256 checksum, the bytes read only where nothing else tells).  The new
        pinned URL is registered and the dead one retired on the dataset's git-annex branch (``dry_run``: nothing
        written).  A key whose place holds other bytes, or that was not found, is a failed item."""
        from neuromirror.restore.repin import RepinOptions, RepinReport, Where, read_manifest, repin

        jobs_of(jobs)
        where = Where(bucket, prefix, from_prefix, read_manifest(manifest) if manifest else None)
        versions = select_versions(self.index, specs_of(specs), root=self.root)
        if not dry_run:
            self._writes("repin")
        report = RepinReport(dry_run=dry_run)
        repin(self.datasets, versions, RepinOptions(where, dry_run=dry_run, jobs=jobs), report)
        return report
