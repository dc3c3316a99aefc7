"""Packed stores: keys' bytes appended to pack files of a chosen size, the store's own index beside them.

A store that writes one file or object per key is refused where a lab's backup can afford to go (tape:
fewer objects than size / 100 MB; a research file system: 10,000 inodes per TB; Deep Archive: ~40 KB and
a price per object).  A packed store's object count follows its bytes: ``pack+file:///PATH`` and
``pack+s3://BUCKET/PREFIX`` hold ``packs/<sha256>.pack`` (sealed, never changed) and ``index/<sha256>.json``
(where each key lies in that pack: offset, length, checksum), written only once its pack is durable.

:mod:`.layout` the formats (a pack's trailer repeats its index, so that a pack alone is readable);
:mod:`.backend` the two places packs go (a directory, an S3 prefix); :mod:`.writer` the open pack;
:mod:`.keymap` where each key lies, read from the index files; :mod:`.store` the store ``keep``,
``verify``, ``restore`` and the readers use; :mod:`.repack` merges small packs and drops dead bytes;
:mod:`.thaw` cold packs (S3 archive storage classes) asked back once.
"""
