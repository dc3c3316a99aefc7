"""``audit``: what the mirror saw wrong upstream, per source, from what its syncs recorded.

:mod:`.findings` reads the index (the runs' reports, the ``pending`` table, the versions and the newest
state's entries) into typed :class:`~.findings.Finding` records, one kind each (a Zarr refused for a
checksum mismatch, a Zarr without checksum, bytes against the archive's digest, a blob not pinned, an
object only a noncurrent S3 version serves, a published version without DOI, content changed while
``modified`` did not); :mod:`.recheck` asks the archive again (``audit --recheck``: the DOIs, the
noncurrent objects and when they expire); :mod:`.report` is the text ``audit`` prints and the ``/audit/`` page of
``serve --http``.

May import ``keep``, ``pin``, ``store``, ``engine``, ``dataset``, ``index``, ``sources``, ``annex`` and
below; must not import ``verify``, ``restore``, ``maintain``, ``service``, ``commands`` or ``cli``.
"""
