"""``repin``: pins that follow their bytes when the archive re-keys them.

A pin is a ``?versionId=`` URL, and S3 cannot keep a versionId through a copy: a bucket moved, a prefix
renamed, an object uploaded again or moved to a content-addressed key leaves the pin dead while the bytes
live on.  This package finds them again — at the moved place by size and ETag (:mod:`.s3`, :mod:`.match`),
at the key an archive's manifest names (:mod:`.manifest`), or by the archive's own record of the file
(its ``refind`` in :mod:`neuromirror.archives`) — in that order (:mod:`.find`), and records the new pin in
the dataset's git-annex branch, the dead one retired (:mod:`.run`); :mod:`.report` says what it did.

Part of ``restore/`` (layer 8): the same walk of a version's archive objects (:mod:`neuromirror.restore.objects`).
"""

from neuromirror.restore.repin.find import Where
from neuromirror.restore.repin.manifest import Manifest, read_manifest
from neuromirror.restore.repin.report import Pin, RepinReport
from neuromirror.restore.repin.run import RepinOptions, repin

__all__ = ["Manifest", "Pin", "RepinOptions", "RepinReport", "Where", "read_manifest", "repin"]
