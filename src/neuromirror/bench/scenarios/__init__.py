"""The benchmark's scenarios, one module each: what is measured and the targets it is checked against.

:mod:`.per_size` (head reference, DANDI cold / resync / changes, AIND, per N files), :mod:`.anchors`
(git-annex and DataLad doing the same job), :mod:`.scale` (archive-scale shapes), :mod:`.zarr_many`,
:mod:`.publish_ria`, :mod:`.keep`, :mod:`.index_queries`; rooms of their own for :mod:`.far` (a network
away), :mod:`.lost` (a loss upstream read back from the lab's stores, the archive's inventory, the gap-fill),
:mod:`.serve` (a mirror kept up for months), :mod:`.beside` and :mod:`.packs`.  They drive neuromirror through the
measuring tools of the package above (:mod:`neuromirror.bench.syncs`, :mod:`neuromirror.bench.measure`,
:mod:`neuromirror.bench.clone_get`, the stand-ins filled by :mod:`neuromirror.bench.archives`), which
never import a scenario.
"""
