"""Memory at the archives' size: what a 10^6-key run holds per key, what its heap keeps, where its listings go.

``fingerprints``: strings (keys, log paths) as sorted 12-byte fingerprints, the core of annex.blobmap,
store.packs.places and keep.keyset; ``heap``: glibc's heap bounded and trimmed in a long keep; ``spool``:
records (listings, change sets of 10^6 items) spooled to a temporary file and read back as a stream, so that
memory stays flat whatever the archive's size.  Imports nothing of the project but ``util.counts``.
"""
