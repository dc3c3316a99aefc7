"""Stand-in servers impersonating the remote archives, for tests, the demo and benchmarks.

* :class:`S3StandIn` - a real S3 endpoint (moto server mode) on loopback.
* :class:`~neuromirror.standins.s3_generated.GeneratedS3` - an S3 endpoint whose
  listing pages are made on request (in S3's key order) for stores of millions of
  objects, every GET answered with the bytes whose checksum the listing gives.
* :class:`DandiStandIn` - the DANDI Archive REST API over an in-memory model, blobs in
  an :class:`S3StandIn`; the real ``dandi.dandiapi.DandiAPIClient`` works against it
  (the package :mod:`neuromirror.standins.dandi`, the class in its ``server`` module).
* :class:`BossStandIn` - the BOSS API over in-memory volumes; the real ``intern``
  client works against it (the package :mod:`neuromirror.standins.boss`, the class in
  its ``server`` module, the sample experiments in ``sample`` and ``tiny``).
* :class:`GitHubStandIn` - GitHub's REST API (repositories, releases, rate limits) and its
  repositories over git's smart HTTP, for ``publish --to github:ORG`` (:mod:`neuromirror.standins.github`).
* :class:`FaultPlan` / :func:`apply_fault` - deterministic fault injection that any
  ``http.server``-based stand-in can reuse (see :mod:`neuromirror.standins.faults`).

The stand-ins are the archives, not the mirror: they may import one another and the
base modules (``util``, ``errors``, ``records``, ``spec``, ``archives``), nothing
of the tool above them.  Imports are lazy so that ``neuromirror.standins.faults`` can be
used without boto3/moto.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neuromirror.standins.faults import ALL_KINDS, PAGE_FAULTS, TRANSPORT_FAULTS, FaultPlan, apply_fault, shifted_page

if TYPE_CHECKING:
    from neuromirror.standins.boss.server import BossStandIn
    from neuromirror.standins.dandi.server import DandiStandIn
    from neuromirror.standins.github.server import GitHubStandIn
    from neuromirror.standins.s3 import S3StandIn

__all__ = [
    "ALL_KINDS",
    "PAGE_FAULTS",
    "TRANSPORT_FAULTS",
    "BossStandIn",
    "DandiStandIn",
    "FaultPlan",
    "GitHubStandIn",
    "S3StandIn",
    "apply_fault",
    "shifted_page",
]


def __getattr__(name: str) -> Any:
    if name == "S3StandIn":
        from neuromirror.standins.s3 import S3StandIn

        return S3StandIn
    if name == "DandiStandIn":
        from neuromirror.standins.dandi.server import DandiStandIn

        return DandiStandIn
    if name == "BossStandIn":
        from neuromirror.standins.boss.server import BossStandIn

        return BossStandIn
    if name == "GitHubStandIn":
        from neuromirror.standins.github.server import GitHubStandIn

        return GitHubStandIn
    raise AttributeError(name)
