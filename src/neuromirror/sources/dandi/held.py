"""An asset the archive never answered for is held at its last state, and the sync says so.

Why: a pin (the HEAD that gives a blob's ``versionId``) or a small file's download that got no good
answer after the retries of :mod:`neuromirror.network.pacing` must not become a plain, mutable S3 URL
in a pinned state, nor a file dropped from the draft.  So the asset keeps, in this commit, the
file the last synced state had at its path (none if it is new), it is named in the snapshot's
``unreachable`` list (the sync ends non-zero and ``status`` names it), and the draft's stamp gains
a ``held=`` token: the next sync, a no-change one included, lists the draft again and takes the
asset up.  A published version is immutable upstream and its tag is forever: it is not committed
with a file held back (:func:`check_published`), the sync fails and the next one makes it whole.
"""

from __future__ import annotations

from typing import Optional

from neuromirror.errors import NeuromirrorError
from neuromirror.records import GIT, Entry, GitEntry, Refusal, Snapshot, SourceState, VersionKind
from neuromirror.sources.dandi.assets import reused_entry

#: the draft stamp's token while assets are held (see the module)
HELD_TOKEN = "held="


class HeldBack(NeuromirrorError, RuntimeError):
    """A published version with assets the archive never answered for: not committed this time."""


def hold(snap: Snapshot, state: SourceState, path: str, reason: str) -> None:
    """Note ``path`` as held in ``snap`` (its report, its stamp)."""
    kept = state.previous(path)
    tail = "; kept its last synced state" if kept is not None else "; left out until then"
    snap.unreachable.append(Refusal(path, f"{reason}{tail}; the next sync tries again"))
    if snap.kind != VersionKind.PUBLISHED:
        stamp = snap.remote_modified or ""
        tokens = [t for t in stamp.split(" ") if t and not t.startswith(HELD_TOKEN)]
        snap.remote_modified = " ".join([*tokens, f"{HELD_TOKEN}{len(snap.unreachable)}"])


def held_entry(state: SourceState, path: str) -> Optional[Entry]:
    """The file the last synced state had at ``path``, as an entry (None: none there).

    A file in git comes back by its sha256 and no loader: the diff finds it unchanged, so its
    bytes are never asked for again.
    """
    prev = state.previous(path)
    if prev is None:
        return None
    if prev.key:
        return reused_entry((prev.remote_id, prev.path, prev.key, prev.size, prev.urls, prev.checksum))
    if prev.checksum_kind == GIT:
        return GitEntry(prev.path, None, prev.remote_id, prev.checksum, prev.size, None, prev.urls)
    return None


def check_published(snap: Snapshot) -> None:
    """Raise :class:`HeldBack` when a published snapshot held anything back (see the module)."""
    if snap.kind == VersionKind.PUBLISHED and snap.unreachable:
        first = snap.unreachable[0]
        more = f" and {len(snap.unreachable) - 1} more" if len(snap.unreachable) > 1 else ""
        raise HeldBack(
            f"version {snap.label} not committed: {first.path!r}{more} could not be read from the archive "
            f"({first.reason}); the next sync tries again"
        )
