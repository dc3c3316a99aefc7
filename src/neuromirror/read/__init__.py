"""Reading a pinned state in place: every file of a pin by a URL that serves exactly its bytes.

A lab streams the archives' data (NWB by range requests, Zarr by chunk) rather than cloning it.
:mod:`.pinned` resolves what a user names (``SPEC@VERSION``, ``@draft``, ``@COMMIT``, a lock file)
to a dataset and commit; :mod:`.urls` lists the pin's files with, per file, the one URL that
serves its bytes — the archive's pinned URL, else the lab store's copy (:class:`.store_reads.StoreCopy`: the
store and the key, read through the store: a file, an S3 object, a key of a packed store) — or why there is none;
:mod:`.fsspec_fs` is the ``neuromirror://`` fsspec filesystem on top of it (so zarr-python, h5py
and anything fsspec reads a pin); :mod:`.view` is the HTTP/WebDAV view ``serve --http`` gives
(redirects to the pinned URLs, PROPFIND through WsgiDAV, listings).; :mod:`.icechunk` exports a pinned Zarr
state as Icechunk snapshots whose virtual chunks name the view's URL at the pin or a store's kept bytes.

Never a URL that can serve other bytes tomorrow: the verdict is the URL rule's
(:mod:`neuromirror.sources.urlrule`), the same one the sync applied when it registered them.

May import ``pin``, ``store``, ``engine``, ``index``, ``annex`` and below; must not
import ``keep``, ``verify``, ``publish``, ``service``, ``commands`` or ``cli``.
"""
