"""The archive's designed Zarr backend on the view: ``/zarr/{zarr_id}/{version}/{path}``.

dandi-archive's versioned-Zarr design (``doc/design/versioned-zarr.md``, PR #2702) names
``/zarr/{id}/{version}/`` the virtual root of one finalized Zarr version: a GET of a path inside it
redirects to the S3 object that version recorded for the path, and a manifest per version lists them.
The archive has not built it; the mirror records every Zarr state it synced (its manifests,
:mod:`neuromirror.read.manifests`), so the view answers the same shape for each of them: a client
written for the archive's URLs reads the mirror's pinned states first.  :mod:`.route` answers the
requests; every file goes the way ``/zarrs/`` serves it (:mod:`neuromirror.read.view_tree`,
:mod:`neuromirror.read.serving`): the pinned ``versionId`` URL while it serves, the lab store's copy once
the archive lost it.

Part of ``read``: may import ``pin``, ``store``, ``engine``, ``index``, ``annex`` and below; must not
import ``keep``, ``verify``, ``publish``, ``service``, ``commands`` or ``cli``.
"""
