"""A DANDI Archive REST API stand-in on loopback, good enough for the real ``dandi`` client.

Why: neuromirror's DANDI source is written against ``dandi.dandiapi.DandiAPIClient``
and the archive's S3 layout.  Tests, the demo and benchmarks need an archive whose
state they control (publish, replace an asset, delete a blob, embargo, inject faults)
and which answers exactly like dandi-archive's Django REST API, so the *unmodified*
client can be pointed at it.  Blobs live in a real S3 endpoint (:class:`S3StandIn`,
moto server mode, versioned bucket): nothing but the API itself is imitated.

Shapes follow dandi-archive's serializers (``dandiapi/api/views/serializers.py``,
``pagination.py``, ``asset.py``, ``version.py``, ``zarr/views``); noteworthy details
reproduced here because a mirror can trip on them:

* Asset lists use the archive's "lazy" pagination: ``count`` only on page 1
  (``null`` on later pages), ``next`` is the request URL with ``page=n+1`` (query
  parameters sorted, like DRF's ``replace_query_param``), so the client fetches
  pages 2.. in parallel.  A page past the end is an empty page.  Other lists
  (dandisets, versions, zarrs, paths) carry ``count`` on every page and answer
  404 ``{"detail": "Invalid page."}`` past the end.  ``page_size`` defaults to 100,
  capped at 1000.
* Assets are immutable: replacing the content at a path creates a new asset_id.
  A blob's sha256 can arrive later (``sha256_pending``): :meth:`finalize_sha256`
  adds ``dandi:sha2-256`` to the digest *without* changing the asset_id or its
  ``modified`` (the real archive's sha256 task updates only the blob row).
* Publishing links the draft's assets to the new version (same asset_ids) and, like
  ``publish_asset``, stamps every not-yet-published asset: ``datePublished`` and
  ``publishedBy`` in its metadata and ``modified`` = publish time.  The draft's
  status becomes ``"Published"`` until its next change.
* Asset metadata ``contentUrl`` = [``<api>/assets/<id>/download/``, S3 URL without
  query]; the download routes answer 302 to a presigned S3 URL (the real archive
  presigns even public blobs), which a mirror must not store as the content URL.
* Embargo: dandisets whose ``embargo_status`` is not OPEN answer 401 without a token
  and 403 to a valid non-owner token; an *invalid* token gets 401 ``Invalid token.``
  on every route, public or not (DRF TokenAuthentication).  Their blobs and zarr
  files live in the private bucket ``<bucket>-embargo`` (no policy: anonymous 403),
  so only the presigned download redirect reaches them.  :meth:`set_embargoed` to
  False copies them to the public bucket (their S3 URL changes; on the real archive
  only an object tag changes).  With ``api_token=None`` access control is off.
* Zarr ``files`` listing is cursor paged (``after``/``limit``, ``next`` is *not* a
  page=2 URL, so the client walks it sequentially); ``LastModified`` is rendered
  ``"YYYY-MM-DD HH:MM:SS+00:00"`` (str of a datetime, as DRF's CharField does).
* ``/server-info`` (root) and ``/api/info/`` fault only with ``fault_info = True``:
  ``dandi.utils.get_instance`` fetches it once per URL without retrying and caches
  the answer per process, so a mirror must retry that first request itself.

The public class is :class:`neuromirror.standins.dandi.server.DandiStandIn`; the other
modules are its parts, bottom up: ``formats`` (values as the archive writes them),
``model`` (the records), ``state`` (the archive's records and buckets), ``render``
(their JSON), ``zarr_manifests`` (the manifest of each Zarr state, in the bucket), ``dandisets`` and
``assets`` (the Python API that changes the archive),
``protocol`` (requests, answers, pages), ``access`` (tokens and embargo),
``dandiset_routes`` and ``asset_routes`` (the REST routes) and ``server``.

The package may import :mod:`neuromirror.standins.s3`, :mod:`neuromirror.standins.faults`
and the base modules, nothing of the tool itself: the stand-in is the archive, not the mirror.
"""
