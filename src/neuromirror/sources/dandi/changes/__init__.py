"""A draft's changes read in O(changes): the asset listing ordered by ``-modified`` (:mod:`.listing`).

What the last sync saw is written into the draft's stamp (:mod:`.stamp`): the version's asset
count and size, and the newest asset ``modified``; a resync reads the newest assets first and
stops at the first one older than that, and pages the whole version only when the count says an
asset went without moving any ``modified`` (a deletion) or anything else does not add up: then, as a
first sync and every published version, the list is read whole and judged whole (:mod:`.whole`).
"""
