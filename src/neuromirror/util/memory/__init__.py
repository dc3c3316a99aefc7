"""Memory at the archives' size: what a 10^6-key run holds per key, and what its heap keeps.

``fingerprints``: strings (keys, log paths) as sorted 12-byte fingerprints, the core of annex.blobmap,
store.packs.places and keep.keyset; ``heap``: glibc's heap bounded and trimmed in a long keep.  Imports
nothing of the project.
"""
