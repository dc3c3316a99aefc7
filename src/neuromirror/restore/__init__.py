"""``restore``: kept content written back in the archive's own key layout, and rehearsed by drills.

A backup that cannot restore is not one. This package turns what ``keep`` put in the lab's stores
back into the archive's objects: each file of the named versions gets the key the archive stored it
under (DANDI ``blobs/…`` and ``zarr/{id}/…``, AIND asset keys — read from its recorded S3 URLs; BOSS
OME-Zarr chunks — its path), its bytes read from a store holding a good copy and checked against the
git-annex key before anything is written, into an S3 bucket (the archive's own, or any) or a directory.

* :mod:`.objects` — a version's files -> the archive objects to write (hostile keys refused);
* :mod:`.copies`  — one key's bytes from the first store whose copy hashes right (bad copies named);
* :mod:`.targets` — where they go: an S3 bucket (HEAD + compare, never overwriting other bytes unless
  forced into a versioned bucket) or a directory (atomic renames, never outside it);
* :mod:`.run`     — the run: -J threads, resumable (what is right is left alone), the report.

Layer 8 (beside ``verify/``): it may import ``keep``, ``pin``, ``store``, ``index``, ``sources`` and
below; must not import ``verify``, ``maintain``, ``service``, ``commands`` or ``cli``.
"""
